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
// other column of the table in binary, each through its type's send
// function (pg_catalog.int8send(id), pg_catalog.textsend(notes)): the bytes
// that type's receive function takes back. The chunk's rows then go into
// the replacement with one COPY ... (FORMAT binary): each carried value
// goes back exactly as the server sent it, so no column's type needs to be
// known to the client. Against an INSERT ... SELECT joining the table to
// the chunk's values, the table is read once instead of twice and COPY
// inserts rows in batches. The columns are sent one by one, not as one
// record_send(ROW(...)) per row: building and sending the record took the
// server about twice as long (on 1M rows of SPEC §8's table, 1.6 s against
// 0.5-0.8 s in a COPY ... TO of the same SELECT). A column of a type
// without binary send or receive functions, or made of one (an array's
// elements, a composite's fields, a domain's or range's base), keeps the
// join (CarryExprs gives nil).

// carryColumnsSQL gives, for each column of a table, whether its type and
// every type it is made of have binary send and receive functions, and
// its type's send function, schema-qualified and quoted (a domain's is its
// base type's).
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
SELECT ty.col, bool_and(t.typsend <> 0 AND t.typreceive <> 0),
	(SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname)
	 FROM pg_catalog.pg_attribute a
	 JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
	 JOIN pg_catalog.pg_proc p ON p.oid = at.typsend
	 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	 WHERE a.attrelid = to_regclass($1) AND a.attname = ty.col)
FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
GROUP BY ty.col`

// CarryExprs implements dialect.Carrier.
func (d Dialect) CarryExprs(ctx context.Context, db *sql.DB, ts dialect.TableSwap, set []string) ([]string, error) {
	cols, from, err := dialect.RebuiltColumns(ts, set, func(name string) string { return name })
	if err != nil {
		return nil, err
	}
	binaryIO := map[string]bool{}
	send := map[string]string{}
	rows, err := db.QueryContext(ctx, carryColumnsSQL, d.QuoteTable(ts.Table.Name))
	if err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ok bool
		var fn sql.NullString
		if err := rows.Scan(&name, &ok, &fn); err != nil {
			return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
		}
		binaryIO[name] = ok && fn.Valid
		send[name] = fn.String
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
		carried = append(carried, send[col]+"("+d.Quote(col)+")")
	}
	return carried, nil
}

// copyRebuilt writes a chunk's rows whole into the replacement with one
// COPY in binary: the carried columns first, as their send functions gave
// them, then the written columns' values (ciphertexts and IVs, bytea): every
// field is bytes or NULL.
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
	nc := len(list)
	size := len(copyBinaryHeader) + 2
	for _, col := range u.Set {
		list = append(list, d.Quote(col))
	}
	nk := len(u.Key)
	for i, row := range u.Rows {
		if len(row) != nk+len(u.Set) || len(u.Carry[i]) != nc {
			return 0, fmt.Errorf("row %d has %d values and %d carried, want %d and %d", i+1, len(row), len(u.Carry[i]), nk+len(u.Set), nc)
		}
		size += 2 + 4*len(list)
		for _, v := range u.Carry[i] {
			size += len(binaryOf(v))
		}
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
		for j, v := range u.Carry[i] {
			if buf, err = appendField(buf, v); err != nil {
				return 0, fmt.Errorf("row %d, column %s: %w", i+1, list[j], err)
			}
		}
		for j, v := range row[nk:] {
			if buf, err = appendField(buf, v); err != nil {
				return 0, fmt.Errorf("row %d, column %s: %w", i+1, u.Set[j], err)
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

// appendField appends one field of COPY's binary format: the length and
// the bytes, or -1 for NULL.
func appendField(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF), nil
	case []byte:
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(x)))
		return append(buf, x...), nil
	default:
		return buf, fmt.Errorf("a value of type %T cannot be copied in binary", v)
	}
}

// binaryOf is a value's bytes, nil for any other type.
func binaryOf(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// copyBinaryHeader opens a COPY stream in binary: the signature, no flags,
// no header extension.
const copyBinaryHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
