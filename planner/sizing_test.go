package planner

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/antlr4-go/antlr/v4"
	tsqlparser "github.com/bytebase/tsql-parser"
	sqlitedrv "modernc.org/sqlite"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/schema"
)

// TestWorkedExample is SPEC §2's example: a 50-byte column, 10,000 rows,
// 3DES with field-level IVs, unversioned: 500,000 bytes now → 560,000
// bytes of ciphertext plus 80,000 bytes of IVs.
//
// What "a 50-byte column" is depends on the engine, and the test says so:
//
//   - SQLite: a TEXT value of 50 ASCII characters is stored in 50 bytes;
//     its canonical plaintext is 51 bytes (a storage-class tag, then the
//     text), which pads to the same 56 bytes of 3DES as 50 would
//     (51/8+1 = 7 blocks). Every figure of the example comes out exactly.
//   - PostgreSQL: a text of 50 ASCII characters is 50 bytes of plaintext
//     (its ::text form) and 50 bytes of value (octet_length; the 1-byte
//     varlena header is not counted, as bytea's is not after): every
//     figure of the example comes out exactly.
func TestWorkedExample(t *testing.T) {
	wantNow := map[string]int64{"sqlite": 500_000, "postgres": 500_000}
	wantPlain := map[string]int64{"sqlite": 51, "postgres": 50} // see above
	forEachEngine(t, func(t *testing.T, e *testDB) {
		fifty := map[string]string{
			"sqlite":   "printf('%050d', i)",
			"postgres": "lpad(i::text, 50, '0')",
		}[e.d.Name()]
		e.exec(t, "CREATE TABLE example (id bigint PRIMARY KEY, v text)",
			"INSERT INTO example (id, v) SELECT i, "+fifty+" FROM ("+e.series(10_000)+") AS s")
		r := e.analyze(t, `tables:
  - name: example
    columns:
      - name: v
        suite: 3des-cbc
        iv: field
        versioned: false
`)
		tr, c := r.Tables[0], r.Tables[0].Columns[0]
		plain, ok := wantPlain[e.d.Name()]
		if !ok {
			t.Fatalf("no canonical plaintext length of a 50-character text known for engine %s", e.d.Name())
		}
		if c.MaxPlainBytes != plain {
			t.Fatalf("canonical plaintext of a 50-character text on %s is %d bytes, want %d", e.d.Name(), c.MaxPlainBytes, plain)
		}
		got := [...]int64{c.Rows, c.Nulls, c.BytesNow, c.BytesAfter, c.IVBytes, c.MaxCiphertextBytes}
		want := [...]int64{10_000, 0, wantNow[e.d.Name()], 560_000, 80_000, 56}
		if got != want {
			t.Errorf("rows, nulls, bytes now, bytes after, iv bytes, max ciphertext = %v, want %v", got, want)
		}
		if c.CiphertextType != e.d.CiphertextType(0) {
			t.Errorf("ciphertext type %q, want %q", c.CiphertextType, e.d.CiphertextType(0))
		}
		// The table: id (8 bytes) and v; after cut-over v's plaintext is
		// gone, and during the migration everything coexists.
		idBytes := int64(8 * 10_000)
		peak := tr.BytesNow + 640_000
		if OfflineRebuild(e.d, tr.Table, []string{"v"}) {
			// SQLite and PostgreSQL build the replacement beside the table.
			peak = tr.BytesNow + tr.BytesAfter
		}
		if tr.BytesNow != idBytes+c.BytesNow || tr.BytesAfter != idBytes+640_000 || tr.BytesPeak != peak {
			t.Errorf("table bytes now %d, after %d, peak %d", tr.BytesNow, tr.BytesAfter, tr.BytesPeak)
		}
		perRow := c.BytesNow / 10_000
		if tr.MaxRowBytesNow != 8+perRow || tr.MaxRowBytesAfter != 8+56+8 || tr.MaxRowBytesDuring != 8+perRow+56+8 {
			t.Errorf("longest row now %d, after %d, during %d", tr.MaxRowBytesNow, tr.MaxRowBytesAfter, tr.MaxRowBytesDuring)
		}
	})
}

