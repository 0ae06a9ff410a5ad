package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Swap implements dialect.Mover with ALTER TABLE and sp_rename, in one
// transaction for the whole foreign-key group: SQL Server's DDL is
// transactional, so a failure at any step (a lock timeout, a recorded
// definition that no longer applies) leaves every table as it was.
//
// Foreign keys touching the swapped columns are dropped first. Per table,
// the recorded keys and indexes covering a swapped column are dropped, then
// its default and the checks referencing it (the planner lets those
// through only when the plan allows dropping them, and Unswap restores
// them), and the row-id column; the plaintext column is dropped, or with
// plaintext: null renamed to <column>_plaintext and emptied; the
// ciphertext column takes the original name and, when the original was
// NOT NULL, NOT NULL, and the plaintext column's extended properties and
// column permissions (carry.go); and the keys and indexes are recreated on
// it from their recorded definitions. The foreign keys are recreated last.
//
// A table whose ciphertext column is gone was swapped by an earlier run
// that committed: it is skipped, so Swap may run again after a crash.
func (d sqlServer) Swap(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	return d.swapGroup(ctx, db, group, true)
}

// Unswap implements dialect.Mover, in one transaction like Swap: the
// foreign keys and the keys and indexes on the ciphertext column are
// dropped, the ciphertext, IV and kept plaintext columns go, the restored
// column takes the original name, its declared type with its collation
// and NOT NULL, and the ciphertext column's extended properties and column
// permissions, then its default, checks, keys, indexes and foreign keys
// come back as recorded.
//
// Two things cannot be restored in place. The column's position: SQL
// Server cannot move a column, so the restored column comes last in the
// table (SELECT * and INSERT without a column list see another order);
// restoring it would mean copying the table into a new one. And for the
// deprecated text, ntext and image types, NOT NULL and a collation other
// than the database default: ALTER COLUMN refuses those types (error
// 4928), so the restored column keeps what the revert added it with.
func (d sqlServer) Unswap(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	return d.swapGroup(ctx, db, group, false)
}

