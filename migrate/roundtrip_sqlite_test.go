package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// awkwardValues are SQL literals that a careless codec or a careless swap
// would change: empty and space-padded strings, NULL, multi-byte text with
// 4-byte emoji, integer extremes, reals whose bits matter, blobs (empty and
// with zero bytes), date-shaped text, and text that looks like a number.
var awkwardValues = []string{
	`''`, `'   '`, `'trailing  '`, `'  leading'`, `NULL`,
	`'Ünïcödé — 日本語 — 😀🧪🏳️‍🌈'`,
	`9223372036854775807`, `-9223372036854775808`, `0`, `-1`,
	`1.0`, `-0.0`, `1e308`, `-1e308`, `4.9e-324`, `0.1`,
	`x''`, `x'00ff'`, `x'00'`,
	`'2024-01-02 03:04:05'`, `'2024-01-02T03:04:05.123456789+02:00'`, `'2024-02-30'`,
	`'007'`, `'1e3'`, `'NULL'`, `'a' || char(0) || 'b'`,
	`replace(hex(zeroblob(2500)), '0', 'é')`, // 5,000 two-byte characters
	`'dup'`, `'dup'`,
}

// awkwardAffinities are column types of every affinity, so the same
// literal lands as a different storage class in each; "any" has none and
// keeps them all. Each exists twice: v_* encrypted with versioned
// ciphertexts, u_* without the version header.
var awkwardAffinities = []struct{ name, decl string }{
	{"text", "TEXT"}, {"char", "CHAR(12)"}, {"int", "INTEGER"}, {"real", "REAL"},
	{"any", ""}, {"blob", "BLOB"}, {"dt", "DATETIME"}, {"num", "NUMERIC(10,2)"},
}

// awkwardColumns are the encrypted columns of the awkward table.
var awkwardColumns = func() []string {
	var cols []string
	for _, prefix := range []string{"v_", "u_"} {
		for _, a := range awkwardAffinities {
			cols = append(cols, prefix+a.name)
		}
	}
	return cols
}()

func awkwardSetup() []string {
	var defs []string
	for i, c := range awkwardColumns {
		defs = append(defs, strings.TrimSpace(c+" "+awkwardAffinities[i%len(awkwardAffinities)].decl))
	}
	stmts := []string{"CREATE TABLE awkward (\n  id INTEGER PRIMARY KEY,\n  label TEXT NOT NULL,\n  " + strings.Join(defs, ",\n  ") + "\n)"}
	for i, v := range awkwardValues {
		vals := strings.Repeat(", "+v, len(awkwardColumns))
		stmts = append(stmts, fmt.Sprintf("INSERT INTO awkward (id, label%s) VALUES (%d, 'row %d'%s)",
			", "+strings.Join(awkwardColumns, ", "), i+1, i+1, vals))
	}
	// A row of every storage class mixed across columns, and one all NULL.
	mixed := "1, 2.5, 'three', x'04', 5, 'six', 7.0, x'08'"
	stmts = append(stmts,
		`INSERT INTO awkward VALUES (100, 'mixed', `+mixed+", "+mixed+`)`,
		`INSERT INTO awkward (id, label) VALUES (101, 'all null')`)
	return stmts
}

// TestRoundTripEverySuite encrypts columns of every affinity holding awkward
// values with every suite, IV mode and versioning, checks that no plaintext
// is left in them, verifies, reverts, and compares every row, storage
// class and schema entry with the state before.
func TestRoundTripEverySuite(t *testing.T) {
	for _, suite := range cipher.Suites() {
		for _, iv := range []cipher.IVMode{cipher.IVField, cipher.IVColumn} {
			t.Run(fmt.Sprintf("%s/%s", suite, iv), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, awkwardSetup()...)
				var cols []planColumn
				for _, c := range awkwardColumns {
					cols = append(cols, planColumn{name: c, versioned: boolPtr(strings.HasPrefix(c, "v_"))})
				}
				p := f.plan("plan.yaml", planSpec{suite: string(suite), iv: string(iv),
					tables: []planTable{{name: "awkward", columns: cols}}})
				before := f.snapshot()

				res := f.apply(p, migrate.Options{})
				if res.Phase != "done" {
					t.Fatalf("apply ended at phase %q, want done", res.Phase)
				}
				f.wantEncrypted("awkward", awkwardColumns...)
				wantIV := cipher.IVLen(suite, iv) > 0
				for _, c := range awkwardColumns {
					if got := f.columnExists("awkward", c+"_iv"); got != wantIV {
						t.Errorf("IV column %s_iv exists: %t, want %t", c, got, wantIV)
					}
					if f.columnExists("awkward", c+"__colcrypt") {
						t.Errorf("temporary column %s__colcrypt left after cut-over", c)
					}
				}
				f.checkDeterminism(iv)
				f.checkVersionHeader(suite)
				f.wantStates(p, migrate.StateEncrypted)

				vr := f.verify(p)
				if !vr.OK() {
					t.Fatalf("verify after apply: %v", vr.Err())
				}
				if vr.Rows != int64(len(awkwardValues)+2) {
					t.Errorf("verify read %d rows, want %d", vr.Rows, len(awkwardValues)+2)
				}

				f.revert(p)
				f.wantStates(p, migrate.StateUnencrypted)
				if d := before.diff(f.snapshot()); d != "" {
					t.Fatalf("after apply and revert the database differs:\n%s", d)
				}
			})
		}
	}
}

// checkVersionHeader: a versioned ciphertext is 3 bytes longer than the
// unversioned one of the same value (SPEC §3: format tag, key version).
func (f *fixture) checkVersionHeader(suite cipher.Suite) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	var v, u int
	if err := db.QueryRow(`SELECT length(v_text), length(u_text) FROM awkward WHERE id = 3`).Scan(&v, &u); err != nil {
		f.t.Fatal(err)
	}
	if v != u+3 {
		f.t.Errorf("%s: versioned ciphertext of 'trailing  ' is %d bytes, unversioned %d: want a 3-byte header", suite, v, u)
	}
}

