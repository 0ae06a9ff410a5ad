package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// TestBulkUpdateChunk writes a chunk through both of BulkUpdate's paths
// (one statement for the chunk, one per row for a handful) on tables keyed
// every way SQLite allows, with keys read the way the migration engine
// reads them. Only the chunk's rows may change, each to its own values.
func TestBulkUpdateChunk(t *testing.T) {
	cases := []struct {
		name   string
		create string // a table t with a column src and columns ct, iv
		key    []string
		// fill gives the key values of row i (the src is "v<i>").
		fill func(i int) []any
	}{
		{"integer primary key", `CREATE TABLE t (id INTEGER PRIMARY KEY, src TEXT, ct BLOB, iv BLOB)`,
			[]string{"id"}, func(i int) []any { return []any{int64(i*1_000_003 - 400_000)} }},
		{"rowid", `CREATE TABLE t (src TEXT, ct BLOB, iv BLOB)`,
			[]string{"rowid"}, nil},
		{"text nocase", `CREATE TABLE t (k TEXT COLLATE NOCASE PRIMARY KEY, src TEXT, ct BLOB, iv BLOB)`,
			[]string{"k"}, func(i int) []any { return []any{fmt.Sprintf("Kéy '%d\" %s", i, strings.Repeat("x", i%7))} }},
		{"untyped, every storage class", `CREATE TABLE t (k PRIMARY KEY, src TEXT, ct BLOB, iv BLOB)`,
			[]string{"k"}, func(i int) []any {
				switch i % 4 {
				case 0:
					return []any{int64(i)}
				case 1:
					return []any{float64(i) + 0.5}
				case 2:
					return []any{fmt.Sprint(i - 2)} // the text of an integer key above
				}
				return []any{[]byte(fmt.Sprint(i - 3))} // the same digits as a blob
			}},
		{"composite without rowid", `CREATE TABLE t (a INTEGER, b TEXT, src TEXT, ct BLOB, iv BLOB, PRIMARY KEY (a, b)) WITHOUT ROWID`,
			[]string{"a", "b"}, func(i int) []any { return []any{int64(i % 3), fmt.Sprintf("b%04d", i)} }},
	}
	for _, tc := range cases {
		for _, n := range []int{bulkMinRows + 300, 20} {
			t.Run(fmt.Sprintf("%s/%d rows", tc.name, n), func(t *testing.T) {
				d, db := Dialect{}, openTemp(t)
				ctx := t.Context()
				mustExec(t, db, tc.create)
				for i := range n {
					src := any(fmt.Sprintf("v%d", i))
					if i%10 == 3 {
						src = nil // NULL stays NULL
					}
					if tc.fill == nil {
						mustExec(t, db, `INSERT INTO t (src) VALUES (?)`, src)
						continue
					}
					cols := append(append([]string{}, tc.key...), "src")
					mustExec(t, db, `INSERT INTO t (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Repeat("?, ", len(tc.key))+`?)`,
						append(tc.fill(i), src)...)
				}
				var sel []string
				for _, k := range tc.key {
					sel = append(sel, d.KeySelect(d.keyExpr(k)))
				}
				order := strings.Join(tc.key, ", ")
				read := queryAll(t, db, "SELECT "+strings.Join(sel, ", ")+", src FROM t ORDER BY "+order)
				// The chunk: every row but the middle one.
				skip := len(read) / 2
				nk := len(tc.key)
				var chunk [][]any
				for i, r := range read {
					if i == skip {
						continue
					}
					row := append([]any{}, r[:nk]...)
					if src, ok := r[nk].(string); ok {
						row = append(row, []byte("ct:"+src), []byte{0, 1, 2})
					} else {
						row = append(row, nil, nil)
					}
					chunk = append(chunk, row)
				}
				u := dialect.Update{Table: schema.TableName{Name: "t"}, Key: tc.key, Set: []string{"ct", "iv"}, Rows: chunk}
				if nk == 1 {
					u.Lo, u.Hi = []any{read[0][0]}, []any{read[len(read)-1][0]}
					// Lo is exclusive: the first row is outside the range,
					// so it leaves the chunk too.
					chunk = chunk[1:]
					u.Rows = chunk
				}
				for range 2 { // twice, as a retried chunk does
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := d.BulkUpdate(ctx, tx, u); err != nil {
						tx.Rollback()
						t.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				}
				var wrong, untouched, written int
				if err := db.QueryRowContext(ctx, `SELECT
					count(*) FILTER (WHERE ct IS NOT CAST('ct:' || src AS BLOB) OR iv IS NOT CASE WHEN src IS NOT NULL THEN x'000102' END),
					count(*) FILTER (WHERE ct IS NULL AND iv IS NULL AND src IS NOT NULL),
					count(*) FILTER (WHERE ct IS NOT NULL)
					FROM t`).Scan(&wrong, &untouched, &written); err != nil {
					t.Fatal(err)
				}
				outside := len(read) - len(chunk)
				if wrong != outside || untouched != outside {
					t.Errorf("%d rows differ and %d untouched (%d written), want only the %d rows outside the chunk", wrong, untouched, written, outside)
				}
			})
		}
	}
}

// TestBulkUpdateChunkGuard: a row whose guard column changed since it was
// read keeps its old values; SetExpr wraps the value written.
func TestBulkUpdateChunkGuard(t *testing.T) {
	d, db := Dialect{}, openTemp(t)
	ctx := t.Context()
	mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, src TEXT, out TEXT, ver INTEGER NOT NULL DEFAULT 0, enc_ver INTEGER)`)
	mustExec(t, db, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000) INSERT INTO t (id, src, ver) SELECT i, 'v' || i, i % 5 FROM s`)
	read := queryAll(t, db, `SELECT id, src, ver FROM t ORDER BY id`)
	// Another writer changes row 500 after the read.
	mustExec(t, db, `UPDATE t SET src = 'changed', ver = ver + 1 WHERE id = 500`)
	var rows [][]any
	for _, r := range read {
		rows = append(rows, []any{r[0], r[1], r[2], r[2]})
	}
	u := dialect.Update{Table: schema.TableName{Name: "t"}, Key: []string{"id"}, Set: []string{"out", "enc_ver"}, Guard: "ver", Rows: rows,
		SetExpr: []func(string) string{func(e string) string { return "upper(" + e + ")" }}}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.BulkUpdate(ctx, tx, u); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var wrong int
	var out500 sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE id <> 500 AND (out IS NOT upper(src) OR enc_ver IS NOT ver)`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT out FROM t WHERE id = 500`).Scan(&out500); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || out500.Valid {
		t.Errorf("%d guarded rows wrong; row 500 (changed after the read) got %v, want it left alone", wrong, out500)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func queryAll(t *testing.T, db *sql.DB, q string) [][]any {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out [][]any
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeyValuesRefusesTime: the driver binds a time.Time as text, so SQLite
// would hand the functions a string that matches no key; such a chunk goes
// through the per-row path instead.
func TestKeyValuesRefusesTime(t *testing.T) {
	if _, ok, err := keyValues([]any{int64(1), time.Now()}); ok || err != nil {
		t.Errorf("keyValues(time.Time) = ok %v, err %v; want not ok, no error", ok, err)
	}
	vals, ok, err := keyValues([]any{int64(1), "a", []byte("b"), 1.5, nil, true})
	if !ok || err != nil || len(vals) != 6 {
		t.Errorf("keyValues(basic values) = %v, %v, %v", vals, ok, err)
	}
}

// TestBulkChunkFind: a chunk's rows are found by their key values exactly,
// storage class included, whether SQLite asks for them in the chunk's
// order (the cursor), out of it, or for a key the chunk does not hold.
func TestBulkChunkFind(t *testing.T) {
	keys := [][]any{{int64(5)}, {"5"}, {[]byte("5")}, {5.0}, {true}, {nil}, {int64(7)}}
	u := dialect.Update{Table: schema.TableName{Name: "t"}, Key: []string{"k"}, Set: []string{"ct"}}
	for i, k := range keys {
		u.Rows = append(u.Rows, append(k, fmt.Sprint("row ", i)))
	}
	c, ok, err := newBulkChunk(u)
	if !ok || err != nil {
		t.Fatalf("newBulkChunk = %v, %v", ok, err)
	}
	// As SQLite hands them to the functions: a boolean as an integer.
	asked := []driver.Value{int64(5), "5", []byte("5"), 5.0, int64(1), nil, int64(7)}
	order := []int{0, 1, 2, 3, 4, 5, 6, 6, 3, 0, 5, 1, 4, 2}
	for _, i := range order {
		r, ok := c.find([]driver.Value{asked[i]})
		if want := fmt.Sprint("row ", i); !ok || r.set[0] != want {
			t.Errorf("find(%#v) = %v, %v; want %q", asked[i], r.set, ok, want)
		}
	}
	for _, k := range []driver.Value{int64(6), "7", []byte("7"), 7.0, int64(0), int64(2)} {
		if r, ok := c.find([]driver.Value{k}); ok {
			t.Errorf("find(%#v) = %v; want no row", k, r.set)
		}
	}
	if _, ok := c.find([]driver.Value{int64(5), int64(5)}); ok {
		t.Error("find with two key values in a chunk keyed by one found a row")
	}
}
