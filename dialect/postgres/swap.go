package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Swap implements dialect.Mover with ALTER TABLE, in one transaction for
// the whole foreign-key group: PostgreSQL's DDL is transactional, so a
// failure at any step (a lock timeout, a recorded definition that no
// longer applies) leaves every table exactly as it was.
//
// Per table, the plaintext column is dropped (PostgreSQL drops its keys,
// indexes and checks with it), or with plaintext: null replaced by an empty
// column of the same type under the kept name; the ciphertext column takes
// the original name and its NOT NULL; the recorded primary key, unique
// constraints and indexes that covered the column are recreated on it from
// their definitions; the row-id column goes. Checks and defaults are not
// recreated: the planner lets them through only when the plan allows
// dropping them, and Unswap restores them. Foreign keys touching the
// swapped columns are dropped first and recreated last.
//
// A table whose ciphertext column is gone was swapped by an earlier run
// that committed: it is skipped, so Swap may run again after a crash.
func (d Dialect) Swap(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	return d.swapGroup(ctx, db, group, true)
}

// Unswap implements dialect.Mover, in one transaction like Swap: the
// ciphertext and IV columns (and a kept plaintext column) are dropped, the
// restored column takes the original name, collation, NOT NULL and default,
// and the recorded checks, keys, indexes and foreign keys on it are
// recreated.
//
// One thing cannot be restored: the column's position. PostgreSQL cannot
// move a column, so the restored column comes last in the table (SELECT *
// and INSERT without a column list see a different order). Restoring the
// order would mean rebuilding the table, which holds an exclusive lock for
// as long as it takes to copy every row.
func (d Dialect) Unswap(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	return d.swapGroup(ctx, db, group, false)
}

