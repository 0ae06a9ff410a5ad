package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/keystore"
)

// badInputFixture is a SQLite database, a keystore with key "pii", and a
// folder to write plans into: everything a command needs, so each case
// breaks exactly one thing.
type badInputFixture struct {
	dir      string
	keystore string
}

const badInputPass = "bad input fixture passphrase"

func newBadInputFixture(t *testing.T) *badInputFixture {
	t.Helper()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, ssn TEXT NOT NULL UNIQUE, email TEXT, status TEXT DEFAULT 'new')`,
		`INSERT INTO customers (ssn, email) VALUES ('123-45-6789', 'a@example.com'), ('987-65-4321', NULL)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	ks := filepath.Join(dir, "shop.keystore")
	k, err := keystore.Create(ks, keystore.Secret{Passphrase: []byte(badInputPass)}, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	return &badInputFixture{dir: dir, keystore: ks}
}

// plan writes a plan file with the given body and returns its path.
func (f *badInputFixture) plan(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodPlanBody = `version: 1
database:
  engine: sqlite
  dsn: shop.db
keystore: shop.keystore
tables:
  - name: customers
    columns:
      - name: email
`

// TestBadInputExitCodesAndMessages runs the bad plans and keystores a DBA
// will feed colcrypt, and checks that each gives exit 2 (or 1 where the
// input is fine but the plan has blockers) and the exact one-line message,
// with the fixture folder written as $DIR.
func TestBadInputExitCodesAndMessages(t *testing.T) {
	f := newBadInputFixture(t)
	good := f.plan(t, "good.yaml", goodPlanBody)
	plan := func(name, body string) string { return f.plan(t, name, body) }
	replace := func(old, new string) string { return strings.Replace(goodPlanBody, old, new, 1) }

	truncated := filepath.Join(f.dir, "truncated.keystore")
	edited := filepath.Join(f.dir, "edited.keystore")
	data, err := os.ReadFile(f.keystore)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte{}, data...)
	flipped[len(flipped)/2] ^= 0x40
	if err := os.WriteFile(edited, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	withKeystore := func(name, ks string) string {
		return plan(name, strings.Replace(goodPlanBody, "keystore: shop.keystore", "keystore: "+ks, 1))
	}

	cases := []struct {
		name string
		env  []string // secret variables, name/value pairs
		args []string
		code int
		msg  string // the last colcrypt: line of stderr, the fixture folder written as $DIR
	}{
		// Plan files: every error names file:line:column, before any connection.
		{"unknown top-level key", nil, []string{"plan", plan("p1.yaml", goodPlanBody+"colour: blue\n")}, 2,
			"colcrypt: $DIR/p1.yaml:10:1: unknown key \"colour\" in the plan (valid: version, database, keystore, defaults, job, tables)"},
		{"unknown column key", nil, []string{"plan", plan("p2.yaml", replace("- name: email", "- name: email\n        cipher: aes"))}, 2,
			"colcrypt: $DIR/p2.yaml:10:9: unknown key \"cipher\" in column entry (valid: name, suite, iv, key, versioned)"},
		{"unknown suite", nil, []string{"plan", plan("p3.yaml", replace("- name: email", "- name: email\n        suite: rot13"))}, 2,
			"colcrypt: $DIR/p3.yaml:10:16: unknown cipher suite \"rot13\" (valid: aes-128-cbc, aes-192-cbc, aes-256-cbc, 3des-cbc, aead-aes-256-cbc-hmac-sha256)"},
		{"unknown iv mode", nil, []string{"plan", plan("p4.yaml", replace("- name: email", "- name: email\n        iv: row"))}, 2,
			"colcrypt: $DIR/p4.yaml:10:13: unknown IV mode \"row\" (valid: field, column)"},
		{"unknown engine", nil, []string{"plan", plan("p5.yaml", replace("engine: sqlite", "engine: oracle"))}, 2,
			"colcrypt: $DIR/p5.yaml:3:11: unknown database engine \"oracle\" (valid: sqlserver, postgres, sqlite)"},
		{"workers not a number", nil, []string{"plan", plan("p6.yaml", goodPlanBody+"job:\n  workers: four\n")}, 2,
			"colcrypt: $DIR/p6.yaml:11:12: job.workers must be an integer, got the string \"four\""},
		{"workers out of range", nil, []string{"plan", plan("p7.yaml", goodPlanBody+"job:\n  workers: 0\n")}, 2,
			"colcrypt: $DIR/p7.yaml:11:12: job.workers must be between 1 and 64, got 0"},
		{"duplicate key", nil, []string{"plan", plan("p8.yaml", replace("version: 1", "version: 1\nversion: 1"))}, 2,
			"colcrypt: $DIR/p8.yaml:2:1: duplicate key \"version\" in the plan (first at line 1)"},
		{"duplicate column", nil, []string{"plan", plan("p9.yaml", replace("- name: email", "- name: email\n      - name: EMAIL"))}, 2,
			"colcrypt: $DIR/p9.yaml:10:15: column \"EMAIL\" is listed twice in table \"customers\" (first at line 9)"},
		{"unset variable", nil, []string{"plan", plan("p10.yaml", replace("dsn: shop.db", "dsn: ${COLCRYPT_TEST_UNSET_VAR}"))}, 2,
			"colcrypt: $DIR/p10.yaml:4:8: database.dsn: environment variable COLCRYPT_TEST_UNSET_VAR is not set"},
		{"wrong version", nil, []string{"plan", plan("p11.yaml", replace("version: 1", "version: 2"))}, 2,
			"colcrypt: $DIR/p11.yaml:1:10: unsupported plan version 2 (this colcrypt reads version 1)"},
		{"plaintext mode", nil, []string{"plan", plan("p12.yaml", goodPlanBody+"job:\n  plaintext: shred\n")}, 2,
			"colcrypt: $DIR/p12.yaml:11:14: unknown plaintext mode \"shred\" (valid: drop, null)"},
		{"no tables", nil, []string{"plan", plan("p13.yaml", strings.SplitN(goodPlanBody, "tables:", 2)[0])}, 2,
			"colcrypt: $DIR/p13.yaml:1:1: missing required key \"tables\" in the plan"},
		{"yaml syntax", nil, []string{"plan", plan("p14.yaml", "version: 1\ndatabase: [\n")}, 2,
			"colcrypt: $DIR/p14.yaml:2: invalid YAML: did not find expected node content"},
		{"two documents", nil, []string{"plan", plan("p15.yaml", goodPlanBody+"---\nversion: 1\n")}, 2,
			"colcrypt: $DIR/p15.yaml:10:1: a plan file holds one YAML document; a second one starts here"},
		{"empty plan", nil, []string{"plan", plan("p16.yaml", "")}, 2,
			"colcrypt: $DIR/p16.yaml: plan file is empty"},
		{"missing plan file", nil, []string{"plan", filepath.Join(f.dir, "nope.yaml")}, 2,
			"colcrypt: read plan: open $DIR/nope.yaml: no such file or directory"},
		{"missing table", nil, []string{"plan", plan("p17.yaml", replace("name: customers", "name: clients"))}, 2,
			"colcrypt: $DIR/p17.yaml:7:11: table clients does not exist in the database"},
		{"missing column", nil, []string{"plan", plan("p18.yaml", replace("- name: email", "- name: e_mail"))}, 2,
			"colcrypt: $DIR/p18.yaml:9:15: table customers has no column e_mail"},
		{"missing database file", nil, []string{"plan", plan("p19.yaml", replace("dsn: shop.db", "dsn: typo.db"))}, 2,
			"colcrypt: connect to the sqlite database of plan $DIR/p19.yaml: open sqlite database $DIR/typo.db: the file does not exist: stat $DIR/typo.db: no such file or directory"},
		{"unknown format", nil, []string{"plan", good, "--format", "yaml"}, 2,
			"colcrypt: unknown --format \"yaml\" (valid: text, json, markdown)"},
		{"blockers exit 1", nil, []string{"plan", plan("p20.yaml", replace("- name: email", "- name: ssn"))}, 1,
			"colcrypt: plan $DIR/p20.yaml has 1 blocker"},
		{"blockers stop apply", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", plan("p21.yaml", replace("- name: email", "- name: id"))}, 1,
			"colcrypt: the plan has 2 blocker(s); nothing was changed:"},
		// Keystores and passphrases.
		{"no passphrase, no terminal", nil, []string{"apply", good}, 2,
			"colcrypt: open keystore $DIR/shop.keystore: no passphrase: set COLCRYPT_PASSPHRASE (or COLCRYPT_MASTER_KEY), or run on a terminal to be prompted"},
		{"wrong passphrase", []string{"COLCRYPT_PASSPHRASE", "not it"}, []string{"apply", good}, 2,
			"colcrypt: open keystore $DIR/shop.keystore: wrong passphrase (set COLCRYPT_PASSPHRASE to the keystore's passphrase)"},
		{"truncated keystore", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", withKeystore("k1.yaml", "truncated.keystore")}, 2,
			"colcrypt: open keystore $DIR/truncated.keystore: checksum mismatch: the file is truncated, damaged or was edited (restore the keystore from a backup with colcrypt keys restore)"},
		{"edited keystore", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", withKeystore("k2.yaml", "edited.keystore")}, 2,
			"colcrypt: open keystore $DIR/edited.keystore: checksum mismatch: the file is truncated, damaged or was edited (restore the keystore from a backup with colcrypt keys restore)"},
		{"missing keystore", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", withKeystore("k3.yaml", "gone.keystore")}, 2,
			"colcrypt: open keystore $DIR/gone.keystore: no such file or directory (check the path, or create a keystore with colcrypt keys init)"},
		{"keystore is a directory", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", withKeystore("k4.yaml", ".")}, 2,
			"colcrypt: open keystore $DIR: is a directory, not a file"},
		{"missing data key", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", plan("k5.yaml", replace("- name: email", "- name: email\n        key: payroll"))}, 2,
			"colcrypt: key \"payroll\" for customers.email: key payroll: no such key (add it with: colcrypt keys add $DIR/shop.keystore payroll)"},
		{"keys list wrong passphrase", []string{"COLCRYPT_PASSPHRASE", "nope"}, []string{"keys", "list", f.keystore}, 2,
			"colcrypt: open keystore $DIR/shop.keystore: wrong passphrase (set COLCRYPT_PASSPHRASE to the keystore's passphrase)"},
		{"keys init existing file", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"keys", "init", f.keystore}, 2,
			"colcrypt: create keystore $DIR/shop.keystore: file already exists (choose another path, or move the existing file away first)"},
		{"restore onto existing keystore", []string{"COLCRYPT_PASSPHRASE", badInputPass, "COLCRYPT_BACKUP_PASSPHRASE", "b"}, []string{"keys", "restore", f.keystore, f.keystore}, 2,
			"colcrypt: restore keystore $DIR/shop.keystore: file already exists (choose another path, or move the existing file away first)"},
		// Commands that need a job that is not there.
		{"verify before apply", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"verify", good}, 2,
			"colcrypt: nothing to verify: no job of plan $DIR/good.yaml in this database (run colcrypt apply first)"},
		{"rekey before apply", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"rekey", good, "--all"}, 2,
			"colcrypt: customers.email is not encrypted (state 1 unencrypted): rekey works on encrypted columns; run colcrypt apply first"},
		{"rekey without a column", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"rekey", good}, 2,
			"colcrypt: give either --column TABLE.COLUMN (repeatable) or --all"},
		{"apply --until bogus", []string{"COLCRYPT_PASSPHRASE", badInputPass}, []string{"apply", good, "--until", "lunch"}, 2,
			"colcrypt: --until \"lunch\": expected one of prepare, copy, verify, cutover"},
		{"missing argument", nil, []string{"apply"}, 2,
			"colcrypt: accepts 1 arg(s), received 0; usage: colcrypt apply PLAN [flags]"},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases; the issue asks for at least 30", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			setSecrets(t, c.env...)
			before := snapshotFile(t, filepath.Join(f.dir, "shop.db"))
			r := runCLI(t, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, c.code, r.stderr)
			}
			last := lastLine(strings.ReplaceAll(r.stderr, f.dir, "$DIR"))
			if last != c.msg {
				t.Errorf("message\n got: %s\nwant: %s", last, c.msg)
			}
			if strings.Contains(r.stderr, badInputPass) || strings.Contains(r.stdout, badInputPass) {
				t.Errorf("the passphrase appears in the output")
			}
			if after := snapshotFile(t, filepath.Join(f.dir, "shop.db")); after != before {
				t.Errorf("bad input changed the database")
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "colcrypt: ") || i == 0 {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// snapshotFile is a cheap fingerprint of the database: its user tables'
// rows, read through SQLite, so job tables created by a refused command
// would show too.
func snapshotFile(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out strings.Builder
	rows, err := db.Query("SELECT name, sql FROM sqlite_master ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var s sql.NullString
		if err := rows.Scan(&name, &s); err != nil {
			t.Fatal(err)
		}
		out.WriteString(name + "\n" + s.String + "\n")
	}
	rows.Close()
	var dump string
	if err := db.QueryRow("SELECT group_concat(id || ssn || coalesce(email, '∅') || coalesce(status, '∅'), ';') FROM customers").Scan(&dump); err != nil {
		t.Fatal(err)
	}
	return out.String() + dump
}
