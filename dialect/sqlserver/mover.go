package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var _ dialect.Mover = sqlServer{}

// SQL Server has concurrent writers, so sqlServer deliberately does not
// implement dialect.SingleWriter: chunk writes run in parallel.

const (
	// rowIDColumn is the identity column added to tables without a usable
	// key; the migration engine names it the same.
	rowIDColumn = "colcrypt_row_id"
	// rowIDIndex is the unique index on it. Index names are scoped to
	// their table in SQL Server, so one name serves every table.
	rowIDIndex = "colcrypt_row_id_ux"
)

// swapLockTimeout bounds every lock wait of a cut-over. Its DDL needs
// schema-modification locks, and while one waits every other query on the
// table queues behind it; better to give up after a few seconds (error
// 1222, which the engine's retry helper treats as transient, like the
// deadlock error 1205) and try again than to stall the application behind
// a long transaction.
const swapLockTimeout = 5 * time.Second

// StateTypes implements dialect.Mover. Key is NVARCHAR(450): 900 bytes, the
// most a clustered index key may hold, so one such column is always
// indexable. (colcrypt's tables have composite keys of several of them;
// SQL Server creates those with a warning, and the values stored are short.)
func (sqlServer) StateTypes() dialect.StateTypes {
	return dialect.StateTypes{Text: "NVARCHAR(MAX)", Key: "NVARCHAR(450)", Blob: "VARBINARY(MAX)", BigInt: "BIGINT"}
}

// Placeholder implements dialect.Mover: go-mssqldb names the n-th argument
// @pn.
func (sqlServer) Placeholder(n int) string { return "@p" + strconv.Itoa(n) }

// FirstRows implements dialect.Mover. OFFSET ... FETCH needs the ORDER BY
// the engine's queries always end with.
func (sqlServer) FirstRows(query string, offset, n int64) string {
	return query + " OFFSET " + strconv.FormatInt(offset, 10) + " ROWS FETCH NEXT " + strconv.FormatInt(n, 10) + " ROWS ONLY"
}

// RowID implements dialect.Mover: SQL Server's physical row locator
// (%%physloc%%) is undocumented and changes when a row moves, so a table
// without a usable key gets an identity column.
func (sqlServer) RowID() (string, bool) { return rowIDColumn, true }

// AddColumn implements dialect.Mover. The column is declared NULL
// explicitly: without it the session's ANSI_NULL_DFLT settings decide, and
// a NOT NULL column cannot be added to a table that has rows.
func (sqlServer) AddColumn(ctx context.Context, db *sql.DB, table schema.TableName, column, typ string) error {
	if _, err := db.ExecContext(ctx, addColumnSQL(withDefaultSchema(table), column, typ)); err != nil {
		return fmt.Errorf("add column %s to %s: %w", column, table, err)
	}
	return nil
}

// AddRowID implements dialect.Mover: an identity column, which numbers the
// existing rows as it is added (a size-of-data operation under a schema
// lock), and a unique index on it so that keyset paging seeks instead of
// scanning. Each statement checks what is there, so a crash between them
// is repaired by running prepare again.
func (sqlServer) AddRowID(ctx context.Context, db *sql.DB, table schema.TableName) error {
	table = withDefaultSchema(table)
	// A table has at most one identity column, so a table whose own
	// identity column is not unique cannot get colcrypt's.
	var other string
	err := db.QueryRowContext(ctx, identityColumnQuery, quoteTable(table), rowIDColumn).Scan(&other)
	switch {
	case err == nil:
		return fmt.Errorf("add %s to %s: the table already has identity column %s, and a table can have only one: "+
			"create a unique index on %s (CREATE UNIQUE INDEX ... ON %s (%s)) so that colcrypt can page by it",
			rowIDColumn, table, other, other, quoteTable(table), quoteIdent(other))
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("look for an identity column in %s: %w", table, err)
	}
	for _, stmt := range addRowIDSQL(table) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("add %s to %s: %w", rowIDColumn, table, err)
		}
	}
	return nil
}

// identityColumnQuery finds an identity column of the table (@p1, quoted)
// other than colcrypt's (@p2).
const identityColumnQuery = `SELECT TOP (1) c.name FROM sys.identity_columns AS c
WHERE c.object_id = OBJECT_ID(@p1, N'U') AND c.name <> @p2`

// DropColumn implements dialect.Mover. The row-id column loses its index
// first: SQL Server refuses to drop a column an index depends on.
func (sqlServer) DropColumn(ctx context.Context, db *sql.DB, table schema.TableName, column string) error {
	for _, stmt := range dropColumnStatements(withDefaultSchema(table), column) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("drop column %s of %s: %w", column, table, err)
		}
	}
	return nil
}

func dropColumnStatements(table schema.TableName, column string) []string {
	var out []string
	if strings.EqualFold(column, rowIDColumn) {
		out = append(out, dropIndexSQL(table, rowIDIndex))
	}
	return append(out, dropColumnSQL(table, column))
}

