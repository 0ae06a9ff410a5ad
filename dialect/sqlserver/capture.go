package sqlserver

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var _ dialect.ChangeCapture = sqlServer{}

// maxIdentChars is the longest identifier SQL Server accepts (sysname).
const maxIdentChars = 128

// boundedName is prefix+name, or when that is longer than an identifier
// may be, a cut of it with a hash of name so that it stays unique.
func boundedName(prefix, name string) string {
	full := prefix + name
	if utf8.RuneCountInString(full) <= maxIdentChars {
		return full
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "_" + hex.EncodeToString(sum[:4])
	runes := []rune(full)
	return string(runes[:maxIdentChars-len(suffix)]) + suffix
}

// captureTrigger names a table's capture trigger, an object of the table's
// schema.
func captureTrigger(table schema.TableName) schema.TableName {
	return schema.TableName{Schema: table.Schema, Name: boundedName(dialect.CapturePrefix, table.Name)}
}

// versionDefault names the default constraint of the version column, so
// that DropCapture can drop it before the column (SQL Server refuses to
// drop a column a default is bound to).
func versionDefault(table schema.TableName) string {
	return boundedName("colcrypt_version_df_", table.Name)
}

// AddCapture implements dialect.ChangeCapture. Adding a NOT NULL column
// with a constant default is a metadata-only change on Enterprise edition
// (and Azure SQL); on other editions it writes every row under a schema
// lock.
func (sqlServer) AddCapture(ctx context.Context, db *sql.DB, table schema.TableName, planned, key []string) error {
	for _, stmt := range captureSQL(withDefaultSchema(table), planned, key) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("add change capture to %s: %w", table, err)
		}
	}
	return nil
}

// captureSQL adds the version columns unless they exist, and creates (or
// replaces) the trigger: each statement is its own batch, as CREATE
// TRIGGER must be. The trigger joins inserted, which holds the rows as
// they are now, to the table on the key, so a row is found even when the
// update changed its key. UPDATE(column) is true when the statement set the
// column, even to the same value: a version changed for nothing only costs
// one more re-encryption, where comparing inserted with deleted would miss
// changes that a case- or accent-insensitive collation calls equal. On an
// INSERT (nothing in deleted) the rows get a random version instead: a row
// deleted and inserted again under the same key must not match a
// compare-and-set prepared from the old row. Seven random bytes keep the
// version far from BIGINT's limit, so adding one never overflows. The
// trigger's own UPDATE sets no planned column, so with RECURSIVE_TRIGGERS
// on it changes nothing either.
func captureSQL(table schema.TableName, planned, key []string) []string {
	qt := quoteTable(table)
	version := quoteIdent(dialect.VersionColumn)
	var on, changed []string
	for _, k := range key {
		on = append(on, "t."+quoteIdent(k)+" = i."+quoteIdent(k))
	}
	for _, c := range planned {
		changed = append(changed, "UPDATE("+quoteIdent(c)+")")
	}
	join := " FROM " + qt + " AS t INNER JOIN inserted AS i ON " + strings.Join(on, " AND ")
	return []string{
		"IF COL_LENGTH(" + nstr(qt) + ", " + nstr(dialect.VersionColumn) + ") IS NULL ALTER TABLE " + qt + " ADD " +
			version + " BIGINT NOT NULL CONSTRAINT " + quoteIdent(versionDefault(table)) + " DEFAULT 0",
		addColumnSQL(table, dialect.EncVersionColumn, "BIGINT"),
		"CREATE OR ALTER TRIGGER " + quoteTable(captureTrigger(table)) + " ON " + qt + " AFTER INSERT, UPDATE AS\nBEGIN\n" +
			"  SET NOCOUNT ON;\n" +
			"  IF NOT EXISTS (SELECT 1 FROM deleted)\n" +
			"    UPDATE t SET t." + version + " = CAST(CRYPT_GEN_RANDOM(7) AS BIGINT)" + join + ";\n" +
			"  ELSE IF " + strings.Join(changed, " OR ") + "\n" +
			"    UPDATE t SET t." + version + " = t." + version + " + 1" + join + ";\n" +
			"END",
	}
}

// dropCaptureSteps drops the trigger, the version column's default and
// both version columns, whichever exist.
func dropCaptureSteps(table schema.TableName) []step {
	tr := captureTrigger(table)
	return []step{
		{"drop capture trigger " + tr.Name, "IF OBJECT_ID(" + nstr(quoteTable(tr)) + ", N'TR') IS NOT NULL DROP TRIGGER " + quoteTable(tr)},
		{"drop default of " + dialect.VersionColumn, dropConstraintSQL(table, versionDefault(table), objDefault)},
		{"drop " + dialect.VersionColumn, dropColumnSQL(table, dialect.VersionColumn)},
		{"drop " + dialect.EncVersionColumn, dropColumnSQL(table, dialect.EncVersionColumn)},
	}
}

// DropCapture implements dialect.ChangeCapture.
func (sqlServer) DropCapture(ctx context.Context, db *sql.DB, table schema.TableName) error {
	for _, s := range dropCaptureSteps(withDefaultSchema(table)) {
		if _, err := db.ExecContext(ctx, s.sql); err != nil {
			return fmt.Errorf("drop change capture of %s: %s: %w", table, s.what, err)
		}
	}
	return nil
}

// lockTableSQL takes an exclusive lock on the table for the rest of the
// transaction (TABLOCKX, held by HOLDLOCK): a cut-over's catch-up then runs
// with every other writer shut out. It reads one row rather than none,
// since the optimizer answers TOP (0) without opening the table.
func lockTableSQL(table schema.TableName) string {
	return "SELECT TOP (1) 1 FROM " + quoteTable(table) + " WITH (TABLOCKX, HOLDLOCK)"
}
