package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// oldTableSuffix names the original table while a swap rebuilds it.
const oldTableSuffix = "__colcrypt_old"

func (Dialect) StateTypes() dialect.StateTypes {
	return dialect.StateTypes{Text: "TEXT", Key: "TEXT", Blob: "BLOB", BigInt: "INTEGER"}
}

func (Dialect) Placeholder(int) string { return "?" }

func (Dialect) FirstRows(query string, offset, n int64) string {
	return query + " LIMIT " + strconv.FormatInt(n, 10) + " OFFSET " + strconv.FormatInt(offset, 10)
}

// RowID: every SQLite table but WITHOUT ROWID ones (which always have a
// primary key) has a rowid, stable until VACUUM; swaps copy it explicitly.
func (Dialect) RowID() (string, bool) { return "rowid", false }

// liveColumns lists the table's columns now, including hidden ones.
func liveColumns(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table schema.TableName) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT name FROM pragma_table_xinfo(?)", table.Name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		cols[strings.ToLower(name)] = true
	}
	return cols, rows.Err()
}

func (d Dialect) AddColumn(ctx context.Context, db *sql.DB, table schema.TableName, column, typ string) error {
	cols, err := liveColumns(ctx, db, table)
	if err != nil {
		return err
	}
	if cols[strings.ToLower(column)] {
		return nil
	}
	_, err = db.ExecContext(ctx, "ALTER TABLE "+d.QuoteTable(table)+" ADD COLUMN "+d.Quote(column)+" "+typ)
	return err
}

func (Dialect) AddRowID(context.Context, *sql.DB, schema.TableName) error { return nil }

func (d Dialect) DropColumn(ctx context.Context, db *sql.DB, table schema.TableName, column string) error {
	cols, err := liveColumns(ctx, db, table)
	if err != nil {
		return err
	}
	if !cols[strings.ToLower(column)] {
		return nil
	}
	_, err = db.ExecContext(ctx, "ALTER TABLE "+d.QuoteTable(table)+" DROP COLUMN "+d.Quote(column))
	return err
}

// BulkUpdate writes a chunk with one UPDATE that takes its values from Go
// (bulkUpdateChunk); a handful of rows, one prepared UPDATE per row inside
// the caller's transaction.
func (d Dialect) BulkUpdate(ctx context.Context, tx dialect.Querier, u dialect.Update) error {
	if len(u.Rows) >= bulkMinRows {
		return d.bulkUpdateChunk(ctx, tx, u)
	}
	return d.bulkUpdateRows(ctx, tx, u)
}

