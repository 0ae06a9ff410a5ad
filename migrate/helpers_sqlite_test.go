package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/sqlite" // registers the sqlite engine and driver
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
}

type planTable struct {
	name    string
	columns []planColumn
}

type planColumn struct {
	name      string
	suite, iv string
	versioned *bool
}

// yamlString quotes s as a YAML double-quoted scalar.
func yamlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// plan writes the plan file and loads it through the planner.
func (f *fixture) plan(name string, s planSpec) *planner.Plan {
	f.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ndatabase:\n  engine: sqlite\n  dsn: test.db\nkeystore: test.keystore\ndefaults:\n  key: pii\n")
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
type snapshot struct {
	Schema []string
	Rows   map[string][]string // table → rows, in rowid (or key) order
}

// userObjects are the schema entries outside colcrypt's own tables.
const userObjects = `FROM sqlite_master WHERE name NOT LIKE 'colcrypt\_%' ESCAPE '\'
	AND name NOT LIKE 'sqlite\_autoindex\_colcrypt\_%' ESCAPE '\'`

func (f *fixture) snapshot() snapshot {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	s, err := takeSnapshot(db, false)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// userData is the snapshot without what a job adds while it runs: the
// CREATE TABLE texts (prepare adds columns to them) and the added
// ciphertext and IV columns. Before cut-over it must not change at all.
func (f *fixture) userData() snapshot {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	s, err := takeSnapshot(db, true)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// addedColumn reports whether a column is one a job adds before cut-over.
func addedColumn(name string) bool {
	return strings.HasSuffix(name, "__colcrypt") || strings.HasSuffix(name, "_iv") || name == "colcrypt_row_id"
}

func takeSnapshot(db *sql.DB, dataOnly bool) (snapshot, error) {
	s := snapshot{Rows: map[string][]string{}}
	rows, err := db.Query(`SELECT type, name, tbl_name, COALESCE(sql, '<auto>') ` + userObjects + ` ORDER BY type, name`)
	if err != nil {
		return s, err
	}
	var tables []string
	for rows.Next() {
		var typ, name, tbl, text string
		if err := rows.Scan(&typ, &name, &tbl, &text); err != nil {
			rows.Close()
			return s, err
		}
		if typ == "table" {
			tables = append(tables, name)
			if dataOnly {
				continue
			}
		}
		s.Schema = append(s.Schema, fmt.Sprintf("%s %s on %s: %s", typ, name, tbl, text))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	for _, t := range tables {
		r, err := tableRows(db, t, dataOnly)
		if err != nil {
			return s, fmt.Errorf("snapshot of %s: %w", t, err)
		}
		s.Rows[t] = r
	}
	return s, nil
}

// tableRows renders every row of a table: rowid when it has one, then each
// column's storage class and value. Values are read through a unary plus,
// which strips the declared type so the driver returns them as stored.
func tableRows(db *sql.DB, table string, dataOnly bool) ([]string, error) {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	all, err := columnNames(db, table)
	if err != nil {
		return nil, err
	}
	var cols []string
	for _, c := range all {
		if !dataOnly || !addedColumn(c) {
			cols = append(cols, c)
		}
	}
	var sel []string
	for _, c := range cols {
		sel = append(sel, "typeof("+q(c)+")", "+"+q(c))
	}
	withRowid := true
	var probe any
	if err := db.QueryRow("SELECT rowid FROM " + q(table) + " LIMIT 1").Scan(&probe); err != nil && !errors.Is(err, sql.ErrNoRows) {
		withRowid = false
	}
	query := "SELECT " + strings.Join(sel, ", ") + " FROM " + q(table)
	if withRowid {
		query = "SELECT rowid, " + strings.Join(sel, ", ") + " FROM " + q(table) + " ORDER BY rowid"
	}
	rows, err := db.Query(query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := 2 * len(cols)
	if withRowid {
		n++
	}
	var out []string
	for rows.Next() {
		vals := make([]any, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var parts []string
		for i, v := range vals {
			label := ""
			switch {
			case withRowid && i == 0:
				label = "rowid"
			default:
				j := i
				if withRowid {
					j--
				}
				label = cols[j/2]
				if j%2 == 0 {
					label += ".type"
				}
			}
			parts = append(parts, label+"="+render(v))
		}
		out = append(out, strings.Join(parts, " "))
	}
	if !withRowid {
		sort.Strings(out)
	}
	return out, rows.Err()
}

func columnNames(db *sql.DB, table string) ([]string, error) {
	rows, err := db.Query("SELECT name FROM pragma_table_xinfo(?) ORDER BY cid", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// render shows a scanned value exactly: Go type, and float bits, so that
// -0.0 and 0.0 differ.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case float64:
		return fmt.Sprintf("real(%v|%016x)", x, math.Float64bits(x))
	case []byte:
		return fmt.Sprintf("blob(%x)", x)
	case string:
		return fmt.Sprintf("text(%q)", x)
	case int64:
		return fmt.Sprintf("int(%d)", x)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// diff describes the first differences between two snapshots, "" if none.
func (a snapshot) diff(b snapshot) string {
	var out []string
	if strings.Join(a.Schema, "\n") != strings.Join(b.Schema, "\n") {
		out = append(out, "schema differs:\n  before: "+strings.Join(a.Schema, "\n          ")+"\n  after:  "+strings.Join(b.Schema, "\n          "))
	}
	var names []string
	for t := range a.Rows {
		names = append(names, t)
	}
	for t := range b.Rows {
		if _, ok := a.Rows[t]; !ok {
			names = append(names, t)
		}
	}
	sort.Strings(names)
	for _, t := range names {
		ra, rb := a.Rows[t], b.Rows[t]
		if len(ra) != len(rb) {
			out = append(out, fmt.Sprintf("table %s: %d rows before, %d after", t, len(ra), len(rb)))
			continue
		}
		shown := 0
		for i := range ra {
			if ra[i] != rb[i] && shown < 3 {
				out = append(out, fmt.Sprintf("table %s row %d:\n  before: %s\n  after:  %s", t, i, ra[i], rb[i]))
				shown++
			}
		}
	}
	return strings.Join(out, "\n")
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

func boolPtr(b bool) *bool { return &b }

// flipByte inverts one byte of a BLOB value of the row with the given id,
// as someone editing the table behind colcrypt's back would.
func (f *fixture) flipByte(table, column string, id, offset int) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	var b []byte
	if err := db.QueryRow("SELECT "+q(column)+" FROM "+q(table)+" WHERE id = ?", id).Scan(&b); err != nil {
		f.t.Fatal(err)
	}
	if offset >= len(b) {
		f.t.Fatalf("%s.%s of row %d has %d bytes, cannot flip byte %d", table, column, id, len(b), offset)
	}
	b[offset] ^= 0xff
	if _, err := db.Exec("UPDATE "+q(table)+" SET "+q(column)+" = ? WHERE id = ?", b, id); err != nil {
		f.t.Fatal(err)
	}
}