// checkDeterminism: the two 'dup' rows encrypt to the same ciphertext with
// iv: column and to different ones with iv: field.
func (f *fixture) checkDeterminism(iv cipher.IVMode) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	var a, b []byte
	if err := db.QueryRow(`SELECT (SELECT u_any FROM awkward WHERE id = ?), (SELECT u_any FROM awkward WHERE id = ?)`,
		len(awkwardValues)-1, len(awkwardValues)).Scan(&a, &b); err != nil {
		f.t.Fatal(err)
	}
	if same := string(a) == string(b); same != (iv == cipher.IVColumn) {
		f.t.Errorf("iv %s: equal plaintexts give equal ciphertexts: %t", iv, same)
	}
}

// TestRoundTripTableShapes covers keys, constraints, indexes and names
// that the swap must rebuild exactly: each case encrypts, checks what a
// user would check after cut-over, reverts and compares the whole database.
func TestRoundTripTableShapes(t *testing.T) {
	type shape struct {
		name   string
		setup  []string
		spec   planSpec
		after  func(t *testing.T, f *fixture) // after cut-over
		revert func(t *testing.T, f *fixture) // after revert
	}
	field, column := "field", "column"
	uniqueViolation := func(t *testing.T, f *fixture, stmt, what string) {
		t.Helper()
		err := f.execErr(stmt)
		if err == nil || !strings.Contains(strings.ToUpper(err.Error()), "UNIQUE") {
			t.Errorf("%s: %q gave %v, want a UNIQUE constraint failure", what, stmt, err)
		}
	}
	wantObject := func(t *testing.T, f *fixture, typ, name string) {
		t.Helper()
		db := f.raw()
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = ? AND name = ?", typ, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s %s does not exist", typ, name)
		}
	}
	shapes := []shape{
		{
			name: "no key: pages by rowid, rowids kept",
			setup: []string{
				`CREATE TABLE nokey (a TEXT, b INTEGER, c)`,
				`INSERT INTO nokey VALUES ('x', 1, 'same'), ('x', 1, 'same'), (NULL, 2, NULL), ('', 3, x'00'), ('y', 4, 4.5)`,
				`INSERT INTO nokey SELECT a, b + 10, c FROM nokey`,
				`DELETE FROM nokey WHERE rowid IN (2, 7)`,
			},
			spec: planSpec{iv: field, tables: []planTable{{name: "nokey", columns: []planColumn{{name: "a"}, {name: "c", suite: "aes-128-cbc"}}}}},
			after: func(t *testing.T, f *fixture) {
				if f.columnExists("nokey", "colcrypt_row_id") {
					t.Error("SQLite needs no colcrypt_row_id column (it has rowid), but one exists after cut-over")
				}
			},
		},
		{
			name: "composite primary key with an encrypted key column",
			setup: []string{
				`CREATE TABLE accts (region TEXT NOT NULL, acct TEXT NOT NULL, secret TEXT, PRIMARY KEY (region, acct))`,
				`INSERT INTO accts VALUES ('eu', 'A-1', 's1'), ('eu', 'A-2', NULL), ('us', 'A-1', 's3'), ('us', 'B 7 ', '')`,
			},
			spec: planSpec{tables: []planTable{{name: "accts", columns: []planColumn{{name: "acct", iv: column}, {name: "secret"}}}}},
			after: func(t *testing.T, f *fixture) {
				uniqueViolation(t, f, `INSERT INTO accts (region, acct) SELECT region, acct FROM accts WHERE region = 'eu' LIMIT 1`,
					"primary key on the ciphertext after cut-over")
			},
			revert: func(t *testing.T, f *fixture) {
				uniqueViolation(t, f, `INSERT INTO accts (region, acct) VALUES ('eu', 'A-1')`, "primary key after revert")
			},
		},
		{
			name: "composite primary key, WITHOUT ROWID",
			setup: []string{
				`CREATE TABLE wr (a INTEGER NOT NULL, b TEXT NOT NULL, note TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID`,
				`INSERT INTO wr VALUES (1, 'x', 'n1'), (1, 'y', NULL), (2, 'x', 'n3'), (-5, '', 'n4')`,
			},
			spec: planSpec{suite: "3des-cbc", tables: []planTable{{name: "wr", columns: []planColumn{{name: "note"}}}}},
		},
		{
			name: "unique column with iv: column keeps its constraint",
			setup: []string{
				`CREATE TABLE people (id INTEGER PRIMARY KEY, ssn TEXT NOT NULL UNIQUE, email TEXT, note TEXT)`,
				`CREATE UNIQUE INDEX people_email ON people (email)`,
				`INSERT INTO people VALUES (1, '111-11-1111', 'a@example.com', 'n'), (2, '222-22-2222', NULL, NULL), (3, '333-33-3333', 'c@example.com', '')`,
			},
			spec: planSpec{tables: []planTable{{name: "people", columns: []planColumn{{name: "ssn", iv: column}, {name: "email", iv: column, suite: "aes-256-cbc"}, {name: "note"}}}}},
			after: func(t *testing.T, f *fixture) {
				uniqueViolation(t, f, `INSERT INTO people (id, ssn) SELECT 10, ssn FROM people WHERE id = 1`, "UNIQUE ssn after cut-over")
				uniqueViolation(t, f, `INSERT INTO people (id, ssn, email) SELECT 11, x'01', email FROM people WHERE id = 1`, "unique index people_email after cut-over")
				wantObject(t, f, "index", "people_email")
			},
			revert: func(t *testing.T, f *fixture) {
				uniqueViolation(t, f, `INSERT INTO people (id, ssn) VALUES (10, '111-11-1111')`, "UNIQUE ssn after revert")
				uniqueViolation(t, f, `INSERT INTO people (id, ssn, email) VALUES (11, 'new', 'a@example.com')`, "unique index people_email after revert")
			},
		},
		{
			name: "the only key is the encrypted unique column",
			setup: []string{
				`CREATE TABLE bykey (ssn TEXT NOT NULL UNIQUE, name TEXT)`,
				`INSERT INTO bykey VALUES ('b', 'B'), ('a', 'A'), ('c', NULL), ('d', 'D'), ('e', 'E')`,
			},
			spec: planSpec{tables: []planTable{{name: "bykey", columns: []planColumn{{name: "ssn", iv: column}}}}},
			after: func(t *testing.T, f *fixture) {
				uniqueViolation(t, f, `INSERT INTO bykey SELECT ssn, 'dup' FROM bykey LIMIT 1`, "UNIQUE ssn after cut-over")
			},
		},
		{
			name: "plain index on an encrypted column is rebuilt",
			setup: []string{
				`CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, city TEXT)`,
				`CREATE INDEX contacts_email ON contacts (email)`,
				`CREATE INDEX contacts_city_email ON contacts (city, email DESC) WHERE city IS NOT NULL`,
				`INSERT INTO contacts VALUES (1, 'a@x', 'Oslo'), (2, 'b@x', NULL), (3, NULL, 'Rome')`,
			},
			spec: planSpec{tables: []planTable{{name: "contacts", columns: []planColumn{{name: "email"}}}}},
			after: func(t *testing.T, f *fixture) {
				wantObject(t, f, "index", "contacts_email")
				wantObject(t, f, "index", "contacts_city_email")
			},
			revert: func(t *testing.T, f *fixture) {
				wantObject(t, f, "index", "contacts_email")
				wantObject(t, f, "index", "contacts_city_email")
			},
		},
		{
			name: "default dropped at cut-over and restored on revert",
			setup: []string{
				`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT DEFAULT 'n/a', kind TEXT NOT NULL DEFAULT ('plain' || '-text'))`,
				`INSERT INTO notes (id) VALUES (1)`,
				`INSERT INTO notes VALUES (2, 'hello', 'memo'), (3, NULL, 'x')`,
			},
			spec: planSpec{job: "  drop_defaults: true\n", tables: []planTable{{name: "notes", columns: []planColumn{{name: "body"}}}}},
			after: func(t *testing.T, f *fixture) {
				f.exec(`INSERT INTO notes (id) VALUES (50)`)
				db := f.raw()
				defer db.Close()
				var typ string
				if err := db.QueryRow(`SELECT typeof(body) FROM notes WHERE id = 50`).Scan(&typ); err != nil {
					t.Fatal(err)
				}
				if typ != "null" {
					t.Errorf("after cut-over a row inserted without body got a %s body: the default still writes plaintext", typ)
				}
				f.exec(`DELETE FROM notes WHERE id = 50`)
			},
			revert: func(t *testing.T, f *fixture) {
				f.exec(`INSERT INTO notes (id) VALUES (50)`)
				db := f.raw()
				defer db.Close()
				var body string
				if err := db.QueryRow(`SELECT body FROM notes WHERE id = 50`).Scan(&body); err != nil || body != "n/a" {
					t.Errorf("after revert a row inserted without body got %q (%v), want the restored default 'n/a'", body, err)
				}
				f.exec(`DELETE FROM notes WHERE id = 50`)
			},
		},
		{
			name: "check constraints dropped at cut-over and restored on revert",
			setup: []string{
				`CREATE TABLE codes (id INTEGER PRIMARY KEY, code TEXT CHECK (code GLOB '[A-Z][A-Z][0-9][0-9]'), n INTEGER,
  CONSTRAINT code_len CHECK (length(code) = 4), CHECK (n >= 0))`,
				`INSERT INTO codes VALUES (1, 'AB12', 1), (2, NULL, 2), (3, 'ZZ99', 0)`,
			},
			spec: planSpec{job: "  drop_check_constraints: true\n", tables: []planTable{{name: "codes", columns: []planColumn{{name: "code"}}}}},
			after: func(t *testing.T, f *fixture) {
				if err := f.execErr(`INSERT INTO codes VALUES (9, x'0102', -1)`); err == nil {
					t.Error("the CHECK (n >= 0), which does not reference code, was dropped too")
				}
			},
			revert: func(t *testing.T, f *fixture) {
				if err := f.execErr(`INSERT INTO codes VALUES (9, 'bad', 1)`); err == nil || !strings.Contains(err.Error(), "CHECK") {
					t.Errorf("after revert inserting a code that violates the CHECK gave %v, want a CHECK constraint failure", err)
				}
			},
		},
		{
			name: "odd table and column names",
			setup: []string{
				`CREATE TABLE "we""ird [tab]-le" ("s p a c e" TEXT, "quo""te" TEXT, "[brack]" TEXT, "dash-ed" INTEGER, "it's" BLOB, "ok" TEXT)`,
				`INSERT INTO "we""ird [tab]-le" VALUES ('a b', 'q"q', '[x]', 1, x'ff', 'k'), (NULL, '', ']', -1, NULL, 'l'), ('  ', '"', '[', 0, x'', 'm')`,
			},
			spec: planSpec{suite: "aes-192-cbc", iv: field, tables: []planTable{{name: `we"ird [tab]-le`, columns: []planColumn{
				{name: "s p a c e"}, {name: `quo"te`}, {name: "[brack]", suite: "aead-aes-256-cbc-hmac-sha256"}, {name: "dash-ed", iv: column}, {name: "it's"}}}}},
			after: func(t *testing.T, f *fixture) {
				f.wantEncrypted(`we"ird [tab]-le`, "s p a c e", `quo"te`, "[brack]", "dash-ed", "it's")
				if !f.columnExists(`we"ird [tab]-le`, `quo"te_iv`) {
					t.Error(`IV column quo"te_iv missing`)
				}
			},
		},
		{
			name: "foreign key between two encrypted columns",
			setup: []string{
				`CREATE TABLE parent (code TEXT PRIMARY KEY, name TEXT)`,
				`CREATE TABLE child (id INTEGER PRIMARY KEY, parent_code TEXT REFERENCES parent (code), qty INTEGER)`,
				`INSERT INTO parent VALUES ('P1', 'one'), ('P2', 'two')`,
				`INSERT INTO child VALUES (1, 'P1', 5), (2, 'P2', 6), (3, NULL, 7), (4, 'P1', 8)`,
			},
			spec: planSpec{iv: column, tables: []planTable{
				{name: "parent", columns: []planColumn{{name: "code"}}},
				{name: "child", columns: []planColumn{{name: "parent_code"}}},
			}},
			after: func(t *testing.T, f *fixture) {
				if err := f.execErr(`INSERT INTO child VALUES (9, x'0102', 1)`); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
					t.Errorf("after cut-over a child row referencing no parent gave %v, want a FOREIGN KEY failure", err)
				}
				if err := f.execErr(`INSERT INTO child (id, parent_code) SELECT 9, code FROM parent WHERE name = 'two'`); err != nil {
					t.Errorf("after cut-over a child row referencing a parent's ciphertext: %v", err)
				}
				f.exec(`DELETE FROM child WHERE id = 9`)
			},
			revert: func(t *testing.T, f *fixture) {
				if err := f.execErr(`INSERT INTO child VALUES (9, 'P9', 1)`); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
					t.Errorf("after revert a child row referencing no parent gave %v, want a FOREIGN KEY failure", err)
				}
			},
		},
		{
			name: "DATETIME primary key holding text",
			setup: []string{
				`CREATE TABLE events (at DATETIME PRIMARY KEY, payload TEXT)`,
				`INSERT INTO events VALUES ('2024-01-02 03:04:05', 'a'), ('2024-01-02T03:04:06Z', 'b'), ('2024-01-03', 'c'), ('not a date', 'd'), ('2024-01-02 03:04:05.5', NULL)`,
			},
			spec: planSpec{tables: []planTable{{name: "events", columns: []planColumn{{name: "payload"}}}}},
		},
		{
			name: "view on another column is kept",
			setup: []string{
				`CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, secret TEXT)`,
				`CREATE VIEW owners AS SELECT id, owner FROM accounts`,
				`INSERT INTO accounts VALUES (1, 'ann', 's1'), (2, 'bo', NULL)`,
			},
			spec: planSpec{tables: []planTable{{name: "accounts", columns: []planColumn{{name: "secret"}}}}},
			after: func(t *testing.T, f *fixture) {
				db := f.raw()
				defer db.Close()
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM owners WHERE owner IN ('ann', 'bo')`).Scan(&n); err != nil || n != 2 {
					t.Errorf("view owners after cut-over: %d rows, %v; want 2", n, err)
				}
			},
		},
		{
			name: "referenced by a foreign key on another column",
			setup: []string{
				`CREATE TABLE owners (id INTEGER PRIMARY KEY, secret TEXT)`,
				`CREATE TABLE pets (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES owners (id) ON DELETE CASCADE)`,
				`INSERT INTO owners VALUES (1, 's1'), (2, 's2')`,
				`INSERT INTO pets VALUES (10, 1), (11, 2), (12, 2)`,
			},
			spec: planSpec{tables: []planTable{{name: "owners", columns: []planColumn{{name: "secret"}}}}},
			after: func(t *testing.T, f *fixture) {
				if err := f.execErr(`INSERT INTO pets VALUES (13, 99)`); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
					t.Errorf("after cut-over a pet of no owner gave %v, want a FOREIGN KEY failure", err)
				}
				db := f.raw()
				defer db.Close()
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM pets`).Scan(&n); err != nil || n != 3 {
					t.Errorf("pets after cut-over: %d rows, %v; want 3 (the swap must not cascade)", n, err)
				}
			},
		},
		{
			name: "trigger on another column is kept",
			setup: []string{
				`CREATE TABLE audited (id INTEGER PRIMARY KEY, secret TEXT, touched INTEGER DEFAULT 0)`,
				`CREATE TRIGGER audited_touch AFTER UPDATE OF id ON audited BEGIN UPDATE audited SET touched = touched + 1 WHERE id = new.id; END`,
				`INSERT INTO audited (id, secret) VALUES (1, 's1'), (2, NULL)`,
			},
			spec: planSpec{tables: []planTable{{name: "audited", columns: []planColumn{{name: "secret"}}}}},
			after: func(t *testing.T, f *fixture) {
				wantObject(t, f, "trigger", "audited_touch")
			},
		},
	}
	for _, s := range shapes {
		for _, inPlace := range []bool{false, true} {
			t.Run(s.name+"/"+ways[inPlace], func(t *testing.T) { testRoundTripShape(t, s.setup, s.spec, s.after, s.revert, inPlace) })
		}
	}
}