func (d Dialect) swapGroup(ctx context.Context, db *sql.DB, group []dialect.TableSwap, forward bool) error {
	what := "cut-over"
	if !forward {
		what = "revert cut-over"
	}
	var names []string
	for _, ts := range group {
		names = append(names, ts.Table.Name.String())
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s of %s: %w", what, strings.Join(names, ", "), err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	s := &swapTx{d: d, tx: tx}
	if err := s.run(ctx, group, forward); err != nil {
		return fmt.Errorf("%s of %s: %w", what, strings.Join(names, ", "), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s of %s: commit: %w", what, strings.Join(names, ", "), err)
	}
	schemaChanges.Add(1)
	// A swap that built a replacement, either way, recreated the foreign
	// keys NOT VALID (an in-place revert recreates none so).
	again := "apply"
	if !forward {
		again = "revert"
	}
	if err := d.validateForeignKeys(ctx, db, group); err != nil {
		return fmt.Errorf("%s of %s: %w (the swap is done; run %s again to finish)", what, strings.Join(names, ", "), err, again)
	}
	return nil
}

// schemaChanges counts the swaps this process committed. A swap changes
// the type of a column under the same name, and pgx caches prepared
// statements per connection: a statement prepared before the swap keeps
// its parameter and result types, so the server refuses it ("cached plan
// must not change result type") or pgx encodes its arguments for the old
// type. Each pooled connection drops its cache before its next use after a
// swap.
var schemaChanges atomic.Int64

// schemaSeenKey holds, in a connection's CustomData, the value of
// schemaChanges when its statement cache was last known to be current.
const schemaSeenKey = "colcrypt.schemaChanges"

func markSchemaSeen(_ context.Context, c *pgx.Conn) error {
	c.PgConn().CustomData()[schemaSeenKey] = schemaChanges.Load()
	return nil
}

// forgetStatementsAfterSwap runs each time database/sql hands out a pooled
// connection again.
func forgetStatementsAfterSwap(ctx context.Context, c *pgx.Conn) error {
	now := schemaChanges.Load()
	data := c.PgConn().CustomData()
	if seen, ok := data[schemaSeenKey].(int64); ok && seen == now {
		return nil
	}
	if err := c.DeallocateAll(ctx); err != nil {
		// database/sql closes the connection and takes another.
		return driver.ErrBadConn
	}
	data[schemaSeenKey] = now
	return nil
}

// columnCommentsAndGrants gives the statements that put the comments and
// privileges of the swapped columns (as the table has them now, under
// their names) on the columns that take their names: what describes and
// guards a column stays with its name. The privileges are granted again by
// colcrypt's user.
func (s *swapTx) columnCommentsAndGrants(ctx context.Context, table schema.TableName, cols []dialect.SwapColumn) ([]string, error) {
	var names []string
	for _, sc := range cols {
		names = append(names, sc.Name)
	}
	qt := s.d.QuoteTable(table)
	out, err := queryStrings(ctx, s.tx, `
SELECT 'COMMENT ON COLUMN ' || $1 || '.' || quote_ident(a.attname) || ' IS ' || quote_literal(pg_catalog.col_description(a.attrelid, a.attnum))
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attname = ANY ($2) AND NOT a.attisdropped
  AND pg_catalog.col_description(a.attrelid, a.attnum) IS NOT NULL
UNION ALL
SELECT 'GRANT ' || a.privilege_type || ' (' || quote_ident(col.attname) || ') ON TABLE ' || $1 || ' TO ' || `+granteeSQL+`
FROM pg_catalog.pg_attribute col, pg_catalog.aclexplode(col.attacl) a
WHERE col.attrelid = to_regclass($1) AND col.attname = ANY ($2) AND NOT col.attisdropped
ORDER BY 1`, qt, names)
	if err != nil {
		return nil, fmt.Errorf("read the comments and privileges of the columns of %s: %w", table, err)
	}
	return out, nil
}

// granteeSQL names the grantee of a row of aclexplode (aliased a) and
// its grant option, as GRANT … TO takes them.
const granteeSQL = `CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END ||
       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END`

// execAll runs statements in turn in the swap's transaction.
func (s *swapTx) execAll(ctx context.Context, what string, stmts []string) error {
	if err := execEach(ctx, s.tx, stmts); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// swapTx runs the statements of one group's swap in its transaction.
type swapTx struct {
	d  Dialect
	tx *sql.Tx
}

func (s *swapTx) exec(ctx context.Context, what, stmt string) error {
	if _, err := s.tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *swapTx) run(ctx context.Context, group []dialect.TableSwap, forward bool) error {
	if err := s.exec(ctx, "set lock_timeout", setLockTimeout); err != nil {
		return err
	}
	// The columns still to swap: those whose Temp column (ciphertext on
	// Swap, restored plaintext on Unswap) is still there, or every column
	// of a table whose replacement is still there.
	pending := make([][]dialect.SwapColumn, len(group))
	anyPending := false
	var tables []string
	for i, ts := range group {
		tables = append(tables, s.d.QuoteTable(ts.Table.Name))
		if ts.Rebuilt {
			oid, err := s.d.regclass(ctx, s.tx, s.d.RebuildName(ts.Table.Name))
			if err != nil {
				return err
			}
			if oid != 0 {
				tables = append(tables, s.d.QuoteTable(s.d.RebuildName(ts.Table.Name)))
				pending[i], anyPending = ts.Columns, true
			} else if ts.Reverse {
				// Gone because a run that crashed swapped it in, unless
				// the table still has what the encryption added.
				if err := s.refuseLostReplacement(ctx, ts); err != nil {
					return err
				}
			}
		}
	}
	// Every lock up front, before any change: the lock timeout covers each
	// wait, and no later statement has to upgrade a weaker lock that
	// another session's lock request is already queued behind.
	if err := s.exec(ctx, "lock tables", "LOCK TABLE "+strings.Join(tables, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return err
	}
	for i, ts := range group {
		if ts.Rebuilt {
			continue
		}
		live, err := s.columns(ctx, ts.Table.Name)
		if err != nil {
			return err
		}
		for _, sc := range ts.Columns {
			if live[sc.Temp] {
				pending[i] = append(pending[i], sc)
				anyPending = true
			}
		}
	}
	if !anyPending {
		return nil
	}
	if forward {
		// The tables are locked against every other session: rows other
		// writers changed since the copy are re-encrypted now, before any
		// plaintext goes.
		for i, ts := range group {
			if len(pending[i]) == 0 || ts.CatchUp == nil {
				continue
			}
			if err := ts.CatchUp(ctx, s.tx); err != nil {
				return fmt.Errorf("%s: catch up: %w", ts.Table.Name, err)
			}
		}
	}
	fks := swappedForeignKeys(group)
	for _, fk := range fks {
		if err := s.exec(ctx, "drop foreign key "+fk.Name,
			"ALTER TABLE "+s.d.QuoteTable(fk.Table)+" DROP CONSTRAINT IF EXISTS "+s.d.Quote(fk.Name)); err != nil {
			return err
		}
	}
	for i, ts := range group {
		if len(pending[i]) == 0 {
			continue
		}
		var err error
		switch {
		case ts.Rebuilt:
			err = s.swapRebuilt(ctx, ts, fks)
		case forward:
			err = s.swapTable(ctx, ts, pending[i])
		default:
			err = s.unswapTable(ctx, ts, pending[i])
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ts.Table.Name, err)
		}
	}
	for _, fk := range fks {
		// As moveSQL does: checked once the swap committed
		// (validateForeignKeys), not under its locks.
		def := fk.Definition
		if forward && !strings.HasSuffix(def, notValid) {
			def += notValid
		}
		if err := s.exec(ctx, "recreate foreign key "+fk.Name, "ALTER TABLE "+s.d.QuoteTable(fk.Table)+
			" ADD CONSTRAINT "+s.d.Quote(fk.Name)+" "+def); err != nil {
			return err
		}
	}
	return nil
}

// refuseLostReplacement gives an error when a revert's replacement is gone
// but the table was never swapped: it still has an IV column, or a
// swapped column of another type than the recorded one.
func (s *swapTx) refuseLostReplacement(ctx context.Context, ts dialect.TableSwap) error {
	live, err := s.columns(ctx, ts.Table.Name)
	if err != nil {
		return err
	}
	for _, sc := range ts.Columns {
		typ, err := queryStrings(ctx, s.tx, `SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped`, s.d.QuoteTable(ts.Table.Name), sc.Name)
		if err != nil {
			return fmt.Errorf("read the type of %s.%s: %w", ts.Table.Name, sc.Name, err)
		}
		col := columnNamed(ts.Table, sc.Name)
		if live[sc.IV] || (len(typ) == 1 && col != nil && typ[0] != col.Declared) {
			return fmt.Errorf("the replacement %s that revert builds is gone, but %s still holds ciphertext: nothing was changed, "+
				"and the table is readable as before", s.d.RebuildName(ts.Table.Name), ts.Table.Name)
		}
	}
	return nil
}

// refuseDisabledTriggers refuses an in-place cut-over when the job's guard
// or its change capture is disabled: the writes they exist to stop or
// capture may have got past them. (A trigger missing altogether is left
// to the rest of the swap: an earlier attempt of this cut-over may have
// dropped it.)
func (s *swapTx) refuseDisabledTriggers(ctx context.Context, ts dialect.TableSwap, again, undo string) error {
	t := ts.Table.Name
	triggers := map[string]string{guardName(t): "guards the planned columns of " + t.String() + " until its cut-over"}
	if ts.Online {
		triggers[captureName(t)] = "marks the rows other sessions change during the online job"
	}
	for name, what := range triggers {
		state, err := s.d.triggerState(ctx, s.tx, t, name)
		if err != nil {
			return err
		}
		if state == "D" {
			return s.d.triggerDisabled(t, name, what, again, undo)
		}
	}
	return nil
}

// swapTable puts the ciphertext columns in place of the plaintext ones.
func (s *swapTx) swapTable(ctx context.Context, ts dialect.TableSwap, cols []dialect.SwapColumn) error {
	t := ts.Table
	qt := s.d.QuoteTable(t.Name)
	var drop, after []string
	for _, sc := range cols {
		drop = append(drop, "DROP COLUMN IF EXISTS "+s.d.Quote(sc.Name))
		if ts.KeepPlaintext && sc.Plaintext != "" {
			// plaintext: null keeps the column under another name, empty.
			// An empty column of the same type is that, without rewriting
			// every row to NULL while the table is locked; the old values
			// stay in the pages, as after DROP COLUMN, until a purge.
			typ, err := s.columnType(ctx, t, sc.Name)
			if err != nil {
				return err
			}
			drop = append(drop, "ADD COLUMN IF NOT EXISTS "+s.d.Quote(sc.Plaintext)+" "+typ)
		}
		if col := columnNamed(t, sc.Name); col != nil && !col.Nullable {
			after = append(after, "ALTER COLUMN "+s.d.Quote(sc.Name)+" SET NOT NULL")
		}
	}
	keep, err := s.columnCommentsAndGrants(ctx, t.Name, cols)
	if err != nil {
		return err
	}
	if err := s.refuseDisabledTriggers(ctx, ts, "apply", "revert the job, then run apply again"); err != nil {
		return err
	}
	if err := s.execAll(ctx, "lift the guard on "+t.Name.String(), s.d.dropGuardSQL(t.Name)); err != nil {
		return err
	}
	if err := s.exec(ctx, "drop plaintext columns", "ALTER TABLE "+qt+" "+strings.Join(drop, ", ")); err != nil {
		return err
	}
	for _, sc := range cols {
		if err := s.exec(ctx, "rename "+sc.Temp, "ALTER TABLE "+qt+" RENAME COLUMN "+s.d.Quote(sc.Temp)+" TO "+s.d.Quote(sc.Name)); err != nil {
			return err
		}
	}
	if err := s.execAll(ctx, "keep column comments and privileges", keep); err != nil {
		return err
	}
	if ts.RowID != "" {
		after = append(after, "DROP COLUMN IF EXISTS "+s.d.Quote(ts.RowID))
	}
	if len(after) > 0 {
		if err := s.exec(ctx, "set NOT NULL and drop the row id", "ALTER TABLE "+qt+" "+strings.Join(after, ", ")); err != nil {
			return err
		}
	}
	if ts.Online {
		for _, stmt := range s.d.dropCaptureSQL(t.Name) {
			if err := s.exec(ctx, "drop change capture", stmt); err != nil {
				return err
			}
		}
	}
	return s.recreateIndexes(ctx, t, cols)
}

// unswapTable puts the restored plaintext columns in place of the
// ciphertext ones.
func (s *swapTx) unswapTable(ctx context.Context, ts dialect.TableSwap, cols []dialect.SwapColumn) error {
	t := ts.Table
	qt := s.d.QuoteTable(t.Name)
	var drop, after []string
	for _, sc := range cols {
		drop = append(drop, "DROP COLUMN IF EXISTS "+s.d.Quote(sc.Name))
		if sc.IV != "" {
			drop = append(drop, "DROP COLUMN IF EXISTS "+s.d.Quote(sc.IV))
		}
		// The column plaintext: null kept, unless the table had a column
		// of that name before the job.
		if kept := sc.Name + dialect.PlaintextKeptSuffix; columnNamed(t, kept) == nil {
			drop = append(drop, "DROP COLUMN IF EXISTS "+s.d.Quote(kept))
		}
		col := columnNamed(t, sc.Name)
		if col == nil {
			return fmt.Errorf("column %s is not in the recorded table", sc.Name)
		}
		qc := s.d.Quote(sc.Name)
		if col.Collation != "" {
			// The restore column was added with the declared type only,
			// which format_type writes without the collation.
			typ, err := s.columnType(ctx, t, sc.Name)
			if err != nil {
				return err
			}
			after = append(after, "ALTER COLUMN "+qc+" TYPE "+typ)
		}
		if !col.Nullable {
			after = append(after, "ALTER COLUMN "+qc+" SET NOT NULL")
		}
		if col.Default != "" {
			after = append(after, "ALTER COLUMN "+qc+" SET DEFAULT "+col.Default)
		}
	}
	if ts.RowID != "" {
		// A revert that had to add the row-id column again to page
		// through the table drops it with the rest.
		drop = append(drop, "DROP COLUMN IF EXISTS "+s.d.Quote(ts.RowID))
	}
	keep, err := s.columnCommentsAndGrants(ctx, t.Name, cols)
	if err != nil {
		return err
	}
	if err := s.refuseDisabledTriggers(ctx, ts, "revert", "the table still holds its ciphertext, readable as before"); err != nil {
		return err
	}
	if err := s.execAll(ctx, "lift the guard on "+t.Name.String(), s.d.dropGuardSQL(t.Name)); err != nil {
		return err
	}
	if err := s.exec(ctx, "drop ciphertext columns", "ALTER TABLE "+qt+" "+strings.Join(drop, ", ")); err != nil {
		return err
	}
	for _, sc := range cols {
		if err := s.exec(ctx, "rename "+sc.Temp, "ALTER TABLE "+qt+" RENAME COLUMN "+s.d.Quote(sc.Temp)+" TO "+s.d.Quote(sc.Name)); err != nil {
			return err
		}
	}
	if err := s.execAll(ctx, "keep column comments and privileges", keep); err != nil {
		return err
	}
	if len(after) > 0 {
		if err := s.exec(ctx, "restore type, NOT NULL and default", "ALTER TABLE "+qt+" "+strings.Join(after, ", ")); err != nil {
			return err
		}
	}
	for _, ck := range t.Checks {
		if !coversAny(ck.Columns, cols) {
			continue
		}
		if err := s.addConstraint(ctx, t, ck.Name, ck.Definition); err != nil {
			return err
		}
	}
	return s.recreateIndexes(ctx, t, cols)
}

// recreateIndexes recreates the recorded primary key, unique and exclusion
// constraints and indexes that cover one of the columns, from their
// recorded definitions: pg_get_constraintdef's "PRIMARY KEY (id)" or
// "UNIQUE (ssn)" for constraints, pg_get_indexdef's complete CREATE INDEX
// for the others. One that exists already (an index on two swapped
// columns, recreated for the first) is left alone.
func (s *swapTx) recreateIndexes(ctx context.Context, t *schema.Table, cols []dialect.SwapColumn) error {
	var all []*schema.Index
	if t.PrimaryKey != nil {
		all = append(all, t.PrimaryKey)
	}
	all = append(all, t.Indexes...)
	for _, ix := range all {
		if !coversAny(ix.Columns, cols) {
			continue
		}
		if ix.Constraint {
			if err := s.addConstraint(ctx, t, ix.Name, ix.Definition); err != nil {
				return err
			}
			continue
		}
		exists, err := s.exists(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2)`, s.schemaOf(t), ix.Name)
		if err != nil {
			return fmt.Errorf("look for index %s: %w", ix.Name, err)
		}
		if !exists {
			// pg_get_indexdef writes the index of a partitioned table as
			// CREATE INDEX ... ON ONLY, which would build an invalid
			// index without its partitions' indexes: dropping the column
			// dropped those too, so build them all again.
			def := strings.Replace(ix.Definition, " ON ONLY ", " ON ", 1)
			if err := s.exec(ctx, "recreate index "+ix.Name, def); err != nil {
				return err
			}
		}
	}
	return nil
}

// addConstraint adds a recorded table constraint unless the table has one
// of that name.
func (s *swapTx) addConstraint(ctx context.Context, t *schema.Table, name, definition string) error {
	qt := s.d.QuoteTable(t.Name)
	exists, err := s.exists(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
  WHERE conrelid = to_regclass($1) AND conname = $2)`, qt, name)
	if err != nil {
		return fmt.Errorf("look for constraint %s: %w", name, err)
	}
	if exists {
		return nil
	}
	return s.exec(ctx, "recreate constraint "+name, "ALTER TABLE "+qt+" ADD CONSTRAINT "+s.d.Quote(name)+" "+definition)
}

func (s *swapTx) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var ok bool
	err := s.tx.QueryRowContext(ctx, query, args...).Scan(&ok)
	return ok, err
}

func (s *swapTx) schemaOf(t *schema.Table) string {
	if t.Name.Schema == "" {
		return s.d.DefaultSchema()
	}
	return t.Name.Schema
}

// columns lists the table's live columns, by exact name.
func (s *swapTx) columns(ctx context.Context, table schema.TableName) (map[string]bool, error) {
	rows, err := s.tx.QueryContext(ctx, `SELECT attname FROM pg_catalog.pg_attribute
WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, s.d.QuoteTable(table))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		out[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	return out, nil
}

// columnType is the recorded column's declared type with its collation,
// for DDL. ReadTable records a collation as its name when it lives in
// pg_catalog (where names such as "en_US.utf8" hold dots) and as
// schema.name otherwise; the catalog gives it back quoted.
func (s *swapTx) columnType(ctx context.Context, t *schema.Table, name string) (string, error) {
	col := columnNamed(t, name)
	if col == nil {
		return "", fmt.Errorf("column %s is not in the recorded table", name)
	}
	if col.Collation == "" {
		return col.Declared, nil
	}
	var quoted string
	err := s.tx.QueryRowContext(ctx, `
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.collname)
FROM pg_catalog.pg_collation c
JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
WHERE c.collencoding IN (-1, pg_catalog.pg_char_to_encoding(pg_catalog.getdatabaseencoding()))
  AND ((n.nspname = 'pg_catalog' AND c.collname = $1) OR n.nspname || '.' || c.collname = $1)
ORDER BY n.nspname = 'pg_catalog' DESC
LIMIT 1`, col.Collation).Scan(&quoted)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("collation %s of column %s no longer exists", col.Collation, name)
	}
	if err != nil {
		return "", fmt.Errorf("look up collation %s of column %s: %w", col.Collation, name, err)
	}
	return col.Declared + " COLLATE " + quoted, nil
}

// swappedForeignKeys lists, once each, the recorded foreign keys of the
// group's tables, in both directions, that involve a swapped column.
func swappedForeignKeys(group []dialect.TableSwap) []*schema.ForeignKey {
	involves := func(table schema.TableName, cols []string) bool {
		for _, ts := range group {
			if !sameTable(ts.Table.Name, table) {
				continue
			}
			for _, sc := range ts.Columns {
				if slices.Contains(cols, sc.Name) {
					return true
				}
			}
		}
		return false
	}
	seen := map[string]bool{}
	var out []*schema.ForeignKey
	for _, ts := range group {
		for _, fk := range append(append([]*schema.ForeignKey{}, ts.Table.ForeignKeys...), ts.Table.ReferencedBy...) {
			key := fk.Table.String() + "\x00" + fk.Name
			if seen[key] || !(involves(fk.Table, fk.Columns) || involves(fk.RefTable, fk.RefColumns)) {
				continue
			}
			seen[key] = true
			out = append(out, fk)
		}
	}
	return out
}

// sameTable compares names as ReadTable records them: schema-qualified,
// exact case.
func sameTable(a, b schema.TableName) bool {
	if a.Schema == "" {
		a.Schema = Dialect{}.DefaultSchema()
	}
	if b.Schema == "" {
		b.Schema = Dialect{}.DefaultSchema()
	}
	return a == b
}

// coversAny reports whether names holds one of the columns. PostgreSQL
// names are case-sensitive ("Email" and email can both exist), and the
// catalog records them exactly, so they are compared exactly.
func coversAny(names []string, cols []dialect.SwapColumn) bool {
	for _, sc := range cols {
		if slices.Contains(names, sc.Name) {
			return true
		}
	}
	return false
}

// columnNamed finds a recorded column by its exact name.
func columnNamed(t *schema.Table, name string) *schema.Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}
