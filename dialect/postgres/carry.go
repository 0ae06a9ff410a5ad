package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/colcrypt/colcrypt/dialect"
)

var _ dialect.Carrier = Dialect{}

// An offline job's chunk reads, with the key and the planned columns, every
// other column of the table in one value per row, record_send(ROW(id,
// ssn, notes)): the row's columns in binary, each as its type's send
// function gives it. The chunk's rows then go into the replacement with
// one COPY ... (FORMAT binary): each carried value goes back exactly as
// the server sent it, through the same type's receive function, so no
// column's type needs to be known to the client, and the client holds one
// value per row for all of them. Against an INSERT ... SELECT joining the
// table to the chunk's values, the table is read once instead of twice
// and COPY inserts rows in batches. A column of a type without binary
// send or receive functions, or made of one (an array's elements, a
// composite's fields, a domain's or range's base), keeps the join
// (CarryExprs gives nil).

// carryColumnsSQL gives, for each column of a table, whether its type and
// every type it is made of have binary send and receive functions.
const carryColumnsSQL = `WITH RECURSIVE ty(col, oid) AS (
	SELECT a.attname, a.atttypid FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
UNION
	SELECT ty.col, part.oid FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
	CROSS JOIN LATERAL (
		SELECT t.typelem WHERE t.typelem <> 0
		UNION ALL SELECT t.typbasetype WHERE t.typbasetype <> 0
		UNION ALL SELECT f.atttypid FROM pg_catalog.pg_attribute f
			WHERE t.typrelid <> 0 AND f.attrelid = t.typrelid AND f.attnum > 0 AND NOT f.attisdropped
		UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid
		UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = t.oid
	) AS part(oid)
)
SELECT ty.col, bool_and(t.typsend <> 0 AND t.typreceive <> 0)
FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
GROUP BY ty.col`

// CarryExprs implements dialect.Carrier.
func (d Dialect) CarryExprs(ctx context.Context, db *sql.DB, ts dialect.TableSwap, set []string) ([]string, error) {
	cols, from, err := dialect.RebuiltColumns(ts, set, func(name string) string { return name })
	if err != nil {
		return nil, err
	}
	binaryIO := map[string]bool{}
	rows, err := db.QueryContext(ctx, carryColumnsSQL, d.QuoteTable(ts.Table.Name))
	if err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ok bool
		if err := rows.Scan(&name, &ok); err != nil {
			return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
		}
		binaryIO[name] = ok
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
	}
	var carried []string
	for k, col := range cols {
		if from[k] >= 0 {
			continue
		}
		if !binaryIO[col] {
			return nil, nil // a type without binary input and output: join
		}
		carried = append(carried, d.Quote(col))
	}
	if len(carried) == 0 {
		return nil, nil
	}
	return []string{"pg_catalog.record_send(ROW(" + strings.Join(carried, ", ") + "))"}, nil
}

// copyRebuilt writes a chunk's rows whole into the replacement with one
// COPY in binary: the carried columns first, as record_send gave them,
// then the written columns' values (ciphertexts and IVs, bytea) as they
// are.
func (d Dialect) copyRebuilt(ctx context.Context, tx dialect.RawQuerier, ts dialect.TableSwap, u dialect.Update) (int64, error) {
	cols, from, err := dialect.RebuiltColumns(ts, u.Set, func(name string) string { return name })
	if err != nil {
		return 0, err
	}
	if len(u.Carry) != len(u.Rows) {
		return 0, fmt.Errorf("%d rows carry values, want %d", len(u.Carry), len(u.Rows))
	}
	var list []string
	for k, col := range cols {
		if from[k] < 0 {
			list = append(list, d.Quote(col))
		}
	}
	size := len(copyBinaryHeader) + 2
	for _, col := range u.Set {
		list = append(list, d.Quote(col))
	}
	nk := len(u.Key)
	for i, row := range u.Rows {
		if len(row) != nk+len(u.Set) || len(u.Carry[i]) != 1 {
			return 0, fmt.Errorf("row %d has %d values and %d carried, want %d and 1", i+1, len(row), len(u.Carry[i]), nk+len(u.Set))
		}
		size += 2 + 4*len(u.Set) + len(binaryOf(u.Carry[i][0]))
		for _, v := range row[nk:] {
			size += len(binaryOf(v))
		}
	}
	pooled := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(pooled)
	if cap(*pooled) < size {
		*pooled = make([]byte, 0, size)
	}
	buf := append((*pooled)[:0], copyBinaryHeader...)
	for i, row := range u.Rows {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(list)))
		if buf, err = appendRecordFields(buf, u.Carry[i][0], len(list)-len(u.Set)); err != nil {
			return 0, fmt.Errorf("row %d: %w", i+1, err)
		}
		for j, v := range row[nk:] {
			switch x := v.(type) {
			case nil:
				buf = binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF) // NULL
			case []byte:
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(x)))
				buf = append(buf, x...)
			default:
				return 0, fmt.Errorf("column %s: a value of type %T cannot be copied in binary", u.Set[j], v)
			}
		}
	}
	buf = append(buf, 0xFF, 0xFF) // the trailer: a tuple of -1 fields
	*pooled = buf
	copySQL := "COPY " + d.QuoteTable(d.RebuildName(u.Table)) + " (" + strings.Join(list, ", ") + ") FROM STDIN (FORMAT binary)"
	var n int64
	err = tx.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("the connection is a %T, not pgx's", dc)
		}
		tag, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), copySQL)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// copyBuffers keeps the chunks' COPY streams, about ChunkBytes each, for
// the next chunks: a new one for every chunk cost the copy's client a
// fresh, zeroed allocation each time.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// appendRecordFields appends the n fields of a record in record_send's
// binary form (a field count, then each field's type OID, length or -1
// for NULL, and bytes) as COPY's binary format has them: the length and
// bytes.
func appendRecordFields(buf []byte, v any, n int) ([]byte, error) {
	rec, ok := v.([]byte)
	if !ok || len(rec) < 4 || int(binary.BigEndian.Uint32(rec)) != n {
		return buf, fmt.Errorf("the carried columns are not a record of %d fields", n)
	}
	at := 4
	for range n {
		if len(rec) < at+8 {
			return buf, fmt.Errorf("the carried record ends early")
		}
		size := int32(binary.BigEndian.Uint32(rec[at+4:]))
		end := at + 8 + max(int(size), 0)
		if len(rec) < end {
			return buf, fmt.Errorf("the carried record ends early")
		}
		buf = append(buf, rec[at+4:end]...) // the length (or -1) and the bytes
		at = end
	}
	if at != len(rec) {
		return buf, fmt.Errorf("the carried record has %d bytes past its fields", len(rec)-at)
	}
	return buf, nil
}

// binaryOf is a value's bytes, nil for any other type.
func binaryOf(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// copyBinaryHeader opens a COPY stream in binary: the signature, no flags,
// no header extension.
const copyBinaryHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
