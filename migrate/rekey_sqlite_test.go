package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// headers returns the (suite, key version) of every non-NULL value of a
// column, read from the versioned headers in the database.
func (f *fixture) headers(table, column string) map[string]int {
	f.t.Helper()
	return f.headersWhere(table, column, "1 = 1")
}

// headersWhere is headers of the rows where cond holds (with args).
func (f *fixture) headersWhere(table, column, cond string, args ...any) map[string]int {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	rows, err := db.Query(`SELECT "`+column+`" FROM "`+table+`" WHERE "`+column+`" IS NOT NULL AND (`+cond+`)`, args...)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var ct []byte
		if err := rows.Scan(&ct); err != nil {
			f.t.Fatal(err)
		}
		suite, v, err := cipher.Header(ct)
		if err != nil {
			f.t.Fatalf("%s.%s holds a value without a versioned header: %v", table, column, err)
		}
		out[string(suite)+"/v"+strconv.Itoa(int(v))]++
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestRekeyRoundTrip encrypts, adds a key version, rekeys every column,
// checks every value is under the new version and verify passes, then
// reverts and compares the table with the original, byte for byte.
func TestRekeyRoundTrip(t *testing.T) {
	f := newFixture(t, customersSetup(700)...)
	before := f.snapshot()
	p := customersPlan(f, "plan.yaml", "aes-256-cbc")
	f.apply(p, migrate.Options{BatchRows: 100, Workers: 2})

	// The newest version is the one in use: nothing to do, as for a
	// finished apply, and nothing changed.
	applied := f.snapshot()
	res, err := f.engine(p, f.ks, migrate.Options{}).Rekey(context.Background(), nil)
	if err != nil || !res.Already {
		t.Fatalf("rekey with nothing newer: %+v, %v; want nothing to do", res, err)
	}
	if d := applied.diff(f.snapshot()); d != "" {
		t.Fatalf("a rekey with nothing to do changed the database:\n%s", d)
	}
	// A new version without a backup after it: refused unless waived.
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	_, err = f.engine(p, f.ks, migrate.Options{}).Rekey(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "no backup taken after key pii v2") {
		t.Fatalf("rekey without a backup: %v, want a refusal", err)
	}
	res, err = f.engine(p, f.ks, migrate.Options{BatchRows: 100, Workers: 2, NoBackupCheck: true}).Rekey(context.Background(), nil)
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	if res.JobID == "" {
		t.Fatal("rekey returned no job")
	}
	for _, col := range []string{"ssn", "email", "notes"} {
		for h := range f.headers("customers", col) {
			if !strings.HasSuffix(h, "/v2") {
				t.Errorf("customers.%s still holds values under %s after the rekey", col, h)
			}
		}
	}
	for _, c := range f.status(p).Columns {
		if c.State != migrate.StateEncrypted || c.KeyVersion != 2 || len(c.Versions) != 1 || c.Versions[0].Version != 2 {
			t.Errorf("status of %s after rekey: state %d, key v%d, versions %+v", c.Column, c.State, c.KeyVersion, c.Versions)
		}
	}
	if v := f.verify(p); !v.OK() {
		t.Fatalf("verify after rekey: %v", v.Err())
	}
	// The unique constraint on ssn (iv: column) still holds on the new ciphertexts.
	if err := f.execErr(`INSERT INTO customers (id, ssn) SELECT 100000, ssn FROM customers WHERE id = 1`); err == nil {
		t.Error("a duplicate ssn ciphertext was accepted after the rekey: the unique constraint is gone")
	}
	f.revert(p)
	if d := before.diff(f.snapshot()); d != "" {
		t.Fatalf("revert after rekey did not give back the original table:\n%s", d)
	}
}

// TestRekeySuiteChange moves a column from 3DES to AES-256-CBC and one from
// AES-CBC with an IV column to the AEAD suite (IV inline: the IV column
// goes), with the planner's rules checked again; verify and revert work
// under the new plan.
func TestRekeySuiteChange(t *testing.T) {
	f := newFixture(t, customersSetup(400)...)
	before := f.snapshot()
	old := f.plan("old.yaml", planSpec{job: "  drop_defaults: true\n", tables: []planTable{{name: "customers", columns: []planColumn{
		{name: "ssn", iv: "column"}, {name: "email", suite: "3des-cbc"}, {name: "notes", suite: "aes-128-cbc"}}}}})
	f.apply(old, migrate.Options{BatchRows: 64})
	if !f.columnExists("customers", "notes_iv") {
		t.Fatal("aes-128-cbc with field IVs should have a notes_iv column")
	}
	next := f.plan("new.yaml", planSpec{job: "  drop_defaults: true\n", tables: []planTable{{name: "customers", columns: []planColumn{
		{name: "ssn", iv: "column"}, {name: "email", suite: "aes-256-cbc"}, {name: "notes", suite: "aead-aes-256-cbc-hmac-sha256"}}}}})
	if _, err := f.engine(next, f.ks, migrate.Options{BatchRows: 64}).Rekey(context.Background(), []string{"customers.email", "customers.notes"}); err != nil {
		t.Fatalf("rekey to new suites: %v", err)
	}
	for h := range f.headers("customers", "email") {
		if h != "aes-256-cbc/v1" {
			t.Errorf("email holds %s after moving to aes-256-cbc", h)
		}
	}
	for h := range f.headers("customers", "notes") {
		if h != "aead-aes-256-cbc-hmac-sha256/v1" {
			t.Errorf("notes holds %s after moving to the AEAD suite", h)
		}
	}
	if f.columnExists("customers", "notes_iv") {
		t.Error("notes_iv is still there although the AEAD suite keeps its IV inline")
	}
	if v := f.verify(next); !v.OK() {
		t.Fatalf("verify under the new plan: %v", v.Err())
	}
	// The old plan no longer describes the job.
	if _, err := f.engine(old, f.ks, migrate.Options{}).Verify(context.Background()); err == nil {
		t.Error("verify with the superseded plan should find no job")
	}
	// Moving ssn to field-level IVs would lose its unique constraint: the
	// planner's rule refuses the rekey.
	bad := f.plan("bad.yaml", planSpec{job: "  drop_defaults: true\n", tables: []planTable{{name: "customers", columns: []planColumn{
		{name: "ssn", iv: "field"}, {name: "email", suite: "aes-256-cbc"}, {name: "notes", suite: "aead-aes-256-cbc-hmac-sha256"}}}}})
	_, err := f.engine(bad, f.ks, migrate.Options{}).Rekey(context.Background(), []string{"customers.ssn"})
	if exitcode.Of(err) != exitcode.Failed || !strings.Contains(err.Error(), "unique") {
		t.Fatalf("rekey of a unique column to field IVs: %v, want a blocker", err)
	}
	f.revert(next)
	if d := before.diff(f.snapshot()); d != "" {
		t.Fatalf("revert after the suite change:\n%s", d)
	}
}

// TestRekeyRefusesAChangeItCannotTellApart: while a rekey runs, a value's
// header (suite and key version) is all that says whether it was rewritten
// yet. A rekey that changes only the IV mode, or only the key's name at the
// same version number, would write values whose header reads as an old
// one: it exited 0 having garbled the first block of every value (and
// dropped the IV column), or stopped with the column stuck mid-rekey. It
// is refused before anything changes, saying what to do; once the new key
// has another version number, the same change works.
func TestRekeyRefusesAChangeItCannotTellApart(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)`,
		`INSERT INTO people VALUES (1, 'a@example.com', '555-0101'), (2, NULL, '555-0102'), (3, 'c@example.com', NULL), (4, 'd@example.com', '555-0104')`,
	)
	planWith := func(name string, email planColumn) *planner.Plan {
		email.name = "email"
		return f.plan(name, planSpec{suite: "aes-256-cbc", tables: []planTable{{name: "people", columns: []planColumn{email, {name: "phone"}}}}})
	}
	p := planWith("plan.yaml", planColumn{iv: "field"})
	original := f.snapshot()
	f.apply(p, migrate.Options{})
	applied := f.snapshot()
	refused := func(next *planner.Plan, want string) {
		t.Helper()
		_, err := f.engine(next, f.ks, migrate.Options{NoBackupCheck: true}).Rekey(context.Background(), nil)
		if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), want) {
			t.Fatalf("rekey: %v (exit %d), want exit 2 saying %q", err, exitcode.Of(err), want)
		}
		if d := applied.diff(f.snapshot()); d != "" {
			t.Fatalf("the refused rekey changed the database:\n%s", d)
		}
		f.wantStates(p, migrate.StateEncrypted)
		if vr := f.verify(p); !vr.OK() {
			t.Fatalf("verify after the refused rekey: %v", vr.Err())
		}
	}
	refused(planWith("column.yaml", planColumn{iv: "column"}),
		"people.email: a rekey that changes only its IV mode (field → column) keeps suite aes-256-cbc and key version 1")
	if _, err := f.ks.Add("other"); err != nil {
		t.Fatal(err)
	}
	other := planWith("other.yaml", planColumn{key: "other", iv: "field"})
	refused(other, "changes only its key (pii v1 → other v1)")
	refused(other, "add versions to key other (colcrypt keys add "+filepath.Join(f.dir, "test.keystore")+" other) until its newest is not v1")

	if _, err := f.ks.Add("other"); err != nil { // other v2
		t.Fatal(err)
	}
	if _, err := f.engine(other, f.ks, migrate.Options{NoBackupCheck: true}).Rekey(context.Background(), nil); err != nil {
		t.Fatalf("rekey to key other v2: %v", err)
	}
	if h := f.headers("people", "email"); len(h) != 1 || h["aes-256-cbc/v2"] != 3 {
		t.Errorf("people.email after the rekey to other v2 holds %v, want 3 values under aes-256-cbc/v2", h)
	}
	if vr := f.verify(other); !vr.OK() || vr.Values != 6 {
		t.Fatalf("verify after the rekey: %+v %v", vr, vr.Err())
	}
	f.revert(other)
	if d := original.diff(f.snapshot()); d != "" {
		t.Fatalf("revert after the rekey:\n%s", d)
	}
}

// TestRewrapLeavesCiphertextIdentical rewraps the keystore under a new
// passphrase: not one stored byte changes, and verify passes with the new
// passphrase while the old one no longer opens the keystore.
func TestRewrapLeavesCiphertextIdentical(t *testing.T) {
	f := newFixture(t, customersSetup(300)...)
	p := customersPlan(f, "plan.yaml", "aead-aes-256-cbc-hmac-sha256")
	f.apply(p, migrate.Options{})
	stored := f.snapshot()

	if err := f.ks.Rewrap(keystore.Secret{Passphrase: []byte("a brand new passphrase")}, cheapKDF); err != nil {
		t.Fatal(err)
	}
	if err := f.ks.Save(); err != nil {
		t.Fatal(err)
	}
	path := f.dir + "/test.keystore"
	if _, err := keystore.Open(path, keystore.Secret{Passphrase: []byte(testPassphrase)}); !errors.Is(err, keystore.ErrWrongSecret) {
		t.Fatalf("the old passphrase still opens the keystore: %v", err)
	}
	ks, err := keystore.Open(path, keystore.Secret{Passphrase: []byte("a brand new passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.engine(p, ks, migrate.Options{}).Verify(context.Background())
	if err != nil || !res.OK() {
		t.Fatalf("verify with the rewrapped keystore: %v %v", err, res.Err())
	}
	if d := stored.diff(f.snapshot()); d != "" {
		t.Fatalf("a rewrap changed stored data:\n%s", d)
	}
}

// TestRetiredVersionStillDecryptsButNeverEncrypts retires the version a
// column uses: verify still reads it, a new apply cannot encrypt with it.
func TestRetiredVersionStillDecryptsButNeverEncrypts(t *testing.T) {
	f := newFixture(t, customersSetup(50)...)
	p := customersPlan(f, "plan.yaml", "aes-256-cbc")
	f.apply(p, migrate.Options{})
	e := f.engine(p, f.ks, migrate.Options{})
	uses, err := e.VersionInUse(context.Background(), "pii", 1)
	if err != nil || len(uses) != 3 {
		t.Fatalf("VersionInUse = %v, %v; want the three encrypted columns", uses, err)
	}
	if err := f.ks.Retire("pii", 1); err != nil {
		t.Fatal(err)
	}
	if v := f.verify(p); !v.OK() {
		t.Fatalf("a retired version must still decrypt: %v", v.Err())
	}
	// A second table planned with the same key has nothing active to encrypt with.
	f.exec(`CREATE TABLE contacts (id INTEGER PRIMARY KEY, phone TEXT)`, `INSERT INTO contacts VALUES (1, '555-0100')`)
	q := f.plan("contacts.yaml", planSpec{tables: []planTable{{name: "contacts", columns: []planColumn{{name: "phone"}}}}})
	_, err = f.engine(q, f.ks, migrate.Options{}).Apply(context.Background())
	if !errors.Is(err, keystore.ErrRetired) {
		t.Fatalf("apply with only a retired key: %v, want ErrRetired", err)
	}
	var phone sql.NullString
	db := f.raw()
	defer db.Close()
	if err := db.QueryRow(`SELECT phone FROM contacts`).Scan(&phone); err != nil || phone.String != "555-0100" {
		t.Fatalf("the refused apply touched contacts: %v %q", err, phone.String)
	}
}

// TestRekeyRefusesAnotherKeystore: a rekey run with a keystore that does
// not hold the job's keys, each with the check value the job recorded,
// stops before it changes anything: one made on its own with a key of the
// same name, and a copy of the job's keystore that was given a version 2
// of its own while the job's rekey to its version 2 was half done.
func TestRekeyRefusesAnotherKeystore(t *testing.T) {
	f := newFixture(t, customersSetup(700)...)
	original := f.snapshot()
	p := customersPlan(f, "plan.yaml", "")
	f.apply(p, migrate.Options{BatchRows: 100, Workers: 2})
	ksPath := filepath.Join(f.dir, "test.keystore")
	lineage, err := os.ReadFile(ksPath)
	if err != nil {
		t.Fatal(err)
	}

	refused := func(ks *keystore.Keystore, key string) {
		t.Helper()
		before := f.snapshot()
		_, err := f.engine(p, ks, migrate.Options{BatchRows: 100, Workers: 2, NoBackupCheck: true}).Rekey(context.Background(), nil)
		if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "does not hold key "+key+" with the check value") ||
			!strings.Contains(err.Error(), "Nothing was changed") {
			t.Fatalf("rekey with another keystore: %v, want the refusal naming key %s", err, key)
		}
		if d := before.diff(f.snapshot()); d != "" {
			t.Fatalf("the refused rekey changed the database:\n%s", d)
		}
	}

	// A keystore of its own, with its own pii v1 and v2.
	other := newKeystore(t, filepath.Join(f.dir, "other.keystore"), false)
	if _, err := other.Add("pii"); err != nil {
		t.Fatal(err)
	}
	refused(other, "pii/1")
	f.wantStates(p, migrate.StateEncrypted)

	// The job's keystore gets v2 and the rekey stops halfway, at a row
	// the database refuses to change.
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	f.exec(`CREATE TRIGGER stop_rekey BEFORE UPDATE OF email ON customers WHEN NEW.id = 450 BEGIN SELECT RAISE(ABORT, 'not now'); END`)
	_, err = f.engine(p, f.ks, migrate.Options{BatchRows: 100, Workers: 2, NoBackupCheck: true}).Rekey(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "not now") {
		t.Fatalf("the rekey went through a row the database refused to change: %v", err)
	}
	f.exec(`DROP TRIGGER stop_rekey`)
	if n := len(f.headers("customers", "email")); n != 2 {
		t.Fatalf("after the stopped rekey the e-mails are under %d key versions, want 2 (half done)", n)
	}

	// A copy of the keystore from before v2, given a v2 of its own.
	copyPath := filepath.Join(f.dir, "copy.keystore")
	if err := os.WriteFile(copyPath, lineage, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := keystore.Open(copyPath, keystore.Secret{Passphrase: []byte(testPassphrase)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Add("pii"); err != nil {
		t.Fatal(err)
	}
	refused(cp, "pii/2")

	// With the job's keystore the rekey finishes.
	if _, err := f.engine(p, f.ks, migrate.Options{BatchRows: 100, Workers: 2, NoBackupCheck: true}).Rekey(context.Background(), nil); err != nil {
		t.Fatalf("rekey with the job's keystore: %v", err)
	}
	for h := range f.headers("customers", "email") {
		if !strings.HasSuffix(h, "/v2") {
			t.Errorf("an e-mail is still under %s after the rekey", h)
		}
	}
	f.wantVerifiedAndReverted(p, original, -1)
}

// TestTamperedValueStopsRevertAndRekeyBeforeTheyBegin: a value that no
// longer decrypts (SPEC §7: tampered ciphertext is a clear error that
// changes nothing) stops a revert and a rekey before either changes
// anything, naming the row; restored, it lets both run.
func TestTamperedValueStopsRevertAndRekeyBeforeTheyBegin(t *testing.T) {
	const row = 43 // its email is not NULL
	f, p, original := encryptedWithNewVersion(t)
	f.flipByte("customers", "email", row, 40)
	tampered := f.snapshot()
	for what, run := range map[string]func(*migrate.Engine) error{
		"revert": func(e *migrate.Engine) error { _, err := e.Revert(context.Background()); return err },
		"rekey":  func(e *migrate.Engine) error { _, err := e.Rekey(context.Background(), nil); return err },
	} {
		err := run(f.engine(p, f.ks, migrate.Options{BatchRows: 50, Workers: 2, NoBackupCheck: true}))
		if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "1 value(s) do not decrypt") ||
			!strings.Contains(err.Error(), "customers.email at id=43: cannot decrypt") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("%s with a tampered value: %v, want a refusal naming the row", what, err)
		}
		if d := tampered.diff(f.snapshot()); d != "" {
			t.Fatalf("the refused %s changed the database:\n%s", what, d)
		}
		f.wantStates(p, migrate.StateEncrypted)
	}
	f.flipByte("customers", "email", row, 40)
	if _, err := f.engine(p, f.ks, migrate.Options{BatchRows: 50, Workers: 2, NoBackupCheck: true}).Rekey(context.Background(), nil); err != nil {
		t.Fatalf("rekey once the value is back: %v", err)
	}
	f.wantVerifiedAndReverted(p, original, -1)
}

// TestRekeyResumesBetweenColumns: a rekey of several columns killed after
// it finished one and before it recorded the next leaves no column in
// state 4; run again, it skips the finished one instead of refusing it.
func TestRekeyResumesBetweenColumns(t *testing.T) {
	f, p, original := encryptedWithNewVersion(t)
	opt := migrate.Options{BatchRows: 50, Workers: 2, NoBackupCheck: true}
	// What the kill leaves: one column finished, the others not begun.
	if _, err := f.engine(p, f.ks, opt).Rekey(context.Background(), []string{"customers.email"}); err != nil {
		t.Fatal(err)
	}
	res, err := f.engine(p, f.ks, opt).Rekey(context.Background(), nil)
	if err != nil || res.Already {
		t.Fatalf("rekey of every column after one was done: %+v, %v; want the others rekeyed", res, err)
	}
	for _, col := range []string{"ssn", "email", "notes"} {
		for h := range f.headers("customers", col) {
			if !strings.HasSuffix(h, "/v2") {
				t.Errorf("customers.%s still holds values under %s", col, h)
			}
		}
	}
	f.wantVerifiedAndReverted(p, original, -1)
}

// encryptedWithNewVersion is customers (300 rows) encrypted by its plan,
// with a version 2 of key pii added since, and the database as it was
// before the job.
func encryptedWithNewVersion(t *testing.T) (*fixture, *planner.Plan, snapshot) {
	t.Helper()
	f := newFixture(t, customersSetup(300)...)
	original := f.snapshot()
	p := customersPlan(f, "plan.yaml", "")
	f.apply(p, migrate.Options{BatchRows: 50, Workers: 2})
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	return f, p, original
}

// TestRekeyRefusesAForeignKeyColumnNamingTheKey: rekey refuses a column of
// a foreign key, before anything changes, and names the key even when it
// has no name (SQLite's often have none: the message said "foreign key :").
func TestRekeyRefusesAForeignKeyColumnNamingTheKey(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE patients (ssn TEXT PRIMARY KEY, name TEXT)`,
		`CREATE TABLE visits (id INTEGER PRIMARY KEY, ssn TEXT REFERENCES patients (ssn))`,
		`INSERT INTO patients VALUES ('123-45-6789', 'Ann')`,
		`INSERT INTO visits VALUES (1, '123-45-6789')`,
	)
	p := f.plan("plan.yaml", planSpec{suite: "aes-256-cbc", iv: "column", tables: []planTable{
		{name: "patients", columns: []planColumn{{name: "ssn"}}},
		{name: "visits", columns: []planColumn{{name: "ssn"}}},
	}})
	f.apply(p, migrate.Options{})
	applied := f.snapshot()
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	_, err := f.engine(p, f.ks, migrate.Options{NoBackupCheck: true}).Rekey(context.Background(), nil)
	want := "patients.ssn is part of foreign key visits (ssn) REFERENCES patients (ssn): an in-place rekey would break it"
	if exitcode.Of(err) != exitcode.BadInput || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("rekey of a foreign key's column: %v (exit %d), want exit 2 saying %q", err, exitcode.Of(err), want)
	}
	if d := applied.diff(f.snapshot()); d != "" {
		t.Fatalf("the refused rekey changed the database:\n%s", d)
	}
}
