package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliPlan encrypts three columns of a small customers table.
const cliPlan = `version: 1
database:
  engine: sqlite
  dsn: cli.db
keystore: cli.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 50
  drop_defaults: true
tables:
  - name: customers
    columns:
      - name: ssn
        iv: column
      - name: email
      - name: notes
        suite: aes-256-cbc
`

// cliFixture is a folder with cli.db (200 customers), cli.keystore and
// cli.yaml, and a runner with the keystore's passphrase.
type cliFixture struct {
	dir, plan, dbPath string
	r                 *runner
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	dir := t.TempDir()
	f := &cliFixture{dir: dir, plan: filepath.Join(dir, "cli.yaml"), dbPath: filepath.Join(dir, "cli.db")}
	db, err := sql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{`CREATE TABLE customers (id INTEGER PRIMARY KEY, ssn TEXT NOT NULL UNIQUE, email TEXT, notes TEXT DEFAULT '')`}
	for i := 1; i <= 200; i++ {
		email := fmt.Sprintf("'c%d@example.com'", i)
		if i%9 == 0 {
			email = "NULL"
		}
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO customers VALUES (%d, 'ssn-%04d', %s, 'note %d')`, i, i, email, i))
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	newKeystore(t, filepath.Join(dir, "cli.keystore"))
	if err := os.WriteFile(f.plan, []byte(cliPlan), 0o644); err != nil {
		t.Fatal(err)
	}
	f.r = newRunner(t, dir, "COLCRYPT_PASSPHRASE="+passphrase)
	return f
}

func (f *cliFixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	return takeSnapshot(t, f.dbPath, false)
}

// colcryptTables lists colcrypt's own tables in the database.
func (f *cliFixture) colcryptTables(t *testing.T) string {
	t.Helper()
	row := query(t, f.dbPath, `SELECT group_concat(name) FROM sqlite_master WHERE type = 'table' AND name LIKE 'colcrypt\_%' ESCAPE '\'`)
	s, _ := row[0].(string)
	return s
}

// TestPlanFileErrors: a bad plan file is exit 2 with file:line:column on
// stderr, from every command, before any connection is made (the plans
// point at a database file that does not exist).
func TestPlanFileErrors(t *testing.T) {
	head := "version: 1\ndatabase:\n  engine: sqlite\n  dsn: missing.db\nkeystore: cli.keystore\n"
	cases := []struct {
		name, body string
		line, col  int
	}{
		{"unknown top-level key", head + "tables:\n  - name: t\n    columns:\n      - name: c\nextra: 1\n", 10, 1},
		{"unknown suite", head + "tables:\n  - name: t\n    columns:\n      - name: c\n        suite: rot13\n", 10, 16},
		{"duplicate key", head + "keystore: again.keystore\ntables:\n  - name: t\n    columns:\n      - name: c\n", 6, 1},
		{"wrong type", head + "job:\n  workers: two\ntables:\n  - name: t\n    columns:\n      - name: c\n", 7, 12},
		{"unknown column key", head + "tables:\n  - name: t\n    columns:\n      - name: c\n        colour: red\n", 10, 9},
	}
	f := newCLIFixture(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(f.dir, "bad.yaml")
			if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("bad.yaml:%d:%d:", c.line, c.col)
			for _, args := range [][]string{{"apply", path}, {"plan", path}, {"verify", path}, {"status", path}, {"revert", path}} {
				res := f.r.run(args...)
				if res.code != 2 {
					t.Errorf("colcrypt %s: exit %d, want 2\n%s", args[0], res.code, res.stderr)
				}
				if !strings.Contains(res.stderr, want) {
					t.Errorf("colcrypt %s: stderr does not name %s:\n%s", args[0], want, res.stderr)
				}
				if strings.Contains(res.stderr, "missing.db") {
					t.Errorf("colcrypt %s: connected to the database before rejecting the plan:\n%s", args[0], res.stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(f.dir, "missing.db")); err == nil {
				t.Error("a command created missing.db")
			}
		})
	}
	t.Run("column missing from the table", func(t *testing.T) {
		path := filepath.Join(f.dir, "nocol.yaml")
		body := strings.Replace(cliPlan, "      - name: email\n", "      - name: email\n      - name: no_such_column\n", 1)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		before := f.snapshot(t)
		for _, cmd := range []string{"apply", "plan"} {
			res := f.r.run(cmd, path)
			if res.code != 2 || !strings.Contains(res.stderr, "nocol.yaml:18:15") {
				t.Errorf("colcrypt %s with a missing column: exit %d, want 2 naming nocol.yaml:18:15:\n%s", cmd, res.code, res.stderr)
			}
		}
		if d := before.diff(f.snapshot(t)); d != "" {
			t.Errorf("a plan naming a missing column changed the database:\n%s", d)
		}
	})
}

// TestWrongDatabaseOrKeystore: a plan naming a table the database does not
// have, and a damaged keystore, are exit 2 and change nothing.
func TestWrongDatabaseOrKeystore(t *testing.T) {
	f := newCLIFixture(t)
	before := f.snapshot(t)
	path := filepath.Join(f.dir, "notable.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(cliPlan, "  - name: customers\n", "  - name: clients\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"apply", "plan"} {
		res := f.r.run(cmd, path)
		if res.code != 2 || !strings.Contains(res.stderr, "notable.yaml:13:11") {
			t.Errorf("colcrypt %s with a missing table: exit %d, want 2 naming notable.yaml:13:11:\n%s", cmd, res.code, res.stderr)
		}
	}
	ks := filepath.Join(f.dir, "cli.keystore")
	data, err := os.ReadFile(ks)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(ks, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res := f.r.run("apply", f.plan)
	if res.code != 2 || !strings.Contains(res.stderr, "keystore") {
		t.Errorf("apply with a damaged keystore: exit %d, want 2 naming the keystore:\n%s", res.code, res.stderr)
	}
	if d := before.diff(f.snapshot(t)); d != "" {
		t.Errorf("refused commands changed the database:\n%s", d)
	}
	if got := f.colcryptTables(t); got != "" {
		t.Errorf("refused commands created colcrypt's tables %v", got)
	}
}

// TestPassphraseErrors: no passphrase and no terminal is exit 2 without a
// prompt and without touching the database; a wrong one is exit 2 and is
// never echoed; status needs no passphrase.
func TestPassphraseErrors(t *testing.T) {
	f := newCLIFixture(t)
	before := f.snapshot(t)
	none := newRunner(t, f.dir)
	for _, cmd := range []string{"apply", "verify", "revert"} {
		res := none.run(cmd, f.plan)
		if res.code != 2 || !strings.Contains(res.stderr, "COLCRYPT_PASSPHRASE") {
			t.Errorf("colcrypt %s without a passphrase: exit %d, want 2 naming COLCRYPT_PASSPHRASE:\n%s", cmd, res.code, res.stderr)
		}
		if res.took > 10*time.Second {
			t.Errorf("colcrypt %s without a passphrase took %s: did it wait for a prompt?", cmd, res.took)
		}
	}
	const wrong = "not the passphrase 1234"
	res := newRunner(t, f.dir, "COLCRYPT_PASSPHRASE="+wrong).run("apply", f.plan)
	if res.code != 2 || strings.Contains(res.stderr+res.stdout, wrong) {
		t.Errorf("apply with a wrong passphrase: exit %d, want 2 without echoing it:\n%s", res.code, res.stderr)
	}
	if d := before.diff(f.snapshot(t)); d != "" {
		t.Errorf("commands refused for their passphrase changed the database:\n%s", d)
	}
	none.mustRun(0, "status", f.plan)
}

// TestExitCodes: blockers and a failed verify are exit 1, bad flags 2.
func TestExitCodes(t *testing.T) {
	f := newCLIFixture(t)
	f.r.mustRun(2, "apply", "--until", "lunch", f.plan)
	f.r.mustRun(2, "status", "--format", "yaml", f.plan)
	f.r.mustRun(2, "apply")

	// A trigger reading a planned column blocks apply: exit 1, nothing changed.
	db := openDB(t, f.dbPath)
	if _, err := db.Exec(`CREATE TRIGGER customers_audit AFTER UPDATE ON customers BEGIN SELECT new.email; END`); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	res := f.r.mustRun(1, "apply", f.plan)
	if !strings.Contains(res.stderr, "you must drop trigger customers_audit defined on customers") {
		t.Errorf("the blocker message does not name the trigger:\n%s", res.stderr)
	}
	f.r.mustRun(1, "plan", f.plan)
	if d := before.diff(f.snapshot(t)); d != "" {
		t.Errorf("a blocked apply changed the database:\n%s", d)
	}
	if _, err := db.Exec(`DROP TRIGGER customers_audit`); err != nil {
		t.Fatal(err)
	}

	f.r.mustRun(0, "apply", f.plan)
	f.r.mustRun(0, "verify", f.plan)
	// Tamper with one AEAD ciphertext: its MAC no longer matches.
	const row = 43
	var ct []byte
	if err := db.QueryRow(`SELECT email FROM customers WHERE id = ?`, row).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	ct[len(ct)/2] ^= 0x01
	if _, err := db.Exec(`UPDATE customers SET email = ? WHERE id = ?`, ct, row); err != nil {
		t.Fatal(err)
	}
	res = f.r.mustRun(1, "verify", f.plan)
	if !strings.Contains(res.stderr, fmt.Sprintf("id=%d", row)) {
		t.Errorf("verify does not name the tampered row id=%d:\n%s", row, res.stderr)
	}
}

// TestStatusJSON: status --format json has the fields of SPEC §5 with
// their types and meaning, during and after a job.
func TestStatusJSON(t *testing.T) {
	f := newCLIFixture(t)
	wantFields := []string{"table", "column", "state", "state_desc", "percent_complete", "key", "key_version", "suite"}
	check := func(state int, desc string, percent float64) {
		t.Helper()
		res := f.r.mustRun(0, "status", "--format", "json", f.plan)
		var doc struct {
			Columns []map[string]any `json:"columns"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
			t.Fatalf("status --format json is not JSON: %v\n%s", err, res.stdout)
		}
		if len(doc.Columns) != 3 {
			t.Fatalf("status lists %d columns, want 3:\n%s", len(doc.Columns), res.stdout)
		}
		suites := map[string]string{"ssn": "aead-aes-256-cbc-hmac-sha256", "email": "aead-aes-256-cbc-hmac-sha256", "notes": "aes-256-cbc"}
		for _, c := range doc.Columns {
			for _, k := range wantFields {
				if _, ok := c[k]; !ok {
					t.Errorf("status column %v has no field %q", c, k)
				}
			}
			name, _ := c["column"].(string)
			want := map[string]any{"table": "customers", "state": float64(state), "state_desc": desc,
				"percent_complete": percent, "key": "pii", "key_version": float64(1), "suite": suites[name]}
			if state == 1 {
				delete(want, "key_version") // no key version is chosen before a job starts
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("status of %s: %s = %#v, want %#v", name, k, c[k], v)
				}
			}
		}
	}
	check(1, "unencrypted", 0)
	f.r.mustRun(0, "apply", "--until", "copy", f.plan)
	check(2, "encryption in progress", 100)
	f.r.mustRun(0, "apply", f.plan)
	check(3, "encrypted", 100)
}

// TestPlanJSON: plan --format json has the fields of SPEC §5 and changes
// nothing in the database, not even colcrypt's own tables.
func TestPlanJSON(t *testing.T) {
	f := newCLIFixture(t)
	before := f.snapshot(t)
	res := f.r.mustRun(0, "plan", "--format", "json", f.plan)
	var doc map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
		t.Fatalf("plan --format json is not JSON: %v\n%s", err, res.stdout)
	}
	need := func(obj map[string]any, where string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s has no field %q", where, k)
			}
		}
	}
	need(doc, "plan report", "engine", "tables", "totals")
	if doc["engine"] != "sqlite" {
		t.Errorf("engine = %v, want sqlite", doc["engine"])
	}
	tables, _ := doc["tables"].([]any)
	if len(tables) != 1 {
		t.Fatalf("plan report has %d tables, want 1", len(tables))
	}
	tbl, _ := tables[0].(map[string]any)
	need(tbl, "table", "name", "rows", "bytes_now", "bytes_after", "bytes_peak", "max_row_bytes_now",
		"max_row_bytes_after", "max_row_bytes_during", "row_limit", "columns", "findings")
	if tbl["rows"] != float64(200) || tbl["row_limit"] != float64(0) {
		t.Errorf("table rows = %v, row_limit = %v; want 200 and 0 (SQLite has no row limit)", tbl["rows"], tbl["row_limit"])
	}
	cols, _ := tbl["columns"].([]any)
	if len(cols) != 3 {
		t.Fatalf("plan report has %d columns, want 3", len(cols))
	}
	for _, c := range cols {
		cm, _ := c.(map[string]any)
		need(cm, fmt.Sprint("column ", cm["name"]), "name", "source_type", "suite", "iv", "rows", "nulls", "bytes_now",
			"ciphertext_type", "max_ciphertext_bytes", "bytes_after", "iv_bytes")
	}
	findings, _ := tbl["findings"].([]any)
	for _, fd := range findings {
		fm, _ := fd.(map[string]any)
		need(fm, "finding", "severity", "rule", "object", "column", "message")
	}
	totals, _ := doc["totals"].(map[string]any)
	need(totals, "totals", "bytes_now", "bytes_after", "bytes_peak", "blockers")
	if d := before.diff(f.snapshot(t)); d != "" {
		t.Errorf("plan changed the database:\n%s", d)
	}
	if got := f.colcryptTables(t); got != "" {
		t.Errorf("plan, a dry run, created colcrypt's tables %v", got)
	}
}

// TestDemo runs the demo, then the rest of the flow on its files with the
// demo's passphrase: verify, status, revert back to plaintext.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	r := newRunner(t, t.TempDir())
	start := time.Now()
	res := r.run("demo", "--dir", dir, "--rows", "3000")
	t.Logf("demo of 3,000 rows took %s", time.Since(start).Round(time.Millisecond))
	if res.code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, step := range []string{"$ colcrypt plan", "$ colcrypt apply", "$ colcrypt verify", "$ colcrypt status"} {
		if !strings.Contains(res.stdout, step) {
			t.Errorf("the demo output does not show %q", step)
		}
	}
	// The demo prints the passphrase it used; it is labelled demo-only.
	m := regexp.MustCompile(`COLCRYPT_PASSPHRASE="([^"]+)"`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("the demo does not print how to revert:\n%s", res.stdout)
	}
	plan := filepath.Join(dir, "demo.yaml")
	dr := newRunner(t, dir, "COLCRYPT_PASSPHRASE="+m[1])
	db := openDB(t, filepath.Join(dir, "customers.db"))
	var plain int
	if err := db.QueryRow(`SELECT count(*) FROM customers WHERE typeof(ssn) = 'text' OR typeof(email) = 'text'`).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	if plain != 0 {
		t.Errorf("after the demo %d rows still hold plaintext SSNs or e-mails", plain)
	}
	for _, args := range [][]string{{"verify", plan}, {"status", "--format", "json", plan}, {"revert", plan}} {
		res := dr.mustRun(0, args...)
		t.Logf("colcrypt %s took %s", args[0], res.took.Round(time.Millisecond))
	}
	var texts, rows int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE typeof(ssn) = 'text') FROM customers`).Scan(&rows, &texts); err != nil {
		t.Fatal(err)
	}
	if rows != 3000 || texts != rows {
		t.Errorf("after revert: %d of %d SSNs are text, want all 3000", texts, rows)
	}
	var ddl string
	if err := db.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'customers'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ssn         TEXT NOT NULL UNIQUE", "notes       TEXT DEFAULT ''"} {
		if !strings.Contains(ddl, want) {
			t.Errorf("after revert the table definition lacks %q:\n%s", want, ddl)
		}
	}
	res = dr.run("verify", plan)
	if res.code != 2 {
		t.Errorf("verify after revert: exit %d, want 2 (nothing to verify)\n%s", res.code, res.stderr)
	}
}
