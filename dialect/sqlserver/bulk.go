package sqlserver

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// stageTable is the session's staging table for one bulk write. A #table
// belongs to its session, and the chunk's transaction holds one
// connection, so concurrent workers never see each other's.
const stageTable = "#colcrypt_stage"

// BulkUpdate implements dialect.Mover with the TDS bulk-load path, in the
// chunk's transaction:
//
//	DROP TABLE IF EXISTS #colcrypt_stage;
//	SELECT TOP (0) ISNULL(t.[id], t.[id]) AS [k1], CAST(NULL AS VARBINARY(MAX)) AS [v1]
//	  INTO #colcrypt_stage FROM [dbo].[t] AS t
//	INSERT BULK #colcrypt_stage ...             (go-mssqldb's mssql.CopyIn)
//	UPDATE t SET t.[c] = s.[v1] FROM [dbo].[t] AS t JOIN #colcrypt_stage AS s ON t.[id] = s.[k1];
//	DROP TABLE #colcrypt_stage
//
// Four round trips and one set-based UPDATE per chunk instead of one
// statement per row. The staging table takes each key column's type from
// the table itself (SELECT ... INTO), collation included: a key staged
// under tempdb's collation could not be compared with a column of another
// one (error 468), and a key of another type would turn the join's index
// seek into a scan. ISNULL(k, k) keeps the type but not the IDENTITY
// property, which SELECT ... INTO would otherwise copy ("an identity
// column that is part of an expression" is not inherited), and bulk load
// would then renumber the keys.
//
// With a Guard the staging table has one more column, [g], and the join
// also requires t.<guard> = s.[g]: a row whose guard changed since it was
// read is left alone (an online job's compare-and-set). The UPDATE takes
// update locks as it reads, so a concurrent writer's change is either
// committed before the comparison or waits for this transaction.
func (d sqlServer) BulkUpdate(ctx context.Context, tx dialect.Querier, u dialect.Update) error {
	if len(u.Rows) == 0 {
		return nil
	}
	u.Table = withDefaultSchema(u.Table)
	b, err := planBulk(u)
	if err != nil {
		return fmt.Errorf("bulk update of %s: %w", u.Table, err)
	}
	if _, err := tx.ExecContext(ctx, b.create); err != nil {
		return fmt.Errorf("bulk update of %s: create staging table: %w", u.Table, err)
	}
	if err := copyIn(ctx, tx, b.columns, b.rows); err != nil {
		return fmt.Errorf("bulk update of %s: load staging table: %w", u.Table, err)
	}
	if _, err := tx.ExecContext(ctx, b.update); err != nil {
		return fmt.Errorf("bulk update of %s: %w", u.Table, err)
	}
	return nil
}

// copyIn bulk-loads the rows into the staging table. Without KEEP_NULLS a
// NULL would take the column's default; the staging table has none, but
// the option says what is meant.
func copyIn(ctx context.Context, tx dialect.Querier, columns []string, rows [][]any) error {
	stmt, err := tx.PrepareContext(ctx, mssql.CopyIn(stageTable, mssql.BulkOptions{KeepNulls: true}, columns...))
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, row := range rows {
		if _, err := stmt.ExecContext(ctx, row...); err != nil {
			return err
		}
	}
	// Exec without arguments sends the end of the bulk load.
	_, err = stmt.ExecContext(ctx)
	return err
}

// bulkPlan is everything one BulkUpdate sends: the batch creating the
// staging table, its columns and rows for the bulk load, and the batch that
// updates the table from it and drops it.
type bulkPlan struct {
	create  string
	columns []string
	rows    [][]any
	update  string
}