// bulkUpdateRows runs one prepared UPDATE per row.
func (d Dialect) bulkUpdateRows(ctx context.Context, tx dialect.Querier, u dialect.Update) error {
	var b strings.Builder
	b.WriteString("UPDATE " + d.QuoteTable(u.Table) + " SET ")
	for i, c := range u.Set {
		if i > 0 {
			b.WriteString(", ")
		}
		val := "?"
		if i < len(u.SetExpr) && u.SetExpr[i] != nil {
			val = u.SetExpr[i]("?")
		}
		b.WriteString(d.Quote(c) + " = " + val)
	}
	b.WriteString(" WHERE ")
	for i, k := range u.Key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(d.keyExpr(k) + " = ?")
	}
	guard := 0
	if u.Guard != "" {
		b.WriteString(" AND " + d.Quote(u.Guard) + " = ?")
		guard = 1
	}
	stmt, err := tx.PrepareContext(ctx, b.String())
	if err != nil {
		return err
	}
	defer stmt.Close()
	nk := len(u.Key)
	args := make([]any, len(u.Set)+nk+guard)
	for i, row := range u.Rows {
		if len(row) != nk+len(u.Set)+guard {
			return fmt.Errorf("bulk update of %s: row %d has %d values, want %d", u.Table, i+1, len(row), nk+len(u.Set)+guard)
		}
		copy(args, row[nk:nk+len(u.Set)])
		copy(args[len(u.Set):], row[:nk])
		if guard == 1 {
			args[len(args)-1] = row[len(row)-1]
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Swap rebuilds each table of the group (SQLite's documented way to change
// a column's type or constraints): a new table from the recorded CREATE
// TABLE with the encrypted columns turned into BLOBs, the rows copied with
// their rowids, the old table dropped and the new one renamed, then the
// recorded indexes and triggers recreated. Foreign keys are checked once
// for the whole group before the transaction commits.
func (d Dialect) Swap(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	return d.rebuildGroup(ctx, db, group, true)
}

// Unswap rebuilds each table from its recorded original CREATE TABLE, so
// types, defaults, checks, keys and column order come back exactly.
func (d Dialect) Unswap(ctx context.Context, db *sql.DB, group []dialect.TableSwap) error {
	return d.rebuildGroup(ctx, db, group, false)
}

func (d Dialect) rebuildGroup(ctx context.Context, db *sql.DB, group []dialect.TableSwap, forward bool) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// foreign_keys cannot change inside a transaction; the check below
	// replaces it for the rebuilt tables.
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return err
	}
	defer func() {
		if _, e := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON"); e != nil && err == nil {
			err = e
		}
	}()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, "PRAGMA legacy_alter_table = ON"); err != nil {
		return err
	}
	for _, ts := range group {
		if err := d.rebuild(ctx, conn, ts, forward); err != nil {
			return fmt.Errorf("rebuild %s: %w", ts.Table.Name, err)
		}
	}
	rows, err := conn.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return err
	}
	var problems []string
	for rows.Next() {
		var table string
		var rowid sql.NullInt64
		var parent string
		var fkid int
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			rows.Close()
			return err
		}
		problems = append(problems, fmt.Sprintf("%s row %d → %s", table, rowid.Int64, parent))
	}
	rows.Close()
	if len(problems) > 0 {
		return fmt.Errorf("foreign keys would break (%d rows, e.g. %s); nothing was changed", len(problems), problems[0])
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA legacy_alter_table = OFF"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	committed = true
	return nil
}

// noColumnAdded refuses a swap (or its reverse) when the table has a
// column that neither its recorded definition nor the job gave it: the
// table that takes its place, rebuilt in place or during the copy, is made
// from the recorded CREATE TABLE, which would drop that column and its
// values.
func noColumnAdded(live map[string]bool, ts dialect.TableSwap, forward bool) error {
	ours := map[string]bool{strings.ToLower(ts.RowID): true, dialect.VersionColumn: true, dialect.EncVersionColumn: true}
	for _, sc := range ts.Columns {
		for _, c := range []string{sc.Temp, sc.IV, sc.Plaintext, sc.Name + dialect.PlaintextKeptSuffix} {
			ours[strings.ToLower(c)] = true
		}
	}
	for name := range live {
		if ts.Table.Column(name) != nil || ours[name] {
			continue
		}
		if forward {
			return fmt.Errorf("column %s was added to %s after the job started, and the table that takes its place is made from its recorded "+
				"definition, which would drop it: drop it (or revert the job), then run apply again; nothing was changed", name, ts.Table.Name)
		}
		return fmt.Errorf("column %s was added to %s after its cut-over, and the table the revert puts in its place is made from its recorded "+
			"definition, which would drop it and its values: copy them elsewhere and drop the column, then run revert again; "+
			"nothing was changed", name, ts.Table.Name)
	}
	return nil
}

