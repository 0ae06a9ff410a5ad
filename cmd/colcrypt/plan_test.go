package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/planner"
)

// planDB is an empty database of one engine and a folder for the plan.
type planDB struct {
	engine string
	dsn    string // as the plan writes it
	dir    string
	exec   func(t *testing.T, stmts ...string)
}

func newPlanDB(t *testing.T, engine string) *planDB {
	t.Helper()
	dir := t.TempDir()
	var dsn string
	switch engine {
	case "sqlite":
		dsn = "data.db" // relative: resolved against the plan's folder
		if err := os.WriteFile(filepath.Join(dir, dsn), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		dsn = pgtest.DSN(t)
	}
	d, err := dialect.Get(engine)
	if err != nil {
		t.Fatal(err)
	}
	db, err := d.Open(context.Background(), d.ResolveDSN(dsn, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &planDB{engine: engine, dsn: dsn, dir: dir, exec: func(t *testing.T, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := db.ExecContext(context.Background(), s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}}
}

// writePlan writes plan.yaml for this database; rest holds the sections
// after keystore (defaults, job, tables).
func (p *planDB) writePlan(t *testing.T, rest string) string {
	t.Helper()
	text := fmt.Sprintf("version: 1\ndatabase:\n  engine: %s\n  dsn: '%s'\nkeystore: test.keystore\n%s", p.engine, p.dsn, rest)
	path := filepath.Join(p.dir, "plan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// planJSON runs `colcrypt plan --format json` and decodes the report.
func planJSON(t *testing.T, path string) (cliResult, *planner.Report) {
	t.Helper()
	res := runCLI(t, "plan", path, "--format", "json")
	if res.code == exitcode.BadInput {
		t.Fatalf("plan exited 2: %s", res.stderr)
	}
	var r planner.Report
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, res.stdout)
	}
	return res, &r
}

var planEngines = []string{"sqlite", "postgres"}

// finding is an expected finding; object and message are substrings.
type finding struct {
	sev    planner.Severity
	rule   string
	object string
	column string
	msg    string
}

func hasFinding(r *planner.Report, w finding) bool {
	for _, t := range r.Tables {
		for _, f := range t.Findings {
			if f.Severity == w.sev && f.Rule == w.rule && strings.Contains(f.Object, w.object) &&
				(w.column == "" || f.Column == w.column) && strings.Contains(f.Message, w.msg) {
				return true
			}
		}
	}
	return false
}

func allFindings(r *planner.Report) string {
	var b strings.Builder
	for _, t := range r.Tables {
		for _, f := range t.Findings {
			fmt.Fprintf(&b, "  %s %s %s %s: %s\n", f.Severity, f.Rule, f.Object, f.Column, f.Message)
		}
	}
	return b.String()
}

// TestPlanRulesOnRealSchemas builds, for each rule of SPEC §1, a schema
// that exhibits it on each engine and checks that `colcrypt plan` reports
// it with the right severity and exit code.
func TestPlanRulesOnRealSchemas(t *testing.T) {
	people := "CREATE TABLE people (id integer PRIMARY KEY, ssn char(11), email varchar(64), note text)"
	plan := func(cols ...string) string {
		return "tables:\n  - name: people\n    columns:\n" + columnsYAML(cols...)
	}
	tests := []struct {
		name  string
		ddl   map[string][]string // per engine; "" for both
		plan  string
		want  []finding
		block bool // the plan has blockers: exit 1
	}{
		{
			name: "identity",
			ddl: map[string][]string{
				"sqlite":   {"CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, ssn char(11))"},
				"postgres": {"CREATE TABLE people (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ssn char(11))"},
			},
			plan:  plan("id\n        iv: column"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleIdentity, "people.id", "id", "cannot be encrypted"}},
			block: true,
		},
		{
			name: "unsupported type (PostgreSQL; every SQLite type has a codec)",
			ddl: map[string][]string{
				"postgres": {"CREATE TABLE people (id integer PRIMARY KEY, score real)"},
			},
			plan:  plan("score"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleUnsupportedType, "people.score", "score", "real"}},
			block: true,
		},
		{
			name: "already a ciphertext column",
			ddl: map[string][]string{
				"sqlite":   {"CREATE TABLE people (id integer PRIMARY KEY, card BLOB, card_iv BLOB)"},
				"postgres": {"CREATE TABLE people (id integer PRIMARY KEY, card bytea, card_iv bytea)"},
			},
			plan:  plan("card"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleAlreadyEncrypted, "people.card", "card", "already encrypted"}},
			block: true,
		},
		{
			name:  "primary key with iv: field",
			ddl:   map[string][]string{"": {"CREATE TABLE people (ssn char(11) PRIMARY KEY, email varchar(64))"}},
			plan:  plan("ssn"),
			want:  []finding{{planner.SeverityBlocker, planner.RulePrimaryKey, "", "ssn", "set iv: column for ssn"}},
			block: true,
		},
		{
			name: "primary key with iv: column",
			ddl:  map[string][]string{"": {"CREATE TABLE people (ssn char(11) PRIMARY KEY, email varchar(64))"}},
			plan: plan("ssn\n        iv: column"),
			want: []finding{{planner.SeverityAction, planner.RulePrimaryKey, "", "ssn", "recreated on the ciphertext column"}},
		},
		{
			name: "primary key referenced by a foreign key not in the plan",
			ddl: map[string][]string{"": {
				"CREATE TABLE people (ssn char(11) PRIMARY KEY, email varchar(64))",
				"CREATE TABLE orders (id integer PRIMARY KEY, customer_ssn char(11) REFERENCES people (ssn))",
			}},
			plan:  plan("ssn\n        iv: column"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleReferencedByFK, "", "ssn", "orders.customer_ssn is not in the plan"}},
			block: true,
		},
		{
			name: "foreign key whose referenced column is not in the plan",
			ddl: map[string][]string{"": {
				"CREATE TABLE people (ssn char(11) PRIMARY KEY, email varchar(64))",
				"CREATE TABLE orders (id integer PRIMARY KEY, customer_ssn char(11) REFERENCES people (ssn))",
			}},
			plan:  "tables:\n  - name: orders\n    columns:\n" + columnsYAML("customer_ssn\n        iv: column"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleForeignKey, "", "customer_ssn", "people.ssn is not in the plan"}},
			block: true,
		},
		{
			name: "foreign key with both columns planned alike",
			ddl: map[string][]string{"": {
				"CREATE TABLE people (ssn char(11) PRIMARY KEY, email varchar(64))",
				"CREATE TABLE orders (id integer PRIMARY KEY, customer_ssn char(11) REFERENCES people (ssn))",
			}},
			plan: "defaults:\n  iv: column\n" + plan("ssn") + "  - name: orders\n    columns:\n" + columnsYAML("customer_ssn"),
			want: []finding{
				{planner.SeverityAction, planner.RuleReferencedByFK, "", "ssn", "dropped at cut-over and recreated once both are swapped"},
				{planner.SeverityAction, planner.RuleForeignKey, "", "customer_ssn", "recreated once both are swapped"},
			},
		},
		{
			name:  "unique constraint with iv: field",
			ddl:   map[string][]string{"": {"CREATE TABLE people (id integer PRIMARY KEY, ssn char(11) UNIQUE)"}},
			plan:  plan("ssn"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleUnique, "", "ssn", "field-level IVs cannot keep a unique constraint"}},
			block: true,
		},
		{
			name: "unique index with iv: column",
			ddl:  map[string][]string{"": {people, "CREATE UNIQUE INDEX ux_ssn ON people (ssn)"}},
			plan: plan("ssn\n        iv: column"),
			want: []finding{{planner.SeverityAction, planner.RuleUnique, "ux_ssn", "ssn", "recreated"}},
		},
		{
			name: "plain index",
			ddl:  map[string][]string{"": {people, "CREATE INDEX ix_email ON people (email)"}},
			plan: plan("email\n        iv: column"),
			want: []finding{
				{planner.SeverityAction, planner.RuleIndex, "ix_email", "email", "rebuilt"},
				{planner.SeverityWarning, planner.RuleIndex, "ix_email", "email", "range queries"},
			},
		},
		{
			name:  "check constraint",
			ddl:   map[string][]string{"": {"CREATE TABLE people (id integer PRIMARY KEY, ssn char(11) CONSTRAINT ck_ssn CHECK (length(ssn) = 11))"}},
			plan:  plan("ssn"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleCheckConstraint, "", "ssn", "drop_check_constraints: true"}},
			block: true,
		},
		{
			name: "check constraint with drop_check_constraints",
			ddl:  map[string][]string{"": {"CREATE TABLE people (id integer PRIMARY KEY, ssn char(11) CONSTRAINT ck_ssn CHECK (length(ssn) = 11))"}},
			plan: "job:\n  drop_check_constraints: true\n" + plan("ssn"),
			want: []finding{{planner.SeverityAction, planner.RuleCheckConstraint, "", "ssn", "restored on revert"}},
		},
		{
			name:  "default",
			ddl:   map[string][]string{"": {"CREATE TABLE people (id integer PRIMARY KEY, email varchar(64) DEFAULT 'none')"}},
			plan:  plan("email"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleDefault, "people.email", "email", "a default writes plaintext into the ciphertext column"}},
			block: true,
		},
		{
			name: "default with drop_defaults",
			ddl:  map[string][]string{"": {"CREATE TABLE people (id integer PRIMARY KEY, email varchar(64) DEFAULT 'none')"}},
			plan: "job:\n  drop_defaults: true\n" + plan("email"),
			want: []finding{{planner.SeverityAction, planner.RuleDefault, "people.email", "email", "restored on revert"}},
		},
		{
			name: "trigger",
			ddl: map[string][]string{
				"sqlite": {people, "CREATE TABLE audit (ssn text)",
					"CREATE TRIGGER trg_audit AFTER UPDATE ON people BEGIN INSERT INTO audit (ssn) VALUES (new.ssn); END"},
				"postgres": {people, "CREATE TABLE audit (ssn text)",
					"CREATE FUNCTION audit_ssn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit (ssn) VALUES (NEW.ssn); RETURN NEW; END$$",
					"CREATE TRIGGER trg_audit AFTER UPDATE ON people FOR EACH ROW EXECUTE FUNCTION audit_ssn()"},
			},
			plan:  plan("ssn"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleTrigger, "trg_audit", "ssn", "before executing this operation, you must drop trigger trg_audit defined on people"}},
			block: true,
		},
		{
			name:  "view",
			ddl:   map[string][]string{"": {people, "CREATE VIEW v_people AS SELECT id, ssn FROM people"}},
			plan:  plan("ssn"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleDependent, "v_people", "ssn", "v_people depends on people.ssn"}},
			block: true,
		},
		{
			name: "computed column",
			ddl: map[string][]string{
				"sqlite":   {"CREATE TABLE people (id integer PRIMARY KEY, ssn char(11), ssn_last4 text GENERATED ALWAYS AS (substr(ssn, -4)) VIRTUAL)"},
				"postgres": {"CREATE TABLE people (id integer PRIMARY KEY, ssn char(11), ssn_last4 text GENERATED ALWAYS AS (right(ssn, 4)) STORED)"},
			},
			plan:  plan("ssn"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleComputed, "ssn_last4", "ssn", "ssn_last4"}},
			block: true,
		},
		{
			name: "table without a usable key",
			ddl:  map[string][]string{"": {"CREATE TABLE people (ssn char(11), email varchar(64))"}},
			plan: plan("email"),
			want: []finding{{planner.SeverityAction, planner.RuleNoKey, "people", "", "no primary key"}},
		},
		{
			name: "legacy suite",
			ddl:  map[string][]string{"": {people}},
			plan: plan("ssn\n        suite: 3des-cbc"),
			want: []finding{{planner.SeverityWarning, planner.RuleLegacySuite, "people.ssn", "ssn", "legacy"}},
		},
		{
			name: "large objects",
			ddl: map[string][]string{"": {people,
				"INSERT INTO people (id, note) VALUES (1, 'a short note'), (2, '" + strings.Repeat("long ", 40) + "'), (3, NULL)"}},
			plan:  "job:\n  large_object_limit: 100\n" + plan("note"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleLargeObject, "people.note", "note", "1 row of people.note"}},
			block: true,
		},
		{
			name:  "IV column name taken",
			ddl:   map[string][]string{"": {"CREATE TABLE people (id integer PRIMARY KEY, ssn char(11), ssn_iv integer)"}},
			plan:  plan("ssn\n        suite: aes-256-cbc"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleNameConflict, "people.ssn_iv", "ssn", "rename"}},
			block: true,
		},
		{
			name: "column count",
			ddl: map[string][]string{
				// One column short of each engine's limit; the plan adds a
				// ciphertext and an IV column.
				"sqlite":   {wideTable(1999)},
				"postgres": {wideTable(1599)},
			},
			plan:  plan("c1\n        suite: aes-128-cbc"),
			want:  []finding{{planner.SeverityBlocker, planner.RuleColumnCount, "people", "", "the job adds 2"}},
			block: true,
		},
	}
	for _, engine := range planEngines {
		t.Run(engine, func(t *testing.T) {
			for _, tc := range tests {
				ddl, ok := tc.ddl[engine]
				if !ok {
					if ddl, ok = tc.ddl[""]; !ok {
						continue
					}
				}
				t.Run(tc.name, func(t *testing.T) {
					db := newPlanDB(t, engine)
					db.exec(t, ddl...)
					res, r := planJSON(t, db.writePlan(t, tc.plan))
					for _, w := range tc.want {
						if !hasFinding(r, w) {
							t.Errorf("missing %+v among:\n%s", w, allFindings(r))
						}
					}
					wantCode := exitcode.OK
					if tc.block {
						wantCode = exitcode.Failed
					}
					if res.code != wantCode {
						t.Errorf("exit code %d, want %d; stderr %q; findings:\n%s", res.code, wantCode, res.stderr, allFindings(r))
					}
					if tc.block && !strings.Contains(res.stderr, "blocker") {
						t.Errorf("stderr %q does not say the plan has blockers", res.stderr)
					}
				})
			}
		})
	}
}