// planBulk builds the statements and the rows to load. It is pure, so the
// tests check the SQL against the grammar.
func planBulk(u dialect.Update) (*bulkPlan, error) {
	nk := len(u.Key)
	if nk == 0 {
		return nil, fmt.Errorf("no key columns")
	}
	guard := 0
	if u.Guard != "" {
		guard = 1
	}
	for i, row := range u.Rows {
		if len(row) != nk+len(u.Set)+guard {
			return nil, fmt.Errorf("row %d has %d values, want %d key, %d set and %d guard values", i+1, len(row), nk, len(u.Set), guard)
		}
	}
	b := &bulkPlan{rows: make([][]any, len(u.Rows))}
	for i := range b.rows {
		b.rows[i] = make([]any, nk+len(u.Set)+guard)
	}
	var sel, on, set []string
	for i, k := range u.Key {
		declared := ""
		if i < len(u.KeyTypes) {
			declared = u.KeyTypes[i]
		}
		first, err := firstValue(u.Rows, i)
		if err != nil {
			return nil, fmt.Errorf("key column %s: %w", k, err)
		}
		if first == nil {
			return nil, fmt.Errorf("key column %s is NULL", k)
		}
		name := "k" + strconv.Itoa(i+1)
		qk, qs := "t."+quoteIdent(k), "s."+quoteIdent(name)
		if _, ok := first.(string); ok && isSingleByteChar(declared) {
			// The driver hands char and varchar values over as UTF-8 strings,
			// and its bulk load would write those bytes into a varchar
			// column unconverted. Staged as Unicode, in the column's
			// collation (CAST keeps the input's collation label), they are
			// converted back to the column's code page by the server.
			sel = append(sel, "CAST("+qk+" AS NVARCHAR(4000)) AS "+quoteIdent(name))
			on = append(on, qk+" = CAST("+qs+" AS "+declared+")")
		} else {
			sel = append(sel, "ISNULL("+qk+", "+qk+") AS "+quoteIdent(name))
			on = append(on, qk+" = "+qs)
		}
		b.columns = append(b.columns, name)
		for r, row := range u.Rows {
			v := row[i]
			if v == nil {
				return nil, fmt.Errorf("key column %s is NULL in row %d", k, r+1)
			}
			// Its bulk load takes decimal, numeric and money only as a string.
			if text, ok := decimalText(declared, v); ok {
				v = text
			}
			b.rows[r][i] = v
		}
	}
	for j, c := range u.Set {
		col := nk + j
		first, err := firstValue(u.Rows, col)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c, err)
		}
		typ, err := stageType(first)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c, err)
		}
		name := "v" + strconv.Itoa(j+1)
		sel = append(sel, "CAST(NULL AS "+typ+") AS "+quoteIdent(name))
		b.columns = append(b.columns, name)
		expr := "s." + quoteIdent(name)
		if j < len(u.SetExpr) && u.SetExpr[j] != nil {
			expr = u.SetExpr[j](expr)
		}
		set = append(set, "t."+quoteIdent(c)+" = "+expr)
		for r, row := range u.Rows {
			v := row[col]
			// A typed nil slice (an empty plaintext decrypted) is an empty
			// value: the driver would send a nil []byte as NULL.
			if raw, ok := v.([]byte); ok && raw == nil {
				v = []byte{}
			}
			b.rows[r][col] = v
		}
	}
	if guard == 1 {
		g := nk + len(u.Set)
		for r, row := range u.Rows {
			if _, ok := row[g].(int64); !ok {
				return nil, fmt.Errorf("row %d: guard value of type %T, want int64", r+1, row[g])
			}
			b.rows[r][g] = row[g]
		}
		sel = append(sel, "CAST(NULL AS BIGINT) AS [g]")
		b.columns = append(b.columns, "g")
		on = append(on, "t."+quoteIdent(u.Guard)+" = s.[g]")
	}
	qt := quoteTable(u.Table)
	b.create = "DROP TABLE IF EXISTS " + stageTable + ";\nSELECT TOP (0) " + strings.Join(sel, ", ") +
		" INTO " + stageTable + " FROM " + qt + " AS t"
	b.update = "UPDATE t SET " + strings.Join(set, ", ") + " FROM " + qt + " AS t JOIN " + stageTable +
		" AS s ON " + strings.Join(on, " AND ") + ";\nDROP TABLE " + stageTable
	return b, nil
}