// testRoundTripShape applies a plan (rebuilding the tables where SQLite
// can, or in place), checks, verifies, reverts, and compares the database
// with its state before.
func testRoundTripShape(t *testing.T, setup []string, spec planSpec, after, revert func(t *testing.T, f *fixture), inPlace bool) {
	t.Parallel()
	f := newFixture(t, setup...)
	p := f.plan("plan.yaml", spec)
	before := f.snapshot()
	f.apply(p, migrate.Options{InPlace: inPlace})
	for _, tp := range spec.tables {
		var cols []string
		for _, c := range tp.columns {
			cols = append(cols, c.name)
		}
		f.wantEncrypted(tp.name, cols...)
	}
	if after != nil {
		after(t, f)
	}
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify after apply: %v", vr.Err())
	}
	f.revert(p)
	if revert != nil {
		revert(t, f)
	}
	if d := before.diff(f.snapshot()); d != "" {
		t.Fatalf("after apply and revert the database differs:\n%s", d)
	}
}

// customersSetup is a small customers table with a unique SSN, a default
// and NULLs, used by the job-control tests.
func customersSetup(rows int) []string {
	stmts := []string{`CREATE TABLE customers (
  id    INTEGER PRIMARY KEY,
  ssn   TEXT NOT NULL UNIQUE,
  email TEXT,
  notes TEXT DEFAULT ''
)`}
	var vals []string
	for i := 1; i <= rows; i++ {
		email := fmt.Sprintf("'user%d@example.com'", i)
		if i%7 == 0 {
			email = "NULL"
		}
		vals = append(vals, fmt.Sprintf("(%d, '%03d-%02d-%04d', %s, 'note %d ✓')", i, i%1000, i%100, i, email, i))
	}
	return append(stmts, "INSERT INTO customers VALUES "+strings.Join(vals, ", "))
}