// TestSizingIsExact encrypts every value client-side, as the migration
// does, and checks that the sizes computed in SQL are the real ones: the
// sum and the longest ciphertext, and the IV bytes, for each suite.
func TestSizingIsExact(t *testing.T) {
	values := map[string]struct {
		ddl    string
		insert []string
	}{
		// SQLite columns hold any storage class.
		"sqlite": {"CREATE TABLE vals (id integer PRIMARY KEY, v, w varchar(10))", []string{
			"INSERT INTO vals (v, w) VALUES (42, 'a'), (-1, NULL), (3.14, ''), ('text', 'héllo'), ('héllo wörld 𝄞', '𝄞𝄞𝄞'), ('', 'x')",
			"INSERT INTO vals (v, w) VALUES (x'00ff', NULL), (x'', 'y'), (NULL, NULL), ('123456789012345', '1234567890123456'), ('1234567890123456', '12345678901234567')",
			"INSERT INTO vals (v, w) VALUES (printf('%0500d', 7), printf('%0100d', 1))",
		}},
		"postgres": {"CREATE TABLE vals (id serial PRIMARY KEY, v text, w numeric(12,3), x timestamptz, y char(5))", []string{
			"INSERT INTO vals (v, w, x, y) VALUES ('a', 1.5, '2024-01-02 03:04:05.123456+02', 'ab'), (NULL, -123456789.123, NULL, NULL), ('', 0, 'infinity', '')",
			"INSERT INTO vals (v, w, x, y) VALUES ('héllo wörld 𝄞', NULL, '4714-11-24 00:00:00+00 BC', '𝄞𝄞𝄞𝄞𝄞'), ('123456789012345', 'NaN', now(), 'abcde'), ('1234567890123456', 1, now(), 'x')",
			"INSERT INTO vals (v) VALUES (repeat('x', 500)), (repeat('€', 300))",
		}},
	}
	settings := []string{
		"suite: aes-128-cbc\n  iv: field\n  versioned: true",
		"suite: 3des-cbc\n  iv: field\n  versioned: false",
		"suite: aes-256-cbc\n  iv: column\n  versioned: false",
		"suite: aead-aes-256-cbc-hmac-sha256\n  iv: field\n  versioned: true",
		"suite: aead-aes-256-cbc-hmac-sha256\n  iv: column\n  versioned: false",
	}
	forEachEngine(t, func(t *testing.T, e *testDB) {
		v := values[e.d.Name()]
		e.exec(t, v.ddl)
		e.exec(t, v.insert...)
		tbl, err := e.d.ReadTable(context.Background(), e.db, schema.TableName{Name: "vals"})
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, c := range tbl.Columns {
			if c.Name != "id" {
				cols = append(cols, "      - name: "+c.Name)
			}
		}
		for _, s := range settings {
			t.Run(strings.ReplaceAll(strings.Split(s, "\n")[0]+strings.Split(s, "\n")[1], " ", ""), func(t *testing.T) {
				r := e.analyze(t, "defaults:\n  "+s+"\ntables:\n  - name: vals\n    columns:\n"+strings.Join(cols, "\n")+"\n")
				for _, c := range r.Tables[0].Columns {
					sum, longest, ivs := encryptAll(t, e, c)
					if c.BytesAfter != sum || c.MaxCiphertextBytes != longest || c.IVBytes != ivs {
						t.Errorf("%s: bytes after %d, max %d, iv %d; encrypting gives %d, %d, %d",
							c.Name, c.BytesAfter, c.MaxCiphertextBytes, c.IVBytes, sum, longest, ivs)
					}
				}
			})
		}
	})
}

// encryptAll reads every value of a column as the migration does (the
// codec's SelectExpr, then Encode), encrypts it, and sums the lengths.
func encryptAll(t *testing.T, e *testDB, c *ColumnReport) (sum, longest, ivs int64) {
	t.Helper()
	enc := newCipher(t, c.Plan.ColumnSettings)
	q := "SELECT " + c.Codec.SelectExpr(e.d.Quote(c.Name)) + " FROM vals"
	rows, err := e.db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			continue
		}
		plain, err := c.Codec.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		ct, iv, err := enc.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		sum += int64(len(ct))
		longest = max(longest, int64(len(ct)))
		ivs += int64(len(iv))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sum, longest, ivs
}