func (d sqlServer) swapGroup(ctx context.Context, db *sql.DB, group []dialect.TableSwap, forward bool) (err error) {
	what := "cut-over"
	if !forward {
		what = "revert cut-over"
	}
	var names []string
	for _, ts := range group {
		names = append(names, ts.Table.Name.String())
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s of %s: %w", what, strings.Join(names, ", "), err)
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// LOCK_TIMEOUT belongs to the session, not the transaction: set it on
	// the connection the transaction runs on, and restore the default
	// before the connection goes back to the pool.
	if _, err := conn.ExecContext(ctx, lockTimeoutSQL(swapLockTimeout)); err != nil {
		return fmt.Errorf("set lock timeout: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), resetLockTimeoutSQL)
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if forward {
		// An online job's tables are locked before anything is read: no
		// other writer may change a row between the catch-up and the swap.
		for _, ts := range group {
			if ts.Online || ts.CatchUp != nil {
				if _, err := tx.ExecContext(ctx, lockTableSQL(withDefaultSchema(ts.Table.Name))); err != nil {
					return fmt.Errorf("lock %s: %w", ts.Table.Name, err)
				}
			}
		}
	}
	pending, err := pendingColumns(ctx, tx, group)
	if err != nil {
		return err
	}
	for i, ts := range group {
		if len(pending[i]) == 0 {
			continue
		}
		if err := refuseDisabledTriggers(ctx, tx, ts, forward); err != nil {
			return err
		}
	}
	if forward {
		for i, ts := range group {
			if len(pending[i]) == 0 || ts.CatchUp == nil {
				continue
			}
			if err := ts.CatchUp(ctx, tx); err != nil {
				return fmt.Errorf("%s: catch up: %w", ts.Table.Name, err)
			}
		}
	}
	var steps []step
	if forward {
		steps, err = swapSteps(group, pending)
	} else {
		steps, err = unswapSteps(group, pending)
	}
	if err != nil {
		return err
	}
	for _, s := range steps {
		if _, err := tx.ExecContext(ctx, s.sql); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// pendingColumns lists, per table of the group, the columns still to swap:
// those whose Temp column (ciphertext on Swap, restored plaintext on
// Unswap) still exists.
func pendingColumns(ctx context.Context, tx *sql.Tx, group []dialect.TableSwap) ([][]dialect.SwapColumn, error) {
	pending := make([][]dialect.SwapColumn, len(group))
	for i, ts := range group {
		table := withDefaultSchema(ts.Table.Name)
		for _, sc := range ts.Columns {
			var length sql.NullInt64
			if err := tx.QueryRowContext(ctx, "SELECT COL_LENGTH(@p1, @p2)", quoteTable(table), sc.Temp).Scan(&length); err != nil {
				return nil, fmt.Errorf("look for column %s of %s: %w", sc.Temp, table, err)
			}
			if length.Valid {
				pending[i] = append(pending[i], sc)
			}
		}
	}
	return pending, nil
}

// step is one statement of a swap and what it does, for error messages.
type step struct {
	what string
	sql  string
}

// swapSteps lists the statements of a group's cut-over, given the columns
// still to swap per table (pending[i] for group[i]). It is pure, so the
// tests check the statements against the grammar and their order.
func swapSteps(group []dialect.TableSwap, pending [][]dialect.SwapColumn) ([]step, error) {
	return groupSteps(group, pending, swapTableSteps)
}

// unswapSteps lists the statements of a group's revert cut-over.
func unswapSteps(group []dialect.TableSwap, pending [][]dialect.SwapColumn) ([]step, error) {
	return groupSteps(group, pending, unswapTableSteps)
}

func groupSteps(group []dialect.TableSwap, pending [][]dialect.SwapColumn,
	table func(dialect.TableSwap, []dialect.SwapColumn) ([]step, error)) ([]step, error) {
	if len(pending) != len(group) {
		return nil, fmt.Errorf("internal error: %d pending lists for %d tables", len(pending), len(group))
	}
	fks := swappedForeignKeys(group, pending)
	var steps []step
	for _, fk := range fks {
		if fk.Definition == "" {
			return nil, fmt.Errorf("foreign key %s of %s has no recorded definition to recreate it from", fk.Name, fk.Table)
		}
		steps = append(steps, step{"drop foreign key " + fk.Name,
			dropConstraintSQL(withDefaultSchema(fk.Table), fk.Name, objForeignKey)})
	}
	for i, ts := range group {
		if len(pending[i]) == 0 {
			continue
		}
		ts.Table = withTableSchema(ts.Table)
		s, err := table(ts, pending[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ts.Table.Name, err)
		}
		steps = append(steps, s...)
	}
	for _, fk := range fks {
		steps = append(steps, step{"recreate foreign key " + fk.Name, fk.Definition})
	}
	return steps, nil
}

// swapTableSteps puts the ciphertext columns of one table in place of the
// plaintext ones.
func swapTableSteps(ts dialect.TableSwap, cols []dialect.SwapColumn) ([]step, error) {
	t := ts.Table
	tn := t.Name
	var steps []step
	add := func(what, stmt string) { steps = append(steps, step{what, stmt}) }
	models := make([]*schema.Column, len(cols))
	for i, sc := range cols {
		if models[i] = t.Column(sc.Name); models[i] == nil {
			return nil, fmt.Errorf("column %s is not in the recorded table", sc.Name)
		}
		if sc.TempType == "" {
			return nil, fmt.Errorf("no ciphertext type for column %s", sc.Name)
		}
	}
	indexes, err := coveringIndexes(t, cols)
	if err != nil {
		return nil, err
	}
	if ts.Online {
		// The catch-up ran before these steps, under the table lock.
		steps = append(steps, dropCaptureSteps(tn)...)
	}
	// The guard fires on UPDATE of the columns dropped below.
	steps = append(steps, dropGuardStep(tn))
	steps = append(steps, saveColumnMetadataStep(tn, cols))
	steps = append(steps, dropIndexSteps(tn, indexes)...)
	for _, col := range models {
		if col.DefaultName != "" {
			add("drop default "+col.DefaultName, dropConstraintSQL(tn, col.DefaultName, objDefault))
		}
	}
	for _, ck := range coveringChecks(t, cols) {
		add("drop check "+ck.Name, dropConstraintSQL(tn, ck.Name, objCheck))
	}
	if ts.RowID != "" {
		steps = append(steps, dropRowIDSteps(tn, ts.RowID)...)
	}
	for i, sc := range cols {
		col := models[i]
		if ts.KeepPlaintext && sc.Plaintext != "" {
			steps = append(steps, keepPlaintextSteps(tn, col, sc.Plaintext)...)
		} else {
			add("drop plaintext column "+sc.Name, "ALTER TABLE "+quoteTable(tn)+" DROP COLUMN "+quoteIdent(sc.Name))
		}
		add("rename "+sc.Temp+" to "+sc.Name, renameColumnSQL(tn, sc.Temp, sc.Name))
		if !col.Nullable {
			add("make "+sc.Name+" NOT NULL", alterColumnSQL(tn, sc.Name, sc.TempType, "", true))
		}
	}
	steps = append(steps, restoreColumnMetadataStep(tn))
	steps = append(steps, createIndexSteps(indexes)...)
	return steps, nil
}

// keepPlaintextSteps keeps the plaintext column, empty, under the name
// plaintext: null gives it. Renaming keeps its position; its NOT NULL goes
// first, since every value becomes NULL. ALTER COLUMN refuses text, ntext
// and image, so a NOT NULL column of those types is replaced by an empty
// NULL column of the same type instead.
func keepPlaintextSteps(tn schema.TableName, col *schema.Column, kept string) []step {
	qt := quoteTable(tn)
	if !col.Nullable && isLegacyLOB(col.Type) {
		return []step{
			{"drop plaintext column " + col.Name, "ALTER TABLE " + qt + " DROP COLUMN " + quoteIdent(col.Name)},
			{"add empty column " + kept, "ALTER TABLE " + qt + " ADD " + quoteIdent(kept) + " " + col.Declared + " NULL"},
		}
	}
	steps := []step{{"rename " + col.Name + " to " + kept, renameColumnSQL(tn, col.Name, kept)}}
	if !col.Nullable {
		steps = append(steps, step{"make " + kept + " NULL", alterColumnSQL(tn, kept, col.Declared, characterCollation(col), false)})
	}
	return append(steps, step{"set " + kept + " to NULL",
		"UPDATE " + qt + " SET " + quoteIdent(kept) + " = NULL WHERE " + quoteIdent(kept) + " IS NOT NULL"})
}

// unswapTableSteps puts the restored plaintext columns of one table in
// place of the ciphertext ones.
func unswapTableSteps(ts dialect.TableSwap, cols []dialect.SwapColumn) ([]step, error) {
	t := ts.Table
	tn := t.Name
	qt := quoteTable(tn)
	var steps []step
	add := func(what, stmt string) { steps = append(steps, step{what, stmt}) }
	models := make([]*schema.Column, len(cols))
	for i, sc := range cols {
		if models[i] = t.Column(sc.Name); models[i] == nil {
			return nil, fmt.Errorf("column %s is not in the recorded table", sc.Name)
		}
	}
	indexes, err := coveringIndexes(t, cols)
	if err != nil {
		return nil, err
	}
	checks := coveringChecks(t, cols)
	for _, ck := range checks {
		if ck.Definition == "" {
			return nil, fmt.Errorf("check %s has no recorded definition to restore it from", ck.Name)
		}
	}
	// The revert's guard fires on UPDATE of the columns dropped below.
	steps = append(steps, dropGuardStep(tn))
	steps = append(steps, saveColumnMetadataStep(tn, cols))
	steps = append(steps, dropIndexSteps(tn, indexes)...)
	if ts.RowID != "" {
		// Unswap restores the table as it was before the job; a row-id
		// column added again for the revert's paging goes with it.
		steps = append(steps, dropRowIDSteps(tn, ts.RowID)...)
	}
	for _, sc := range cols {
		add("drop ciphertext column "+sc.Name, "ALTER TABLE "+qt+" DROP COLUMN "+quoteIdent(sc.Name))
		if sc.IV != "" && t.Column(sc.IV) == nil {
			add("drop IV column "+sc.IV, dropColumnSQL(tn, sc.IV))
		}
		// The column plaintext: null kept, unless the table had a column
		// of that name before the job.
		if kept := sc.Name + dialect.PlaintextKeptSuffix; t.Column(kept) == nil {
			add("drop kept plaintext column "+kept, dropColumnSQL(tn, kept))
		}
	}
	for i, sc := range cols {
		col := models[i]
		add("rename "+sc.Temp+" to "+sc.Name, renameColumnSQL(tn, sc.Temp, sc.Name))
		// The restore column was added with the declared type only: the
		// database's default collation and NULL.
		collation := characterCollation(col)
		if (!col.Nullable || collation != "") && !isLegacyLOB(col.Type) {
			add("restore type of "+sc.Name, alterColumnSQL(tn, sc.Name, col.Declared, collation, !col.Nullable))
		}
	}
	steps = append(steps, restoreColumnMetadataStep(tn))
	for _, col := range models {
		if col.Default == "" {
			continue
		}
		stmt := "ALTER TABLE " + qt + " ADD "
		if col.DefaultName != "" {
			stmt += "CONSTRAINT " + quoteIdent(col.DefaultName) + " "
		}
		add("restore default of "+col.Name, stmt+"DEFAULT "+col.Default+" FOR "+quoteIdent(col.Name))
	}
	for _, ck := range checks {
		add("restore check "+ck.Name, ck.Definition)
	}
	steps = append(steps, createIndexSteps(indexes)...)
	return steps, nil
}

// coveringIndexes lists the recorded primary key and indexes whose key
// holds one of the columns, once each, in the order to drop them:
// nonclustered first, so that dropping a clustered index does not rebuild
// them only for them to be dropped next.
func coveringIndexes(t *schema.Table, cols []dialect.SwapColumn) ([]*schema.Index, error) {
	var all []*schema.Index
	if t.PrimaryKey != nil {
		all = append(all, t.PrimaryKey)
	}
	all = append(all, t.Indexes...)
	var out []*schema.Index
	for _, ix := range all {
		if !coversAny(ix.Columns, cols) {
			continue
		}
		if ix.Definition == "" {
			return nil, fmt.Errorf("index %s has no recorded definition to recreate it from", ix.Name)
		}
		out = append(out, ix)
	}
	slices.SortStableFunc(out, func(a, b *schema.Index) int {
		switch ca, cb := isClustered(a), isClustered(b); {
		case ca == cb:
			return 0
		case cb:
			return -1
		default:
			return 1
		}
	})
	return out, nil
}

func dropIndexSteps(tn schema.TableName, indexes []*schema.Index) []step {
	var steps []step
	for _, ix := range indexes {
		switch {
		case ix.Primary:
			steps = append(steps, step{"drop primary key " + ix.Name, dropConstraintSQL(tn, ix.Name, objPrimaryKey)})
		case ix.Constraint:
			steps = append(steps, step{"drop unique constraint " + ix.Name, dropConstraintSQL(tn, ix.Name, objUnique)})
		default:
			steps = append(steps, step{"drop index " + ix.Name, dropIndexSQL(tn, ix.Name)})
		}
	}
	return steps
}

// createIndexSteps recreates the indexes in the reverse order of their
// drop: the clustered one first, so that the others are built once, on it.
func createIndexSteps(indexes []*schema.Index) []step {
	var steps []step
	for i := len(indexes) - 1; i >= 0; i-- {
		ix := indexes[i]
		steps = append(steps, step{"recreate index " + ix.Name, ix.Definition})
	}
	return steps
}

func dropRowIDSteps(tn schema.TableName, rowID string) []step {
	return []step{
		{"drop index " + rowIDIndex, dropIndexSQL(tn, rowIDIndex)},
		{"drop row-id column " + rowID, dropColumnSQL(tn, rowID)},
	}
}

// coveringChecks lists the recorded checks that reference one of the
// columns.
func coveringChecks(t *schema.Table, cols []dialect.SwapColumn) []*schema.Check {
	var out []*schema.Check
	for _, ck := range t.Checks {
		if coversAny(ck.Columns, cols) {
			out = append(out, ck)
		}
	}
	return out
}

// swappedForeignKeys lists, once each, the recorded foreign keys of the
// group's tables, in both directions, that involve a column still to swap.
func swappedForeignKeys(group []dialect.TableSwap, pending [][]dialect.SwapColumn) []*schema.ForeignKey {
	involves := func(table schema.TableName, cols []string) bool {
		for i, ts := range group {
			if !sameTable(ts.Table.Name, table) {
				continue
			}
			for _, sc := range pending[i] {
				if schema.ContainsFold(cols, sc.Name) {
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
			key := strings.ToLower(withDefaultSchema(fk.Table).String() + "\x00" + fk.Name)
			if seen[key] || !(involves(fk.Table, fk.Columns) || involves(fk.RefTable, fk.RefColumns)) {
				continue
			}
			seen[key] = true
			out = append(out, fk)
		}
	}
	return out
}

// sameTable compares table names as SQL Server does under the usual
// case-insensitive catalog collation, an empty schema being dbo.
func sameTable(a, b schema.TableName) bool {
	a, b = withDefaultSchema(a), withDefaultSchema(b)
	return strings.EqualFold(a.Schema, b.Schema) && strings.EqualFold(a.Name, b.Name)
}

func coversAny(names []string, cols []dialect.SwapColumn) bool {
	for _, sc := range cols {
		if schema.ContainsFold(names, sc.Name) {
			return true
		}
	}
	return false
}

// withTableSchema returns the table with its name in the default schema
// when it names none, sharing everything else.
func withTableSchema(t *schema.Table) *schema.Table {
	if t.Name.Schema != "" {
		return t
	}
	c := *t
	c.Name = withDefaultSchema(t.Name)
	return &c
}

// isLegacyLOB reports the deprecated large-object types, which ALTER
// COLUMN cannot change.
func isLegacyLOB(typ string) bool {
	switch strings.ToLower(typ) {
	case "text", "ntext", "image":
		return true
	}
	return false
}

// characterCollation is the column's collation for DDL: character types
// take one, others have none.
func characterCollation(col *schema.Column) string {
	switch strings.ToLower(col.Type) {
	case "char", "varchar", "nchar", "nvarchar", "text", "ntext":
		return col.Collation
	}
	return ""
}

// clusteredWord finds CLUSTERED as a keyword (not NONCLUSTERED) once
// bracketed names and string literals are blanked out.
var (
	clusteredWord   = regexp.MustCompile(`(?i)\bCLUSTERED\b`)
	quotedOrLiteral = regexp.MustCompile(`\[(?:[^\]]|\]\])*\]|N?'(?:[^']|'')*'`)
)

// isClustered reads the kind of index from its recorded definition, as
// indexDefinition writes it.
func isClustered(ix *schema.Index) bool {
	return clusteredWord.MatchString(quotedOrLiteral.ReplaceAllString(ix.Definition, "_"))
}
