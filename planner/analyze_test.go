package planner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/postgres"
	_ "github.com/colcrypt/colcrypt/dialect/sqlite"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// testDB is a real database of one engine, with a folder for plan files.
type testDB struct {
	d   dialect.Dialect
	db  *sql.DB
	dsn string // as written in a plan
	dir string // the plan's folder
	// series is a query yielding the integers 1..n in a column named i.
	series func(n int) string
}

// engine is one engine the integration tests run on.
type engine struct {
	name string
	open func(testing.TB) *testDB
}

// engines are the engines that run here: SQLite always, PostgreSQL on the
// cluster scripts/test starts (pgtest skips or, under CI, fails without it).
var engines = []engine{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

func openSQLite(tb testing.TB) *testDB {
	tb.Helper()
	dir := tb.TempDir()
	// The engine opens only existing files (a typo in a plan must not
	// create an empty database); an empty file is an empty database.
	if err := os.WriteFile(filepath.Join(dir, "test.db"), nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	return openDB(tb, "sqlite", "test.db", dir, func(n int) string {
		return "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < " + strconv.Itoa(n) + ") SELECT i FROM s"
	})
}

func openPostgres(tb testing.TB) *testDB {
	tb.Helper()
	return openDB(tb, "postgres", pgtest.DSN(tb), tb.TempDir(), func(n int) string {
		return "SELECT i FROM generate_series(1, " + strconv.Itoa(n) + ") AS s(i)"
	})
}

func openDB(tb testing.TB, name, dsn, dir string, series func(int) string) *testDB {
	tb.Helper()
	d, err := dialect.Get(name)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := d.Open(context.Background(), d.ResolveDSN(dsn, dir))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &testDB{d: d, db: db, dsn: dsn, dir: dir, series: series}
}

func (e *testDB) exec(tb testing.TB, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if _, err := e.db.ExecContext(context.Background(), s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

// planFile writes a plan for this database (rest holds the job and tables
// sections) and returns its path.
func (e *testDB) planFile(tb testing.TB, rest string) string {
	tb.Helper()
	text := "version: 1\ndatabase:\n  engine: " + e.d.Name() + "\n  dsn: '" + e.dsn + "'\nkeystore: test.keystore\n" + rest
	path := filepath.Join(e.dir, "plan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func (e *testDB) plan(tb testing.TB, rest string) *Plan {
	tb.Helper()
	p, err := Load(e.planFile(tb, rest))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func (e *testDB) analyze(tb testing.TB, rest string) *Report {
	tb.Helper()
	r, err := Analyze(context.Background(), e.plan(tb, rest), e.d, e.db, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func forEachEngine(t *testing.T, f func(t *testing.T, e *testDB)) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) { f(t, eng.open(t)) })
	}
}

func TestAnalyzeMissingTableOrColumn(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t, "CREATE TABLE people (id integer PRIMARY KEY, name varchar(20))")
		p := e.plan(t, `tables:
  - name: people
    columns:
      - name: name
      - name: nickname
  - name: nobody
    columns:
      - name: x
`)
		_, err := Analyze(context.Background(), p, e.d, e.db, Options{})
		if code := exitcode.Of(err); code != exitcode.BadInput {
			t.Fatalf("exit code %d (%v), want %d", code, err, exitcode.BadInput)
		}
		msg := err.Error()
		for _, s := range []string{"plan.yaml:10:15: table people has no column nickname", "plan.yaml:11:11: table nobody does not exist"} {
			if !strings.Contains(msg, s) {
				t.Errorf("error %q does not contain %q", msg, s)
			}
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Line != 10 {
			t.Errorf("error is not a located *planner.Error: %#v", err)
		}
	})
}

func TestAnalyzeCountsNullsAndRowID(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t, "CREATE TABLE notes (body varchar(100))",
			"INSERT INTO notes (body) SELECT CASE WHEN i % 4 = 0 THEN NULL ELSE 'abc' END FROM ("+e.series(100)+") AS s")
		r := e.analyze(t, `tables:
  - name: notes
    columns:
      - name: body
        suite: aes-128-cbc
`)
		tr := r.Tables[0]
		c := tr.Columns[0]
		if tr.Rows != 100 || c.Rows != 100 || c.Nulls != 25 {
			t.Errorf("rows %d, column rows %d, nulls %d; want 100, 100, 25", tr.Rows, c.Rows, c.Nulls)
		}
		// 75 values of 3-byte header + 16-byte ciphertext (any plaintext
		// under 16 bytes), and a 16-byte IV each.
		if c.BytesAfter != 75*19 || c.IVBytes != 75*16 {
			t.Errorf("bytes after %d, iv bytes %d; want %d, %d", c.BytesAfter, c.IVBytes, 75*19, 75*16)
		}
		requireFinding(t, tr.Findings, want{SeverityAction, RuleNoKey, "notes", "", ""})
		// Peak counts the row-id column only where the engine adds one.
		var rowID int64
		if addsRowID(e.d) {
			rowID = 8 * 100
		}
		want := tr.BytesNow + c.BytesAfter + c.IVBytes + rowID
		if OfflineRebuild(e.d, tr.Table, []string{"body"}) {
			// SQLite builds the replacement beside the table (PostgreSQL
			// would, had the table a key to page by).
			want = tr.BytesNow + tr.BytesAfter
		}
		if tr.BytesPeak != want {
			t.Errorf("bytes peak %d, want %d", tr.BytesPeak, want)
		}
		if want := tr.BytesNow - c.BytesNow + c.BytesAfter + c.IVBytes; tr.BytesAfter != want {
			t.Errorf("bytes after %d, want %d (the row id is gone after cut-over)", tr.BytesAfter, want)
		}
	})
}