func customersPlan(f *fixture, name, emailSuite string) *planner.Plan {
	return f.plan(name, planSpec{job: "  drop_defaults: true\n", tables: []planTable{{name: "customers", columns: []planColumn{
		{name: "ssn", iv: "column"}, {name: "email", suite: emailSuite}, {name: "notes", suite: "aes-128-cbc"}}}}})
}

// TestApplyUntil stops after each phase, checks the state status shows,
// then either finishes with a later apply or reverts: before cut-over a
// revert must leave the table exactly as it was.
func TestApplyUntil(t *testing.T) {
	wantState := map[string]int{"prepare": migrate.StateEncrypting, "copy": migrate.StateEncrypting,
		"verify": migrate.StateEncrypting, "cutover": migrate.StateEncrypted}
	for _, until := range migrate.Phases {
		for _, then := range []string{"finish", "revert"} {
			for _, inPlace := range []bool{false, true} {
				t.Run(until+"/"+then+"/"+ways[inPlace], func(t *testing.T) {
					t.Parallel()
					f := newFixture(t, customersSetup(150)...)
					p := customersPlan(f, "plan.yaml", "")
					before, beforeData := f.snapshot(), f.userData()

					res := f.apply(p, migrate.Options{Until: until, InPlace: inPlace})
					if res.Phase != until {
						t.Fatalf("apply --until %s stopped after %q", until, res.Phase)
					}
					f.wantStates(p, wantState[until])
					if until != "cutover" {
						if inPlace != f.columnExists("customers", "ssn__colcrypt") || inPlace == f.tableExists("customers__colcrypt_new") {
							t.Fatalf("apply --until %s (%s): the copy's target is missing before cut-over", until, ways[inPlace])
						}
						if d := beforeData.diff(f.userData()); d != "" {
							t.Fatalf("apply --until %s changed the plaintext:\n%s", until, d)
						}
					}
					if until == "copy" || until == "verify" {
						if vr := f.verify(p); !vr.OK() {
							t.Fatalf("verify after apply --until %s: %v", until, vr.Err())
						}
					}

					if then == "revert" {
						f.revert(p)
						f.wantStates(p, migrate.StateUnencrypted)
						if d := before.diff(f.snapshot()); d != "" {
							t.Fatalf("revert after apply --until %s: the database differs:\n%s", until, d)
						}
						// A new apply after the revert starts over and finishes.
						f.apply(p, migrate.Options{})
					} else {
						res := f.apply(p, migrate.Options{})
						if res.Phase != "done" {
							t.Fatalf("apply after --until %s ended at %q", until, res.Phase)
						}
					}
					f.wantEncrypted("customers", "ssn", "email", "notes")
					if vr := f.verify(p); !vr.OK() {
						t.Fatalf("verify: %v", vr.Err())
					}
					f.revert(p)
					if d := before.diff(f.snapshot()); d != "" {
						t.Fatalf("after the final revert the database differs:\n%s", d)
					}
				})
			}
		}
	}
}

