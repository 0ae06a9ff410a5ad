package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/colcrypt/colcrypt/cipher"
)

// planOK is the smallest valid plan; the bad cases below are edits of it, so
// their line numbers can be read off this listing.
const planOK = `version: 1
database:
  engine: sqlite
  dsn: test.db
keystore: k.keystore
tables:
  - name: customers
    columns:
      - name: ssn
`

// planEdit replaces old, which must occur in planOK, by new.
func planEdit(t testing.TB, old, new string) string {
	t.Helper()
	if !strings.Contains(planOK, old) {
		t.Fatalf("planEdit: %q not in planOK", old)
	}
	return strings.Replace(planOK, old, new, 1)
}

// planTestEnv is the environment the table-driven tests see.
func planTestEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"COLCRYPT_DSN": "sqlserver://sa:p%40ss@db1?database=shop",
		"EMPTY":        "",
		"KS_DIR":       "/secure/keys",
	}[name]
	return v, ok
}

func parseTestPlan(t *testing.T, data string) (*Plan, error) {
	t.Helper()
	return parsePlan([]byte(data), "plan.yaml", planTestEnv)
}

type badPlanCase struct {
	name string
	yaml string
	want string // the whole error text
	// schema says whether plans/plan.schema.json rejects the plan too; false
	// where JSON Schema cannot express the rule (duplicates, environment,
	// arithmetic).
	schema bool
}