// TestAnalyzeLargeObjects: the limit is on each value's bytes, whatever
// the engine's encoding adds (SQLite's storage-class byte): a value of
// exactly the limit passes on every engine, and the message gives the
// longest value's own length.
func TestAnalyzeLargeObjects(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t, "CREATE TABLE docs (id integer PRIMARY KEY, body text)",
			"INSERT INTO docs (id, body) SELECT i, CASE WHEN i <= 3 THEN '"+strings.Repeat("x", 200)+"' WHEN i <= 5 THEN '"+
				strings.Repeat("y", 100)+"' ELSE 'short' END FROM ("+e.series(10)+") AS s")
		r := e.analyze(t, `job:
  large_object_limit: 100
tables:
  - name: docs
    columns:
      - name: body
`)
		tr := r.Tables[0]
		requireFinding(t, tr.Findings, want{SeverityBlocker, RuleLargeObject, "docs.body", "body",
			"3 rows of docs.body hold values over the large-object limit of 100 bytes (longest: 200 bytes)"})
		if tr.Columns[0].LargeObjects != 3 {
			t.Errorf("large objects %d, want 3", tr.Columns[0].LargeObjects)
		}
	})
}

// TestBlockerCheckReadsOnlyWhatCanBlock: apply's check before it changes
// anything (Analyze with BlockersOnly) reads a table's rows only when one
// of them could hold a blocker, and counts the rows over a limit only when
// the longest value is. On PostgreSQL a varchar(10) column (at most 40
// bytes) under a large-object limit of 100 bytes cannot hold one, and the
// table is not read; under a limit of 30 it could, and it is. SQLite does
// not enforce declared lengths, so its tables are always read. A text
// column is always read, and the read finds and counts its values over the
// large-object limit, or encrypting to more than the engine's largest
// value.
func TestBlockerCheckReadsOnlyWhatCanBlock(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t, "CREATE TABLE docs (id integer PRIMARY KEY, code varchar(10), body text)",
			"INSERT INTO docs (id, code, body) SELECT i, 'c' || i, CASE WHEN i <= 3 THEN '"+strings.Repeat("x", 200)+"' WHEN i = 4 THEN NULL ELSE 'short' END FROM ("+e.series(10)+") AS s")
		// The longest body's canonical plaintext: SQLite's has a storage-class tag.
		longest := map[string]int64{"sqlite": 201, "postgres": 200}[e.d.Name()]
		for _, tc := range []struct {
			limit      int
			valueBytes int64 // the engine's largest value, when lowered
			column     string
			measured   bool // on PostgreSQL; SQLite always measures
			rule       string
			over       int64 // rows over the rule's limit
		}{
			{100, 0, "code", false, "", 0},
			{30, 0, "code", true, "", 0},
			{100, 0, "body", true, RuleLargeObject, 3},
			{1000, 150, "code", false, "", 0},
			{1000, 150, "body", true, RuleValueLimit, 3},
		} {
			name := fmt.Sprintf("%s, large_object_limit %d, largest value %d", tc.column, tc.limit, tc.valueBytes)
			rest := "job:\n  large_object_limit: " + strconv.Itoa(tc.limit) + "\ntables:\n  - name: docs\n    columns:\n      - name: " + tc.column + "\n"
			d := e.d
			if tc.valueBytes > 0 {
				d = limited{Dialect: e.d, valueBytes: tc.valueBytes}
			}
			r, err := Analyze(context.Background(), e.plan(t, rest), d, e.db, Options{BlockersOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			tr := r.Tables[0]
			measured := tc.measured || e.d.Name() == "sqlite"
			if tr.Measured != measured {
				t.Errorf("%s: read the table %v, want %v", name, tr.Measured, measured)
			}
			if want := map[bool]int64{true: 10, false: 0}[measured]; tr.Rows != want {
				t.Errorf("%s: %d rows, want %d", name, tr.Rows, want)
			}
			var blockers []Finding
			for _, f := range tr.Findings {
				if f.Severity == SeverityBlocker {
					blockers = append(blockers, f)
				}
			}
			cr := tr.Columns[0]
			switch {
			case tc.rule == "" && len(blockers) > 0:
				t.Errorf("%s: blockers %+v, want none", name, blockers)
			case tc.rule == "":
			case len(blockers) != 1 || blockers[0].Rule != tc.rule:
				t.Errorf("%s: blockers %+v, want one %s", name, blockers, tc.rule)
			case tc.rule == RuleLargeObject && cr.LargeObjects != tc.over, tc.rule == RuleValueLimit && cr.ValueLimitRows != tc.over:
				t.Errorf("%s: %d large objects and %d values over the engine's limit, want %d over the %s limit",
					name, cr.LargeObjects, cr.ValueLimitRows, tc.over, tc.rule)
			case cr.MaxPlainBytes != longest:
				t.Errorf("%s: longest plaintext %d bytes, want %d", name, cr.MaxPlainBytes, longest)
			}
		}
	})
}