// ways names the two ways an offline SQLite job copies.
var ways = map[bool]string{false: "rebuilt", true: "in place"}

// TestApplyUntilAlreadyReached: running apply --until PHASE again when the
// job is already past PHASE must not go on to the later phases. A script
// that runs `apply --until copy` twice (or resumes a killed
// `apply --until copy`) would otherwise cut over and destroy the plaintext
// the user asked to keep.
func TestApplyUntilAlreadyReached(t *testing.T) {
	for _, until := range []string{"prepare", "copy", "verify"} {
		t.Run(until, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, customersSetup(50)...)
			p := customersPlan(f, "plan.yaml", "")
			f.apply(p, migrate.Options{Until: until})
			res := f.apply(p, migrate.Options{Until: until})
			if res.Phase != until && !res.Already {
				t.Errorf("second apply --until %s ran on to phase %q", until, res.Phase)
			}
			if !f.beforeCutover("customers", "ssn") {
				t.Errorf("second apply --until %s cut over: the plaintext columns are gone", until)
			}
		})
	}
}

// TestResumeRefusals: a job resumes only with the plan and keystore it
// started with, and cut-over requires a keystore backup newer than the
// last key change.
func TestResumeRefusals(t *testing.T) {
	t.Run("changed plan", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(100)...)
		p1 := customersPlan(f, "plan.yaml", "")
		f.apply(p1, migrate.Options{Until: "copy"})
		mid := f.snapshot()
		p2 := customersPlan(f, "plan2.yaml", "aes-256-cbc")
		_, err := f.engine(p2, f.ks, migrate.Options{}).Apply(context.Background())
		if err == nil {
			t.Fatal("apply with a plan whose suite changed resumed the job")
		}
		t.Logf("refused as expected: %v", err)
		if d := mid.diff(f.snapshot()); d != "" {
			t.Fatalf("the refused apply changed the database:\n%s", d)
		}
		if _, err := f.engine(p2, f.ks, migrate.Options{}).Revert(context.Background()); err == nil {
			// Reverting under the other plan must not drop the first job's columns either.
			if d := mid.diff(f.snapshot()); d != "" {
				t.Fatalf("revert with a changed plan changed the database:\n%s", d)
			}
		}
		f.apply(p1, migrate.Options{})
		if vr := f.verify(p1); !vr.OK() {
			t.Fatalf("verify: %v", vr.Err())
		}
	})
	t.Run("other keystore", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(100)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{Until: "copy"})
		mid := f.snapshot()
		other := newKeystore(t, f.dir+"/other.keystore", true)
		_, err := f.engine(p, other, migrate.Options{}).Apply(context.Background())
		if err == nil {
			t.Fatal("apply with another keystore holding a different key pii resumed the job")
		}
		if !strings.Contains(err.Error(), "keystore") {
			t.Errorf("the refusal does not mention the keystore: %v", err)
		}
		if d := mid.diff(f.snapshot()); d != "" {
			t.Fatalf("the refused apply changed the database:\n%s", d)
		}
		if _, err := f.engine(p, other, migrate.Options{}).Verify(context.Background()); err == nil {
			t.Error("verify with another keystore was not refused")
		}
		f.apply(p, migrate.Options{})
		done := f.snapshot()
		if _, err := f.engine(p, other, migrate.Options{}).Revert(context.Background()); err == nil {
			t.Error("revert after cut-over with another keystore was not refused")
		}
		if d := done.diff(f.snapshot()); d != "" {
			t.Fatalf("the refused revert changed the database:\n%s", d)
		}
		f.revert(p)
	})
	t.Run("no backup", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(100)...)
		f.ks = newKeystore(t, f.dir+"/nobackup.keystore", false)
		p := customersPlan(f, "plan.yaml", "")
		before := f.userData()
		_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
		if err == nil || !strings.Contains(err.Error(), "backup") {
			t.Fatalf("cut-over without a keystore backup: got %v, want a refusal naming the backup", err)
		}
		if d := before.diff(f.userData()); d != "" {
			t.Fatalf("the refused cut-over changed the plaintext:\n%s", d)
		}
		f.wantStates(p, migrate.StateEncrypting)
		f.apply(p, migrate.Options{NoBackupCheck: true})
		f.wantStates(p, migrate.StateEncrypted)
	})
	t.Run("key added after the backup", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(100)...)
		if _, err := f.ks.Add("other"); err != nil {
			t.Fatal(err)
		}
		p := customersPlan(f, "plan.yaml", "")
		_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
		if err == nil || !strings.Contains(err.Error(), "backup") {
			t.Fatalf("cut-over with a key added after the last backup: got %v, want a refusal", err)
		}
		if err := f.ks.Backup(f.dir+"/second.backup", []byte("backup"), cheapKDF); err != nil {
			t.Fatal(err)
		}
		f.apply(p, migrate.Options{})
		f.wantStates(p, migrate.StateEncrypted)
	})
}