func columnsYAML(cols ...string) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString("      - name: " + c + "\n")
	}
	return b.String()
}

// wideTable is people with n integer columns c1..cn (c1 the primary key).
func wideTable(n int) string {
	cols := make([]string, n)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d integer", i+1)
	}
	cols[0] += " PRIMARY KEY"
	return "CREATE TABLE people (" + strings.Join(cols, ", ") + ")"
}

// TestPlanJSONReport checks the JSON object of SPEC §5 on a clean plan:
// its keys, the sizes, the NULL count, and exit code 0.
func TestPlanJSONReport(t *testing.T) {
	for _, engine := range planEngines {
		t.Run(engine, func(t *testing.T) {
			db := newPlanDB(t, engine)
			db.exec(t, "CREATE TABLE people (id integer PRIMARY KEY, ssn char(11), email varchar(64))",
				"INSERT INTO people (id, ssn, email) VALUES (1, '123-45-6789', 'a@example.com'), (2, '987-65-4321', NULL), (3, NULL, NULL)")
			path := db.writePlan(t, "tables:\n  - name: people\n    columns:\n"+columnsYAML("ssn\n        iv: column", "email\n        suite: aes-256-cbc"))
			res := runCLI(t, "plan", path, "--format", "json")
			if res.code != exitcode.OK {
				t.Fatalf("exit code %d, stderr %q\n%s", res.code, res.stderr, res.stdout)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(res.stdout), &raw); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, res.stdout)
			}
			if raw["engine"] != engine {
				t.Errorf("engine %v, want %s", raw["engine"], engine)
			}
			table := raw["tables"].([]any)[0].(map[string]any)
			for _, k := range []string{"name", "rows", "bytes_now", "bytes_after", "bytes_peak", "max_row_bytes_now",
				"max_row_bytes_after", "max_row_bytes_during", "row_limit", "columns", "findings"} {
				if _, ok := table[k]; !ok {
					t.Errorf("table has no %q", k)
				}
			}
			cols := table["columns"].([]any)
			email := cols[1].(map[string]any)
			for _, k := range []string{"name", "source_type", "suite", "iv", "rows", "nulls", "bytes_now",
				"ciphertext_type", "max_ciphertext_bytes", "bytes_after", "iv_bytes"} {
				if _, ok := email[k]; !ok {
					t.Errorf("column has no %q", k)
				}
			}
			// email: 3 rows, 2 NULL; one 13-byte value (14 with SQLite's
			// tag): AES gives 3 + 16 bytes, and a 16-byte IV.
			got := fmt.Sprint(email["name"], email["suite"], email["iv"], email["rows"], email["nulls"], email["bytes_after"], email["iv_bytes"], email["max_ciphertext_bytes"])
			if want := fmt.Sprint("email", "aes-256-cbc", "field", 3, 2, 19, 16, 19); got != want {
				t.Errorf("email: %s, want %s", got, want)
			}
			if table["row_limit"].(float64) != 0 {
				t.Errorf("row_limit %v, want 0 (no in-row limit on %s)", table["row_limit"], engine)
			}
			totals := raw["totals"].(map[string]any)
			if totals["blockers"].(float64) != 0 || totals["bytes_now"].(float64) != table["bytes_now"].(float64) {
				t.Errorf("totals %v", totals)
			}
		})
	}
}

