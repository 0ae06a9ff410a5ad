package postgres_test

import (
	"testing"
)

// TestStoredLenExprCountsValueBytes: the bytes now of a value are its own
// bytes, as SQL Server's DATALENGTH and SQLite's length() count them and
// as the ciphertext's are counted after (SPEC §2: a 50-byte column of
// 10,000 rows is 500,000 bytes), not pg_column_size's, which adds the
// varlena header. char(n) counts its pad spaces, which it stores.
func TestStoredLenExprCountsValueBytes(t *testing.T) {
	t.Parallel()
	d, db := openDB(t,
		`CREATE TABLE sl (c char(50), v varchar(64), x text, b bytea, j json, n int4, big text)`,
		`INSERT INTO sl VALUES ('ab', 'héllo', repeat('x', 50), '\x00ff', '{"a": 1}', 7, repeat('y', 5000))`,
	)
	tb := readTable(t, d, db, "sl")
	want := map[string]int64{"c": 50, "v": 6, "x": 50, "b": 2, "j": 8, "n": 4, "big": 5000}
	for _, col := range tb.Columns {
		var got int64
		q := "SELECT " + d.StoredLenExpr(col, d.Quote(col.Name)) + " FROM sl"
		if err := db.QueryRowContext(t.Context(), q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != want[col.Name] {
			t.Errorf("%s (%s): %d bytes, want %d", col.Name, col.Declared, got, want[col.Name])
		}
	}
}
