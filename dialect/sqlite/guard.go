package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var _ dialect.WriteGuard = Dialect{}

// guardTriggers are the names of the two triggers of a WriteGuard on the
// table, with the event each refuses (given the guarded columns).
func guardTriggers(table schema.TableName, columns []string) (names, events []string) {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = quoteIdent(c)
	}
	base := dialect.GuardPrefix + table.Name
	return []string{base + "__insert", base + "__update"}, []string{"INSERT", "UPDATE OF " + strings.Join(quoted, ", ")}
}

// GuardWrites implements dialect.WriteGuard with a BEFORE INSERT trigger
// and a BEFORE UPDATE OF the columns trigger that abort the statement.
func (d Dialect) GuardWrites(ctx context.Context, db *sql.DB, table schema.TableName, columns []string, refusal string) error {
	msg := "'" + strings.ReplaceAll(refusal, "'", "''") + "'"
	names, events := guardTriggers(table, columns)
	for i, n := range names {
		// Trigger bodies name the table unqualified, as SQLite requires.
		if _, err := db.ExecContext(ctx, "CREATE TRIGGER IF NOT EXISTS "+qualifiedTrigger(table, n)+" BEFORE "+events[i]+" ON "+
			quoteIdent(table.Name)+" BEGIN SELECT RAISE(ABORT, "+msg+"); END"); err != nil {
			return fmt.Errorf("guard %s against lost writes: %w", table, err)
		}
	}
	return nil
}

// DropWriteGuard implements dialect.WriteGuard. (The swap rebuilds the
// table, which drops its triggers with the old one.)
func (d Dialect) DropWriteGuard(ctx context.Context, db *sql.DB, table schema.TableName) error {
	names, _ := guardTriggers(table, nil)
	for _, n := range names {
		if _, err := db.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+qualifiedTrigger(table, n)); err != nil {
			return fmt.Errorf("lift the guard on %s: %w", table, err)
		}
	}
	return nil
}
