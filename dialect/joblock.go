package dialect

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
)

// JobLocker is implemented by engines that can keep two colcrypt commands
// from changing the same table's job at once (two applies of one plan
// started by a cron job and a person, or two plans naming one table).
// Every command that changes a job (apply, revert, rekey) takes the lock
// of each of its tables before it reads any job state and holds it until
// it returns. The lock belongs to the process, or to a session of the
// server, so that it goes with it when it dies: a kill -9 never leaves a
// lock behind that would keep the next run from resuming at once.
type JobLocker interface {
	// TryLockTables takes, without waiting, the job lock of every table
	// in names (TableKey form), all or none, and returns the function
	// that releases them. A lock another process or session holds gives
	// an error wrapping a *LockHeldError naming its table, with none of
	// the locks taken. Locks are exclusive between calls in one process
	// too.
	TryLockTables(ctx context.Context, db *sql.DB, names []string) (release func(), err error)
}

// ErrLockHeld is what a *LockHeldError Is.
var ErrLockHeld = errors.New("the job lock is held by another colcrypt run")

// LockHeldError says another colcrypt run holds the job lock of a table.
type LockHeldError struct {
	// Name is the table, in TableKey form; "" when the engine's lock
	// covers the whole database and cannot tell which table the other run
	// works on.
	Name string
}

func (e *LockHeldError) Error() string {
	if e.Name == "" {
		return "the job lock of the database is held by another colcrypt run"
	}
	return fmt.Sprintf("the job lock of table %q is held by another colcrypt run", e.Name)
}

// Is makes errors.Is(err, ErrLockHeld) hold.
func (e *LockHeldError) Is(target error) bool { return target == ErrLockHeld }

// JobLockHash is the engine-independent identity of the job lock of table
// name (TableKey form): a SHA-256 of the name, so that any table name,
// however long or odd, fits an engine's lock names (255 characters for
// SQL Server's sp_getapplock, as hex) and keys (PostgreSQL's 64-bit
// advisory keys and the byte offsets of a lock file take its first 8
// bytes).
func JobLockHash(name string) [sha256.Size]byte {
	return sha256.Sum256([]byte("colcrypt job lock\x00" + name))
}
