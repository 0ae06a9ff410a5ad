package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/colcrypt/colcrypt/dialect"
)

var _ dialect.Carrier = Dialect{}

// An offline job's chunk reads, with the key and the planned columns, every
// other column of the table in one value per row: each column's value
// through its type's binary send function (int8send(id), textsend(notes),
// ...), framed as a field of COPY's binary format by the server (its
// length, or -1 for NULL). The chunk's rows then go into the replacement
// with one COPY ... (FORMAT binary): each carried value goes back exactly
// as the server sent it, through the same type's receive function, so no
// column's type needs to be known to the client, and the client holds one
// value per row for all of them. Against an INSERT ... SELECT joining the
// table to the chunk's values, the table is read once instead of twice
// and COPY inserts rows in batches. A type without binary send or receive
// functions keeps the join (CarryExprs gives nil).

// carryColumnsSQL lists a table's columns with their types' binary send
// function, schema-qualified, or NULL where the type has no binary send
// or receive function.
const carryColumnsSQL = `SELECT a.attname, n.nspname, p.proname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_proc p ON p.oid = t.typsend AND t.typreceive <> 0
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`

// CarryExprs implements dialect.Carrier.
func (d Dialect) CarryExprs(ctx context.Context, db *sql.DB, ts dialect.TableSwap, set []string) ([]string, error) {
	cols, from, err := dialect.RebuiltColumns(ts, set, func(name string) string { return name })
	if err != nil {
		return nil, err
	}
	send := map[string]string{}
	rows, err := db.QueryContext(ctx, carryColumnsSQL, d.QuoteTable(ts.Table.Name))
	if err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var nsp, fn sql.NullString
		if err := rows.Scan(&name, &nsp, &fn); err != nil {
			return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
		}
		if fn.Valid {
			send[name] = d.Quote(nsp.String) + "." + d.Quote(fn.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the column types of %s: %w", ts.Table.Name, err)
	}
	var fields []string
	for k, col := range cols {
		if from[k] >= 0 {
			continue
		}
		f, ok := send[col]
		if !ok {
			return nil, nil // a type without binary input and output: join
		}
		v := f + "(" + d.Quote(col) + ")"
		fields = append(fields, "COALESCE(pg_catalog.int4send(pg_catalog.octet_length("+v+")) || "+v+", pg_catalog.int4send(-1))")
	}
	if len(fields) == 0 {
		return nil, nil
	}
	return []string{strings.Join(fields, " || ")}, nil
}

// copyRebuilt writes a chunk's rows whole into the replacement with one
// COPY in binary: the carried columns first, as the server framed them,
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
	buf := make([]byte, 0, size)
	buf = append(buf, copyBinaryHeader...)
	for i, row := range u.Rows {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(list)))
		carried, ok := u.Carry[i][0].([]byte)
		if !ok {
			return 0, fmt.Errorf("row %d carries a %T, want the framed columns", i+1, u.Carry[i][0])
		}
		buf = append(buf, carried...)
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

// binaryOf is a value's bytes, nil for any other type.
func binaryOf(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// copyBinaryHeader opens a COPY stream in binary: the signature, no flags,
// no header extension.
const copyBinaryHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
