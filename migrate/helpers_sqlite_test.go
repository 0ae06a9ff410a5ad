package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/sqlite" // registers the sqlite engine and driver
	"github.com/colcrypt/colcrypt/internal/sqlitesnap"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// testPassphrase protects the throwaway keystores of these tests.
const testPassphrase = "migrate test passphrase"

// cheapKDF keeps keystore creation fast: the cost only matters against
// guessing, and these keystores protect nothing.
var cheapKDF = keystore.WithKDF(keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})

// fixture is one SQLite database, keystore and plan in a temporary folder.
type fixture struct {
	t      *testing.T
	dir    string
	dbPath string
	ks     *keystore.Keystore
}

// newFixture creates the database from the statements and a keystore
// holding data key "pii" (version 1) with a backup taken after it.
func newFixture(t *testing.T, stmts ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, dbPath: filepath.Join(dir, "test.db")}
	db, err := sql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("setup %q: %v", s, err)
		}
	}
	f.ks = newKeystore(t, filepath.Join(dir, "test.keystore"), true)
	return f
}

// newKeystore creates a keystore with key "pii", backed up when backup is set.
func newKeystore(t *testing.T, path string, backup bool) *keystore.Keystore {
	t.Helper()
	ks, err := keystore.Create(path, keystore.Secret{Passphrase: []byte(testPassphrase)}, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if backup {
		if err := ks.Backup(path+".backup", []byte("backup "+testPassphrase), cheapKDF); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

// exec runs statements on the database directly, as another client would.
func (f *fixture) exec(stmts ...string) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			f.t.Fatalf("%q: %v", s, err)
		}
	}
}

// execErr runs one statement and returns its error.
func (f *fixture) execErr(stmt string, args ...any) error {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	_, err := db.Exec(stmt, args...)
	return err
}

func (f *fixture) raw() *sql.DB {
	f.t.Helper()
	db, err := sql.Open("sqlite", f.dbPath+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if err != nil {
		f.t.Fatal(err)
	}
	return db
}

// planSpec is what a generated plan holds.
type planSpec struct {
	suite     string // defaults.suite ("" for the plan default)
	iv        string
	versioned *bool
	job       string // extra lines under job:, already indented by two spaces
	tables    []planTable
	dsnQuery  string // appended to the DSN test.db, e.g. "?_pragma=busy_timeout(500)"
}

type planTable struct {
	name    string
	columns []planColumn
}

type planColumn struct {
	name           string
	key, suite, iv string // "" for the plan's defaults
	versioned      *bool
}

// yamlString quotes s as a YAML double-quoted scalar.
func yamlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// plan writes the plan file and loads it through the planner.
func (f *fixture) plan(name string, s planSpec) *planner.Plan {
	f.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ndatabase:\n  engine: sqlite\n  dsn: %s\nkeystore: test.keystore\ndefaults:\n  key: pii\n", yamlString("test.db"+s.dsnQuery))
	if s.suite != "" {
		fmt.Fprintf(&b, "  suite: %s\n", s.suite)
	}
	if s.iv != "" {
		fmt.Fprintf(&b, "  iv: %s\n", s.iv)
	}
	if s.versioned != nil {
		fmt.Fprintf(&b, "  versioned: %t\n", *s.versioned)
	}
	fmt.Fprintf(&b, "job:\n  workers: 2\n  batch_rows: 3\n%s", s.job)
	b.WriteString("tables:\n")
	for _, t := range s.tables {
		fmt.Fprintf(&b, "  - name: %s\n    columns:\n", yamlString(t.name))
		for _, c := range t.columns {
			fmt.Fprintf(&b, "      - name: %s\n", yamlString(c.name))
			if c.key != "" {
				fmt.Fprintf(&b, "        key: %s\n", c.key)
			}
			if c.suite != "" {
				fmt.Fprintf(&b, "        suite: %s\n", c.suite)
			}
			if c.iv != "" {
				fmt.Fprintf(&b, "        iv: %s\n", c.iv)
			}
			if c.versioned != nil {
				fmt.Fprintf(&b, "        versioned: %t\n", *c.versioned)
			}
		}
	}
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		f.t.Fatal(err)
	}
	p, err := planner.Load(path)
	if err != nil {
		f.t.Fatalf("load plan:\n%s\n%v", b.String(), err)
	}
	return p
}

// engine opens the plan's database and a migration engine on it, as one
// run of the CLI would; the connection closes when the test ends.
func (f *fixture) engine(p *planner.Plan, ks *keystore.Keystore, opt migrate.Options) *migrate.Engine {
	f.t.Helper()
	d, err := dialect.Get("sqlite")
	if err != nil {
		f.t.Fatal(err)
	}
	return f.engineOn(d, p, ks, opt)
}

// engineOn is engine with the given dialect, for tests that wrap SQLite's.
func (f *fixture) engineOn(d dialect.Dialect, p *planner.Plan, ks *keystore.Keystore, opt migrate.Options) *migrate.Engine {
	f.t.Helper()
	db, err := d.Open(context.Background(), d.ResolveDSN(p.Database.DSN, p.Dir))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { db.Close() })
	e, err := migrate.New(p, d, db, ks, opt)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// apply runs apply to the end (or opt.Until) and fails the test on error.
func (f *fixture) apply(p *planner.Plan, opt migrate.Options) *migrate.Result {
	f.t.Helper()
	res, err := f.engine(p, f.ks, opt).Apply(context.Background())
	if err != nil {
		f.t.Fatalf("apply: %v", err)
	}
	return res
}

