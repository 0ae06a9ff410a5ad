package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
)

// TableLockedError refuses a command that would change a job (apply,
// revert, rekey) because another colcrypt run holds the job lock of one
// of its tables (dialect.JobLocker). Nothing was changed. It wraps
// dialect.ErrLockHeld, and exits 2.
type TableLockedError struct {
	Table string // as the plan names it; "" when the engine cannot tell
}

func (e *TableLockedError) Error() string {
	on := "table " + e.Table
	if e.Table == "" {
		on = "this database"
	}
	return fmt.Sprintf("another colcrypt run (apply, revert or rekey) is working on %s: wait for it to finish, or stop it; nothing was changed", on)
}

func (e *TableLockedError) Unwrap() error { return dialect.ErrLockHeld }

// lockTables takes the job lock of every planned table before a command
// reads any job state, without waiting, and returns what releases them
// once it returns. Two runs of one plan, or of two plans sharing a table
// (compared as dialect.TableKey does), would otherwise work on one job at
// once: one dropping the replacement table the other is writing, or
// cutting over while the other still copies. The locks are taken in
// sorted order, all or none; plans on different tables run side by side.
// An engine without locks (no dialect.JobLocker) runs unlocked.
func (e *Engine) lockTables(ctx context.Context) (func(), error) {
	jl, ok := e.d.(dialect.JobLocker)
	if !ok {
		return func() {}, nil
	}
	planned := map[string]string{} // TableKey → the plan's name
	var keys []string
	for _, tp := range e.plan.Tables {
		k := dialect.TableKey(e.d, e.tableName(tp.Name))
		if _, dup := planned[k]; !dup {
			planned[k] = tp.Name
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	// The first statement of a run may meet a pooled connection the
	// server dropped (a restart, a failover): retried like any other.
	var release func()
	err := retry(ctx, e.log, "take the job locks", func(ctx context.Context) error {
		var err error
		release, err = jl.TryLockTables(ctx, e.db, keys)
		return err
	})
	var held *dialect.LockHeldError
	if errors.As(err, &held) {
		return nil, exitcode.Input(&TableLockedError{Table: planned[held.Name]})
	}
	if err != nil {
		return nil, fmt.Errorf("take the job locks of the planned tables: %w", err)
	}
	e.log.Debug("took the job locks", "tables", len(keys))
	return release, nil
}
