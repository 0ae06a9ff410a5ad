package sqlite

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/dialecttest"
	"github.com/colcrypt/colcrypt/schema"
)

// conformanceFixture is the dialecttest schema in SQLite DDL. It mixes
// column and table constraint forms on purpose: the catalog reader has to
// recover names from both.
var conformanceFixture = []string{
	`CREATE TABLE cc_customers (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		ssn char(11) NOT NULL CONSTRAINT cc_customers_ssn_key UNIQUE,
		email varchar(64) NULL,
		status varchar(10) NOT NULL DEFAULT 'new' CONSTRAINT cc_customers_status_check CHECK (status IN ('new', 'vip')),
		notes text NULL,
		region varchar(8) NULL,
		full_name text GENERATED ALWAYS AS (ssn || ' ' || coalesce(email, '')) VIRTUAL
	)`,
	`CREATE INDEX cc_customers_email_idx ON cc_customers (email)`,
	`CREATE TABLE cc_orders (
		id int NOT NULL PRIMARY KEY,
		customer_id int NOT NULL CONSTRAINT cc_orders_customer_fk REFERENCES cc_customers (id),
		customer_ssn char(11) NULL,
		amount numeric(10,2),
		CONSTRAINT cc_orders_ssn_fk FOREIGN KEY (customer_ssn) REFERENCES cc_customers (ssn)
	)`,
	`CREATE TABLE cc_audit (email varchar(64) NULL, changed_at varchar(30) NULL)`,
	`CREATE TRIGGER cc_customers_audit AFTER UPDATE ON cc_customers
	BEGIN
		INSERT INTO cc_audit (email, changed_at) VALUES (NEW.email, datetime('now'));
	END`,
	`CREATE VIEW cc_customer_notes AS SELECT id, notes FROM cc_customers`,
}

// mixedLiterals hold every storage class and its edge cases.
var mixedLiterals = []string{
	"NULL", "1", "1.0", "'1'", "x'01'", "''", "x''", "'  trailing  '", "'Grüße 日本 🙂'",
	"9223372036854775807", "-9223372036854775808", "9223372036854775808",
	"1e308", "-1e308", "4.9e-324", "-0.0", "0.1",
	"'it''s'", "'a' || char(0) || 'b'", "x'00ff00'",
	"replace(hex(zeroblob(50000)), '00', 'é')", "zeroblob(70000)",
	"'2024-01-02 03:04:05'",
}

var typeCases = []dialecttest.TypeCase{
	{Declared: "INTEGER", Literals: []string{"NULL", "0", "1", "-1", "9223372036854775807", "-9223372036854775808",
		"''", "'  trailing  '", "'01'", "' 7 '", "1.5", "1.0", "1e308", "x'00'", "'Grüße 日本 🙂'"}},
	{Declared: "REAL", Literals: []string{"NULL", "0.0", "-0.0", "1.0", "1", "1e308", "-1e308", "4.9e-324", "2.5e-7",
		"9223372036854775807", "'abc'", "'1.5'", "''", "x'ff'"}},
	{Declared: "TEXT", Literals: []string{"NULL", "''", "'  trailing  '", "'Grüße 日本 🙂'", "'it''s'", "1", "1.0",
		"-0.0", "x'00ff'", "'a' || char(0) || 'b'", "replace(hex(zeroblob(50000)), '00', 'ab')"}},
	{Declared: "BLOB", Literals: []string{"NULL", "x''", "x'00'", "x'deadbeef'", "zeroblob(70000)", "'text'", "''",
		"42", "4.2"}},
	{Declared: "NUMERIC", Literals: []string{"NULL", "'1'", "'1.0'", "1.5", "'1e3'", "'abc'", "''", "'  12  '",
		"12345678901234567890", "'12345678901234567890'", "x'01'", "-0.0"}},
	{Declared: "VARCHAR(10)", Literals: []string{"NULL", "'far longer than ten characters'", "''", "'  trailing  '",
		"'Grüße 日本 🙂'", "10"}},
	{Declared: "DATETIME", Literals: []string{"NULL", "'2024-01-02 03:04:05'", "'2024-01-02T03:04:05.123456789+02:00'",
		"'2024-01-02'", "1704164645", "2460311.5", "'not a date'", "''"}},
	{Declared: "DATE", Literals: []string{"NULL", "'2024-01-02'", "'2024-01-02 00:00:00'", "19724"}},
	{Declared: "TIMESTAMP", Literals: []string{"NULL", "'2024-01-02 03:04:05.678'", "1704164645678"}},
	{Declared: "", Literals: mixedLiterals},
	{Declared: "ANY", Literals: mixedLiterals},
	{Declared: "BOOLEAN", Literals: []string{"NULL", "TRUE", "FALSE", "'yes'"}},
	{Declared: "DECIMAL(10,2)", Literals: []string{"NULL", "'12.30'", "12.30", "'1.005'"}},
}