// limited is an engine with a smaller row limit, to exercise the row-size
// rule on engines that have none.
type limited struct {
	dialect.Dialect
	rowBytes   int64
	valueBytes int64 // 0: the engine's own
}

func (l limited) Limits() dialect.Limits {
	lim := l.Dialect.Limits()
	lim.RowBytes = l.rowBytes
	if l.valueBytes > 0 {
		lim.ValueBytes = l.valueBytes
	}
	return lim
}

func TestAnalyzeRowSize(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t, "CREATE TABLE wide (id integer PRIMARY KEY, a varchar(200), b varchar(200))",
			"INSERT INTO wide (id, a, b) SELECT i, CASE WHEN i <= 4 THEN '"+strings.Repeat("a", 150)+"' ELSE 'a' END, 'b' FROM ("+e.series(20)+") AS s")
		p := e.plan(t, `tables:
  - name: wide
    columns:
      - name: a
        suite: aes-256-cbc
`)
		// Now, the longest rows hold at most 8 + 151 + 2 bytes (SQLite) or
		// 4 + 151 + 2 (PostgreSQL); during the migration they also hold a
		// ciphertext of 160 bytes (AES of ~151 bytes) and a 16-byte IV.
		r, err := Analyze(context.Background(), p, limited{Dialect: e.d, rowBytes: 200}, e.db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tr := r.Tables[0]
		if tr.RowLimit != 200 || tr.OffendingRows != 4 {
			t.Errorf("row limit %d, offending rows %d; want 200, 4", tr.RowLimit, tr.OffendingRows)
		}
		if tr.MaxRowBytesDuring <= 200 || tr.MaxRowBytesNow > 200 {
			t.Errorf("longest row now %d, during %d", tr.MaxRowBytesNow, tr.MaxRowBytesDuring)
		}
		requireFinding(t, tr.Findings, want{SeverityBlocker, RuleRowSize, "wide", "", "4 rows of wide would exceed the engine's 200-byte row limit"})
		// SQLite declares no maxima (it enforces no lengths); PostgreSQL's
		// varchar(200) does, and the declared row is over 200 bytes.
		if tr.Columns[0].Codec.MaxPlainBytes() > 0 {
			requireFinding(t, tr.Findings, want{SeverityWarning, RuleDeclaredRowSize, "wide", "", ""})
		} else {
			requireNoRule(t, tr.Findings, RuleDeclaredRowSize)
		}
		if r.Blockers() != 1 || r.Totals.Blockers != 1 {
			t.Errorf("blockers %d / %d, want 1", r.Blockers(), r.Totals.Blockers)
		}
	})
}

func TestAnalyzeGroupsFromForeignKeys(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t,
			"CREATE TABLE customers (ssn char(11) PRIMARY KEY, name varchar(50))",
			"CREATE TABLE orders (id integer PRIMARY KEY, customer_ssn char(11) REFERENCES customers (ssn), note varchar(50))",
			"CREATE TABLE audit (id integer PRIMARY KEY, note varchar(50))",
		)
		r := e.analyze(t, `defaults:
  iv: column
tables:
  - name: audit
    columns:
      - name: note
  - name: orders
    columns:
      - name: customer_ssn
  - name: customers
    columns:
      - name: ssn
`)
		want := "[[audit] [orders customers]]"
		if got := fmtGroups(r.Groups); got != want {
			t.Errorf("groups %s, want %s", got, want)
		}
		requireFinding(t, r.Tables[1].Findings, want2(SeverityAction, RuleForeignKey, "customer_ssn"))
		requireFinding(t, r.Tables[2].Findings, want2(SeverityAction, RuleReferencedByFK, "ssn"))
		requireFinding(t, r.Tables[2].Findings, want2(SeverityAction, RulePrimaryKey, "ssn"))
		if r.Blockers() != 0 {
			t.Errorf("want no blocker, got:\n%s", dump(r.Tables[1].Findings)+dump(r.Tables[2].Findings))
		}
	})
}

func want2(sev Severity, rule, column string) want { return want{sev: sev, rule: rule, column: column} }

func fmtGroups(groups [][]string) string {
	var parts []string
	for _, g := range groups {
		parts = append(parts, "["+strings.Join(g, " ")+"]")
	}
	return "[" + strings.Join(parts, " ") + "]"
}