// firstValue returns the first non-NULL value of column col, after checking
// that every non-NULL value has its Go type; nil when all are NULL.
func firstValue(rows [][]any, col int) (any, error) {
	var first any
	for _, r := range rows {
		v := r[col]
		if v == nil {
			continue
		}
		if first == nil {
			first = v
			continue
		}
		if reflect.TypeOf(v) != reflect.TypeOf(first) {
			return nil, fmt.Errorf("values of different types in one column (%T and %T)", first, v)
		}
	}
	return first, nil
}

// stageType is the staging column for values of v's Go type. The engine
// writes []byte (ciphertexts, IVs, and plaintext bytes that the codec's
// RestoreExpr casts back); a column that is NULL in every row of the chunk
// is staged as VARBINARY(MAX), since NULL assigns to anything.
func stageType(v any) (string, error) {
	switch v.(type) {
	case nil, []byte:
		return "VARBINARY(MAX)", nil
	case string:
		return "NVARCHAR(MAX)", nil
	case int64:
		return "BIGINT", nil
	case float64:
		return "FLOAT", nil
	case bool:
		return "BIT", nil
	}
	return "", fmt.Errorf("unsupported value of type %T", v)
}

// isSingleByteChar reports whether a declared type is char or varchar,
// whose values the driver converts from the column's code page to UTF-8.
func isSingleByteChar(declared string) bool {
	switch baseType(declared) {
	case "char", "varchar":
		return true
	}
	return false
}

// isDecimalText reports whether the driver returns a declared type's values
// as their text in a []byte.
func isDecimalText(declared string) bool {
	switch baseType(declared) {
	case "decimal", "numeric", "money", "smallmoney":
		return true
	}
	return false
}

// decimalText gives the number's text of a decimal, numeric or money value
// v of a column of the declared type, which go-mssqldb reads as that text
// in a []byte and would send back as VARBINARY. A ciphertext (an encrypted
// key after cut-over, whose recorded type is still the number's) is not
// one.
func decimalText(declared string, v any) (string, bool) {
	raw, ok := v.([]byte)
	if !ok || !isDecimalText(declared) || !decimalLiteral.Match(raw) {
		return "", false
	}
	return string(raw), true
}

// decimalLiteral is the text go-mssqldb gives decimal, numeric and money
// values.
var decimalLiteral = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// baseType is a declared type's name without length or precision, lower case.
func baseType(declared string) string {
	if i := strings.IndexByte(declared, '('); i >= 0 {
		declared = declared[:i]
	}
	return strings.ToLower(strings.TrimSpace(declared))
}

var _ dialect.KeyBinder = sqlServer{}

// KeyArg implements dialect.KeyBinder for the walk's keyset conditions
// (WHERE [k] > @p1 ... ORDER BY [k]).
//
// A decimal, numeric or money key comes from the driver as its text in a
// []byte, which it would send back as VARBINARY: the server would read
// those bytes as a binary decimal (whose first byte, the precision, an
// ASCII digit exceeds 38) and every chunk after the first would fail. It
// is bound as text and cast to the column's type.
//
// A char or varchar key comes as a UTF-8 string, which the driver sends as
// NVARCHAR; by type precedence the server would then compare the column
// converted to Unicode. Under a SQL_ collation Unicode and non-Unicode
// data sort by different rules (hyphens and apostrophes among others), so
// the condition would disagree with the ORDER BY that chose the bound and
// skip rows, and it could not seek the key's index. Cast back to the
// column's type in its own collation (the conversion to the code page
// follows the input's collation), it compares as the ORDER BY sorts.
//
// A ciphertext, which an encrypted key holds after cut-over while the
// model still gives the plaintext type, is neither, and is bound as is.
func (sqlServer) KeyArg(col *schema.Column, v any, placeholder string) (string, any) {
	if col == nil {
		return placeholder, v
	}
	if text, ok := decimalText(col.Declared, v); ok {
		return "CAST(" + placeholder + " AS " + col.Declared + ")", text
	}
	if _, ok := v.(string); ok && isSingleByteChar(col.Declared) {
		in := placeholder
		if col.Collation != "" {
			in += " COLLATE " + col.Collation
		}
		return "CAST(" + in + " AS " + col.Declared + ")", v
	}
	return placeholder, v
}