func newCipher(t testing.TB, s ColumnSettings) *cipher.Column {
	t.Helper()
	key := make([]byte, s.Suite.KeySize())
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	var columnIV []byte
	if s.IV == cipher.IVColumn && s.Suite != cipher.AEADAES256CBCHMACSHA256 {
		var err error
		if columnIV, err = cipher.NewColumnIV(s.Suite); err != nil {
			t.Fatal(err)
		}
	}
	c, err := cipher.NewColumn(cipher.Params{Suite: s.Suite, IV: s.IV, Versioned: s.Versioned}, map[uint16][]byte{1: key}, 1, columnIV)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// boundedCases are, per engine, declared types whose values have a
// bounded canonical length, with their most extreme values (as SQL
// literals).
var boundedCases = map[string][]struct {
	typ    string
	values []string
}{
	"postgres": {
		{"boolean", []string{"false", "true"}},
		{"smallint", []string{"-32768", "32767"}},
		{"integer", []string{"-2147483648", "2147483647"}},
		{"bigint", []string{"-9223372036854775808", "9223372036854775807"}},
		{"numeric(5,2)", []string{"-999.99", "'NaN'", "0.01"}},
		{"numeric(3,5)", []string{"-0.00999", "0.00001"}},
		{"numeric(3,-2)", []string{"-99900"}},
		{"numeric(38,0)", []string{"-" + strings.Repeat("9", 38)}},
		{"double precision", []string{"-2.2250738585072014e-308", "-1.7976931348623157e+308", "'-Infinity'", "'NaN'", "-5e-324", "-1.2345678901234567e-300"}},
		{"date", []string{"'5874897-12-31'", "'4714-11-24 BC'", "'-infinity'"}},
		{"time", []string{"'23:59:59.999999'", "'24:00:00'"}},
		{"time(3)", []string{"'23:59:59.999'"}},
		{"time with time zone", []string{"'23:59:59.999999-15:59:59'", "'00:00:00+15:59:59'"}},
		{"timestamp", []string{"'294276-12-31 23:59:59.999999'", "'4714-11-24 23:59:59.999999 BC'", "'-infinity'"}},
		{"timestamp with time zone", []string{"'294276-12-31 23:59:59.999999+00'", "'4714-11-24 23:59:59.999999+00 BC'", "'-infinity'"}},
		{"uuid", []string{"'ffffffff-ffff-ffff-ffff-ffffffffffff'"}},
		{"varchar(10)", []string{"repeat('𝄞', 10)", "repeat('x', 10)", "''"}},
		{"char(10)", []string{"repeat('𝄞', 10)", "''", "'a'"}},
	},
}

// TestNoValueExceedsItsColumn is SPEC §2's property: for every bounded
// type, the ciphertext column computed for it (CiphertextLen of the
// codec's MaxPlainBytes) holds the real ciphertext of its most extreme
// values, under every suite, versioned or not. It also checks that the
// length sizing computes in SQL (PlainLenExpr) is the length of the
// canonical encoding the migration encrypts.
func TestNoValueExceedsItsColumn(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		cases := boundedCases[e.d.Name()]
		if len(cases) == 0 {
			// SQLite enforces no declared length: a varchar(10) holds a
			// gigabyte, so no type is bounded and every ciphertext column
			// is an unbounded BLOB.
			e.exec(t, "CREATE TABLE b (v varchar(10), n integer)", "INSERT INTO b VALUES ('"+strings.Repeat("x", 1000)+"', 1)")
			tbl, err := e.d.ReadTable(context.Background(), e.db, schema.TableName{Name: "b"})
			if err != nil {
				t.Fatal(err)
			}
			for _, col := range tbl.Columns {
				codec, err := e.d.Codec(col)
				if err != nil {
					t.Fatal(err)
				}
				if codec.MaxPlainBytes() != 0 {
					t.Errorf("%s %s: MaxPlainBytes %d, but SQLite enforces no bound", col.Name, col.Declared, codec.MaxPlainBytes())
				}
			}
			return
		}
		for i, tc := range cases {
			t.Run(tc.typ, func(t *testing.T) {
				table := fmt.Sprintf("bounded_%d", i)
				e.exec(t, "CREATE TABLE "+table+" (v "+tc.typ+")")
				for _, v := range tc.values {
					e.exec(t, "INSERT INTO "+table+" (v) VALUES ("+v+")")
				}
				tbl, err := e.d.ReadTable(context.Background(), e.db, schema.TableName{Name: table})
				if err != nil {
					t.Fatal(err)
				}
				col := tbl.Column("v")
				codec, err := e.d.Codec(col)
				if err != nil {
					t.Fatal(err)
				}
				maxPlain := codec.MaxPlainBytes()
				if maxPlain <= 0 {
					t.Fatalf("%s: MaxPlainBytes %d, want a bound", col.Declared, maxPlain)
				}
				q := e.d.Quote("v")
				rows, err := e.db.QueryContext(context.Background(), "SELECT "+codec.SelectExpr(q)+", "+codec.PlainLenExpr(q)+" FROM "+table)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				for rows.Next() {
					var v any
					var sqlLen int64
					if err := rows.Scan(&v, &sqlLen); err != nil {
						t.Fatal(err)
					}
					plain, err := codec.Encode(v)
					if err != nil {
						t.Fatal(err)
					}
					if int64(len(plain)) != sqlLen {
						t.Errorf("%s %q: PlainLenExpr says %d bytes, the encoding has %d", col.Declared, plain, sqlLen, len(plain))
					}
					if int64(len(plain)) > maxPlain {
						t.Errorf("%s %q: %d bytes, over MaxPlainBytes %d", col.Declared, plain, len(plain), maxPlain)
					}
					for _, s := range cipher.Suites() {
						for _, versioned := range []bool{false, true} {
							settings := ColumnSettings{Suite: s, IV: cipher.IVField, Versioned: versioned}
							ct, _, err := newCipher(t, settings).Encrypt(plain)
							if err != nil {
								t.Fatal(err)
							}
							if room := cipher.CiphertextLen(s, versioned, int(maxPlain)); len(ct) > room {
								t.Errorf("%s %q under %s (versioned %v): %d-byte ciphertext, column sized for %d", col.Declared, plain, s, versioned, len(ct), room)
							}
						}
					}
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// BenchmarkAnalyze1M plans SPEC §8's table of 1,000,000 rows (id bigint
// PK, ssn char(11), email varchar(64) ~25 B, notes text ~200 B),
// encrypting email and ssn: one catalog read and one aggregate scan, for
// the plan's report and for apply's check (BlockersOnly).
// Run it with: go test ./planner -run '^$' -bench Analyze1M -benchtime 3x
func BenchmarkAnalyze1M(b *testing.B) {
	const rows = 1_000_000
	for _, eng := range engines {
		b.Run(eng.name, func(b *testing.B) {
			e := eng.open(b)
			exprs := map[string][3]string{
				"sqlite":   {"printf('%011d', i)", "'user' || i || '@example.com'", "printf('%.200c', 'n')"},
				"postgres": {"lpad(i::text, 11, '0')", "'user' || i || '@example.com'", "repeat('n', 200)"},
			}[eng.name]
			e.exec(b, "CREATE TABLE bench (id bigint PRIMARY KEY, ssn char(11), email varchar(64), notes text)",
				fmt.Sprintf("INSERT INTO bench SELECT i, %s, %s, %s FROM (%s) AS s", exprs[0], exprs[1], exprs[2], e.series(rows)))
			if eng.name == "postgres" {
				e.exec(b, "VACUUM ANALYZE bench")
			}
			p := e.plan(b, "tables:\n  - name: bench\n    columns:\n      - name: email\n      - name: ssn\n        iv: column\n")
			ctx := context.Background()
			for _, blockersOnly := range []bool{false, true} {
				b.Run(map[bool]string{false: "report", true: "blockers-only"}[blockersOnly], func(b *testing.B) {
					for b.Loop() {
						r, err := Analyze(ctx, p, e.d, e.db, Options{BlockersOnly: blockersOnly})
						if err != nil {
							b.Fatal(err)
						}
						if r.Tables[0].Rows != rows {
							b.Fatalf("rows %d", r.Tables[0].Rows)
						}
					}
				})
			}
		})
	}
}

// TestSQLServerSizingQueryParses builds the sizing query of a SQL Server
// table (no SQL Server runs where the tests run) and puts it through a real
// T-SQL grammar: CBC and AEAD suites, a keyless table, an unsupported
// column, LOB types, and names that need quoting.
func TestSQLServerSizingQueryParses(t *testing.T) {
	d := sqlServer(t)
	tbl := customers()
	tbl.Name = schema.TableName{Schema: "dbo", Name: "odd ]name"}
	tbl.PrimaryKey = nil
	tbl.Columns = append(tbl.Columns, mssqlCol("notes", "ntext"), mssqlCol("score", "real"), mssqlCol("we]ird col", "nvarchar(max)"))
	cols := []ColumnPlan{
		planCol("ssn", withSuite(cipher.TripleDESCBC), func(c *ColumnPlan) { c.Versioned = false }),
		planCol("notes"),
		planCol("score"),
		planCol("we]ird col", withSuite(cipher.AES256CBC), ivColumn),
	}
	p, targets := targetsOf(fixture{tbl, cols})
	tr := newTableReport(&targets[0], d)
	q := sizingQuery(d, tr, true, p.Job.LargeObjectLimit, false)
	if errs := tsqlErrors(q); len(errs) > 0 {
		t.Fatalf("sizing query is not valid T-SQL:\n%s\n%s", q, strings.Join(errs, "\n"))
	}
	for _, want := range []string{"FROM [dbo].[odd ]]name]", "DATALENGTH([we]]ird col])", "> 8060", "> 2147483647", "UNION ALL SELECT NULL"} {
		if !strings.Contains(q, want) {
			t.Errorf("sizing query lacks %q:\n%s", want, q)
		}
	}
	// The control: the grammar does reject a broken query.
	if errs := tsqlErrors("SELECT CAST(SUM(a) AS BIGINT FROM (SELECT a FROM t UNION ALL SELECT NULL WHERE 1 = 0) AS x"); len(errs) == 0 {
		t.Error("the T-SQL grammar accepted a broken query")
	}
}

// tsqlErrors parses text as T-SQL and returns its syntax errors.
func tsqlErrors(text string) []string {
	errs := &syntaxErrors{DefaultErrorListener: antlr.NewDefaultErrorListener()}
	lexer := tsqlparser.NewTSqlLexer(antlr.NewInputStream(text))
	lexer.RemoveErrorListeners()
	lexer.AddErrorListener(errs)
	p := tsqlparser.NewTSqlParser(antlr.NewCommonTokenStream(lexer, antlr.TokenDefaultChannel))
	p.RemoveErrorListeners()
	p.AddErrorListener(errs)
	p.Tsql_file()
	return errs.errs
}

type syntaxErrors struct {
	*antlr.DefaultErrorListener
	errs []string
}

func (l *syntaxErrors) SyntaxError(_ antlr.Recognizer, _ any, line, column int, msg string, _ antlr.RecognitionException) {
	l.errs = append(l.errs, fmt.Sprintf("line %d:%d: %s", line, column, msg))
}

// TestSQLServerRowLimitCountsInRowBytes runs the SQL Server sizing query
// on rows shaped as SQL Server stores them, on SQLite (no SQL Server runs
// here): the query's T-SQL-only spellings are rewritten (VARBINARY(MAX)
// to BLOB, [dbo]. dropped) and DATALENGTH is a function giving a blob's or
// text's byte length, which every fixture value is stored as. A MAX value
// over 8000 bytes lives off-row behind a 24-byte pointer, so it neither
// blocks its row nor counts in full in the longest row; its bytes still
// count in the table's bytes now. Fixed-size columns and a short
// ciphertext still count in full, and such rows still block.
func TestSQLServerRowLimitCountsInRowBytes(t *testing.T) {
	d := sqlServer(t)
	db := sqlServerRowsOnSQLite(t)
	id := func() *schema.Column { c := mssqlCol("id", "int"); c.Nullable = false; return c }
	ct := func(n int) int64 { return int64(cipher.CiphertextLen(DefaultSuite, true, n)) }
	tests := []struct {
		name    string
		table   *schema.Table
		ddl     string
		insert  string
		planned []string
		// longest row now, during; rows over 8060 during; bytes now
		now, during, offending, bytesNow int64
	}{{
		name:  "20,000-byte nvarchar(max) value, small planned column",
		table: &schema.Table{Name: schema.TableName{Schema: "dbo", Name: "docs"}, Columns: []*schema.Column{id(), mssqlCol("ssn", "char(11)"), mssqlCol("body", "nvarchar(max)")}},
		ddl:   "CREATE TABLE docs (id, ssn, body)",
		// DATALENGTH of a 10,000-character nvarchar(max) value is 20,000.
		insert:  "INSERT INTO docs VALUES (x'00000001', '123-45-6789', zeroblob(20000)), (x'00000002', '987-65-4321', zeroblob(100))",
		planned: []string{"ssn"},
		now:     4 + 11 + 100, during: 4 + 11 + 100 + ct(11), offending: 0,
		bytesNow: 2*(4+11) + 20_000 + 100,
	}, {
		name:    "the nvarchar(max) column planned: its VARBINARY(MAX) ciphertext is off-row too",
		table:   &schema.Table{Name: schema.TableName{Schema: "dbo", Name: "docs"}, Columns: []*schema.Column{id(), mssqlCol("ssn", "char(11)"), mssqlCol("body", "nvarchar(max)")}},
		planned: []string{"ssn", "body"},
		now:     4 + 11 + 100, during: 4 + 11 + 100 + ct(11) + ct(100), offending: 0,
		bytesNow: 2*(4+11) + 20_000 + 100,
	}, {
		name:  "fixed columns and ciphertext over 8060 in-row",
		table: &schema.Table{Name: schema.TableName{Schema: "dbo", Name: "wide"}, Columns: []*schema.Column{id(), mssqlCol("pad", "char(8000)"), mssqlCol("ssn", "char(40)"), mssqlCol("body", "nvarchar(max)")}},
		ddl:   "CREATE TABLE wide (id, pad, ssn, body)",
		insert: "INSERT INTO wide VALUES (x'00000001', zeroblob(8000), zeroblob(40), zeroblob(30000))," +
			" (x'00000002', zeroblob(8000), zeroblob(40), NULL), (x'00000003', zeroblob(8000), NULL, NULL)",
		planned: []string{"ssn"},
		now:     4 + 8000 + 40 + 24, during: 4 + 8000 + 40 + 24 + ct(40), offending: 2,
		bytesNow: 3*(4+8000) + 2*40 + 30_000,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ddl != "" {
				if _, err := db.Exec(tc.ddl); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(tc.insert); err != nil {
					t.Fatal(err)
				}
			}
			var cols []ColumnPlan
			for _, name := range tc.planned {
				cols = append(cols, planCol(name))
			}
			tc.table.PrimaryKey = &schema.Index{Name: "pk", Columns: []string{"id"}, Unique: true, Primary: true, Constraint: true}
			p, targets := targetsOf(fixture{tc.table, cols})
			tr := newTableReport(&targets[0], d)
			q := sizingQuery(d, tr, true, p.Job.LargeObjectLimit, false)
			if errs := tsqlErrors(q); len(errs) > 0 {
				t.Fatalf("sizing query is not valid T-SQL:\n%s\n%s", q, strings.Join(errs, "\n"))
			}
			q = strings.ReplaceAll(strings.ReplaceAll(q, "VARBINARY(MAX)", "BLOB"), "[dbo].", "")
			vals, err := scanInts(context.Background(), db, q, tableFields+columnFields*len(tr.Columns))
			if err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
			tr.BytesNow, tr.MaxRowBytesNow, tr.MaxRowBytesDuring, tr.OffendingRows = vals[1].Int64, vals[2].Int64, vals[4].Int64, vals[5].Int64
			if got, want := [4]int64{tr.MaxRowBytesNow, tr.MaxRowBytesDuring, tr.OffendingRows, tr.BytesNow},
				[4]int64{tc.now, tc.during, tc.offending, tc.bytesNow}; got != want {
				t.Errorf("longest row now, during, rows over 8060, bytes now = %v, want %v", got, want)
			}
			fs := CheckSizing(tr, d.Limits(), p.Job.LargeObjectLimit)
			if tc.offending == 0 {
				requireNoRule(t, fs, RuleRowSize)
			} else {
				requireFinding(t, fs, want{SeverityBlocker, RuleRowSize, tr.Name, "", fmt.Sprintf("%d rows of %s would exceed", tc.offending, tr.Name)})
			}
		})
	}
}

var registerDataLength sync.Once

// sqlServerRowsOnSQLite opens an SQLite database with DATALENGTH, the byte
// length of a blob or text, as SQL Server's DATALENGTH is of its values.
func sqlServerRowsOnSQLite(t *testing.T) *sql.DB {
	t.Helper()
	registerDataLength.Do(func() {
		err := sqlitedrv.RegisterDeterministicScalarFunction("datalength", 1, func(_ *sqlitedrv.FunctionContext, args []driver.Value) (driver.Value, error) {
			switch v := args[0].(type) {
			case nil:
				return nil, nil
			case []byte:
				return int64(len(v)), nil
			case string:
				return int64(len(v)), nil
			}
			return nil, fmt.Errorf("DATALENGTH of %T: the fixture stores blobs and text only", args[0])
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	t.Cleanup(func() { db.Close() })
	return db
}