// TestVerifyDetectsTampering: verify names the row whose ciphertext or
// plaintext was changed behind colcrypt's back, and its error is ErrVerify
// (exit 1).
func TestVerifyDetectsTampering(t *testing.T) {
	const row = 43 // its email is not NULL
	wantNamed := func(t *testing.T, vr *migrate.VerifyResult, column string) {
		t.Helper()
		if vr.OK() {
			t.Fatal("verify passed after tampering")
		}
		if err := vr.Err(); !errors.Is(err, migrate.ErrVerify) {
			t.Errorf("verify error %v does not wrap ErrVerify", err)
		}
		for _, m := range vr.Mismatches {
			if m.Column == column && strings.Contains(m.Row, fmt.Sprintf("id=%d", row)) {
				return
			}
		}
		t.Errorf("verify did not name row id=%d of column %s: %v", row, column, vr.Err())
	}
	t.Run("aead ciphertext after cut-over", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(300)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{})
		f.flipByte("customers", "email", row, 40)
		wantNamed(t, f.verify(p), "email")
	})
	t.Run("cbc IV after cut-over", func(t *testing.T) {
		// The IV is XORed into the first plaintext block: flipping its
		// first byte flips the storage-class tag of the decrypted value, so
		// decryption succeeds with a plaintext that is not the original.
		t.Parallel()
		f := newFixture(t, customersSetup(300)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{})
		f.flipByte("customers", "notes_iv", row, 0)
		wantNamed(t, f.verify(p), "notes")
	})
	t.Run("ciphertext in the replacement before cut-over", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(300)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{Until: "copy"})
		f.flipByte("customers__colcrypt_new", "email", row, 40)
		wantNamed(t, f.verify(p), "email")
		_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
		if err == nil || !errors.Is(err, migrate.ErrVerify) {
			t.Fatalf("apply after the ciphertext changed: got %v, want a verify failure", err)
		}
		if !f.tableExists("customers__colcrypt_new") {
			t.Fatal("apply cut over although verify failed")
		}
	})
	t.Run("row deleted from the replacement before cut-over", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(300)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{Until: "copy"})
		f.exec(fmt.Sprintf(`DELETE FROM customers__colcrypt_new WHERE id = %d`, row))
		wantNamed(t, f.verify(p), "*")
	})
	t.Run("row only in the replacement before cut-over", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, customersSetup(300)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{Until: "copy"})
		f.exec(`INSERT INTO customers__colcrypt_new (id, ssn, email, notes) SELECT 5000, x'00', email, notes FROM customers__colcrypt_new WHERE id = 42`)
		vr := f.verify(p)
		if vr.OK() || !strings.Contains(vr.Err().Error(), "id=5000: the row is in the table's replacement only") {
			t.Fatalf("verify after a row was added to the replacement: %v, want the row named", vr.Err())
		}
	})
	t.Run("plaintext before cut-over (in place)", func(t *testing.T) {
		// Rebuilt, the table is read-only until its cut-over; in place,
		// its planned columns are guarded: only a writer who drops the
		// guard changes a copied value.
		t.Parallel()
		f := newFixture(t, customersSetup(300)...)
		p := customersPlan(f, "plan.yaml", "")
		f.apply(p, migrate.Options{Until: "copy", InPlace: true})
		change := fmt.Sprintf(`UPDATE customers SET email = 'changed@example.com' WHERE id = %d`, row)
		if err := f.execErr(change); err == nil || !strings.Contains(err.Error(), "would be lost at its cut-over") {
			t.Fatalf("a write to a planned column after the copy: %v, want the guard's refusal", err)
		}
		f.exec(`DROP TRIGGER colcrypt_guard_customers__update`, change)
		wantNamed(t, f.verify(p), "email")

		// Apply must not cut over on top of it: plaintext is destroyed only
		// after verify passed.
		_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
		if err == nil || !errors.Is(err, migrate.ErrVerify) {
			t.Fatalf("apply after the plaintext changed: got %v, want a verify failure", err)
		}
		if !f.columnExists("customers", "email__colcrypt") {
			t.Fatal("apply cut over although verify failed")
		}
	})
}

