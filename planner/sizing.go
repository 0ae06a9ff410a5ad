package planner

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Sizing measures the real data with one aggregate query per table, run in
// the database: no row travels to the client, so planning a table of
// millions of rows costs one scan.
//
// The ciphertext length of a value is cipher.Shape's fixed + (n/block+1)*block
// over the length n of its canonical plaintext (Codec.PlainLenExpr), written
// in SQL with integer division, which truncates on every supported engine.
// So the sizes come from the same formula as the code that encrypts.

// measure runs the sizing query of one table and fills tr: its rows,
// bytes, longest rows and per-column figures.
//
// With blockersOnly (apply's check before it changes anything), on an
// engine without a row limit and with every planned column of a supported
// type, it measures only what could block, in the cheapest way it can:
// nothing when the declared types keep every value under the limits
// (underLimits); else the longest value of each planned column, and the
// full query only when one of them is over a limit, to count the rows
// that are.
func measure(ctx context.Context, d dialect.Dialect, db *sql.DB, tr *TableReport, addsRowID bool, largeObjectLimit int64, blockersOnly bool) error {
	if blockersOnly && d.Limits().RowBytes <= 0 && supported(tr) {
		if underLimits(d.Limits(), tr, largeObjectLimit) {
			return nil
		}
		over, err := measureLongest(ctx, d, db, tr, largeObjectLimit)
		if err != nil || !over {
			return err
		}
	}
	tr.Measured = true
	vals, err := scanInts(ctx, db, sizingQuery(d, tr, addsRowID, largeObjectLimit, blockersOnly), tableFields+columnFields*len(tr.Columns))
	if err != nil {
		return fmt.Errorf("measure %s: %w", tr.Name, err)
	}
	v := func(i int) int64 { return vals[i].Int64 }

	tr.Rows = v(0)
	tr.BytesNow = v(1)
	tr.MaxRowBytesNow = v(2)
	tr.MaxRowBytesAfter = v(3)
	tr.MaxRowBytesDuring = v(4)
	tr.OffendingRows = v(5)
	tr.RowLimit = d.Limits().RowBytes

	var plain, added int64 // planned plaintext now; ciphertext and IVs after
	for i, cr := range tr.Columns {
		base := tableFields + columnFields*i
		nonNull := v(base)
		cr.Rows = tr.Rows
		cr.Nulls = tr.Rows - nonNull
		cr.BytesNow = v(base + 1)
		if cr.Codec != nil {
			s, versioned := cr.Plan.Suite, cr.Plan.Versioned
			cr.BytesAfter = v(base + 2)
			cr.MaxPlainBytes = v(base + 3)
			if nonNull > 0 {
				cr.MaxCiphertextBytes = int64(cipher.CiphertextLen(s, versioned, int(cr.MaxPlainBytes)))
			}
			cr.IVBytes = nonNull * int64(cipher.IVLen(s, cr.Plan.IV))
			cr.LargeObjects = v(base + 4)
			cr.ValueLimitRows = v(base + 5)
		}
		plain += cr.BytesNow
		added += cr.BytesAfter + cr.IVBytes
	}
	// The row id lives only while the job runs: it counts in the peak, and
	// it is dropped at cut-over, so not after.
	var rowID int64
	if tr.Key == nil && addsRowID {
		rowID = rowIDBytes * tr.Rows
	}
	tr.BytesAfter = tr.BytesNow - plain + added
	tr.BytesPeak = tr.BytesNow + added + rowID
	return nil
}

// supported reports whether every planned column of the table has a codec.
func supported(tr *TableReport) bool {
	for _, cr := range tr.Columns {
		if cr.Codec == nil {
			return false
		}
	}
	return true
}

// underLimits reports whether the planned columns' declared types keep
// every value under the large-object limit and every ciphertext under the
// engine's largest value, so that reading the rows could find no blocker
// (CheckSizing's row limit aside): apply's check then skips the one read of
// the whole table it would make (about 0.5 s per million rows on
// PostgreSQL).
func underLimits(limits dialect.Limits, tr *TableReport, largeObjectLimit int64) bool {
	for _, cr := range tr.Columns {
		m := cr.Codec.MaxPlainBytes()
		if m <= 0 || overLimits(limits, cr, largeObjectLimit, m) {
			return false // unbounded, or bounded above a limit
		}
	}
	return true
}

// overLimits reports whether a plaintext of the column of plainBytes bytes
// is over the large-object limit, or encrypts to more than the engine's
// largest value.
func overLimits(limits dialect.Limits, cr *ColumnReport, largeObjectLimit, plainBytes int64) bool {
	ct := int64(cipher.CiphertextLen(cr.Plan.Suite, cr.Plan.Versioned, int(plainBytes)))
	return (largeObjectLimit > 0 && plainBytes > objectLimit(cr.Codec, largeObjectLimit)) || (limits.ValueBytes > 0 && ct > limits.ValueBytes)
}