func openTemp(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conformance.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // an empty file is an empty database
		t.Fatal(err)
	}
	db, err := Dialect{}.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	dialecttest.Run(t, dialecttest.Engine{
		Dialect: Dialect{},
		DB:      openTemp(t),
		Fixture: conformanceFixture,
		Types:   typeCases,
		// Every declared type has an affinity, and the codec works on
		// storage classes: no declared type is refused.
		NoUnsupportedTypes: true,
		Same: func(a, b string) string {
			return "(" + a + " IS " + b + " AND typeof(" + a + ") = typeof(" + b + "))"
		},
		Placeholder: func(int) string { return "?" },
	})
}

func TestRegistered(t *testing.T) {
	d, err := dialect.Get("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(Dialect); !ok {
		t.Errorf("dialect.Get(sqlite) = %T", d)
	}
}

// TestSelectExprKeepsDatetimeText guards the reason SelectExpr exists: the
// driver turns text in a DATETIME column into a time.Time when the column
// is read directly, which would change the value's canonical bytes.
func TestSelectExprKeepsDatetimeText(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	const stored = "2024-01-02 03:04:05"
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (d DATETIME)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES ('`+stored+`')`); err != nil {
		t.Fatal(err)
	}
	var direct any
	if err := db.QueryRowContext(ctx, `SELECT d FROM t`).Scan(&direct); err != nil {
		t.Fatal(err)
	}
	if _, isString := direct.(string); isString {
		t.Logf("the driver no longer converts DATETIME text; SelectExpr's unary plus is now merely harmless")
	}
	c, err := Dialect{}.Codec(&schema.Column{Name: "d", Declared: "DATETIME"})
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := db.QueryRowContext(ctx, `SELECT `+c.SelectExpr(`"d"`)+` FROM t`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if s, ok := v.(string); !ok || s != stored {
		t.Fatalf("SelectExpr read %#v, want the stored text %q", v, stored)
	}
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := "t" + stored; string(b) != want {
		t.Errorf("Encode = %q, want %q", b, want)
	}
}

func TestCodecEncoding(t *testing.T) {
	c, err := Dialect{}.Codec(&schema.Column{Name: "v"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   any
		want []byte
	}{
		{int64(1), []byte{'i', 0, 0, 0, 0, 0, 0, 0, 1}},
		{int64(-1), []byte{'i', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{float64(1), []byte{'r', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}},
		{"", []byte{'t'}},
		{"é", []byte{'t', 0xc3, 0xa9}},
		{[]byte(nil), []byte{'b'}},
		{[]byte{0, 1}, []byte{'b', 0, 1}},
	}
	for _, tt := range tests {
		got, err := c.Encode(tt.in)
		if err != nil || string(got) != string(tt.want) {
			t.Errorf("Encode(%#v) = %x, %v; want %x", tt.in, got, err, tt.want)
			continue
		}
		back, err := c.Decode(got)
		if err != nil {
			t.Errorf("Decode(%x): %v", got, err)
			continue
		}
		again, _ := c.Encode(back)
		if string(again) != string(tt.want) {
			t.Errorf("Decode(%x) = %#v, which encodes to %x", got, back, again)
		}
	}
	// x'' must come back as an empty blob: the driver binds a nil slice as NULL.
	if v, _ := c.Decode([]byte{'b'}); v == nil || v.([]byte) == nil {
		t.Errorf("Decode(empty blob) = %#v, want a non-nil empty []byte", v)
	}
	for _, bad := range [][]byte{nil, {'i', 1}, {'r'}, {'x', 1}} {
		if _, err := c.Decode(bad); err == nil {
			t.Errorf("Decode(%x) accepted malformed canonical bytes", bad)
		}
	}
	for _, bad := range []any{nil, int32(1), true} {
		if _, err := c.Encode(bad); err == nil {
			t.Errorf("Encode(%#v) accepted a value the driver never returns", bad)
		}
	}
}

func TestCodecRefusesGeneratedColumn(t *testing.T) {
	_, err := Dialect{}.Codec(&schema.Column{Name: "full_name", Declared: "TEXT", Type: "text", Computed: true})
	if !errors.Is(err, dialect.ErrUnsupportedType) || !strings.Contains(err.Error(), "full_name") {
		t.Errorf("Codec(generated column) = %v, want ErrUnsupportedType naming the column", err)
	}
}

func TestOpenMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "typo.db")
	for _, dsn := range []string{path, "file:" + path + "?mode=rw", path + "?_pragma=cache_size(100)"} {
		db, err := Dialect{}.Open(t.Context(), dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%s) succeeded on a missing file", dsn)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s) = %v, want a not-exist error naming %s", dsn, err, path)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created %s", path)
	}
}

func TestOpenSetsPragmas(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dsn         string
		busyTimeout int
		cacheSize   int
		autoCkpt    int
	}{
		{path, busyTimeoutMillis, -8192, 16384},
		{"file:" + path, busyTimeoutMillis, -8192, 16384},
		{path + "?_pragma=busy_timeout(250)&_texttotime=1", 250, -8192, 16384},
		{"file:" + path + "?_busy_timeout=300", 300, -8192, 16384},
		{"file:" + path + "?mode=ro", busyTimeoutMillis, -8192, 16384},
		{path + "?_pragma=cache_size(100)&_pragma=wal_autocheckpoint(500)", busyTimeoutMillis, 100, 500},
	}
	for _, tt := range tests {
		db, err := Dialect{}.Open(t.Context(), tt.dsn)
		if err != nil {
			t.Fatalf("Open(%s): %v", tt.dsn, err)
		}
		var busy, fk, cache, ckpt int
		var journal string
		// One connection: the pragmas are per connection, and
		// wal_autocheckpoint has no table-valued form.
		db.SetMaxOpenConns(1)
		err = db.QueryRowContext(t.Context(), `SELECT b.timeout, j.journal_mode, f.foreign_keys, c.cache_size
			FROM pragma_busy_timeout AS b, pragma_journal_mode AS j, pragma_foreign_keys AS f, pragma_cache_size AS c`).
			Scan(&busy, &journal, &fk, &cache)
		if err == nil {
			err = db.QueryRowContext(t.Context(), `PRAGMA wal_autocheckpoint`).Scan(&ckpt)
		}
		db.Close()
		if err != nil {
			t.Fatalf("Open(%s): read pragmas: %v", tt.dsn, err)
		}
		// The journal mode is the file's: Open leaves it (SwitchJournal).
		if busy != tt.busyTimeout || !strings.EqualFold(journal, "delete") || fk != 1 || cache != tt.cacheSize || ckpt != tt.autoCkpt {
			t.Errorf("Open(%s): busy_timeout=%d journal_mode=%s foreign_keys=%d cache_size=%d wal_autocheckpoint=%d; want %d, delete, 1, %d, %d",
				tt.dsn, busy, journal, fk, cache, ckpt, tt.busyTimeout, tt.cacheSize, tt.autoCkpt)
		}
	}
}

// TestOpenIgnoresTimeConversion checks that a DSN asking the driver to turn
// date-shaped text into time.Time cannot break the codec's exactness.
func TestOpenIgnoresTimeConversion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Dialect{}.Open(t.Context(), path+"?_texttotime=1&_inttotime=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v any
	if err := db.QueryRowContext(t.Context(), `SELECT +'2024-01-02 03:04:05'`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.(string); !ok {
		t.Errorf("read %#v, want a string", v)
	}
}

func TestResolveDSN(t *testing.T) {
	tests := []struct{ dsn, planDir, want string }{
		{"data.db", "/plans", "/plans/data.db"},
		{"sub/../data.db?_pragma=x(1)", "/plans", "/plans/data.db?_pragma=x(1)"},
		{"/abs/data.db", "/plans", "/abs/data.db"},
		{"file:data.db?mode=ro", "/plans", "file:/plans/data.db?mode=ro"},
		{"file:data.db", "/odd?dir#50%", "file:/odd%3Fdir%2350%25/data.db"},
		{"file:/abs/data.db", "/plans", "file:/abs/data.db"},
		{"file:///abs/data.db", "/plans", "file:///abs/data.db"},
		{":memory:", "/plans", ":memory:"},
		{"file::memory:?cache=shared", "/plans", "file::memory:?cache=shared"},
		{"data.db", "", "data.db"},
	}
	for _, tt := range tests {
		if got := (Dialect{}).ResolveDSN(tt.dsn, tt.planDir); got != tt.want {
			t.Errorf("ResolveDSN(%q, %q) = %q, want %q", tt.dsn, tt.planDir, got, tt.want)
		}
	}
}

// TestResolvedURIOpens checks that an escaped plan folder still names the
// right file once SQLite decodes the URI.
func TestResolvedURIOpens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd ?#% dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := Dialect{}.ResolveDSN("file:data.db", dir)
	db, err := Dialect{}.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("opening %s created files outside %s: %v", dsn, dir, entries)
	}
}

func TestQuote(t *testing.T) {
	d := Dialect{}
	if got := d.Quote(`a "b" [c]`); got != `"a ""b"" [c]"` {
		t.Errorf("Quote = %s", got)
	}
	for _, tt := range []struct {
		name schema.TableName
		want string
	}{
		{schema.TableName{Name: "t"}, `"t"`},
		{schema.TableName{Schema: "main", Name: "t"}, `"t"`},
		{schema.TableName{Schema: "aux", Name: `t"x`}, `"aux"."t""x"`},
	} {
		if got := d.QuoteTable(tt.name); got != tt.want {
			t.Errorf("QuoteTable(%v) = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestReadTableDetails covers catalog facts the conformance suite does not:
// rowid-alias rules, WITHOUT ROWID, named table-level constraints, expression
// and partial indexes, dangling and implicit foreign keys, triggers on other
// tables, views of views, attached databases.
func TestReadTableDetails(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	for _, stmt := range []string{
		`CREATE TABLE p (code TEXT PRIMARY KEY, n INT)`,
		`CREATE TABLE t (
			id INTEGER PRIMARY KEY DESC,
			[Name] varchar(20) COLLATE NOCASE,
			"e-mail" text,
			code TEXT REFERENCES p,
			n numeric(12, 3) DEFAULT (1 + 2),
			CONSTRAINT t_name_u UNIQUE ([Name], "e-mail"),
			UNIQUE (n),
			CONSTRAINT t_len CHECK (length("e-mail") > 3 AND 'Name' <> '' /* Name in a comment */),
			CHECK (n >= 0)
		)`,
		`CREATE UNIQUE INDEX t_lower ON t (lower("e-mail")) WHERE n > 0`,
		`CREATE TABLE w (a INT, b TEXT, PRIMARY KEY (b, a)) WITHOUT ROWID`,
		`CREATE TABLE r (x INTEGER PRIMARY KEY)`,
		`CREATE TABLE other (id INTEGER PRIMARY KEY, note TEXT)`,
		`CREATE TRIGGER other_sync AFTER INSERT ON other BEGIN UPDATE t SET "e-mail" = NEW.note WHERE id = NEW.id; END`,
		`CREATE TRIGGER t_name AFTER UPDATE OF [Name] ON t BEGIN SELECT 1; END`,
		`CREATE VIEW v1 AS SELECT id, "e-mail" AS mail FROM t`,
		`CREATE VIEW v2 (a, b) AS SELECT id, mail FROM v1`,
		`CREATE VIEW v3 AS SELECT * FROM t`,
		`CREATE VIEW v4 AS SELECT count(*) FROM t`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	d := Dialect{}
	tab, err := d.ReadTable(ctx, db, schema.TableName{Schema: "main", Name: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Name != (schema.TableName{Name: "t"}) {
		t.Errorf("Name = %+v, want the stored name t without the main schema", tab.Name)
	}
	if id := tab.Column("id"); id.Identity || !id.Nullable {
		t.Errorf("INTEGER PRIMARY KEY DESC is not a rowid alias: Identity=%v Nullable=%v", id.Identity, id.Nullable)
	}
	name := tab.Column("name")
	if name.Name != "Name" || name.Collation != "NOCASE" || name.Type != "varchar" || name.Length != 20 {
		t.Errorf("Name column = %+v", name)
	}
	if n := tab.Column("n"); n.Precision != 12 || n.Scale != 3 || n.Default != "(1 + 2)" {
		t.Errorf("n column = %+v", n)
	}
	if e := tab.Column("e-mail"); e.Length != -1 {
		t.Errorf("text column Length = %d, want -1 (unbounded)", e.Length)
	}

	ix := map[string]*schema.Index{}
	for _, i := range tab.Indexes {
		ix[i.Name] = i
	}
	if u := ix["t_name_u"]; u == nil || !u.Constraint || !u.Unique || !equalFold(u.Columns, []string{"Name", "e-mail"}) || u.Definition != "" {
		t.Errorf("named table-level UNIQUE: %+v (indexes %v)", u, tab.Indexes)
	}
	// Autoindex 1 backs the primary key (not a rowid alias), 2 t_name_u.
	if u := ix["sqlite_autoindex_t_3"]; u == nil || !equalFold(u.Columns, []string{"n"}) {
		t.Errorf("unnamed UNIQUE keeps its autoindex name: %v", indexNames(tab))
	}
	if tab.PrimaryKey == nil || tab.PrimaryKey.Name != "sqlite_autoindex_t_1" || !equalFold(tab.PrimaryKey.Columns, []string{"id"}) {
		t.Errorf("PrimaryKey = %+v", tab.PrimaryKey)
	}
	if l := ix["t_lower"]; l == nil || !l.Unique || l.Constraint || !equalFold(l.Columns, []string{"e-mail", "n"}) ||
		!strings.HasPrefix(l.Definition, "CREATE UNIQUE INDEX") {
		t.Errorf("expression/partial index: %+v", l)
	}

	checks := map[string]*schema.Check{}
	for _, c := range tab.Checks {
		checks[c.Name] = c
	}
	if c := checks["t_len"]; c == nil || !equalFold(c.Columns, []string{"e-mail"}) ||
		c.Definition != `CONSTRAINT t_len CHECK (length("e-mail") > 3 AND 'Name' <> '' /* Name in a comment */)` {
		t.Errorf("check t_len: %+v", c)
	}
	if c := checks[""]; c == nil || c.Expr != "n >= 0" || !equalFold(c.Columns, []string{"n"}) {
		t.Errorf("unnamed check: %+v", c)
	}

	if len(tab.ForeignKeys) != 1 {
		t.Fatalf("ForeignKeys = %+v", tab.ForeignKeys)
	}
	if fk := tab.ForeignKeys[0]; fk.Name != "" || fk.RefTable.Name != "p" || !equalFold(fk.RefColumns, []string{"code"}) ||
		fk.Definition != `FOREIGN KEY ("code") REFERENCES "p" ("code")` {
		t.Errorf("implicit-column FK = %+v", fk)
	}

	if len(tab.Triggers) != 1 || tab.Triggers[0].Name != "t_name" || !equalFold(tab.Triggers[0].Columns, []string{"Name"}) {
		t.Errorf("Triggers = %+v, want t_name referencing Name through UPDATE OF", tab.Triggers)
	}
	deps := map[string]*schema.Dependent{}
	for _, d := range tab.Dependents {
		deps[d.Kind+" "+d.Name] = d
	}
	for key, want := range map[string][]string{
		"trigger other_sync": {"id", "e-mail"},
		"view v1":            {"id", "e-mail"},
		"view v2":            {"id"},
		"view v3":            {"id", "Name", "e-mail", "code", "n"},
	} {
		if d := deps[key]; d == nil || !equalFold(d.Columns, want) {
			t.Errorf("dependent %s = %+v, want columns %v", key, d, want)
		}
	}
	if d := deps["view v4"]; d != nil {
		t.Errorf("v4 depends on no column, got %+v", d)
	}

	w, err := d.ReadTable(ctx, db, schema.TableName{Name: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if !equalFold(w.PrimaryKey.Columns, []string{"b", "a"}) || w.Column("a").Nullable || w.Column("a").Identity {
		t.Errorf("WITHOUT ROWID key: %+v a=%+v", w.PrimaryKey, w.Column("a"))
	}
	if !strings.HasPrefix(w.PrimaryKey.Name, "sqlite_autoindex_w") {
		t.Errorf("unnamed primary key of a WITHOUT ROWID table: Name = %q", w.PrimaryKey.Name)
	}

	r, err := d.ReadTable(ctx, db, schema.TableName{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if x := r.Column("x"); !x.Identity || x.Nullable {
		t.Errorf("INTEGER PRIMARY KEY without AUTOINCREMENT is a rowid alias: %+v", x)
	}

	// An attached database is a schema. ATTACH is per connection, so the
	// pool is cut to the one connection that attached it.
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS aux", filepath.Join(t.TempDir(), "aux.db")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE aux.a (k INTEGER PRIMARY KEY, v TEXT CHECK (v <> ''))`); err != nil {
		t.Fatal(err)
	}
	a, err := d.ReadTable(ctx, db, schema.TableName{Schema: "aux", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != (schema.TableName{Schema: "aux", Name: "a"}) || !a.Column("k").Identity || len(a.Checks) != 1 {
		t.Errorf("aux.a = %+v", a)
	}
	if _, err := d.ReadTable(ctx, db, schema.TableName{Name: "a"}); !errors.Is(err, dialect.ErrTableNotFound) {
		t.Errorf("aux.a read as main.a: %v", err)
	}
}

func indexNames(t *schema.Table) []string {
	var names []string
	for _, ix := range t.Indexes {
		names = append(names, ix.Name)
	}
	return names
}

// TestSwitchJournal: a job's switch to the write-ahead log and back, and
// the refusals a DBA would meet: a read-only file, and another connection
// holding the file when the job gives it back its mode.
func TestSwitchJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Dialect{}.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mode := func() string {
		t.Helper()
		var m string
		if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&m); err != nil {
			t.Fatal(err)
		}
		return strings.ToLower(m)
	}
	if _, err := db.ExecContext(t.Context(), "PRAGMA journal_mode = TRUNCATE"); err != nil {
		t.Fatal(err)
	}
	was, err := Dialect{}.JournalMode(t.Context(), db)
	if err != nil || was != "truncate" {
		t.Fatalf("JournalMode: %q, %v; want truncate", was, err)
	}
	if err := (Dialect{}).SwitchJournal(t.Context(), db); err != nil || mode() != "wal" || mode() != (Dialect{}).JobJournalMode() {
		t.Fatalf("SwitchJournal: now %q, %v; want wal", mode(), err)
	}
	if err := (Dialect{}).SwitchJournal(t.Context(), db); err != nil || mode() != "wal" {
		t.Fatalf("SwitchJournal again: %q, %v; want wal (a resumed job)", mode(), err)
	}

	// Another connection reading holds the log: the mode stays, and says so.
	other, err := Dialect{}.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := other.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), "SELECT count(*) FROM sqlite_master"); err != nil {
		t.Fatal(err)
	}
	if err := (Dialect{}).RestoreJournal(t.Context(), db, was); err == nil || !strings.Contains(err.Error(), "PRAGMA journal_mode = TRUNCATE") {
		t.Errorf("RestoreJournal beside a reader: %v, want the mode kept and how to set it", err)
	}
	tx.Rollback()
	other.Close()
	if err := (Dialect{}).RestoreJournal(t.Context(), db, was); err != nil || mode() != "truncate" {
		t.Fatalf("RestoreJournal: now %q, %v; want truncate", mode(), err)
	}
	if err := (Dialect{}).RestoreJournal(t.Context(), db, "delete; DROP TABLE x"); err == nil {
		t.Error("RestoreJournal took a mode SQLite does not know")
	}

	ro, err := Dialect{}.Open(t.Context(), "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := (Dialect{}).SwitchJournal(t.Context(), ro); err == nil {
		t.Error("SwitchJournal switched a file opened read-only")
	}
}
