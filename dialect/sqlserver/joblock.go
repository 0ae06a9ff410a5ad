package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
)

var _ dialect.JobLocker = sqlServer{}

// The job lock statements. sp_getapplock returns 0 or 1 when it granted
// the lock, -1 when another session holds it (@LockTimeout = 0: no
// waiting), and below that for a cancel, a deadlock or a bad parameter.
// These were syntax-checked by the T-SQL grammar of the unit tests
// (TestJobLockStatementsAreTSQL) and have not been run against a server.
const (
	getJobLock = `DECLARE @result int;
EXEC @result = sp_getapplock @Resource = @p1, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0;
SELECT @result;`
	releaseJobLock = `EXEC sp_releaseapplock @Resource = @p1, @LockOwner = 'Session';`
)

// jobLockPrefix starts the resource name of every job lock; the rest is
// the hex hash of the table's name (dialect.JobLockHash), 73 characters in
// all, within sp_getapplock's 255.
const jobLockPrefix = "colcrypt:"

// unlockTimeout bounds giving the job locks back when the command is done:
// its context may be cancelled by then, and a server that does not answer
// in this long gets its connection closed instead, which ends the session
// and its locks.
const unlockTimeout = 10 * time.Second

// TryLockTables implements dialect.JobLocker with application locks
// (sp_getapplock) owned by the session of one connection, kept out of the
// pool until release: the locks end with the session, so a process killed
// at any instant, or a connection lost, leaves none behind. Application
// locks are per database, as colcrypt's job records are.
func (sqlServer) TryLockTables(ctx context.Context, db *sql.DB, names []string) (func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect for the job lock: %w", err)
	}
	var taken []string
	for _, name := range names {
		resource := jobLockResource(name)
		var result int
		if err := conn.QueryRowContext(ctx, getJobLock, resource).Scan(&result); err != nil {
			discard(conn)
			return nil, fmt.Errorf("take the job lock: %w", err)
		}
		switch {
		case result == -1:
			releaseJobLocks(conn, taken)
			return nil, &dialect.LockHeldError{Name: name}
		case result < 0:
			discard(conn)
			return nil, fmt.Errorf("take the job lock: sp_getapplock returned %d", result)
		}
		taken = append(taken, resource)
	}
	var once sync.Once
	return func() { once.Do(func() { releaseJobLocks(conn, taken) }) }, nil
}

func jobLockResource(name string) string {
	h := dialect.JobLockHash(name)
	return jobLockPrefix + hex.EncodeToString(h[:])
}

// releaseJobLocks gives back the locks and returns the connection to the
// pool; when that fails, it closes the connection, which gives them back
// too.
func releaseJobLocks(conn *sql.Conn, resources []string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	for _, r := range resources {
		if _, err := conn.ExecContext(ctx, releaseJobLock, r); err != nil {
			discard(conn)
			return
		}
	}
	conn.Close()
}

// discard closes the connection instead of returning it to the pool:
// database/sql drops a connection whose Raw returns driver.ErrBadConn.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