// Purge implements dialect.Mover. ALTER TABLE ... REBUILD writes every row
// of the heap or clustered index to new pages, so the bytes of dropped
// columns and of values set to NULL no longer sit in the table's rows. It
// is offline: it holds a schema-modification lock for as long as it takes.
//
// A DBA would add ALTER INDEX ALL ON <table> REBUILD (and DBCC CLEANTABLE
// for dropped MAX columns stored off-row), then a log backup, since the
// transaction log, and every backup taken before, still hold the
// plaintext; deallocated pages are not zeroed until they are reused.
func (sqlServer) Purge(ctx context.Context, db *sql.DB, table schema.TableName) error {
	if _, err := db.ExecContext(ctx, purgeSQL(withDefaultSchema(table))); err != nil {
		return fmt.Errorf("rebuild %s: %w", table, err)
	}
	return nil
}

// The statements below are pure, so the tests can put each through the
// T-SQL grammar. Existence checks go through COL_LENGTH, OBJECT_ID and
// sys.indexes rather than DROP ... IF EXISTS, which SQL Server 2016 has
// for columns and constraints but which reads less obviously and which
// the checking grammar lacks.

func addColumnSQL(table schema.TableName, column, typ string) string {
	return "IF COL_LENGTH(" + nstr(quoteTable(table)) + ", " + nstr(column) + ") IS NULL ALTER TABLE " +
		quoteTable(table) + " ADD " + quoteIdent(column) + " " + typ + " NULL"
}

func addRowIDSQL(table schema.TableName) []string {
	return []string{
		"IF COL_LENGTH(" + nstr(quoteTable(table)) + ", " + nstr(rowIDColumn) + ") IS NULL ALTER TABLE " +
			quoteTable(table) + " ADD " + quoteIdent(rowIDColumn) + " BIGINT IDENTITY(1,1) NOT NULL",
		"IF NOT EXISTS (" + indexExists(table, rowIDIndex) + ") CREATE UNIQUE NONCLUSTERED INDEX " +
			quoteIdent(rowIDIndex) + " ON " + quoteTable(table) + " (" + quoteIdent(rowIDColumn) + ")",
	}
}

func dropColumnSQL(table schema.TableName, column string) string {
	return "IF COL_LENGTH(" + nstr(quoteTable(table)) + ", " + nstr(column) + ") IS NOT NULL ALTER TABLE " +
		quoteTable(table) + " DROP COLUMN " + quoteIdent(column)
}

func dropIndexSQL(table schema.TableName, index string) string {
	return "IF EXISTS (" + indexExists(table, index) + ") DROP INDEX " + quoteIdent(index) + " ON " + quoteTable(table)
}

func indexExists(table schema.TableName, index string) string {
	return "SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(" + nstr(quoteTable(table)) + ", N'U') AND name = " + nstr(index)
}

// Object types of sys.objects, for OBJECT_ID's second argument.
const (
	objPrimaryKey = "PK"
	objUnique     = "UQ"
	objForeignKey = "F"
	objCheck      = "C"
	objDefault    = "D"
)

// dropConstraintSQL drops a constraint if it exists. Constraints are
// objects of the table's schema, so OBJECT_ID finds them by schema.name.
func dropConstraintSQL(table schema.TableName, name, objType string) string {
	return "IF OBJECT_ID(" + nstr(quoteTable(schema.TableName{Schema: table.Schema, Name: name})) + ", " + nstr(objType) +
		") IS NOT NULL ALTER TABLE " + quoteTable(table) + " DROP CONSTRAINT " + quoteIdent(name)
}

// renameColumnSQL renames with sp_rename: @objname is parsed as a
// multi-part name (so brackets quote it), @newname is taken literally.
func renameColumnSQL(table schema.TableName, from, to string) string {
	return "EXEC sp_rename " + nstr(quoteTable(table)+"."+quoteIdent(from)) + ", " + nstr(to) + ", N'COLUMN'"
}

// alterColumnSQL restates a column's type, with a collation when given,
// and its nullability.
func alterColumnSQL(table schema.TableName, column, typ, collation string, notNull bool) string {
	s := "ALTER TABLE " + quoteTable(table) + " ALTER COLUMN " + quoteIdent(column) + " " + typ
	if collation != "" {
		s += " COLLATE " + collation
	}
	if notNull {
		return s + " NOT NULL"
	}
	return s + " NULL"
}

func purgeSQL(table schema.TableName) string {
	return "ALTER TABLE " + quoteTable(table) + " REBUILD"
}

func lockTimeoutSQL(d time.Duration) string {
	return "SET LOCK_TIMEOUT " + strconv.FormatInt(d.Milliseconds(), 10)
}

// resetLockTimeoutSQL restores the session default (wait forever) before a
// connection goes back to the pool.
const resetLockTimeoutSQL = "SET LOCK_TIMEOUT -1"

// nstr writes s as a Unicode string literal.
func nstr(s string) string { return "N'" + strings.ReplaceAll(s, "'", "''") + "'" }

func withDefaultSchema(name schema.TableName) schema.TableName {
	return sqlServer{}.withSchema(name)
}
