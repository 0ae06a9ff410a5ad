package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
)

var _ dialect.JobLocker = Dialect{}

// unlockTimeout bounds giving the job locks back when the command is done:
// its context may be cancelled by then (Ctrl-C), and a server that does
// not answer in this long gets its connection closed instead, which ends
// the session and its locks.
const unlockTimeout = 10 * time.Second

// TryLockTables implements dialect.JobLocker with session-level advisory
// locks (pg_try_advisory_lock) on one connection of the pool, kept out of
// it until release: the locks end with the session, so a process killed
// at any instant, or a connection lost, leaves none behind. Advisory locks
// are per database, as colcrypt's job records are.
func (Dialect) TryLockTables(ctx context.Context, db *sql.DB, names []string) (func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect for the job lock: %w", err)
	}
	for _, name := range names {
		var ok bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", advisoryKey(name)).Scan(&ok); err != nil {
			discard(conn)
			return nil, fmt.Errorf("take the job lock: %w", err)
		}
		if !ok {
			unlockAll(conn)
			return nil, &dialect.LockHeldError{Name: name}
		}
	}
	var once sync.Once
	return func() { once.Do(func() { unlockAll(conn) }) }, nil
}

// advisoryKey is the advisory lock key of table name: the first 8 bytes of
// its job lock hash.
func advisoryKey(name string) int64 {
	h := dialect.JobLockHash(name)
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// unlockAll gives back every advisory lock of the connection's session and
// returns the connection to the pool; when that fails, it closes the
// connection, which gives them back too.
func unlockAll(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		discard(conn)
		return
	}
	conn.Close()
}

// discard closes the connection instead of returning it to the pool:
// database/sql drops a connection whose Raw returns driver.ErrBadConn.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
