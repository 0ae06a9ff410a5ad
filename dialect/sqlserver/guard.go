package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var _ dialect.WriteGuard = sqlServer{}

// maxThrowChars is the longest message THROW accepts (nvarchar(2048)).
const maxThrowChars = 2048

// guardTrigger names a table's WriteGuard trigger, an object of the
// table's schema.
func guardTrigger(table schema.TableName) schema.TableName {
	return schema.TableName{Schema: table.Schema, Name: boundedName(dialect.GuardPrefix, table.Name)}
}

// GuardWrites implements dialect.WriteGuard with an AFTER INSERT, UPDATE
// trigger that fails the statement, and so rolls back its transaction
// (XACT_ABORT is on inside a trigger), when it inserted a row or set one
// of columns. A statement that touched no row passes: a trigger fires once
// per statement, rows or not. UPDATE(column) is true when the statement
// set the column, even to the value it had: such a write is refused too,
// as the job cannot tell it from a change.
//
// What a trigger cannot stop, SQL Server lets past: a bulk load (BULK
// INSERT, bcp, SqlBulkCopy) without FIRE_TRIGGERS fires no trigger, and
// neither does a write while the trigger is disabled, which the cut-over
// refuses (refuseDisabledTriggers).
func (sqlServer) GuardWrites(ctx context.Context, db *sql.DB, table schema.TableName, columns []string, refusal string) error {
	if _, err := db.ExecContext(ctx, guardSQL(withDefaultSchema(table), columns, refusal)); err != nil {
		return fmt.Errorf("guard %s against lost writes: %w", table, err)
	}
	return nil
}

// guardSQL creates, or replaces, the guard trigger: a batch of its own, as
// CREATE TRIGGER must be.
func guardSQL(table schema.TableName, columns []string, refusal string) string {
	if utf8.RuneCountInString(refusal) > maxThrowChars {
		refusal = string([]rune(refusal)[:maxThrowChars])
	}
	refused := []string{"NOT EXISTS (SELECT 1 FROM deleted)"}
	for _, c := range columns {
		refused = append(refused, "UPDATE("+quoteIdent(c)+")")
	}
	return "CREATE OR ALTER TRIGGER " + quoteTable(guardTrigger(table)) + " ON " + quoteTable(table) + " AFTER INSERT, UPDATE AS\nBEGIN\n" +
		"  SET NOCOUNT ON;\n" +
		"  IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;\n" +
		"  IF " + strings.Join(refused, " OR ") + "\n" +
		"    THROW 50000, " + nstr(refusal) + ", 1;\n" +
		"END"
}

// dropGuardStep drops the guard trigger if it exists.
func dropGuardStep(table schema.TableName) step {
	tr := guardTrigger(table)
	return step{"lift the guard " + tr.Name, "IF OBJECT_ID(" + nstr(quoteTable(tr)) + ", N'TR') IS NOT NULL DROP TRIGGER " + quoteTable(tr)}
}

// DropWriteGuard implements dialect.WriteGuard.
func (sqlServer) DropWriteGuard(ctx context.Context, db *sql.DB, table schema.TableName) error {
	if _, err := db.ExecContext(ctx, dropGuardStep(withDefaultSchema(table)).sql); err != nil {
		return fmt.Errorf("lift the guard on %s: %w", table, err)
	}
	return nil
}

// triggerDisabledSQL counts the disabled triggers of that name (0 or 1).
const triggerDisabledSQL = "SELECT COUNT(*) FROM sys.triggers WHERE object_id = OBJECT_ID(@p1, N'TR') AND is_disabled = 1"

// refuseDisabledTriggers refuses a cut-over, with nothing changed, when the
// table's guard (an offline job in place) or change capture (an online job)
// is disabled (DISABLE TRIGGER, or ALTER TABLE ... DISABLE TRIGGER): the
// writes they exist to stop or capture may have got past them, and the
// cut-over would lose those. A trigger missing altogether is not refused:
// the job may have none (a table rebuilt, or a job of an earlier version).
func refuseDisabledTriggers(ctx context.Context, tx *sql.Tx, ts dialect.TableSwap, forward bool) error {
	table := withDefaultSchema(ts.Table.Name)
	type trigger struct {
		name schema.TableName
		what string
	}
	triggers := []trigger{{guardTrigger(table), "guards the planned columns of " + table.String() + " until its cut-over"}}
	if ts.Online && forward {
		triggers = append(triggers, trigger{captureTrigger(table), "marks the rows other sessions change during the online job"})
	}
	again, undo := "apply", "revert the job, then run apply again"
	if !forward {
		again, undo = "revert", "the table still holds its ciphertext, readable as before"
	}
	for _, tr := range triggers {
		var disabled int
		if err := tx.QueryRowContext(ctx, triggerDisabledSQL, quoteTable(tr.name)).Scan(&disabled); err != nil {
			return fmt.Errorf("look for trigger %s: %w", tr.name, err)
		}
		if disabled > 0 {
			return fmt.Errorf("trigger %s, which %s, is disabled, and a row written while it was disabled would be lost by the cut-over; nothing was changed. "+
				"If no row was written meanwhile, enable it again (ENABLE TRIGGER %s ON %s) and run %s again; otherwise %s",
				tr.name, tr.what, quoteTable(tr.name), quoteTable(table), again, undo)
		}
	}
	return nil
}