// TestBlockedApplyChangesNothing: a plan with a blocker changes nothing in
// the user's tables, whichever table the blocker is on.
func TestBlockedApplyChangesNothing(t *testing.T) {
	cases := []struct {
		name  string
		setup []string
		spec  planSpec
		want  string // in the blocker message
	}{
		{
			name: "identity column",
			setup: []string{`CREATE TABLE acc (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)`,
				`INSERT INTO acc (name) VALUES ('a'), ('b')`},
			spec: planSpec{iv: "column", tables: []planTable{{name: "acc", columns: []planColumn{{name: "name"}, {name: "id"}}}}},
			want: "identity",
		},
		{
			name: "trigger referencing the column, next to a clean table",
			setup: []string{
				`CREATE TABLE clean (id INTEGER PRIMARY KEY, secret TEXT)`,
				`INSERT INTO clean VALUES (1, 's')`,
				`CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, email_upper TEXT)`,
				`CREATE TRIGGER t_upper AFTER UPDATE ON t BEGIN UPDATE t SET email_upper = upper(new.email) WHERE id = new.id; END`,
				`INSERT INTO t (id, email) VALUES (1, 'a@x'), (2, NULL)`,
			},
			spec: planSpec{tables: []planTable{
				{name: "clean", columns: []planColumn{{name: "secret"}}},
				{name: "t", columns: []planColumn{{name: "email"}}},
			}},
			want: "you must drop trigger t_upper defined on t",
		},
		{
			name:  "default without drop_defaults",
			setup: []string{`CREATE TABLE d (id INTEGER PRIMARY KEY, v TEXT DEFAULT 'x')`, `INSERT INTO d (id) VALUES (1)`},
			spec:  planSpec{tables: []planTable{{name: "d", columns: []planColumn{{name: "v"}}}}},
			want:  "default",
		},
		{
			name: "a table has the replacement's name",
			setup: []string{`CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT)`, `INSERT INTO r VALUES (1, 'x')`,
				`CREATE TABLE r__colcrypt_new (note TEXT)`, `INSERT INTO r__colcrypt_new VALUES ('keep me')`},
			spec: planSpec{tables: []planTable{{name: "r", columns: []planColumn{{name: "v"}}}}},
			want: "a table r__colcrypt_new already exists",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, c.setup...)
			p := f.plan("plan.yaml", c.spec)
			before := f.snapshot()
			_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
			var blocked *migrate.BlockedError
			if !errors.As(err, &blocked) {
				t.Fatalf("apply: got %v, want a BlockedError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("blocker message %q does not contain %q", err, c.want)
			}
			if d := before.diff(f.snapshot()); d != "" {
				t.Fatalf("a blocked apply changed the database:\n%s", d)
			}
			for _, col := range f.status(p).Columns {
				if col.State != migrate.StateUnencrypted {
					t.Errorf("status of %s.%s after a blocked apply: %d %s", col.Table, col.Column, col.State, col.StateDesc)
				}
			}
		})
	}
}

// TestVerifyWhileTheCopyIsUnderWay: verify means something before the copy
// has finished (SPEC §5): it checks the rows the copy has written so far
// against their plaintext, says that is what it did, names a value that
// differs, and leaves the rest of the table, not copied yet, alone.
func TestVerifyWhileTheCopyIsUnderWay(t *testing.T) {
	bothWays(t, 1, func(t *testing.T, f *fixture, p *planner.Plan, opt migrate.Options, table, column string) {
		original := f.snapshot()
		until := opt
		until.Until = "prepare"
		f.apply(p, until)
		vr := f.verify(p)
		if !vr.OK() || !vr.CopiedSoFar || vr.Rows != 0 {
			t.Fatalf("verify before the copy: %d rows, so far %v, %v; want 0 rows verified so far", vr.Rows, vr.CopiedSoFar, vr.Err())
		}
		// A prepare killed before it recorded the columns' state.
		f.exec(`UPDATE colcrypt_job SET phase = ''`, `DELETE FROM colcrypt_columns`)
		vr = f.verify(p)
		if !vr.OK() || !vr.CopiedSoFar || vr.Rows != 0 {
			t.Fatalf("verify before prepare recorded the columns: %d rows, so far %v, %v; want 0 rows verified so far", vr.Rows, vr.CopiedSoFar, vr.Err())
		}
		f.apply(p, until)

		// What a copy killed after its first chunks leaves: their
		// checkpoints, and the job's last completed phase prepare.
		until.Until = "copy"
		f.apply(p, until)
		f.exec(`DELETE FROM colcrypt_chunks WHERE phase = 'copy' AND rowid NOT IN (SELECT rowid FROM colcrypt_chunks WHERE phase = 'copy' ORDER BY rowid LIMIT 2)`,
			`UPDATE colcrypt_job SET phase = 'prepare'`)
		vr = f.verify(p)
		if !vr.OK() || !vr.CopiedSoFar || vr.Rows != 100 {
			t.Fatalf("verify during the copy: %d rows, so far %v, %v; want the 100 rows of the 2 chunks recorded", vr.Rows, vr.CopiedSoFar, vr.Err())
		}
		f.flipByte(table, column, 1, 40)
		vr = f.verify(p)
		if vr.OK() || !strings.Contains(vr.Err().Error(), "customers.email at id=1: cannot decrypt") {
			t.Fatalf("verify during the copy, a copied value changed: %v, want it named", vr.Err())
		}
		f.flipByte(table, column, 1, 40)

		if res := f.apply(p, opt); res.Phase != "done" {
			t.Fatalf("apply after verify ended at phase %q", res.Phase)
		}
		f.wantVerifiedAndReverted(p, original, -1)
	})
}

