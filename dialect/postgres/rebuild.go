package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var (
	_ dialect.RevertRebuilder = Dialect{}
	_ dialect.WriteGuard      = Dialect{}
)

// RebuildsRevert implements dialect.RevertRebuilder.
func (Dialect) RebuildsRevert() {}

// An offline job on PostgreSQL builds the table's replacement during the
// copy (dialect.Rebuilder) instead of updating every row in place, which
// writes a second version of each row and of its index entries. The
// replacement t__colcrypt_new is created from the table itself (CREATE
// TABLE ... (LIKE t): columns in their order, defaults, identity,
// generated columns, checks, storage, comments), the planned columns bytea,
// and only the index of the paging key; each chunk is
//
//	DELETE FROM t__colcrypt_new AS t WHERE <chunk range>
//	INSERT INTO t__colcrypt_new (id, a, c, c_iv) OVERRIDING SYSTEM VALUE
//	SELECT t.id, t.a, v.s1, v.s2 FROM t JOIN unnest($1, $2, $3) AS v(k1, s1, s2)
//	ON t.id = v.k1 WHERE <chunk range>
//
// The other indexes are built once after the copy (FinishRebuild), and the
// cut-over drops t and renames t__colcrypt_new in its place, moving what
// binds to the table: foreign keys both ways, owned sequences, identity
// positions, owner, grants and comment. What it could not move
// (schema.Table.Unmovable: views, triggers, policies, ...) keeps the job in
// place. Meanwhile a statement trigger keeps t read-only: a row changed
// after its chunk was copied would be lost by the swap.
//
// A revert of such a job builds a replacement the same way
// (dialect.RevertRebuilder): a copy of the encrypted table's definition
// with the swapped columns of their recorded types, defaults, nullability
// and checks, no IV columns, filled by the join with each chunk's restored
// values (TableSwap.Reverse). Its cut-over also recreates the recorded
// indexes on the swapped columns.
const (
	rebuildSuffix  = "__colcrypt_new"
	readonlyPrefix = "colcrypt_readonly_"
	// carriedPrefix names the replacement's indexes until the cut-over
	// gives them their own names: index names are unique in a schema.
	carriedPrefix = "colcrypt_new_"
	// readOnlySQLState is read_only_sql_transaction.
	readOnlySQLState = "25006"
)

// RebuildName implements dialect.Rebuilder.
func (Dialect) RebuildName(table schema.TableName) schema.TableName {
	return schema.TableName{Schema: table.Schema, Name: boundedIdent(table.Name+rebuildSuffix, table.Name)}
}

// readonlyName names the trigger that keeps a table read-only and its
// function.
func readonlyName(table schema.TableName) string {
	return boundedIdent(readonlyPrefix+table.Name, table.Name)
}

// readonlyFunction is the schema-qualified trigger function.
func (d Dialect) readonlyFunction(table schema.TableName) string {
	return d.triggerFunction(table, readonlyName(table))
}

// regclass gives the table's OID, or 0 when it does not exist.
func (d Dialect) regclass(ctx context.Context, q dialect.Querier, table schema.TableName) (uint32, error) {
	var oid sql.NullInt64
	err := queryRow(ctx, q, "SELECT to_regclass($1)::oid", []any{d.QuoteTable(table)}, &oid)
	return uint32(oid.Int64), err
}

// PrepareRebuild implements dialect.Rebuilder, in one transaction.
func (d Dialect) PrepareRebuild(ctx context.Context, db *sql.DB, ts dialect.TableSwap, refusal string) error {
	t := ts.Table
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		oid, err := d.regclass(ctx, tx, d.RebuildName(t.Name))
		if err != nil {
			return err
		}
		if oid == 0 {
			if err := d.createRebuilt(ctx, tx, ts); err != nil {
				return err
			}
		}
		return d.makeReadOnly(ctx, tx, t.Name, refusal)
	})
	if err != nil {
		return fmt.Errorf("build the replacement of %s: %w", t.Name, err)
	}
	return nil
}