// objectLimit is the large-object limit on a canonical encoding of the
// codec: the limit is on the value, and the codec's own bytes come on top
// (SQLite's tag: a 100-byte BLOB under a limit of 100 bytes was refused
// as 101 bytes long). 0 stays no limit.
func objectLimit(c dialect.Codec, largeObjectLimit int64) int64 {
	if largeObjectLimit <= 0 {
		return largeObjectLimit
	}
	return largeObjectLimit + dialect.FrameBytes(c)
}

// scanInts runs a query of one row of n integer columns.
func scanInts(ctx context.Context, db *sql.DB, q string, n int) ([]sql.NullInt64, error) {
	vals := make([]sql.NullInt64, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	return vals, db.QueryRowContext(ctx, q).Scan(dest...)
}

// measureLongest reads the table's row count and the longest canonical
// plaintext of each planned column, in one scan that computes nothing
// else (on SQLite, SPEC §8's table: 0.4 s against 0.8 s for the sizing
// query), and reports whether a value is over the large-object limit or
// encrypts to more than the engine's largest value. A ciphertext's length
// grows with its plaintext's, so the longest value decides.
func measureLongest(ctx context.Context, d dialect.Dialect, db *sql.DB, tr *TableReport, largeObjectLimit int64) (over bool, err error) {
	list := []string{"COUNT(*)"}
	for _, cr := range tr.Columns {
		list = append(list, "MAX(CAST("+cr.Codec.PlainLenExpr(d.Quote(cr.Column.Name))+" AS BIGINT))")
	}
	vals, err := scanInts(ctx, db, "SELECT "+strings.Join(list, ", ")+" FROM "+d.QuoteTable(tr.Table.Name), len(list))
	if err != nil {
		return false, fmt.Errorf("measure %s: %w", tr.Name, err)
	}
	tr.Measured = true
	tr.Rows = vals[0].Int64
	for i, cr := range tr.Columns {
		cr.Rows = tr.Rows
		if !vals[i+1].Valid {
			continue // every value NULL
		}
		cr.MaxPlainBytes = vals[i+1].Int64
		over = over || overLimits(d.Limits(), cr, largeObjectLimit, cr.MaxPlainBytes)
	}
	return over, nil
}

// The sizing query returns tableFields values, then columnFields per
// planned column, in the order sizingQuery documents.
const (
	tableFields  = 6
	columnFields = 6
)

// sizingQuery builds the one aggregate query that measures a table. The
// inner query turns each row into lengths (the whole row's stored bytes,
// and per planned column its stored bytes and the length of its canonical
// plaintext, NULL for a NULL value; and where an engine's row limit does
// not count every stored byte (dialect.InRowSizer), the row's and each
// planned column's bytes in the row); the outer one aggregates them:
//
//	rows, SUM(row), MAX(row in-row), MAX(row after), MAX(row during), rows over the row limit,
//	then per planned column: non-NULL values, SUM(stored), SUM(ciphertext), MAX(plaintext),
//	values over the large-object limit, ciphertexts over the engine's value limit.
//
// With blockersOnly, on an engine without a row limit, the stored lengths
// (row and column bytes) are not computed: they come back as 0, and only
// the counts, plaintext lengths and limits are measured: apply runs it so
// only when measureLongest found a value over a limit, or when a planned
// column's type is unsupported (its values are counted).
func sizingQuery(d dialect.Dialect, tr *TableReport, addsRowID bool, largeObjectLimit int64, blockersOnly bool) string {
	limits := d.Limits()
	const (
		rowAlias      = "colcrypt_row_bytes"
		rowInRowAlias = "colcrypt_row_in_row"
		subAlias      = "colcrypt_sizing"
	)
	// The row limit counts a value's bytes in the row (inRow), which on
	// SQL Server are a pointer for a long MAX or LOB value: one 10 KB
	// nvarchar(max) value does not make its row too long. The byte totals
	// count every stored byte.
	inRow := func(declared, lenExpr string) string { return lenExpr }
	if s, ok := d.(dialect.InRowSizer); ok {
		inRow = s.InRowLenExpr
	}
	length := func(q string, col *schema.Column, in bool) string {
		if blockersOnly && limits.RowBytes <= 0 {
			return "0"
		}
		n := d.StoredLenExpr(col, q)
		if in {
			n = inRow(col.Declared, n)
		}
		return fmt.Sprintf("CASE WHEN %s IS NULL THEN 0 ELSE CAST(%s AS BIGINT) END", q, n)
	}
	// withInRow adds expr to inner as alias, and the in-row length as
	// inAlias when it differs; it returns the alias of the in-row length.
	var inner []string
	withInRow := func(expr, inExpr, alias, inAlias string) string {
		inner = append(inner, expr+" AS "+alias)
		if inExpr == expr {
			return alias
		}
		inner = append(inner, inExpr+" AS "+inAlias)
		return inAlias
	}

	var row, rowIn []string
	for _, col := range tr.Table.Columns {
		row = append(row, length(d.Quote(col.Name), col, false))
		rowIn = append(rowIn, length(d.Quote(col.Name), col, true))
	}
	rowInAlias := withInRow(addAll(row), addAll(rowIn), rowAlias, rowInRowAlias)
	var after, during []string // per-row deltas of the in-row length
	var aggs []string
	for i, cr := range tr.Columns {
		q := d.Quote(cr.Column.Name)
		s, l := fmt.Sprintf("colcrypt_s%d", i), fmt.Sprintf("colcrypt_l%d", i)
		sIn := withInRow(length(q, cr.Column, false), length(q, cr.Column, true), s, fmt.Sprintf("colcrypt_r%d", i))
		if cr.Codec == nil {
			// Unsupported type (a blocker): count it, measure nothing after.
			inner = append(inner, fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE 0 END AS %s", q, l))
			aggs = append(aggs, "COUNT("+l+")", sum(s), "0", "0", "0", "0")
			after = append(after, "(0 - "+sIn+")")
			continue
		}
		inner = append(inner, fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE CAST(%s AS BIGINT) END AS %s", q, cr.Codec.PlainLenExpr(q), l))
		suite := cr.Plan.Suite
		fixed, block := cipher.Shape(suite, cr.Plan.Versioned)
		ct := fmt.Sprintf("(%d + (%s / %d + 1) * %d)", fixed, l, block, block)
		grown := fmt.Sprintf("COALESCE(%s + %d, 0)", inRow(cr.CiphertextType, ct), cipher.IVLen(suite, cr.Plan.IV))
		after = append(after, "("+grown+" - "+sIn+")")
		during = append(during, grown)
		aggs = append(aggs, "COUNT("+l+")", sum(s), sum(ct), "MAX("+l+")",
			countIf(l, objectLimit(cr.Codec, largeObjectLimit)), countIf(ct, limits.ValueBytes))
	}
	if tr.Key == nil && addsRowID {
		during = append(during, strconv.Itoa(rowIDBytes))
	}
	rowAfter := addAll(append([]string{rowInAlias}, after...))
	rowDuring := addAll(append([]string{rowInAlias}, during...))

	outer := []string{"COUNT(*)", sum(rowAlias), "MAX(" + rowInAlias + ")",
		"MAX(" + rowAfter + ")", "MAX(" + rowDuring + ")", countIf(rowDuring, limits.RowBytes)}
	outer = append(outer, aggs...)

	// The empty UNION ALL branch is a fence: without it, SQLite and
	// PostgreSQL merge the inner query into the outer one and evaluate each
	// per-row length once for every aggregate that uses it (the row's
	// length alone four times). BenchmarkAnalyze1M (SPEC §8's table) took
	// 7.5 s on SQLite and 2.0 s on PostgreSQL that way, 2.0 s and 0.9 s
	// with the fence.
	// Every engine accepts a SELECT with WHERE and no FROM.
	nulls := strings.TrimSuffix(strings.Repeat("NULL, ", len(inner)), ", ")
	return fmt.Sprintf("SELECT %s FROM (SELECT %s FROM %s UNION ALL SELECT %s WHERE 1 = 0) AS %s",
		strings.Join(outer, ", "), strings.Join(inner, ", "), d.QuoteTable(tr.Table.Name), nulls, subAlias)
}

// addAll adds terms as a balanced tree, (a + b) + (c + d): a table of
// 2,000 columns written a + b + c + ... is an expression 2,000 deep, over
// SQLite's limit of 1,000 (SQLITE_MAX_EXPR_DEPTH).
func addAll(terms []string) string {
	switch len(terms) {
	case 0:
		return "0"
	case 1:
		return terms[0]
	}
	mid := len(terms) / 2
	return "(" + addAll(terms[:mid]) + " + " + addAll(terms[mid:]) + ")"
}

// sum is a SUM that comes back as a 64-bit integer on every engine
// (PostgreSQL widens SUM(bigint) to numeric).
func sum(expr string) string { return "CAST(SUM(" + expr + ") AS BIGINT)" }

// countIf counts the rows where expr exceeds limit; "0" when there is no limit.
func countIf(expr string, limit int64) string {
	if limit <= 0 {
		return "0"
	}
	return fmt.Sprintf("CAST(SUM(CASE WHEN %s > %d THEN 1 ELSE 0 END) AS BIGINT)", expr, limit)
}