func badPlanCases(t testing.TB) []badPlanCase {
	const suites = "aes-128-cbc, aes-192-cbc, aes-256-cbc, 3des-cbc, aead-aes-256-cbc-hmac-sha256"
	tablesSection := "tables:\n  - name: customers\n    columns:\n      - name: ssn\n"
	return []badPlanCase{
		// Unknown keys, at every level.
		{"unknown top-level key", planOK + "foo: bar\n",
			`plan.yaml:10:1: unknown key "foo" in the plan (valid: version, database, keystore, defaults, job, tables)`, true},
		{"unknown job key", planOK + "job:\n  worker: 4\n",
			`plan.yaml:11:3: unknown key "worker" in job (valid: workers, batch_rows, online, plaintext, purge, drop_check_constraints, drop_defaults, large_object_limit, chunk_target)`, true},
		{"unknown column key", planOK + "        encrypt: true\n",
			`plan.yaml:10:9: unknown key "encrypt" in column entry (valid: name, suite, iv, key, versioned)`, true},
		{"unknown database key", planEdit(t, "  dsn: test.db\n", "  dsn: test.db\n  user: sa\n"),
			`plan.yaml:5:3: unknown key "user" in database (valid: engine, dsn)`, true},
		{"unknown defaults key", planOK + "defaults:\n  cipher: aes-256-cbc\n",
			`plan.yaml:11:3: unknown key "cipher" in defaults (valid: suite, iv, key, versioned)`, true},
		{"unknown table key", planEdit(t, "    columns:\n", "    schema: dbo\n    columns:\n"),
			`plan.yaml:8:5: unknown key "schema" in table entry (valid: name, columns)`, true},
		{"merge key", planOK + "defaults: &d\n  key: pii\njob:\n  <<: *d\n",
			`plan.yaml:13:3: merge keys (<<) are not supported in job; repeat the keys`, true},

		// Wrong types.
		{"workers a word", planOK + "job:\n  workers: four\n",
			`plan.yaml:11:12: job.workers must be an integer, got the string "four"`, true},
		{"workers a fraction", planOK + "job:\n  workers: 4.5\n",
			`plan.yaml:11:12: job.workers must be an integer, got the number 4.5`, true},
		{"versioned maybe", planOK + "        versioned: maybe\n",
			`plan.yaml:10:20: versioned must be true or false, got the string "maybe"`, true},
		{"online yes", planOK + "job:\n  online: yes\n",
			`plan.yaml:11:11: job.online must be true or false, got the string "yes"`, true},
		{"columns not a list", planEdit(t, "    columns:\n      - name: ssn\n", "    columns: ssn\n"),
			`plan.yaml:8:14: columns must be a list, got the string "ssn"`, true},
		{"column entry a bare name", planEdit(t, "      - name: ssn\n", "      - ssn\n"),
			`plan.yaml:9:9: column entry must be a mapping, got the string "ssn"`, true},
		{"table name a mapping", planEdit(t, "  - name: customers\n", "  - name: {schema: dbo}\n"),
			`plan.yaml:7:11: table name must be a string, got a mapping`, true},
		{"database a string", planEdit(t, "database:\n  engine: sqlite\n  dsn: test.db\n", "database: sqlite:///test.db\n"),
			`plan.yaml:2:11: database must be a mapping, got the string "sqlite:///test.db"`, true},
		{"defaults a list", planOK + "defaults: [suite]\n",
			`plan.yaml:10:11: defaults must be a mapping, got a list`, true},
		{"version quoted", planEdit(t, "version: 1", `version: "1"`),
			`plan.yaml:1:10: version must be an integer, got the string "1"`, true},
		{"plan a list", "- version: 1\n",
			`plan.yaml:1:1: the plan must be a mapping, got a list`, true},

		// Duplicates.
		{"duplicate top-level key", planEdit(t, "version: 1\n", "version: 1\nversion: 1\n"),
			`plan.yaml:2:1: duplicate key "version" in the plan (first at line 1)`, false},
		{"duplicate column key", planOK + "        iv: column\n        iv: field\n",
			`plan.yaml:11:9: duplicate key "iv" in column entry (first at line 10)`, false},
		{"duplicate table, other case", planOK + "  - name: Customers\n    columns:\n      - name: email\n",
			`plan.yaml:10:11: table "Customers" is listed twice (first at line 7); put all its columns in one entry`, false},
		{"duplicate column, other case", planOK + "      - name: SSN\n",
			`plan.yaml:10:15: column "SSN" is listed twice in table "customers" (first at line 9)`, false},

		// Values out of their domain.
		{"unknown suite in defaults", planOK + "defaults:\n  suite: aes-512-cbc\n",
			`plan.yaml:11:10: unknown cipher suite "aes-512-cbc" (valid: ` + suites + `)`, true},
		{"suite in upper case", planOK + "        suite: AES-256-CBC\n",
			`plan.yaml:10:16: unknown cipher suite "AES-256-CBC" (valid: ` + suites + `)`, true},
		{"unknown iv mode", planOK + "        iv: random\n",
			`plan.yaml:10:13: unknown IV mode "random" (valid: field, column)`, true},
		{"unknown engine", planEdit(t, "engine: sqlite", "engine: mysql"),
			`plan.yaml:3:11: unknown database engine "mysql" (valid: sqlserver, postgres, sqlite)`, true},
		{"workers zero", planOK + "job:\n  workers: 0\n",
			`plan.yaml:11:12: job.workers must be between 1 and 64, got 0`, true},
		{"workers 65", planOK + "job:\n  workers: 65\n",
			`plan.yaml:11:12: job.workers must be between 1 and 64, got 65`, true},
		{"batch_rows zero", planOK + "job:\n  batch_rows: 0\n",
			`plan.yaml:11:15: job.batch_rows must be between 1 and 2147483647, got 0`, true},
		{"plaintext keep", planOK + "job:\n  plaintext: keep\n",
			`plan.yaml:11:14: unknown plaintext mode "keep" (valid: drop, null)`, true},
		{"version 2", planEdit(t, "version: 1", "version: 2"),
			`plan.yaml:1:10: unsupported plan version 2 (this colcrypt reads version 1)`, true},
		{"empty key name", planOK + "        key: \"\"\n",
			`plan.yaml:10:14: key must not be empty`, true},
		{"table name without table part", planEdit(t, "name: customers", "name: dbo."),
			`plan.yaml:7:11: table name "dbo." has an empty table part`, false},
		{"large_object_limit unknown unit", planOK + "job:\n  large_object_limit: 500 mega\n",
			`plan.yaml:11:23: job.large_object_limit must be a number of bytes such as 524288000 or "500MB" (units B, KB, MB, GB, TB), got "500 mega"`, true},
		{"large_object_limit zero", planOK + "job:\n  large_object_limit: 0\n",
			`plan.yaml:11:23: job.large_object_limit must be at least 1 byte, got 0`, true},
		{"large_object_limit overflow", planOK + "job:\n  large_object_limit: 99999999TB\n",
			`plan.yaml:11:23: job.large_object_limit: "99999999TB" is too large`, false},
		{"chunk_target zero", planOK + "job:\n  chunk_target: 0s\n",
			`plan.yaml:11:17: job.chunk_target must be longer than zero, got "0s"`, false},
		{"chunk_target an integer", planOK + "job:\n  chunk_target: 500\n",
			`plan.yaml:11:17: job.chunk_target must be a duration such as "500ms" or "2s" (units ns, us, ms, s, m, h), got the integer 500`, true},

		// Required keys and non-empty lists.
		{"version missing", planEdit(t, "version: 1\n", ""),
			`plan.yaml:1:1: missing required key "version" in the plan`, true},
		{"keystore missing", planEdit(t, "keystore: k.keystore\n", ""),
			`plan.yaml:1:1: missing required key "keystore" in the plan`, true},
		{"engine missing", planEdit(t, "  engine: sqlite\n", ""),
			`plan.yaml:2:1: missing required key "engine" in database`, true},
		{"columns missing", planEdit(t, "    columns:\n      - name: ssn\n", ""),
			`plan.yaml:7:5: missing required key "columns" in table entry`, true},
		{"column name missing", planOK + "      - iv: column\n",
			`plan.yaml:10:9: missing required key "name" in column entry`, true},
		{"no tables", planEdit(t, tablesSection, "tables: []\n"),
			`plan.yaml:6:9: tables is empty: a plan needs at least one table`, true},
		{"tables left empty", planEdit(t, tablesSection, "tables:\n"),
			`plan.yaml:6:1: tables is empty: a plan needs at least one table`, true},
		{"no columns", planEdit(t, "    columns:\n      - name: ssn\n", "    columns: []\n"),
			`plan.yaml:8:14: columns of table "customers" is empty: list at least one column`, true},

		// Environment variables.
		{"unset variable", planEdit(t, "dsn: test.db", "dsn: sqlserver://sa:${DB_PASS}@db1"),
			`plan.yaml:4:23: database.dsn: environment variable DB_PASS is not set`, false},
		{"unset variable in quoted keystore", planEdit(t, "keystore: k.keystore", `keystore: "${HOME_DIR}/k"`),
			`plan.yaml:5:12: keystore: environment variable HOME_DIR is not set`, false},
		{"unterminated reference", planEdit(t, "dsn: test.db", "dsn: ${COLCRYPT_DSN"),
			`plan.yaml:4:8: database.dsn: unterminated ${ (write $$ for a literal $)`, false},
		{"invalid variable name", planEdit(t, "dsn: test.db", "dsn: db-${1X}"),
			`plan.yaml:4:11: database.dsn: invalid variable reference ${1X}: a name is letters, digits and _ (write $$ for a literal $)`, false},
		{"dsn empty once expanded", planEdit(t, "dsn: test.db", "dsn: ${EMPTY}"),
			`plan.yaml:4:8: database.dsn is empty once environment variables are expanded`, false},

		// The file as a whole.
		{"empty file", "", `plan.yaml: plan file is empty`, false},
		{"only comments", "# nothing yet\n", `plan.yaml: plan file is empty`, false},
		{"two documents", planOK + "---\nversion: 1\n",
			`plan.yaml:10:1: a plan file holds one YAML document; a second one starts here`, false},
		{"tab indentation", "version: 1\ndatabase:\n\tengine: sqlite\n",
			`plan.yaml:3:1: invalid YAML: found character that cannot start any token: a tab, where YAML indents with spaces only`, false},
		{"tab after spaces", "version: 1\ndatabase:\n  \tengine: sqlite\n",
			`plan.yaml:3:3: invalid YAML: found character that cannot start any token: a tab, where YAML indents with spaces only`, false},
	}
}