func (d Dialect) rebuild(ctx context.Context, conn *sql.Conn, ts dialect.TableSwap, forward bool) error {
	t := ts.Table
	if ts.Rebuilt {
		if forward && ts.CatchUp != nil {
			if err := ts.CatchUp(ctx, conn); err != nil {
				return fmt.Errorf("catch up: %w", err)
			}
		}
		return d.swapRebuilt(ctx, conn, ts)
	}
	live, err := liveColumns(ctx, conn, t.Name)
	if err != nil {
		return err
	}
	// Already rebuilt by a run that crashed before recording it: the
	// column this swap reads from is gone.
	if len(ts.Columns) > 0 && !live[strings.ToLower(ts.Columns[0].Temp)] {
		return nil
	}
	if err := columnsKept(live, t); err != nil {
		return err
	}
	if err := noColumnAdded(live, ts, forward); err != nil {
		return err
	}
	if forward && ts.CatchUp != nil {
		// BEGIN IMMEDIATE holds the write lock: no other writer can change
		// a row between this catch-up and the copy into the new table.
		if err := ts.CatchUp(ctx, conn); err != nil {
			return fmt.Errorf("catch up: %w", err)
		}
	}
	if forward && ts.Online {
		// The version columns are left behind by the rebuild (the recorded
		// CREATE TABLE has none); the triggers go first, before the table
		// they update is renamed.
		for _, name := range captureTriggers(t.Name) {
			if _, err := conn.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+name); err != nil {
				return fmt.Errorf("drop change capture: %w", err)
			}
		}
	}
	// The old table moves aside and the new one is created from the
	// recorded statement under the table's own name, so that Unswap gives
	// back the original CREATE TABLE text exactly. foreign_keys is OFF and
	// legacy_alter_table ON, so other tables' REFERENCES keep the name.
	oldName := schema.TableName{Schema: t.Name.Schema, Name: t.Name.Name + oldTableSuffix}
	createSQL := t.CreateSQL
	if forward {
		if createSQL, err = swapCreateSQL(t, ts); err != nil {
			return err
		}
	}
	var seq sql.NullInt64
	_ = conn.QueryRowContext(ctx, "SELECT seq FROM sqlite_sequence WHERE name = ?", t.Name.Name).Scan(&seq)
	extras, err := keptObjects(ctx, conn, t)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+d.QuoteTable(t.Name)+" RENAME TO "+d.Quote(oldName.Name)); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, createSQL); err != nil {
		return fmt.Errorf("create rebuilt table: %w", err)
	}
	var into, from []string
	swapped := map[string]dialect.SwapColumn{}
	for _, c := range ts.Columns {
		swapped[strings.ToLower(c.Name)] = c
	}
	for _, c := range t.Columns {
		if c.Computed {
			continue
		}
		into = append(into, d.Quote(c.Name))
		if sc, ok := swapped[strings.ToLower(c.Name)]; ok {
			from = append(from, d.Quote(sc.Temp))
		} else {
			from = append(from, d.Quote(c.Name))
		}
	}
	if forward {
		for _, c := range ts.Columns {
			if c.IV != "" {
				into, from = append(into, d.Quote(c.IV)), append(from, d.Quote(c.IV))
			}
		}
	}
	if !parseCreateTable(t.CreateSQL).withoutRowid {
		into, from = append([]string{"rowid"}, into...), append([]string{"rowid"}, from...)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+d.QuoteTable(t.Name)+" ("+strings.Join(into, ", ")+") SELECT "+
		strings.Join(from, ", ")+" FROM "+d.QuoteTable(oldName)); err != nil {
		return fmt.Errorf("copy rows: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "DROP TABLE "+d.QuoteTable(oldName)); err != nil {
		return err
	}
	return d.finishRebuild(ctx, conn, t, seq, extras)
}