func (f *fixture) verify(p *planner.Plan) *migrate.VerifyResult {
	f.t.Helper()
	res, err := f.engine(p, f.ks, migrate.Options{}).Verify(context.Background())
	if err != nil {
		f.t.Fatalf("verify: %v", err)
	}
	return res
}

func (f *fixture) revert(p *planner.Plan) {
	f.t.Helper()
	if _, err := f.engine(p, f.ks, migrate.Options{}).Revert(context.Background()); err != nil {
		f.t.Fatalf("revert: %v", err)
	}
}

func (f *fixture) status(p *planner.Plan) *migrate.StatusReport {
	f.t.Helper()
	rep, err := f.engine(p, nil, migrate.Options{}).Status(context.Background())
	if err != nil {
		f.t.Fatalf("status: %v", err)
	}
	return rep
}

// wantStates checks the state of every planned column.
func (f *fixture) wantStates(p *planner.Plan, want int) {
	f.t.Helper()
	for _, c := range f.status(p).Columns {
		if c.State != want {
			f.t.Errorf("status of %s.%s: state %d (%s), want %d (%s)", c.Table, c.Column, c.State, c.StateDesc, want, migrate.StateDesc(want))
		}
	}
}

// snapshot is everything a user could tell apart in the database, outside
// colcrypt's own tables: the schema text of every table, index and trigger,
// and every row of every table (sqlite_sequence included) with the storage
// class and exact value of every column.
type snapshot sqlitesnap.Snapshot

// diff describes the first differences between two snapshots, "" if none.
func (a snapshot) diff(b snapshot) string {
	return sqlitesnap.Snapshot(a).Diff(sqlitesnap.Snapshot(b))
}

func (f *fixture) snapshot() snapshot {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	s, err := sqlitesnap.Take(db, sqlitesnap.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	return snapshot(s)
}

// userData is the snapshot without what a job adds while it runs: the
// CREATE TABLE texts (prepare adds columns to them) and the added
// ciphertext and IV columns. Before cut-over it must not change at all.
func (f *fixture) userData() snapshot {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	s, err := sqlitesnap.Take(db, sqlitesnap.Options{DataOnly: true})
	if err != nil {
		f.t.Fatal(err)
	}
	return snapshot(s)
}

// wantEncrypted checks that no planned column holds anything but a BLOB
// or NULL and that its declared type is BLOB.
func (f *fixture) wantEncrypted(table string, columns ...string) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	for _, c := range columns {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + q(table) + " WHERE typeof(" + q(c) + ") NOT IN ('blob', 'null')").Scan(&n); err != nil {
			f.t.Fatal(err)
		}
		if n != 0 {
			f.t.Errorf("%s.%s: %d values are not ciphertext (BLOB) after apply", table, c, n)
		}
		var typ string
		if err := db.QueryRow("SELECT type FROM pragma_table_info(?) WHERE name = ?", table, c).Scan(&typ); err != nil {
			f.t.Fatalf("%s.%s after apply: %v", table, c, err)
		}
		if !strings.EqualFold(typ, "BLOB") {
			f.t.Errorf("%s.%s is declared %q after apply, want BLOB", table, c, typ)
		}
	}
}

// columnExists reports whether the table has the column now.
func (f *fixture) columnExists(table, column string) bool {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pragma_table_xinfo(?) WHERE name = ?", table, column).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n > 0
}

// wantVerifiedAndReverted checks a finished job the way a DBA would: verify
// passes (having checked values values, unless values is negative), then
// revert gives back the database as it was before the job.
func (f *fixture) wantVerifiedAndReverted(p *planner.Plan, before snapshot, values int64) {
	f.t.Helper()
	if vr := f.verify(p); !vr.OK() || (values >= 0 && vr.Values != values) {
		f.t.Fatalf("verify after cut-over: %d values, %v; want %d values", vr.Values, vr.Err(), values)
	}
	f.revert(p)
	if d := before.diff(f.snapshot()); d != "" {
		f.t.Fatalf("after apply and revert the database differs:\n%s", d)
	}
}

// tableExists reports whether the table exists now.
func (f *fixture) tableExists(table string) bool {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n > 0
}

// beforeCutover reports whether the copy's target of the table's column
// is still there: its ciphertext column (in place) or the table's
// replacement (the default on SQLite offline).
func (f *fixture) beforeCutover(table, column string) bool {
	f.t.Helper()
	return f.columnExists(table, column+"__colcrypt") || f.tableExists(table+"__colcrypt_new")
}

func boolPtr(b bool) *bool { return &b }

// flipByte inverts one byte of a BLOB value of the row with the given
// rowid (the id of a table whose id is its INTEGER PRIMARY KEY), as
// someone editing the table behind colcrypt's back would.
func (f *fixture) flipByte(table, column string, id, offset int) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	var b []byte
	if err := db.QueryRow("SELECT "+q(column)+" FROM "+q(table)+" WHERE rowid = ?", id).Scan(&b); err != nil {
		f.t.Fatal(err)
	}
	if offset >= len(b) {
		f.t.Fatalf("%s.%s of row %d has %d bytes, cannot flip byte %d", table, column, id, len(b), offset)
	}
	b[offset] ^= 0xff
	if _, err := db.Exec("UPDATE "+q(table)+" SET "+q(column)+" = ? WHERE rowid = ?", b, id); err != nil {
		f.t.Fatal(err)
	}
}