// createRebuilt creates the replacement with the index of the paging key,
// which each chunk's DELETE and verify's range scans search.
func (d Dialect) createRebuilt(ctx context.Context, tx *sql.Tx, ts dialect.TableSwap) error {
	t := ts.Table
	qt, qn := d.QuoteTable(t.Name), d.QuoteTable(d.RebuildName(t.Name))
	stmts := []string{"CREATE TABLE " + qn + " (LIKE " + qt +
		" INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)"}
	var alter []string
	if ts.Reverse {
		var err error
		if alter, err = d.revertedColumnsSQL(ctx, tx, ts); err != nil {
			return err
		}
	} else {
		// The checks on planned columns go, as the in-place swap drops
		// them with the plaintext column (the planner allows that only
		// when the plan does).
		for _, ck := range t.Checks {
			if coversAny(ck.Columns, ts.Columns) {
				alter = append(alter, "DROP CONSTRAINT IF EXISTS "+d.Quote(ck.Name))
			}
		}
		for _, sc := range ts.Columns {
			qc := d.Quote(sc.Name)
			alter = append(alter, "ALTER COLUMN "+qc+" DROP DEFAULT", "ALTER COLUMN "+qc+" TYPE "+sc.TempType+" USING NULL")
			if sc.IV != "" {
				alter = append(alter, "ADD COLUMN "+d.Quote(sc.IV)+" bytea")
			}
		}
	}
	stmts = append(stmts, "ALTER TABLE "+qn+" "+strings.Join(alter, ", "))
	if err := execEach(ctx, tx, stmts); err != nil {
		return fmt.Errorf("create %s: %w", d.RebuildName(t.Name), err)
	}
	if ts.KeepPlaintext && !ts.Reverse {
		s := &swapTx{d: d, tx: tx}
		for _, sc := range ts.Columns {
			typ, err := s.columnType(ctx, t, sc.Name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "ALTER TABLE "+qn+" ADD COLUMN "+d.Quote(sc.Plaintext)+" "+typ); err != nil {
				return fmt.Errorf("create %s: %w", d.RebuildName(t.Name), err)
			}
		}
	}
	// Storage parameters (fillfactor, autovacuum settings) apply to the
	// rows as they are written. (The owner, grants and comment are the
	// table's at the cut-over, which gives them.)
	var opts sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT array_to_string(reloptions, E'\n')
FROM pg_catalog.pg_class WHERE oid = to_regclass($1)`, qt).Scan(&opts); err != nil {
		return fmt.Errorf("read storage parameters of %s: %w", t.Name, err)
	}
	if opts.String != "" {
		var set []string
		for _, o := range strings.Split(opts.String, "\n") {
			name, value, _ := strings.Cut(o, "=")
			if !optionName.MatchString(name) {
				return fmt.Errorf("storage parameter %q of %s cannot be copied", name, t.Name)
			}
			set = append(set, name+" = "+quoteLiteral(value))
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+qn+" SET ("+strings.Join(set, ", ")+")"); err != nil {
			return fmt.Errorf("copy storage parameters of %s: %w", t.Name, err)
		}
	}
	key := t.UsableKey()
	indexes, err := d.liveIndexes(ctx, tx, t.Name)
	if err != nil {
		return err
	}
	for _, ix := range indexes {
		if slices.Equal(ix.columns, key) && ix.unique && !ix.partial && !ix.expression {
			return d.carryIndex(ctx, tx, t.Name, ix)
		}
	}
	return fmt.Errorf("no index of %s covers its key (%s) exactly", t.Name, strings.Join(key, ", "))
}

// revertedColumnsSQL gives the ALTER TABLE actions that turn a copy of an
// encrypted table's definition back into the recorded one: each swapped
// column gets its recorded type, collation, default and nullability, and
// the checks on it, and the IV columns and the plaintext columns the job
// kept go. (The replacement is empty: nothing is rewritten.)
func (d Dialect) revertedColumnsSQL(ctx context.Context, tx *sql.Tx, ts dialect.TableSwap) ([]string, error) {
	t := ts.Table
	s := &swapTx{d: d, tx: tx}
	var alter []string
	for _, sc := range ts.Columns {
		col := columnNamed(t, sc.Name)
		if col == nil {
			return nil, fmt.Errorf("column %s is not in the recorded table", sc.Name)
		}
		typ, err := s.columnType(ctx, t, sc.Name)
		if err != nil {
			return nil, err
		}
		qc := d.Quote(sc.Name)
		alter = append(alter, "ALTER COLUMN "+qc+" DROP DEFAULT", "ALTER COLUMN "+qc+" TYPE "+typ+" USING NULL")
		if col.Default != "" {
			alter = append(alter, "ALTER COLUMN "+qc+" SET DEFAULT "+col.Default)
		}
		if col.Nullable {
			alter = append(alter, "ALTER COLUMN "+qc+" DROP NOT NULL")
		} else {
			alter = append(alter, "ALTER COLUMN "+qc+" SET NOT NULL")
		}
		if sc.IV != "" {
			alter = append(alter, "DROP COLUMN IF EXISTS "+d.Quote(sc.IV))
		}
		if kept := sc.Name + dialect.PlaintextKeptSuffix; columnNamed(t, kept) == nil {
			alter = append(alter, "DROP COLUMN IF EXISTS "+d.Quote(kept))
		}
	}
	for _, ck := range t.Checks {
		if coversAny(ck.Columns, ts.Columns) {
			alter = append(alter, "ADD CONSTRAINT "+d.Quote(ck.Name)+" "+ck.Definition)
		}
	}
	return alter, nil
}

// optionName is what a storage parameter's name may be.
var optionName = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// makeReadOnly adds the statement trigger that refuses every write to the
// table with the refusal message, unless it is there.
func (d Dialect) makeReadOnly(ctx context.Context, tx *sql.Tx, table schema.TableName, refusal string) error {
	if err := d.refuseWrites(ctx, tx, table, readonlyName(table), "INSERT OR UPDATE OR DELETE OR TRUNCATE", refusal); err != nil {
		return fmt.Errorf("make %s read-only: %w", table, err)
	}
	return nil
}

// refuseWrites creates, unless the table has it, the statement trigger
// name firing BEFORE events, and its function of the same name in the
// table's schema, which fails every such statement with SQLSTATE 25006
// (read_only_sql_transaction) and the refusal message.
func (d Dialect) refuseWrites(ctx context.Context, tx *sql.Tx, table schema.TableName, name, events, refusal string) error {
	body := "\nBEGIN\n  RAISE EXCEPTION USING ERRCODE = '" + readOnlySQLState + "', MESSAGE = " + quoteLiteral(refusal) + ";\nEND\n"
	fn := d.triggerFunction(table, name)
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE FUNCTION "+fn+" RETURNS trigger LANGUAGE plpgsql AS "+dollarQuote(body)); err != nil {
		return err
	}
	enabled, err := d.triggerState(ctx, tx, table, name)
	switch {
	case err != nil:
		return err
	case enabled == "":
		if _, err := tx.ExecContext(ctx, "CREATE TRIGGER "+d.Quote(name)+" BEFORE "+events+" ON "+d.QuoteTable(table)+
			" FOR EACH STATEMENT EXECUTE FUNCTION "+fn); err != nil {
			return err
		}
	case enabled == "A":
		return nil
	}
	_, err = tx.ExecContext(ctx, enableAlways(d.QuoteTable(table), d.Quote(name)))
	return err
}

// enableAlways makes one of colcrypt's triggers fire in every session,
// those with session_replication_role = replica included: a logical
// replication subscriber's apply worker runs that way, and so does a
// restore or a tool that sets it to skip triggers. An ordinary trigger
// stays silent there, and a write the job must refuse or capture would
// get past it and be lost at the cut-over.
func enableAlways(qt, quotedTrigger string) string {
	return "ALTER TABLE " + qt + " ENABLE ALWAYS TRIGGER " + quotedTrigger
}

// triggerFunction is the schema-qualified function of one of colcrypt's
// triggers on the table, named like the trigger.
func (d Dialect) triggerFunction(table schema.TableName, name string) string {
	return d.QuoteTable(schema.TableName{Schema: table.Schema, Name: name}) + "()"
}

// triggerState gives the table's trigger's pg_trigger.tgenabled: "A"
// (always), "O" or "R" (enabled), "D" (disabled), or "" when the table has
// no such trigger.
func (d Dialect) triggerState(ctx context.Context, q dialect.Querier, table schema.TableName, name string) (string, error) {
	var state string
	err := queryRow(ctx, q, `SELECT coalesce((SELECT tgenabled::text FROM pg_catalog.pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2), '')`,
		[]any{d.QuoteTable(table), name}, &state)
	return state, err
}

// triggerDisabled is the cut-over's refusal when one of the job's
// triggers was disabled (ALTER TABLE ... DISABLE TRIGGER): the writes it
// exists to stop or capture may have got past it, which the cut-over
// would lose. what says what the trigger does; again is the command to
// run once it is enabled, undo the way back otherwise.
func (d Dialect) triggerDisabled(table schema.TableName, name, what, again, undo string) error {
	return fmt.Errorf("trigger %s, which %s, is disabled, and a row written while it was disabled would be lost by the cut-over; nothing was changed. "+
		"If no row was written meanwhile, enable it again (ALTER TABLE %s ENABLE ALWAYS TRIGGER %s) and run %s again; otherwise %s",
		name, what, d.QuoteTable(table), d.Quote(name), again, undo)
}

// guardName names the trigger, and its function, of a WriteGuard.
func guardName(table schema.TableName) string {
	return boundedIdent(dialect.GuardPrefix+table.Name, table.Name)
}

// GuardWrites implements dialect.WriteGuard with a statement trigger
// BEFORE INSERT OR UPDATE OF the columns.
func (d Dialect) GuardWrites(ctx context.Context, db *sql.DB, table schema.TableName, columns []string, refusal string) error {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = d.Quote(c)
	}
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		return d.refuseWrites(ctx, tx, table, guardName(table), "INSERT OR UPDATE OF "+strings.Join(quoted, ", "), refusal)
	})
	if err != nil {
		return fmt.Errorf("guard %s against lost writes: %w", table, err)
	}
	return nil
}

// DropWriteGuard implements dialect.WriteGuard.
func (d Dialect) DropWriteGuard(ctx context.Context, db *sql.DB, table schema.TableName) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error { return execEach(ctx, tx, d.dropGuardSQL(table)) })
	if err != nil {
		return fmt.Errorf("lift the guard on %s: %w", table, err)
	}
	return nil
}

// dropGuardSQL drops a WriteGuard's trigger and function, if they exist,
// the trigger first: it fires on UPDATE OF columns a swap drops.
func (d Dialect) dropGuardSQL(table schema.TableName) []string {
	return []string{"DROP TRIGGER IF EXISTS " + d.Quote(guardName(table)) + " ON " + d.QuoteTable(table),
		"DROP FUNCTION IF EXISTS " + d.triggerFunction(table, guardName(table))}
}

// DropRebuild implements dialect.Rebuilder.
func (d Dialect) DropRebuild(ctx context.Context, db *sql.DB, table schema.TableName) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		oid, err := d.regclass(ctx, tx, table)
		if err != nil {
			return err
		}
		stmts := []string{"DROP FUNCTION IF EXISTS " + d.readonlyFunction(table), "DROP TABLE IF EXISTS " + d.QuoteTable(d.RebuildName(table))}
		if oid != 0 {
			stmts = append([]string{"DROP TRIGGER IF EXISTS " + d.Quote(readonlyName(table)) + " ON " + d.QuoteTable(table)}, stmts...)
		}
		return execEach(ctx, tx, stmts)
	})
	if err != nil {
		return fmt.Errorf("drop the replacement of %s: %w", table, err)
	}
	return nil
}

// RebuildChunk implements dialect.Rebuilder with one DELETE and one COPY
// of the chunk's rows whole (Update.Carry, see carry.go), or else one
// INSERT ... SELECT joining the table to the chunk's values.
func (d Dialect) RebuildChunk(ctx context.Context, tx dialect.Querier, ts dialect.TableSwap, u dialect.Update) error {
	if u.Guard != "" || (len(u.SetExpr) > 0 && u.Carry != nil) {
		return fmt.Errorf("rebuild %s: a guarded write, or a transformed one carrying its rows, cannot build the replacement", u.Table)
	}
	// The bounds alone, in the DELETE and the count, have parameters $1
	// on; after the arrays', in the INSERT, they are numbered on from
	// theirs.
	alone, ok := d.keyBounds(u, 0)
	if !ok {
		return fmt.Errorf("rebuild %s: the chunk's key range cannot be typed like the key", u.Table)
	}
	rangeWhere := func(b rangeBounds) string {
		if len(b.conds) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(b.conds, " AND ")
	}
	qn := d.QuoteTable(d.RebuildName(u.Table))
	// An earlier attempt's rows of this range (its transaction committed,
	// its reply lost) give way to this one's.
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+qn+" AS t"+rangeWhere(alone), alone.args...); err != nil {
		return fmt.Errorf("rebuild %s: %w", u.Table, err)
	}
	var inserted int64
	if len(u.Rows) > 0 {
		var n int64
		var err error
		if raw, ok := tx.(dialect.RawQuerier); ok && u.Carry != nil {
			n, err = d.copyRebuilt(ctx, raw, ts, u)
		} else {
			if err := planGeneric(ctx, tx, u); err != nil {
				return fmt.Errorf("rebuild %s: %w", u.Table, err)
			}
			n, err = d.insertRebuilt(ctx, tx, ts, u)
		}
		if err != nil {
			return fmt.Errorf("rebuild %s: %w", u.Table, err)
		}
		inserted = n
	}
	var inRange int64
	if err := queryRow(ctx, tx, "SELECT count(*) FROM "+d.QuoteTable(u.Table)+" AS t"+rangeWhere(alone), alone.args, &inRange); err != nil {
		return fmt.Errorf("rebuild %s: %w", u.Table, err)
	}
	if inserted != int64(len(u.Rows)) || inRange != inserted {
		return fmt.Errorf("rebuild %s: the chunk read %d rows, the table has %d in its range, and %d were written: "+
			"rows changed while the table should be read-only", u.Table, len(u.Rows), inRange, inserted)
	}
	return nil
}

// insertRebuilt writes the chunk's rows into the replacement: its values
// for the columns written, the table's for every other column.
func (d Dialect) insertRebuilt(ctx context.Context, tx dialect.Querier, ts dialect.TableSwap, u dialect.Update) (int64, error) {
	st, err := d.stage(u)
	if err != nil {
		return 0, err
	}
	bounds, ok := d.keyBounds(u, len(st.args))
	if !ok {
		return 0, fmt.Errorf("the chunk's key range cannot be typed like the key")
	}
	cols, at, err := dialect.RebuiltColumns(ts, u.Set, func(name string) string { return name })
	if err != nil {
		return 0, err
	}
	var into, from []string
	for k, col := range cols {
		v := "t." + d.Quote(col)
		if at[k] >= 0 {
			v = st.values[at[k]]
		}
		into, from = append(into, d.Quote(col)), append(from, v)
	}
	where := append(st.join, bounds.conds...)
	res, err := tx.ExecContext(ctx, "INSERT INTO "+d.QuoteTable(d.RebuildName(u.Table))+" ("+strings.Join(into, ", ")+
		") OVERRIDING SYSTEM VALUE SELECT "+strings.Join(from, ", ")+" FROM "+d.QuoteTable(u.Table)+" AS t JOIN "+st.from()+
		" ON "+strings.Join(where, " AND "), append(st.args, bounds.args...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryRow scans one row through a Querier, which has no QueryRowContext.
func queryRow(ctx context.Context, q dialect.Querier, query string, args []any, dest ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// FinishRebuild implements dialect.Rebuilder: every index of the table is
// built on the replacement under a name of its own, and the replacement is
// analyzed, so that queries have statistics the moment it takes the
// table's place.
func (d Dialect) FinishRebuild(ctx context.Context, db *sql.DB, table schema.TableName) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		if err := d.carryIndexes(ctx, tx, table); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "ANALYZE "+d.QuoteTable(d.RebuildName(table)))
		return err
	})
	if err != nil {
		return fmt.Errorf("build the indexes of the replacement of %s: %w", table, err)
	}
	return nil
}

// liveIndex is one index of a table as the catalog has it now.
type liveIndex struct {
	name    string
	columns []string
	unique  bool
	partial bool
	// expression: a key column is an expression.
	expression bool
	// definition is pg_get_indexdef's; prefix is how it begins up to its
	// key ("CREATE UNIQUE INDEX t_a_idx ON public.t "), quoted by the
	// server.
	definition, prefix string
	// constraint and constraintDef are the constraint the index backs
	// (primary key, unique, exclusion), "" for a plain index.
	constraint, constraintDef string
	// comment and constraintComment are their comments, "" for none.
	comment, constraintComment string
}

func (d Dialect) liveIndexes(ctx context.Context, q dialect.Querier, table schema.TableName) ([]liveIndex, error) {
	var out []liveIndex
	err := dialect.EachRow(ctx, q, `
SELECT ic.relname, i.indisunique, i.indpred IS NOT NULL, 0 = ANY (i.indkey::int2[]),
       coalesce((SELECT json_agg(a.attname ORDER BY k.n)::text
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(num, n)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                 WHERE k.n <= i.indnkeyatts), '[]'),
       pg_catalog.pg_get_indexdef(i.indexrelid),
       'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname) ||
         ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ',
       coalesce(con.conname, ''), coalesce(pg_catalog.pg_get_constraintdef(con.oid), ''),
       coalesce(pg_catalog.obj_description(i.indexrelid, 'pg_class'), ''),
       coalesce(pg_catalog.obj_description(con.oid, 'pg_constraint'), '')
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = to_regclass($1)
ORDER BY ic.relname`, []any{d.QuoteTable(table)}, func(rows *sql.Rows) error {
		var ix liveIndex
		var cols jsonNames
		err := rows.Scan(&ix.name, &ix.unique, &ix.partial, &ix.expression, &cols, &ix.definition, &ix.prefix, &ix.constraint, &ix.constraintDef,
			&ix.comment, &ix.constraintComment)
		ix.columns = cols
		out = append(out, ix)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", table, err)
	}
	return out, nil
}

// carriedName is the name an index of the table has on the replacement
// until the cut-over.
func carriedName(index string) string { return boundedIdent(carriedPrefix+index, index) }

// carryIndexes builds on the replacement each index of the table it does
// not have yet.
func (d Dialect) carryIndexes(ctx context.Context, tx *sql.Tx, table schema.TableName) error {
	indexes, err := d.liveIndexes(ctx, tx, table)
	if err != nil {
		return err
	}
	for _, ix := range indexes {
		if err := d.carryIndex(ctx, tx, table, ix); err != nil {
			return err
		}
	}
	return nil
}

// carryIndex builds one index of the table on the replacement, under its
// carried name, unless it is there: a constraint from its definition, a
// plain index from pg_get_indexdef's with the name and table replaced.
func (d Dialect) carryIndex(ctx context.Context, tx *sql.Tx, table schema.TableName, ix liveIndex) error {
	rebuilt := d.RebuildName(table)
	name := carriedName(ix.name)
	oid, err := d.regclass(ctx, tx, schema.TableName{Schema: rebuilt.Schema, Name: name})
	if err != nil || oid != 0 {
		return err
	}
	var stmt string
	switch {
	case ix.constraint != "":
		stmt = "ALTER TABLE " + d.QuoteTable(rebuilt) + " ADD CONSTRAINT " + d.Quote(name) + " " + ix.constraintDef
	case strings.HasPrefix(ix.definition, ix.prefix):
		unique := ""
		if ix.unique {
			unique = "UNIQUE "
		}
		stmt = "CREATE " + unique + "INDEX " + d.Quote(name) + " ON " + d.QuoteTable(rebuilt) + " " + ix.definition[len(ix.prefix):]
	default:
		return fmt.Errorf("index %s of %s cannot be built on its replacement: its definition %q does not begin as expected", ix.name, table, ix.definition)
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("build index %s on the replacement of %s: %w", ix.name, table, err)
	}
	return nil
}

// swapRebuilt is the cut-over of a table whose replacement the copy built,
// in the swap's transaction, with both tables locked. It refuses, changing
// nothing, when the read-only trigger is gone (a write may have slipped
// through) or a column was added or dropped since prepare. fks are the
// foreign keys the swap of the group drops and recreates itself.
func (s *swapTx) swapRebuilt(ctx context.Context, ts dialect.TableSwap, fks []*schema.ForeignKey) error {
	d := s.d
	t := ts.Table
	qt, rebuilt := d.QuoteTable(t.Name), d.RebuildName(t.Name)
	qn := d.QuoteTable(rebuilt)
	ro, err := d.triggerState(ctx, s.tx, t.Name, readonlyName(t.Name))
	if err != nil {
		return err
	}
	// What the user can do about a refusal depends on the way: an
	// apply's is undone by a revert; a revert's table still holds its
	// ciphertext, readable as before.
	again, undo := "apply", "revert the job, then run apply again"
	if ts.Reverse {
		again, undo = "revert", "the table still holds its ciphertext, readable as before"
	}
	switch ro {
	case "":
		return fmt.Errorf("trigger %s, which keeps %s read-only until its cut-over, was dropped: rows may have changed since they were copied "+
			"and the swap would lose them; nothing was changed: %s", readonlyName(t.Name), t.Name, undo)
	case "D":
		return d.triggerDisabled(t.Name, readonlyName(t.Name), "keeps "+t.Name.String()+" read-only until its cut-over", again, undo)
	}
	live, err := s.columns(ctx, t.Name)
	if err != nil {
		return err
	}
	for _, c := range t.Columns {
		if !live[c.Name] {
			return fmt.Errorf("column %s of %s was dropped after the job started: the cut-over would bring it back; "+
				"add the column back and run %s again; nothing was changed", c.Name, t.Name, again)
		}
		delete(live, c.Name)
	}
	if ts.Reverse {
		// What the encryption added goes with the table.
		for _, sc := range ts.Columns {
			delete(live, sc.IV)
			delete(live, sc.Name+dialect.PlaintextKeptSuffix)
		}
	}
	for name := range live {
		return fmt.Errorf("column %s was added to %s after the job started, and its replacement has no such column: "+
			"drop it and run %s again; nothing was changed", name, t.Name, again)
	}
	// Something bound to the table since prepare (a view, a trigger)
	// would make DROP TABLE fail, or go with it.
	oid, err := d.regclass(ctx, s.tx, t.Name)
	if err != nil {
		return err
	}
	var bound []string
	err = s.each(ctx, unmovableSQL, []any{oid}, func(rows *sql.Rows) error {
		var what string
		err := rows.Scan(&what)
		bound = append(bound, what)
		return err
	})
	if err != nil {
		return fmt.Errorf("read what is bound to %s: %w", t.Name, err)
	}
	if len(bound) > 0 {
		return fmt.Errorf("%s: bound to %s itself since the job started, which the cut-over replaces by the table built during the copy; "+
			"drop it and run %s again (and create it again after the cut-over); nothing was changed", strings.Join(bound, ", "), t.Name, again)
	}
	// An index added since the copy is built now.
	if err := d.carryIndexes(ctx, s.tx, t.Name); err != nil {
		return err
	}
	indexes, err := d.liveIndexes(ctx, s.tx, t.Name)
	if err != nil {
		return err
	}
	mv, err := s.moveSQL(ctx, t, rebuilt, fks)
	if err != nil {
		return err
	}
	stmts := append(mv.before,
		"DROP TABLE "+qt,
		"DROP FUNCTION IF EXISTS "+d.readonlyFunction(t.Name),
		"ALTER TABLE "+qn+" RENAME TO "+d.Quote(t.Name.Name))
	for _, ix := range indexes {
		carried := carriedName(ix.name)
		qix := d.QuoteTable(schema.TableName{Schema: rebuilt.Schema, Name: ix.name})
		if ix.constraint != "" {
			// Renaming the constraint renames its index with it.
			stmts = append(stmts, "ALTER TABLE "+qt+" RENAME CONSTRAINT "+d.Quote(carried)+" TO "+d.Quote(ix.constraint))
		} else {
			stmts = append(stmts, "ALTER INDEX "+d.QuoteTable(schema.TableName{Schema: rebuilt.Schema, Name: carried})+
				" RENAME TO "+d.Quote(ix.name))
		}
		// Comments are the table's as they are now: the replacement's
		// indexes were built without them.
		if ix.comment != "" {
			stmts = append(stmts, "COMMENT ON INDEX "+qix+" IS "+quoteLiteral(ix.comment))
		}
		if ix.constraintComment != "" {
			stmts = append(stmts, "COMMENT ON CONSTRAINT "+d.Quote(ix.constraint)+" ON "+qt+" IS "+quoteLiteral(ix.constraintComment))
		}
	}
	settings, err := s.columnSettingsSQL(ctx, t.Name, ts.Columns)
	if err != nil {
		return err
	}
	stmts = append(stmts, settings...)
	stmts = append(stmts, mv.after...)
	if err := s.execAll(ctx, "swap in the replacement of "+t.Name.String(), stmts); err != nil {
		return err
	}
	if !ts.Reverse {
		return nil
	}
	// The replacement has the recorded checks; the recorded indexes on
	// the swapped columns the encrypted table had lost come back.
	return s.recreateIndexes(ctx, t, ts.Columns)
}

// moves are the statements that carry what binds to the table over to its
// replacement: before runs while both exist, after once the replacement
// has the table's name.
type moves struct{ before, after []string }

// moveSQL reads what binds to the table: its owner, grants and comment,
// the sequences its columns own (serial) or have (identity), and the
// foreign keys in both directions other than fks, which the group's swap
// drops and recreates itself. A foreign key the table's model (read when
// the job started) has, and had validated, is recreated NOT VALID: checking
// it would read the whole referencing table while the swap holds its
// locks. validateForeignKeys checks it once the swap committed.
func (s *swapTx) moveSQL(ctx context.Context, model *schema.Table, rebuilt schema.TableName, fks []*schema.ForeignKey) (moves, error) {
	d := s.d
	table := model.Name
	checkLater := validatedForeignKeys(model)
	qt, qn := d.QuoteTable(table), d.QuoteTable(rebuilt)
	var mv moves
	var owner string
	var comment sql.NullString
	if err := s.tx.QueryRowContext(ctx, `SELECT relowner::regrole::text, pg_catalog.obj_description(oid, 'pg_class')
FROM pg_catalog.pg_class WHERE oid = to_regclass($1)`, qt).Scan(&owner, &comment); err != nil {
		return mv, fmt.Errorf("read the owner of %s: %w", table, err)
	}
	mv.before = append(mv.before, "ALTER TABLE "+qn+" OWNER TO "+owner)
	if comment.Valid {
		mv.before = append(mv.before, "COMMENT ON TABLE "+qn+" IS "+quoteLiteral(comment.String))
	}
	grants, err := queryStrings(ctx, s.tx, `
SELECT 'GRANT ' || a.privilege_type || ' ON TABLE ' || $2 || ' TO ' || `+granteeSQL+`
FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
WHERE c.oid = to_regclass($1)
ORDER BY 1`, qt, qn)
	if err != nil {
		return mv, fmt.Errorf("read the grants on %s: %w", table, err)
	}
	mv.before = append(mv.before, grants...)
	err = s.each(ctx, `
SELECT quote_ident(sn.nspname) || '.' || quote_ident(sq.relname), sq.relname, a.attname, d.deptype::text,
       coalesce(pg_catalog.pg_get_serial_sequence($2, a.attname), '')
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class sq ON sq.oid = d.objid AND sq.relkind = 'S'
JOIN pg_catalog.pg_namespace sn ON sn.oid = sq.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.refobjid = to_regclass($1) AND d.deptype IN ('a', 'i')
ORDER BY a.attnum`, []any{qt, qn}, func(rows *sql.Rows) error {
		var seq, seqName, col, deptype, replacementSeq string
		if err := rows.Scan(&seq, &seqName, &col, &deptype, &replacementSeq); err != nil {
			return err
		}
		if deptype == "a" {
			// serial: the sequence the default calls would go with the
			// table.
			mv.before = append(mv.before, "ALTER SEQUENCE "+seq+" OWNED BY "+qn+"."+d.Quote(col))
			return nil
		}
		// identity: the replacement has a sequence of its own, which
		// goes on from where the table's is and then takes its name.
		if replacementSeq == "" {
			return fmt.Errorf("identity column %s of the replacement has no sequence", col)
		}
		mv.before = append(mv.before, "SELECT pg_catalog.setval("+quoteLiteral(replacementSeq)+", last_value, is_called) FROM "+seq)
		mv.after = append(mv.after, "ALTER SEQUENCE "+replacementSeq+" RENAME TO "+d.Quote(seqName))
		return nil
	})
	if err != nil {
		return mv, fmt.Errorf("read the sequences of %s: %w", table, err)
	}
	handled := map[string]bool{}
	for _, fk := range fks {
		handled[foreignKeyID(fk.Table, fk.Name)] = true
	}
	err = s.each(ctx, `
SELECT n.nspname, c.relname, con.conname, pg_catalog.pg_get_constraintdef(con.oid), con.conrelid = to_regclass($1),
       coalesce(pg_catalog.obj_description(con.oid, 'pg_constraint'), '')
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND (con.conrelid = to_regclass($1) OR con.confrelid = to_regclass($1))
ORDER BY 1, 2, 3`, []any{qt}, func(rows *sql.Rows) error {
		var owner schema.TableName
		var name, def, comment string
		var outbound bool
		if err := rows.Scan(&owner.Schema, &owner.Name, &name, &def, &outbound, &comment); err != nil {
			return err
		}
		if handled[foreignKeyID(owner, name)] {
			return nil
		}
		// The table's own keys go with it; another table's key on it is
		// dropped first. Both are recreated, and checked, on the
		// replacement under the table's name.
		if !outbound {
			mv.before = append(mv.before, "ALTER TABLE "+d.QuoteTable(owner)+" DROP CONSTRAINT "+d.Quote(name))
		}
		if checkLater[foreignKeyID(owner, name)] && !strings.HasSuffix(def, notValid) {
			def += notValid
		}
		mv.after = append(mv.after, "ALTER TABLE "+d.QuoteTable(owner)+" ADD CONSTRAINT "+d.Quote(name)+" "+def)
		if comment != "" {
			mv.after = append(mv.after, "COMMENT ON CONSTRAINT "+d.Quote(name)+" ON "+d.QuoteTable(owner)+" IS "+quoteLiteral(comment))
		}
		return nil
	})
	if err != nil {
		return mv, fmt.Errorf("read the foreign keys of %s: %w", table, err)
	}
	return mv, nil
}

// columnSettingsSQL reads what CREATE TABLE … (LIKE …) does not copy and
// the table's other columns have: statistics targets, attribute options
// (n_distinct), compression methods, and the index the table is clustered
// on. It gives the statements that set them on the replacement once it has
// the table's name. The planned columns are new columns of ciphertext, as
// an in-place job makes them, and keep none of their plaintext's settings.
func (s *swapTx) columnSettingsSQL(ctx context.Context, table schema.TableName, planned []dialect.SwapColumn) ([]string, error) {
	d := s.d
	qt := d.QuoteTable(table)
	skip := map[string]bool{}
	for _, c := range planned {
		skip[c.Name] = true
	}
	var out []string
	err := s.each(ctx, `
SELECT a.attname, coalesce(a.attstattarget, -1)::int, coalesce(array_to_json(a.attoptions)::text, '[]'), a.attcompression::text
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, []any{qt}, func(rows *sql.Rows) error {
		var name, compression string
		var target int
		var options jsonNames
		if err := rows.Scan(&name, &target, &options, &compression); err != nil {
			return err
		}
		if skip[name] {
			return nil
		}
		col := "ALTER TABLE " + qt + " ALTER COLUMN " + d.Quote(name)
		if target >= 0 {
			out = append(out, col+" SET STATISTICS "+strconv.Itoa(target))
		}
		var set []string
		for _, o := range options {
			key, value, ok := strings.Cut(o, "=")
			if !ok || !optionName.MatchString(key) {
				return fmt.Errorf("attribute option %q of column %s of %s cannot be copied", o, name, table)
			}
			set = append(set, key+" = "+quoteLiteral(value))
		}
		if len(set) > 0 {
			out = append(out, col+" SET ("+strings.Join(set, ", ")+")")
		}
		switch compression {
		case "p":
			out = append(out, col+" SET COMPRESSION pglz")
		case "l":
			out = append(out, col+" SET COMPRESSION lz4")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the column settings of %s: %w", table, err)
	}
	cluster, err := queryStrings(ctx, s.tx, `
SELECT 'ALTER TABLE ' || $1 || ' CLUSTER ON ' || quote_ident(ic.relname)
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1) AND i.indisclustered`, qt)
	if err != nil {
		return nil, fmt.Errorf("read the index %s is clustered on: %w", table, err)
	}
	return append(out, cluster...), nil
}

// notValid ends the definition of a foreign key that is not validated, as
// pg_get_constraintdef writes it.
const notValid = " NOT VALID"

// foreignKeyID identifies a foreign key: its table and name.
func foreignKeyID(table schema.TableName, name string) string {
	return qualified(table) + "\x00" + name
}

// validatedForeignKeys are the foreign keys of the model, in both
// directions, that were validated when the job started.
func validatedForeignKeys(model *schema.Table) map[string]bool {
	out := map[string]bool{}
	for _, fk := range slices.Concat(model.ForeignKeys, model.ReferencedBy) {
		if !strings.HasSuffix(fk.Definition, notValid) {
			out[foreignKeyID(fk.Table, fk.Name)] = true
		}
	}
	return out
}

// validateForeignKeys checks, after the swap of a group committed, each
// foreign key of its tables (in both directions) that is not validated
// although it was when the job started: the swap recreated it NOT VALID.
// VALIDATE reads the referencing table under a lock that lets other
// sessions read and write it. A swap run again after a crash finds them
// the same way.
func (d Dialect) validateForeignKeys(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	for _, ts := range group {
		checkLater := validatedForeignKeys(ts.Table)
		var todo []string
		err := dialect.EachRow(ctx, db, `
SELECT n.nspname, c.relname, con.conname
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND NOT con.convalidated AND (con.conrelid = to_regclass($1) OR con.confrelid = to_regclass($1))
ORDER BY 1, 2, 3`, []any{d.QuoteTable(ts.Table.Name)}, func(rows *sql.Rows) error {
			var owner schema.TableName
			var name string
			if err := rows.Scan(&owner.Schema, &owner.Name, &name); err != nil {
				return err
			}
			if checkLater[foreignKeyID(owner, name)] {
				todo = append(todo, "ALTER TABLE "+d.QuoteTable(owner)+" VALIDATE CONSTRAINT "+d.Quote(name))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the foreign keys to validate on %s: %w", ts.Table.Name, err)
		}
		for _, stmt := range todo {
			// Each in a transaction of its own that waits for its locks
			// no longer than the swap does.
			if err := inDDLTx(ctx, db, func(tx *sql.Tx) error { return execEach(ctx, tx, []string{stmt}) }); err != nil {
				return fmt.Errorf("validate the foreign keys of %s after its cut-over (%s): %w", ts.Table.Name, stmt, err)
			}
		}
	}
	return nil
}

// each runs a query in the swap's transaction and scans every row.
func (s *swapTx) each(ctx context.Context, query string, args []any, scan func(*sql.Rows) error) error {
	return dialect.EachRow(ctx, s.tx, query, args, scan)
}

// qualified is a table name with the default schema filled in.
func qualified(t schema.TableName) string {
	if t.Schema == "" {
		t.Schema = Dialect{}.DefaultSchema()
	}
	return t.String()
}

// quoteLiteral is s as an SQL string literal, whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(s) + "'"
}