func TestPlanFormats(t *testing.T) {
	db := newPlanDB(t, "sqlite")
	db.exec(t, "CREATE TABLE people (id integer PRIMARY KEY, ssn char(11) UNIQUE)")
	for i := 0; i < 3; i++ {
		db.exec(t, fmt.Sprintf("INSERT INTO people (id, ssn) VALUES (%d, '%011d')", i+1, i*1000))
	}
	path := db.writePlan(t, "tables:\n  - name: people\n    columns:\n"+columnsYAML("ssn"))
	for format, wants := range map[string][]string{
		"text":     {"Table people: 3 rows", "Blockers (1)", "field-level IVs cannot keep a unique constraint", "1 blocker: apply refuses to run"},
		"markdown": {"## people", "| blocker | unique |", "**1 blocker"},
		"json":     {`"rule": "unique"`, `"blockers": 1`},
	} {
		t.Run(format, func(t *testing.T) {
			res := runCLI(t, "plan", path, "--format", format)
			if res.code != exitcode.Failed {
				t.Errorf("exit code %d, want 1 (a blocker)", res.code)
			}
			for _, w := range wants {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("missing %q in:\n%s", w, res.stdout)
				}
			}
			if want := "colcrypt: plan " + path + " has 1 blocker\n"; res.stderr != want {
				t.Errorf("stderr %q, want %q", res.stderr, want)
			}
		})
	}
	// text is the default.
	if res := runCLI(t, "plan", path); !strings.Contains(res.stdout, "Blockers (1)") {
		t.Errorf("default format is not text:\n%s", res.stdout)
	}
}