func TestParseRejectsBadPlans(t *testing.T) {
	cases := badPlanCases(t)
	if len(cases) < 25 {
		t.Fatalf("only %d bad plans", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseTestPlan(t, tc.yaml)
			if err == nil {
				t.Fatalf("accepted, want %s\nplan:\n%s", tc.want, tc.yaml)
			}
			if p != nil {
				t.Errorf("returned a plan along with the error")
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *planner.Error", err)
			}
			if pe.File != "plan.yaml" {
				t.Errorf("File = %q", pe.File)
			}
		})
	}
}

func TestParseReportsEveryProblemInFileOrder(t *testing.T) {
	data := planEdit(t, "      - name: ssn\n", "      - name: ssn\n        iv: random\n") +
		"job:\n  plaintext: keep\n  workers: 0\n"
	_, err := parseTestPlan(t, data)
	want := strings.Join([]string{
		`plan.yaml:10:13: unknown IV mode "random" (valid: field, column)`,
		`plan.yaml:12:14: unknown plaintext mode "keep" (valid: drop, null)`,
		`plan.yaml:13:12: job.workers must be between 1 and 64, got 0`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 10 || pe.Column != 13 {
		t.Errorf("errors.As gives %+v, want the first problem (10:13)", pe)
	}
}

func TestParseSyntaxErrorHasLine(t *testing.T) {
	_, err := parseTestPlan(t, "version: 1\ntables: [\n  {name: a\n")
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *planner.Error", err, err)
	}
	if pe.Line == 0 || !strings.Contains(pe.Msg, "invalid YAML") {
		t.Errorf("got %+v, want a line and \"invalid YAML\"", pe)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{File: "p.yaml", Line: 3, Column: 7, Msg: "bad"}, "p.yaml:3:7: bad"},
		{Error{File: "p.yaml", Line: 3, Msg: "bad"}, "p.yaml:3: bad"},
		{Error{File: "p.yaml", Msg: "bad"}, "p.yaml: bad"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	p, err := parseTestPlan(t, planOK)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if p.Path != filepath.Join(wd, "plan.yaml") || p.Dir != wd {
		t.Errorf("Path, Dir = %q, %q; want the file in %q", p.Path, p.Dir, wd)
	}
	if p.Version != 1 || p.Database != (Database{Engine: "sqlite", DSN: "test.db"}) {
		t.Errorf("Version %d, Database %+v", p.Version, p.Database)
	}
	if want := filepath.Join(wd, "k.keystore"); p.Keystore != want {
		t.Errorf("Keystore = %q, want %q", p.Keystore, want)
	}
	wantSettings := ColumnSettings{Suite: cipher.AEADAES256CBCHMACSHA256, IV: cipher.IVField, Key: "pii", Versioned: true}
	if p.Defaults != wantSettings {
		t.Errorf("Defaults = %+v, want %+v", p.Defaults, wantSettings)
	}
	wantJob := Job{Workers: 4, BatchRows: 5000, Plaintext: "drop",
		LargeObjectLimit: 500 * 1024 * 1024, ChunkTarget: 500 * time.Millisecond}
	if p.Job != wantJob {
		t.Errorf("Job = %+v, want %+v", p.Job, wantJob)
	}
	wantTables := []TablePlan{{Name: "customers", Line: 7, Col: 11, Columns: []ColumnPlan{
		{Name: "ssn", ColumnSettings: wantSettings, Line: 9, Col: 15},
	}}}
	if !reflect.DeepEqual(p.Tables, wantTables) {
		t.Errorf("Tables = %+v, want %+v", p.Tables, wantTables)
	}
}

func TestParseColumnSettingsOverrideDefaults(t *testing.T) {
	p, err := parseTestPlan(t, `version: 1
database: {engine: sqlserver, dsn: "${COLCRYPT_DSN}"}
keystore: /etc/colcrypt/prod.keystore
defaults:
  suite: aes-256-cbc
  key: cards
job:
  workers: 64
  batch_rows: 1
  online: true
  plaintext: "null"
  purge: true
  drop_check_constraints: true
  drop_defaults: true
  large_object_limit: 1GB
  chunk_target: 1m30s
tables:
  - name: dbo.customers
    columns:
      - name: ssn
        iv: column
      - name: email
      - name: legacy_code
        suite: 3des-cbc
        key: legacy
        versioned: false
  - name: dbo.orders
    columns:
      - {name: card, suite: aead-aes-256-cbc-hmac-sha256, iv: field}
`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Database.DSN != "sqlserver://sa:p%40ss@db1?database=shop" {
		t.Errorf("DSN = %q", p.Database.DSN)
	}
	if p.Keystore != "/etc/colcrypt/prod.keystore" {
		t.Errorf("Keystore = %q", p.Keystore)
	}
	wantJob := Job{Workers: 64, BatchRows: 1, Online: true, Plaintext: "null", Purge: true,
		DropCheckConstraints: true, DropDefaults: true, LargeObjectLimit: 1 << 30, ChunkTarget: 90 * time.Second}
	if p.Job != wantJob {
		t.Errorf("Job = %+v, want %+v", p.Job, wantJob)
	}
	got := map[string]ColumnSettings{}
	for _, tb := range p.Tables {
		for _, c := range tb.Columns {
			got[tb.Name+"."+c.Name] = c.ColumnSettings
		}
	}
	want := map[string]ColumnSettings{
		"dbo.customers.ssn":         {Suite: cipher.AES256CBC, IV: cipher.IVColumn, Key: "cards", Versioned: true},
		"dbo.customers.email":       {Suite: cipher.AES256CBC, IV: cipher.IVField, Key: "cards", Versioned: true},
		"dbo.customers.legacy_code": {Suite: cipher.TripleDESCBC, IV: cipher.IVField, Key: "legacy", Versioned: false},
		"dbo.orders.card":           {Suite: cipher.AEADAES256CBCHMACSHA256, IV: cipher.IVField, Key: "cards", Versioned: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("columns:\n got %+v\nwant %+v", got, want)
	}
	if c := p.Tables[1].Columns[0]; c.Line != 29 || c.Col != 16 {
		t.Errorf("card at %d:%d, want 29:16", c.Line, c.Col)
	}
}

func TestParseOptionalSectionsMayBeEmpty(t *testing.T) {
	p, err := parseTestPlan(t, planOK+"defaults:\njob:\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Job.Workers != DefaultWorkers || p.Defaults.Suite != DefaultSuite {
		t.Errorf("defaults not applied: %+v %+v", p.Job, p.Defaults)
	}
}

func TestParseAnchorsAndAliases(t *testing.T) {
	p, err := parseTestPlan(t, planEdit(t, "      - name: ssn\n",
		"      - name: ssn\n        key: &k cards\n      - name: email\n        key: *k\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k := p.Tables[0].Columns[1].Key; k != "cards" {
		t.Errorf("aliased key = %q", k)
	}
}

func TestParseByteSizesAndDurations(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int64
	}{
		{"1", 1}, {"524288000", 500 << 20}, {`"500MB"`, 500 << 20}, {"500 MB", 500 << 20},
		{"1GB", 1 << 30}, {"10KiB", 10 << 10}, {"2TB", 2 << 40}, {"7B", 7}, {`"12"`, 12},
	} {
		p, err := parseTestPlan(t, planOK+"job:\n  large_object_limit: "+tc.value+"\n")
		if err != nil {
			t.Errorf("%s: %v", tc.value, err)
		} else if p.Job.LargeObjectLimit != tc.want {
			t.Errorf("%s: LargeObjectLimit = %d, want %d", tc.value, p.Job.LargeObjectLimit, tc.want)
		}
	}
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"500ms", 500 * time.Millisecond}, {"2s", 2 * time.Second}, {"1.5s", 1500 * time.Millisecond},
		{"1m30s", 90 * time.Second}, {"250µs", 250 * time.Microsecond},
	} {
		p, err := parseTestPlan(t, planOK+"job:\n  chunk_target: "+tc.value+"\n")
		if err != nil {
			t.Errorf("%s: %v", tc.value, err)
		} else if p.Job.ChunkTarget != tc.want {
			t.Errorf("%s: ChunkTarget = %v, want %v", tc.value, p.Job.ChunkTarget, tc.want)
		}
	}
}

func TestExpandEnvironment(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"${COLCRYPT_DSN}", "sqlserver://sa:p%40ss@db1?database=shop"},
		{"file:${KS_DIR}/x.db?mode=ro", "file:/secure/keys/x.db?mode=ro"},
		{"user=a password=$$${KS_DIR}$$", "user=a password=$/secure/keys$"},
		{"password=pa$word$", "password=pa$word$"}, // a lone $ stays
		{"$${NOT_EXPANDED}", "${NOT_EXPANDED}"},
	} {
		p, err := parseTestPlan(t, planEdit(t, "dsn: test.db", "dsn: '"+tc.dsn+"'"))
		if err != nil {
			t.Errorf("%s: %v", tc.dsn, err)
		} else if p.Database.DSN != tc.want {
			t.Errorf("%s: DSN = %q, want %q", tc.dsn, p.Database.DSN, tc.want)
		}
	}
	p, err := parseTestPlan(t, planEdit(t, "keystore: k.keystore", "keystore: ${KS_DIR}/prod.keystore"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Keystore != "/secure/keys/prod.keystore" {
		t.Errorf("Keystore = %q", p.Keystore)
	}
}

func TestParseReadsTheProcessEnvironment(t *testing.T) {
	t.Setenv("COLCRYPT_TEST_PLAN_DSN", "postgres://u@h/db")
	p, err := Parse([]byte(planEdit(t, "dsn: test.db", "dsn: ${COLCRYPT_TEST_PLAN_DSN}")), "env.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Database.DSN != "postgres://u@h/db" {
		t.Errorf("DSN = %q", p.Database.DSN)
	}
}

func TestLoadResolvesKeystoreAgainstPlanFolder(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "plans")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "p.yaml")
	data := planEdit(t, "keystore: k.keystore", "keystore: ../keys/prod.keystore")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// From another working directory, through a relative path.
	t.Chdir(dir)
	p, err := Load(filepath.Join("plans", "p.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir may sit under a symlink; compare what Abs gives.
	absSub, _ := filepath.Abs("plans")
	if p.Dir != absSub || p.Path != filepath.Join(absSub, "p.yaml") {
		t.Errorf("Dir, Path = %q, %q; want %q", p.Dir, p.Path, absSub)
	}
	if want := filepath.Join(filepath.Dir(absSub), "keys", "prod.keystore"); p.Keystore != want {
		t.Errorf("Keystore = %q, want %q", p.Keystore, want)
	}
	// The DSN is left for the dialect to resolve.
	if p.Database.DSN != "test.db" {
		t.Errorf("DSN = %q, want it unresolved", p.Database.DSN)
	}

	// Errors name the file as the user wrote it.
	if err := os.WriteFile(path, []byte(planOK+"bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(filepath.Join("plans", "p.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), filepath.Join("plans", "p.yaml")+":10:1: ") {
		t.Errorf("error = %v, want it to start with plans/p.yaml:10:1", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, make([]byte, maxPlanBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "larger than") {
		t.Errorf("error = %v, want a *Error about the size", err)
	}
}

func TestPlanErrorf(t *testing.T) {
	p, err := parseTestPlan(t, planOK)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Tables[0].Columns[0]
	got := p.Errorf(c.Line, c.Col, "column %q not found in %s", c.Name, p.Tables[0].Name).Error()
	if want := `plan.yaml:9:15: column "ssn" not found in customers`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// fingerprintBase is a plan whose fingerprint the variants below either
// keep or change.
const fingerprintBase = `version: 1
database:
  engine: postgres
  dsn: ${COLCRYPT_DSN}
keystore: a.keystore
defaults:
  suite: aes-256-cbc
job:
  workers: 4
tables:
  - name: public.customers
    columns:
      - name: ssn
        iv: column
      - name: email
  - name: public.orders
    columns:
      - name: card
`

func TestFingerprint(t *testing.T) {
	base, err := parseTestPlan(t, fingerprintBase)
	if err != nil {
		t.Fatal(err)
	}
	fp := base.Fingerprint()
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(fp) {
		t.Fatalf("Fingerprint = %q, want hex SHA-256", fp)
	}

	same := map[string]string{
		"comments and blank lines": "# production\n\n" + strings.ReplaceAll(fingerprintBase, "\n  - name", "\n\n  # next\n  - name"),
		"flow style, other key order, other order of tables and columns, tuning and locations changed": `
tables: [{name: public.orders, columns: [{name: card}]},
         {columns: [{name: email, suite: aes-256-cbc}, {iv: column, name: ssn}], name: public.customers}]
keystore: /elsewhere/b.keystore
job: {chunk_target: 2s, batch_rows: 100, workers: 16}
database: {dsn: "host=other dbname=x", engine: postgres}
defaults: {versioned: true, key: pii, iv: field, suite: aes-256-cbc}
version: 1
`,
		"settings written on each column instead of defaults": `version: 1
database: {engine: postgres, dsn: x}
keystore: a.keystore
tables:
  - name: public.customers
    columns:
      - {name: ssn, suite: aes-256-cbc, iv: column}
      - {name: email, suite: aes-256-cbc}
  - name: public.orders
    columns:
      - {name: card, suite: aes-256-cbc}
`,
	}
	for name, data := range same {
		p, err := parseTestPlan(t, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := p.Fingerprint(); got != fp {
			t.Errorf("%s: fingerprint changed", name)
		}
	}

	edit := func(old, new string) string {
		t.Helper()
		if !strings.Contains(fingerprintBase, old) {
			t.Fatalf("%q not in fingerprintBase", old)
		}
		return strings.Replace(fingerprintBase, old, new, 1)
	}
	different := map[string]string{
		"default suite":      edit("suite: aes-256-cbc", "suite: aes-128-cbc"),
		"one column's suite": edit("      - name: card\n", "      - name: card\n        suite: 3des-cbc\n"),
		"iv mode":            edit("        iv: column\n", ""),
		"key":                edit("  suite: aes-256-cbc\n", "  suite: aes-256-cbc\n  key: other\n"),
		"versioned":          edit("  suite: aes-256-cbc\n", "  suite: aes-256-cbc\n  versioned: false\n"),
		"engine":             edit("engine: postgres", "engine: sqlserver"),
		"table name":         edit("public.orders", "public.orders2"),
		"column name":        edit("name: email", "name: e_mail"),
		"extra column":       fingerprintBase + "      - name: total\n",
		"online":             edit("  workers: 4\n", "  workers: 4\n  online: true\n"),
		"plaintext":          edit("  workers: 4\n", "  workers: 4\n  plaintext: \"null\"\n"),
		"purge":              edit("  workers: 4\n", "  workers: 4\n  purge: true\n"),
		"check constraints":  edit("  workers: 4\n", "  workers: 4\n  drop_check_constraints: true\n"),
		"defaults dropped":   edit("  workers: 4\n", "  workers: 4\n  drop_defaults: true\n"),
		"large objects":      edit("  workers: 4\n", "  workers: 4\n  large_object_limit: 1GB\n"),
	}
	seen := map[string]string{fp: "base"}
	for name, data := range different {
		p, err := parseTestPlan(t, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := p.Fingerprint()
		if other, dup := seen[got]; dup {
			t.Errorf("%s: same fingerprint as %s", name, other)
		}
		seen[got] = name
	}
}

// examplePlans are the runnable plans shipped in plans/. They are listed,
// not globbed: `colcrypt demo --dir plans` writes its own plan there.
func examplePlans(t testing.TB) []string {
	t.Helper()
	var paths []string
	for _, name := range []string{"sqlite-customers.yaml", "postgres-customers.yaml", "sqlserver-customers.yaml"} {
		paths = append(paths, filepath.Join("..", "plans", name))
	}
	return paths
}

func TestExamplePlansLoad(t *testing.T) {
	t.Setenv("COLCRYPT_POSTGRES_DSN", "postgres://colcrypt@localhost/shop")
	t.Setenv("COLCRYPT_SQLSERVER_DSN", "sqlserver://colcrypt@localhost?database=shop")
	plansDir, err := filepath.Abs(filepath.Join("..", "plans"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range examplePlans(t) {
		p, err := Load(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if p.Keystore != filepath.Join(plansDir, "demo.keystore") {
			t.Errorf("%s: Keystore = %q", path, p.Keystore)
		}
		var legacy, deterministic bool
		for _, tb := range p.Tables {
			for _, c := range tb.Columns {
				legacy = legacy || c.Suite == cipher.TripleDESCBC
				deterministic = deterministic || (c.Name == "ssn" && c.IV == cipher.IVColumn)
			}
		}
		if !legacy || !deterministic {
			t.Errorf("%s: want a 3des-cbc column and ssn with iv: column", path)
		}
	}
	p, err := Load(filepath.Join("..", "plans", "sqlite-customers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Database != (Database{Engine: "sqlite", DSN: "customers.db"}) {
		t.Errorf("sqlite plan: Database = %+v", p.Database)
	}
	p, err = Load(filepath.Join("..", "plans", "sqlserver-customers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Database.Engine != "sqlserver" || p.Tables[0].Name != "dbo.customers" {
		t.Errorf("sqlserver plan: %+v, table %q", p.Database, p.Tables[0].Name)
	}
}

// --- plans/plan.schema.json ---

// schemaKeywords are the JSON Schema keywords the schema may use: those
// schemaValidate implements, plus annotations. A keyword outside this list
// would be silently ignored by the validator, so the test refuses it.
var schemaKeywords = []string{
	"$schema", "$id", "$ref", "$defs", "title", "description",
	"type", "properties", "required", "additionalProperties", "items",
	"enum", "minimum", "maximum", "minItems", "minLength", "pattern",
}

func loadPlanSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "plans", "plan.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("plan.schema.json: %v", err)
	}
	return s
}

// schemaValidate checks v, a YAML document decoded into Go values, against
// the subset of JSON Schema listed in schemaKeywords, and returns every
// violation. Keywords apply only to values of their type, as in JSON Schema.
func schemaValidate(root, s map[string]any, v any, at string) []string {
	if ref, ok := s["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/$defs/")
		def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
		if !found || !ok {
			return []string{at + ": unresolvable $ref " + ref}
		}
		return schemaValidate(root, def, v, at)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	kind := schemaType(v)
	if st, ok := s["type"]; ok {
		var types []string
		switch st := st.(type) {
		case string:
			types = []string{st}
		case []any:
			for _, x := range st {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, kind) {
			fail("type %s, want %v", kind, types)
			return errs
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		if !slices.ContainsFunc(enum, func(e any) bool { return schemaEqual(e, v) }) {
			fail("%v not in enum %v", v, enum)
		}
	}
	switch kind {
	case "object":
		obj := schemaObject(v)
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := obj[r]; !ok {
				fail("missing required %q", r)
			}
		}
		for k, val := range obj {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					fail("additional property %q", k)
				}
				continue
			}
			errs = append(errs, schemaValidate(root, ps, val, at+"."+k)...)
		}
	case "array":
		arr := v.([]any)
		if m, ok := s["minItems"].(float64); ok && float64(len(arr)) < m {
			fail("%d items, want at least %v", len(arr), m)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range arr {
				errs = append(errs, schemaValidate(root, items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case "string":
		str := v.(string)
		if m, ok := s["minLength"].(float64); ok && float64(utf8.RuneCountInString(str)) < m {
			fail("shorter than %v", m)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	case "integer", "number":
		n, _ := schemaNumber(v)
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v below minimum %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v above maximum %v", n, m)
		}
	}
	return errs
}

func schemaType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64, uint64:
		return "integer"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any, map[any]any:
		return "object"
	}
	return fmt.Sprintf("unknown %T", v)
}

func schemaObject(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	m := map[string]any{}
	for k, x := range v.(map[any]any) {
		m[fmt.Sprint(k)] = x
	}
	return m
}

func schemaNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return math.NaN(), false
}

func schemaEqual(a, b any) bool {
	if x, ok := schemaNumber(a); ok {
		y, ok := schemaNumber(b)
		return ok && x == y
	}
	return a == b
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

// validatePlanText decodes a plan as plain YAML and validates it against the
// schema; ok is false when it is not one YAML document an editor could check.
func validatePlanText(t *testing.T, s map[string]any, text string) (errs []string, ok bool) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil || v == nil {
		return nil, false
	}
	return schemaValidate(s, s, v, "$"), true
}

func TestSchemaMatchesParser(t *testing.T) {
	s := loadPlanSchema(t)
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", s["$schema"])
	}
	// Every keyword is one the validator implements, and every object
	// closes its properties.
	var walk func(at string, node map[string]any)
	walk = func(at string, node map[string]any) {
		for k, v := range node {
			if !slices.Contains(schemaKeywords, k) {
				t.Errorf("%s: keyword %q is not checked by schemaValidate", at, k)
			}
			switch k {
			case "properties", "$defs":
				for name, sub := range v.(map[string]any) {
					walk(at+"."+name, sub.(map[string]any))
				}
			case "items":
				walk(at+"[]", v.(map[string]any))
			}
		}
		if _, ok := node["properties"]; ok && node["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties must be false", at)
		}
	}
	walk("$", s)

	deref := func(node map[string]any) map[string]any {
		if ref, ok := node["$ref"].(string); ok {
			return s["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		return node
	}
	get := func(node map[string]any, path ...string) map[string]any {
		t.Helper()
		for _, p := range path {
			if p == "[]" {
				node = node["items"].(map[string]any)
				continue
			}
			next, ok := node["properties"].(map[string]any)[p].(map[string]any)
			if !ok {
				t.Fatalf("schema has no %v", path)
			}
			node = deref(next)
		}
		return node
	}
	propNames := func(node map[string]any) []string {
		var names []string
		for k := range node["properties"].(map[string]any) {
			names = append(names, k)
		}
		sort.Strings(names)
		return names
	}
	sorted := func(list []string) []string {
		out := slices.Clone(list)
		sort.Strings(out)
		return out
	}
	enum := func(node map[string]any) []string {
		var out []string
		for _, v := range node["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}

	for _, tc := range []struct {
		path     []string
		keys     []string
		required []string
	}{
		{nil, keysTop, requiredTop},
		{[]string{"database"}, keysDatabase, requiredDatabase},
		{[]string{"defaults"}, keysSettings, nil},
		{[]string{"job"}, keysJob, nil},
		{[]string{"tables", "[]"}, keysTable, requiredTable},
		{[]string{"tables", "[]", "columns", "[]"}, keysColumn, requiredColumn},
	} {
		node := get(s, tc.path...)
		if got := propNames(node); !slices.Equal(got, sorted(tc.keys)) {
			t.Errorf("schema %v properties %v, parser accepts %v", tc.path, got, sorted(tc.keys))
		}
		var req []string
		if r, ok := node["required"]; ok {
			req = asStrings(r)
		}
		if !slices.Equal(sorted(req), sorted(tc.required)) {
			t.Errorf("schema %v requires %v, parser requires %v", tc.path, req, tc.required)
		}
	}

	var suites []string
	for _, su := range cipher.Suites() {
		suites = append(suites, string(su))
	}
	for _, tc := range []struct {
		path []string
		want []string
	}{
		{[]string{"database", "engine"}, Engines()},
		{[]string{"defaults", "suite"}, suites},
		{[]string{"tables", "[]", "columns", "[]", "suite"}, suites},
		{[]string{"defaults", "iv"}, []string{string(cipher.IVField), string(cipher.IVColumn)}},
		{[]string{"tables", "[]", "columns", "[]", "iv"}, []string{string(cipher.IVField), string(cipher.IVColumn)}},
		{[]string{"job", "plaintext"}, []string{PlaintextDrop, PlaintextNull}},
	} {
		if got := enum(get(s, tc.path...)); !slices.Equal(sorted(got), sorted(tc.want)) {
			t.Errorf("schema %v enum %v, parser accepts %v", tc.path, got, tc.want)
		}
	}

	workers := get(s, "job", "workers")
	if workers["minimum"] != 1.0 || workers["maximum"] != float64(MaxWorkers) {
		t.Errorf("schema workers range [%v, %v], parser [1, %d]", workers["minimum"], workers["maximum"], MaxWorkers)
	}
	if got := get(s, "job", "batch_rows")["maximum"]; got != float64(math.MaxInt32) {
		t.Errorf("schema batch_rows maximum %v, parser %d", got, math.MaxInt32)
	}
	if got := get(s, "job", "large_object_limit")["pattern"]; got != byteSizePattern {
		t.Errorf("schema large_object_limit pattern %v, parser %s", got, byteSizePattern)
	}
	if got := get(s, "job", "chunk_target")["pattern"]; got != durationPattern {
		t.Errorf("schema chunk_target pattern %v, parser %s", got, durationPattern)
	}
	if got := get(s, "version")["enum"]; !reflect.DeepEqual(got, []any{1.0}) {
		t.Errorf("schema version enum %v, parser accepts [1]", got)
	}
}

func TestSchemaAcceptsExamplePlans(t *testing.T) {
	s := loadPlanSchema(t)
	for _, path := range examplePlans(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		errs, ok := validatePlanText(t, s, string(data))
		if !ok || len(errs) > 0 {
			t.Errorf("%s: schema rejects it: %v", path, errs)
		}
	}
}

// TestSchemaAgreesWithParser runs the schema over the plans the parser
// accepts and over the bad plans whose fault JSON Schema can express.
func TestSchemaAgreesWithParser(t *testing.T) {
	s := loadPlanSchema(t)
	good := []string{planOK, planOK + "defaults:\njob:\n", fingerprintBase,
		planOK + "job:\n  large_object_limit: 500MB\n  chunk_target: 1m30s\n",
		planOK + "job:\n  large_object_limit: 1048576\n"}
	for _, text := range good {
		if _, err := parseTestPlan(t, text); err != nil {
			t.Fatalf("parser rejects a good plan: %v", err)
		}
		if errs, ok := validatePlanText(t, s, text); !ok || len(errs) > 0 {
			t.Errorf("schema rejects a plan the parser accepts: %v\n%s", errs, text)
		}
	}
	for _, tc := range badPlanCases(t) {
		if !tc.schema {
			continue
		}
		errs, ok := validatePlanText(t, s, tc.yaml)
		if ok && len(errs) == 0 {
			t.Errorf("%s: schema accepts a plan the parser rejects with %s", tc.name, tc.want)
		}
	}
}

func TestParseBoundsAliasAmplification(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\ndatabase: {engine: sqlite, dsn: x.db}\nkeystore: k\ntables:\n  - name: t0\n    columns: &c [")
	for i := range 1000 {
		fmt.Fprintf(&b, "{name: c%d},", i)
	}
	b.WriteString("]\n")
	for i := 1; i <= 110; i++ {
		fmt.Fprintf(&b, "  - {name: t%d, columns: *c}\n", i)
	}
	start := time.Now()
	_, err := parseTestPlan(t, b.String())
	if err == nil || !strings.Contains(err.Error(), "the plan lists more than 100000 columns") {
		t.Errorf("error = %v, want the column limit", err)
	}
	if strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("want the limit reported once, got %d errors", strings.Count(err.Error(), "\n")+1)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestParseWithoutPath(t *testing.T) {
	wd, _ := os.Getwd()
	p, err := parsePlan([]byte(planOK), "", planTestEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != "" || p.Dir != wd || p.Keystore != filepath.Join(wd, "k.keystore") {
		t.Errorf("Path %q, Dir %q, Keystore %q; want paths relative to %q", p.Path, p.Dir, p.Keystore, wd)
	}
	_, err = parsePlan([]byte("version: x\n"), "", planTestEnv)
	if err == nil || !strings.Contains(err.Error(), "\nplan:1:10: version must be an integer") {
		t.Errorf("error = %v, want plan:1:10: version must be an integer", err)
	}
}

// TestPlaintextNullUnquoted: SPEC §6 writes the option unquoted, which YAML
// reads as a null value; it must mean the "null" mode, while ~ or an empty
// value stays an error.
func TestPlaintextNullUnquoted(t *testing.T) {
	base := "version: 1\ndatabase:\n  engine: sqlite\n  dsn: x.db\nkeystore: k\ntables:\n  - name: t\n    columns:\n      - name: c\njob:\n  plaintext: "
	for _, v := range []string{"null", `"null"`} {
		p, err := Parse([]byte(base+v+"\n"), "plan.yaml")
		if err != nil || p.Job.Plaintext != PlaintextNull {
			t.Errorf("plaintext: %s → %v, %q; want the null mode", v, err, p.Job.Plaintext)
		}
	}
	for _, v := range []string{"~", ""} {
		if _, err := Parse([]byte(base+v+"\n"), "plan.yaml"); err == nil {
			t.Errorf("plaintext: %q was accepted", v)
		}
	}
}
