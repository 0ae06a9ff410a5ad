package migrate

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	_ "modernc.org/sqlite"
)

// TestScanRowsKeepsEveryRowsValues reads rows whose values share the
// scanner's blocks and slabs, keeps them all, and then checks each one: a
// value overwritten by a later row, a NULL turned empty or an empty value
// turned NULL would each show.
func TestScanRowsKeepsEveryRowsValues(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "scan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE r (id INTEGER PRIMARY KEY, b BLOB, s TEXT)"); err != nil {
		t.Fatal(err)
	}
	// Enough rows to fill several blocks and slabs, with values from empty
	// to larger than a block piece (scanOwnBytes), and NULLs.
	const n = 2000
	want := func(i int) (b []byte, s any) {
		switch i % 5 {
		case 0:
			return nil, nil
		case 1:
			return []byte{}, ""
		}
		return bytes.Repeat([]byte{byte(i)}, (i*37)%(scanOwnBytes+500)+1), fmt.Sprint("text ", i)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b, s := want(i)
		if _, err := tx.ExecContext(ctx, "INSERT INTO r VALUES (?, ?, ?)", i, b, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	err = scanRows(ctx, db, "read r", "SELECT id, b, s FROM r ORDER BY id", nil, 3, func(vals []any) error {
		rows = append(rows, vals)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("read %d rows, want %d", len(rows), n)
	}
	// The same rows as database/sql gives them to an *any, read again.
	plain, err := db.QueryContext(ctx, "SELECT id, b, s FROM r ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for i := 0; plain.Next(); i++ {
		ref := make([]any, 3)
		if err := plain.Scan(&ref[0], &ref[1], &ref[2]); err != nil {
			t.Fatal(err)
		}
		vals := rows[i]
		if b, s := want(i); vals[0] != int64(i) || !bytes.Equal(asBytes(vals[1]), b) || vals[2] != s {
			t.Fatalf("row %d holds %#v, want id %d, a blob of %d bytes and %#v", i, vals, i, len(b), s)
		}
		if !reflect.DeepEqual(vals, ref) {
			t.Fatalf("row %d: %#v, but database/sql gives %#v", i, vals, ref)
		}
		// NULL stays apart from empty (which this driver gives as an empty
		// []byte, nil or not).
		if (vals[1] == nil) != (i%5 == 0) {
			t.Fatalf("row %d: blob %#v", i, vals[1])
		}
	}
	if err := plain.Err(); err != nil {
		t.Fatal(err)
	}
	// A value appended to must not run into the next row's.
	first := rows[2][1].([]byte)
	_ = append(first, 0xEE)
	if b, _ := want(3); !bytes.Equal(rows[3][1].([]byte), b) {
		t.Fatal("appending to one row's value changed the next row's")
	}
}

func asBytes(v any) []byte {
	b, _ := v.([]byte)
	return b
}
