package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/colcrypt/colcrypt/dialect"
)

// lockFileSuffix names the file beside the database that holds the job
// locks (dialect.JobLocker): "customers.db-colcrypt.lock". It is created
// once, empty, and never deleted: a file deleted and created again while
// another process waits to lock the old one would give two processes "the"
// lock. The locks themselves live in the kernel, not in the file's bytes.
const lockFileSuffix = "-colcrypt.lock"

var _ dialect.JobLocker = Dialect{}

// TryLockTables implements dialect.JobLocker with locks the kernel holds
// on the lock file beside the database (lockFileSuffix) for the open file
// that took them: they go when it is closed, which the kernel does when
// the process ends, however it ends. A database in memory needs none: no
// other process can open it.
func (Dialect) TryLockTables(ctx context.Context, db *sql.DB, names []string) (func(), error) {
	var file string
	if err := db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return nil, fmt.Errorf("find the database file to lock: %w", err)
	}
	if file == "" || len(names) == 0 {
		return func() {}, nil
	}
	return lockTables(file+lockFileSuffix, names)
}