// keptObjects are the indexes and triggers to recreate on a rebuilt table:
// the recorded ones (so the keys the job began with come back exactly)
// plus any a DBA added since, which must survive the rebuild; colcrypt's
// own triggers go with the old table.
func keptObjects(ctx context.Context, conn *sql.Conn, t *schema.Table) ([]schemaObject, error) {
	current, err := liveIndexesAndTriggers(ctx, conn, t.Name.Name)
	if err != nil {
		return nil, err
	}
	var extras []schemaObject
	recorded := map[string]bool{}
	for _, ix := range t.Indexes {
		if ix.Definition != "" {
			extras = append(extras, schemaObject{"index", ix.Name, ix.Definition})
			recorded[strings.ToLower(ix.Name)] = true
		}
	}
	for _, tr := range t.Triggers {
		if tr.Definition != "" {
			extras = append(extras, schemaObject{"trigger", tr.Name, tr.Definition})
			recorded[strings.ToLower(tr.Name)] = true
		}
	}
	for _, o := range current {
		if !recorded[strings.ToLower(o.name)] {
			extras = append(extras, o)
		}
	}
	return extras, nil
}

// finishRebuild gives the rebuilt table, now under the table's name, the
// old one's AUTOINCREMENT high-water mark and its indexes and triggers.
func (d Dialect) finishRebuild(ctx context.Context, conn *sql.Conn, t *schema.Table, seq sql.NullInt64, extras []schemaObject) error {
	if seq.Valid {
		res, err := conn.ExecContext(ctx, "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", seq.Int64, t.Name.Name)
		if err != nil {
			return err
		}
		// An empty table copies no row, so it has no sequence row yet.
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			if _, err := conn.ExecContext(ctx, "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", t.Name.Name, seq.Int64); err != nil {
				return err
			}
		}
	}
	for _, x := range extras {
		if _, err := conn.ExecContext(ctx, x.sql); err != nil {
			return fmt.Errorf("recreate %s %s: %w", x.kind, x.name, err)
		}
	}
	return nil
}

type schemaObject struct{ kind, name, sql string }