func TestPlanBadInput(t *testing.T) {
	db := newPlanDB(t, "sqlite")
	db.exec(t, "CREATE TABLE people (id integer PRIMARY KEY, ssn char(11))")
	good := db.writePlan(t, "tables:\n  - name: people\n    columns:\n"+columnsYAML("ssn"))

	missingFile := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(missingFile, []byte("version: 1\ndatabase:\n  engine: sqlite\n  dsn: nowhere.db\nkeystore: k\ntables:\n  - name: people\n    columns:\n      - name: ssn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badPlan := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badPlan, []byte("version: 1\ndatabase:\n  engine: sqlite\n  dsn: x.db\nkeystore: k\ntables:\n  - name: people\n    columns:\n      - name: ssn\n        suite: rot13\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noColumn := filepath.Join(db.dir, "nocol.yaml")
	if err := os.WriteFile(noColumn, []byte("version: 1\ndatabase:\n  engine: sqlite\n  dsn: data.db\nkeystore: k\ntables:\n  - name: people\n    columns:\n      - name: sssn\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no plan argument", []string{"plan"}, "accepts 1 arg"},
		{"unknown format", []string{"plan", good, "--format", "yaml"}, `unknown --format "yaml"`},
		{"plan file missing", []string{"plan", filepath.Join(t.TempDir(), "none.yaml")}, "no such file"},
		{"invalid plan names file:line:column", []string{"plan", badPlan}, "bad.yaml:10:16: unknown cipher suite"},
		{"database file missing", []string{"plan", missingFile}, "nowhere.db"},
		{"planned column missing names file:line:column", []string{"plan", noColumn}, "nocol.yaml:9:15: table people has no column sssn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, tc.args...)
			if res.code != exitcode.BadInput {
				t.Errorf("exit code %d, want 2; stderr %q", res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", res.stderr, tc.stderr)
			}
			if res.stdout != "" {
				t.Errorf("bad input printed a report:\n%s", res.stdout)
			}
		})
	}
}

func TestPlanForeignKeyGroups(t *testing.T) {
	for _, engine := range planEngines {
		t.Run(engine, func(t *testing.T) {
			db := newPlanDB(t, engine)
			db.exec(t,
				"CREATE TABLE customers (ssn char(11) PRIMARY KEY)",
				"CREATE TABLE orders (id integer PRIMARY KEY, customer_ssn char(11) REFERENCES customers (ssn))",
				"CREATE TABLE notes (id integer PRIMARY KEY, body text)")
			path := db.writePlan(t, "defaults:\n  iv: column\ntables:\n"+
				"  - name: orders\n    columns:\n"+columnsYAML("customer_ssn")+
				"  - name: notes\n    columns:\n"+columnsYAML("body")+
				"  - name: customers\n    columns:\n"+columnsYAML("ssn"))
			res, r := planJSON(t, path)
			if res.code != exitcode.OK {
				t.Fatalf("exit code %d: %s\n%s", res.code, res.stderr, allFindings(r))
			}
			if got := fmt.Sprint(r.Groups); got != "[[orders customers] [notes]]" {
				t.Errorf("groups %s, want [[orders customers] [notes]]", got)
			}
		})
	}
}