// bothWays runs a test on customers (300 rows) under its plan, copied
// through a replacement and in place, with batch_rows 50 and the workers
// given; table and column hold the e-mail's ciphertext before cut-over.
func bothWays(t *testing.T, workers int, run func(t *testing.T, f *fixture, p *planner.Plan, opt migrate.Options, table, column string)) {
	for _, inPlace := range []bool{false, true} {
		t.Run(map[bool]string{false: "rebuilt", true: "in place"}[inPlace], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, customersSetup(300)...)
			p := customersPlan(f, "plan.yaml", "")
			table, column := "customers__colcrypt_new", "email"
			if inPlace {
				table, column = "customers", "email__colcrypt"
			}
			run(t, f, p, migrate.Options{BatchRows: 50, Workers: workers, InPlace: inPlace}, table, column)
		})
	}
}

// TestCutoverVerifiesAgainAfterAnEarlierRun: with verify passed by an
// earlier run (apply --until verify), the apply that cuts over verifies
// again first: a ciphertext changed meanwhile stops it with exit 1 before
// any plaintext is gone.
func TestCutoverVerifiesAgainAfterAnEarlierRun(t *testing.T) {
	const row = 43 // its email is not NULL
	bothWays(t, 2, func(t *testing.T, f *fixture, p *planner.Plan, opt migrate.Options, table, column string) {
		original := f.snapshot()
		until := opt
		until.Until = "verify"
		f.apply(p, until)
		f.flipByte(table, column, row, 40)
		data := f.userData()
		_, err := f.engine(p, f.ks, opt).Apply(context.Background())
		if !errors.Is(err, migrate.ErrVerify) || exitcode.Of(err) != exitcode.Failed ||
			!strings.Contains(err.Error(), fmt.Sprintf("customers.email at id=%d: cannot decrypt", row)) {
			t.Fatalf("apply after a ciphertext changed since verify: %v, want a verify failure naming the row", err)
		}
		if d := data.diff(f.userData()); d != "" || !f.beforeCutover("customers", "email") {
			t.Fatalf("the failed apply went on to the cut-over:\n%s", d)
		}
		f.flipByte(table, column, row, 40)
		if res := f.apply(p, opt); res.Phase != "done" {
			t.Fatalf("apply ended at phase %q", res.Phase)
		}
		f.wantVerifiedAndReverted(p, original, -1)
	})
}

// TestJobGivesBackTheJournalMode: the write-ahead log is a setting of the
// file, which other programs use too. A job switches to it while it runs
// and gives the file back the mode it had once it is done, reverted
// before its cut-over, or reverted after.
func TestJobGivesBackTheJournalMode(t *testing.T) {
	f := newFixture(t, customersSetup(300)...)
	mode := func() string {
		t.Helper()
		db := f.raw()
		defer db.Close()
		var m string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&m); err != nil {
			t.Fatal(err)
		}
		return strings.ToLower(m)
	}
	// Only the write-ahead log is the file's; the rollback journal modes
	// are each connection's, DELETE unless it says otherwise.
	p := customersPlan(f, "plan.yaml", "")
	// Each step runs as a colcrypt process does, with a pool of its own,
	// closed when it ends: a pool left open keeps the file in the log.
	step := func(what, want string, opt migrate.Options, run func(*migrate.Engine) error) {
		t.Helper()
		d, err := dialect.Get("sqlite")
		if err != nil {
			t.Fatal(err)
		}
		db, err := d.Open(context.Background(), d.ResolveDSN(p.Database.DSN, p.Dir))
		if err != nil {
			t.Fatal(err)
		}
		e, err := migrate.New(p, d, db, f.ks, opt)
		if err == nil {
			err = run(e)
		}
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if m := mode(); m != want {
			t.Fatalf("journal mode after %s: %s, want %s", what, m, want)
		}
	}
	apply := func(e *migrate.Engine) error { _, err := e.Apply(context.Background()); return err }
	revert := func(e *migrate.Engine) error { _, err := e.Revert(context.Background()); return err }
	step("apply --until copy", "wal", migrate.Options{BatchRows: 50, Workers: 2, Until: "copy"}, apply)
	step("a revert before the cut-over", "delete", migrate.Options{}, revert)
	step("apply", "delete", migrate.Options{BatchRows: 50, Workers: 2}, apply)
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	step("rekey", "delete", migrate.Options{BatchRows: 50, Workers: 2, NoBackupCheck: true}, func(e *migrate.Engine) error {
		_, err := e.Rekey(context.Background(), nil)
		return err
	})
	step("revert", "delete", migrate.Options{}, revert)

	// A refused command changes nothing, the journal mode included.
	step("apply", "delete", migrate.Options{BatchRows: 50, Workers: 2, NoBackupCheck: true}, apply)
	f.flipByte("customers", "email", 43, 40)
	d, _ := dialect.Get("sqlite")
	db, err := d.Open(context.Background(), d.ResolveDSN(p.Database.DSN, p.Dir))
	if err != nil {
		t.Fatal(err)
	}
	e, err := migrate.New(p, d, db, f.ks, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Revert(context.Background())
	db.Close()
	if err == nil || mode() != "delete" {
		t.Fatalf("a revert refused for a tampered value: %v, journal mode %s; want a refusal and delete", err, mode())
	}
	f.flipByte("customers", "email", 43, 40)

	// A command killed after it switched, before it gave the mode back (a
	// finished apply, here): the next one gives it back.
	f.exec("PRAGMA journal_mode = WAL", `INSERT INTO colcrypt_ddl (job_id, table_name, seq, kind, name, definition)
		SELECT job_id, '', 1, 'journal', '', 'delete' FROM colcrypt_job`)
	step("apply of a finished job", "delete", migrate.Options{}, apply)

	// The user's own choice of the log, made after the job, stays.
	f.exec("PRAGMA journal_mode = WAL")
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	step("a rekey after the file was set to the log", "wal", migrate.Options{BatchRows: 50, Workers: 2, NoBackupCheck: true}, func(e *migrate.Engine) error {
		_, err := e.Rekey(context.Background(), nil)
		return err
	})
}