// liveIndexesAndTriggers lists the explicit indexes and the triggers of a
// table, as sqlite_master holds them now, indexes first; colcrypt's own
// triggers are left out.
func liveIndexesAndTriggers(ctx context.Context, conn *sql.Conn, table string) ([]schemaObject, error) {
	rows, err := conn.QueryContext(ctx, "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "+
		"AND sql IS NOT NULL AND name NOT LIKE 'colcrypt\\_%' ESCAPE '\\' ORDER BY type, rowid", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []schemaObject
	for rows.Next() {
		var o schemaObject
		if err := rows.Scan(&o.kind, &o.name, &o.sql); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// swapCreateSQL edits the recorded CREATE TABLE for the encrypted table:
// each swapped column becomes a BLOB keeping its key, NOT NULL and
// REFERENCES clauses; its DEFAULT and CHECK clauses go when the plan allows
// dropping them (the planner blocked the job otherwise), as do table CHECK
// constraints on it; IV columns and kept-plaintext columns are appended.
func swapCreateSQL(t *schema.Table, ts dialect.TableSwap) (string, error) {
	sqlText := t.CreateSQL
	toks := tokenize(sqlText)
	open := -1
	for i, tk := range toks {
		if tk.punct("(") {
			open = i
			break
		}
	}
	closing := matchParen(toks, open)
	if closing >= len(toks) {
		return "", fmt.Errorf("cannot read the recorded CREATE TABLE statement of %s", t.Name)
	}
	swapped := map[string]dialect.SwapColumn{}
	for _, c := range ts.Columns {
		swapped[strings.ToLower(c.Name)] = c
	}
	var items []string
	lastColumn := -1
	for _, item := range splitTopLevel(toks[open+1 : closing]) {
		if len(item) == 0 {
			continue
		}
		if isAnyKeyword(item[0], []string{"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}) {
			if ts.DropChecks && isCheckOn(item, ts.Columns) {
				continue
			}
			items = append(items, source(sqlText, item))
			continue
		}
		name := identName(item[0])
		if _, ok := swapped[strings.ToLower(name)]; ok {
			items = append(items, swapColumnDef(sqlText, item))
		} else {
			items = append(items, source(sqlText, item))
		}
		lastColumn = len(items) - 1
	}
	var extra []string
	for _, c := range ts.Columns {
		if c.IV != "" {
			extra = append(extra, quoteIdent(c.IV)+" BLOB")
		}
		if c.Plaintext != "" {
			// plaintext: null keeps the column, empty, under another name.
			typ := ""
			if col := t.Column(c.Name); col != nil {
				typ = " " + col.Declared
			}
			extra = append(extra, quoteIdent(c.Plaintext)+typ)
		}
	}
	items = append(items[:lastColumn+1], append(extra, items[lastColumn+1:]...)...)
	return sqlText[:toks[open].end] + "\n  " + strings.Join(items, ",\n  ") + "\n" + sqlText[toks[closing].pos:], nil
}

// isCheckOn reports whether a table constraint is a CHECK that references
// one of the columns.
func isCheckOn(item []token, cols []dialect.SwapColumn) bool {
	i := 0
	if item[0].is("CONSTRAINT") {
		i = 2
	}
	if i >= len(item) || !item[i].is("CHECK") {
		return false
	}
	var names []string
	for _, c := range cols {
		names = append(names, c.Name)
	}
	return len(columnRefs(item[i:], names)) > 0
}

// swapColumnDef rewrites one column definition: the type becomes BLOB,
// constraints that still hold on a ciphertext (PRIMARY KEY, UNIQUE, NOT
// NULL, REFERENCES) stay, DEFAULT/CHECK/COLLATE go when allowed.
func swapColumnDef(sqlText string, item []token) string {
	out := []string{source(sqlText, item[:1]), "BLOB"}
	i := 1
	for i < len(item) && !isAnyKeyword(item[i], columnStarters) {
		if item[i].punct("(") {
			i = matchParen(item, i)
		}
		i++
	}
	for i < len(item) {
		start := i
		j := i
		if item[j].is("CONSTRAINT") {
			j += 2
		}
		end := clauseEnd(item, j+1)
		if end <= start {
			end = start + 1
		}
		clause := item[start:min(end, len(item))]
		drop := false
		if j < len(item) {
			// The planner lets a DEFAULT or CHECK on the column through only
			// when the plan allows dropping it; a collation means nothing on
			// a BLOB. All three are restored by Unswap from the recorded SQL.
			drop = isAnyKeyword(item[j], []string{"DEFAULT", "CHECK", "COLLATE"})
		}
		if !drop {
			out = append(out, source(sqlText, clause))
		}
		i = end
	}
	return strings.Join(out, " ")
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Purge rebuilds the database file so that no plaintext stays in free
// pages, then truncates the write-ahead log, which may hold old pages too.
// VACUUM writes the rebuilt pages into the log, so until the checkpoint
// copies them over, the database file still holds the old ones; a
// connection reading since before (another program, a shell left in a
// transaction) keeps the checkpoint from finishing, and the driver's busy
// timeout is how long it waits for that reader. The checkpoint's own
// report says whether it finished: SQLite gives no error when it did not.
func (Dialect) Purge(ctx context.Context, db *sql.DB, _ schema.TableName) error {
	if _, err := db.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	var busy, logFrames, copied int64
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &copied); err != nil {
		return fmt.Errorf("checkpoint the write-ahead log: %w", err)
	}
	if busy != 0 {
		return errors.New("checkpoint the write-ahead log: another connection has been reading the database since before the purge, " +
			"so the database file still holds the pages the purge replaced. End that connection's transaction " +
			"(or close the program holding it), then run the command again: the job resumes at the purge")
	}
	return nil
}

var _ dialect.Mover = Dialect{}

var _ dialect.ChangeCapture = Dialect{}

var _ dialect.Rebuilder = Dialect{}

// captureTriggers are the quoted names of the two capture triggers of a
// table: one for updates, one for inserts (SQLite's triggers have one
// event each).
func captureTriggers(table schema.TableName) []string {
	return []string{
		qualifiedTrigger(table, dialect.CapturePrefix+table.Name),
		qualifiedTrigger(table, dialect.CapturePrefix+table.Name+"__insert"),
	}
}

// AddCapture implements dialect.ChangeCapture. The update trigger fires
// only on UPDATEs that set a planned column (UPDATE OF), even to the same
// value: a version changed for nothing only costs one more re-encryption.
// Neither trigger's own UPDATE sets a planned column, so neither fires the
// update trigger again, with recursive_triggers off (the default) or on;
// colcrypt's own writes set only ciphertext, IV and version columns.
// Trigger bodies name the table unqualified, as SQLite requires.
func (d Dialect) AddCapture(ctx context.Context, db *sql.DB, table schema.TableName, planned, key []string) error {
	cols, err := liveColumns(ctx, db, table)
	if err != nil {
		return err
	}
	qt := d.QuoteTable(table)
	if !cols[dialect.VersionColumn] {
		if _, err := db.ExecContext(ctx, "ALTER TABLE "+qt+" ADD COLUMN "+d.Quote(dialect.VersionColumn)+" INTEGER NOT NULL DEFAULT 0"); err != nil {
			return err
		}
	}
	if !cols[dialect.EncVersionColumn] {
		if _, err := db.ExecContext(ctx, "ALTER TABLE "+qt+" ADD COLUMN "+d.Quote(dialect.EncVersionColumn)+" INTEGER"); err != nil {
			return err
		}
	}
	for _, stmt := range captureSQL(table, planned, key) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// captureSQL creates the two capture triggers unless they exist.
func captureSQL(table schema.TableName, planned, key []string) []string {
	var of, match []string
	for _, c := range planned {
		of = append(of, quoteIdent(c))
	}
	for _, k := range key {
		if strings.EqualFold(k, "rowid") {
			match = append(match, "rowid = NEW.rowid")
		} else {
			match = append(match, quoteIdent(k)+" = NEW."+quoteIdent(k))
		}
	}
	tbl, version, where := quoteIdent(table.Name), quoteIdent(dialect.VersionColumn), strings.Join(match, " AND ")
	names := captureTriggers(table)
	return []string{
		"CREATE TRIGGER IF NOT EXISTS " + names[0] + " AFTER UPDATE OF " + strings.Join(of, ", ") + " ON " + tbl +
			" FOR EACH ROW BEGIN UPDATE " + tbl + " SET " + version + " = " + version + " + 1 WHERE " + where + "; END",
		"CREATE TRIGGER IF NOT EXISTS " + names[1] + " AFTER INSERT ON " + tbl +
			" FOR EACH ROW BEGIN UPDATE " + tbl + " SET " + version + " = random() WHERE " + where + "; END",
	}
}

// DropCapture implements dialect.ChangeCapture: triggers first, since
// SQLite refuses to drop a column a trigger names.
func (d Dialect) DropCapture(ctx context.Context, db *sql.DB, table schema.TableName) error {
	for _, name := range captureTriggers(table) {
		if _, err := db.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+name); err != nil {
			return err
		}
	}
	for _, c := range []string{dialect.VersionColumn, dialect.EncVersionColumn} {
		if err := d.DropColumn(ctx, db, table, c); err != nil {
			return err
		}
	}
	return nil
}

// SingleWriter: SQLite has one writer at a time.
func (Dialect) SingleWriter() bool { return true }

// Substr: SQLite's substr counts bytes on BLOBs.
func (Dialect) Substr(expr string, from, n int) string {
	return "substr(" + expr + ", " + strconv.Itoa(from) + ", " + strconv.Itoa(n) + ")"
}

// KeySelect: a unary plus drops the declared type, so keys come back with
// their storage class (as the codec's SelectExpr does for values).
func (Dialect) KeySelect(quotedCol string) string {
	if strings.EqualFold(quotedCol, "rowid") {
		return quotedCol
	}
	return "+" + quotedCol
}
