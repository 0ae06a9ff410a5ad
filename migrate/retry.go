package migrate

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"
)

// Retry tuning. A chunk is idempotent, so retrying one is always safe; the
// limits only decide how long a job waits out a lock or a failover before
// giving up with the error.
const (
	retryAttempts  = 8                      // about 11 s of waits with the backoff below
	retryBaseDelay = 100 * time.Millisecond // first wait; doubles each attempt
	retryMaxDelay  = 5 * time.Second        // cap, so a long outage is polled, not slept through
	// retryOutage is how long a job keeps trying while the server cannot
	// be reached or is still recovering (isOutage), past retryAttempts: a
	// failover or a restart after a crash takes tens of seconds.
	retryOutage = 2 * time.Minute
)

// outageMarkers are fragments of error text that mean the server is not
// there yet: refused connections, and PostgreSQL starting up or
// recovering (57P03) or failing to connect (08001, 08006).
var outageMarkers = []string{"connection refused", "sqlstate 57p03", "sqlstate 08001", "sqlstate 08006"}

// isOutage tells a transient error that means the server is down or
// coming back, which a job waits out for up to retryOutage.
func isOutage(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	// SQL Server: failover in progress, database not currently available.
	// Not 4060 (cannot open the database): a dropped database or a lost
	// permission gives it too, and those do not come back.
	if n, ok := sqlErrorNumber(err); ok && (n == 40197 || n == 40613) {
		return true
	}
	return hasMarker(err, outageMarkers)
}

// sqlErrorNumber gives the error number SQL Server's errors carry.
func sqlErrorNumber(err error) (int32, bool) {
	var numbered interface{ SQLErrorNumber() int32 }
	if errors.As(err, &numbered) {
		return numbered.SQLErrorNumber(), true
	}
	return 0, false
}

// hasMarker reports whether err's text holds one of the (lower-case)
// markers.
func hasMarker(err error, markers []string) bool {
	msg := strings.ToLower(err.Error())
	for _, m := range markers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// transientMarkers are fragments of error text that mean "try again": lock
// timeouts, deadlocks, serialization failures, a busy SQLite file, and
// dropped connections, across the three engines. Drivers do not share error
// types, and matching SQLSTATE/error numbers inside the text keeps this
// helper free of engine imports.
var transientMarkers = []string{
	"sqlstate 40001", "sqlstate 40p01", "sqlstate 55p03", "sqlstate 57p01", "sqlstate 57p02", "sqlstate 57p03",
	"sqlstate 08", "(40001)", "(40p01)", "(55p03)", "(57p01)",
	"deadlock", "lock timeout", "lock request time out", "could not serialize",
	"database is locked", "sqlite_busy", "database table is locked",
	"connection reset", "broken pipe", "connection refused", "unexpected eof", "conn closed",
	"terminating connection", "server closed the connection", "bad connection",
	"error 1205", "error 1222", "mssql: transaction (process id",
}

// isTransient decides whether an error is worth retrying.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// SQL Server errors carry their number: deadlock victim, lock request
	// timeout, and the connection-level failures of a failover.
	if n, ok := sqlErrorNumber(err); ok {
		switch n {
		case 1205, 1222, 40197, 40501, 40613, 49918, 49919, 49920, 4060, 233, 10053, 10054, 10060:
			return true
		}
	}
	// A protocol violation is in PostgreSQL's connection-exception class
	// but is the client's own mistake: another attempt sends the same.
	if hasMarker(err, []string{"sqlstate 08p01"}) {
		return false
	}
	return hasMarker(err, transientMarkers)
}

// retryKind says whether op's error is worth another attempt, and whether
// it means the server is not there yet (an outage). A deadline inside op
// while the job's own context is live is a server that did not answer in
// time (connect_timeout in the DSN): an outage.
func retryKind(ctx context.Context, err error) (retryable, outage bool) {
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return true, true
	}
	return isTransient(err), isOutage(err)
}

// retry runs op until it succeeds, fails with a non-transient error, runs
// out of attempts (an outage: also of retryOutage), or ctx ends. Every
// wait selects on ctx.Done(). Opening the database is not retried: a
// wrong host or port fails at once, before the job starts.
func retry(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	delay := retryBaseDelay
	start := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		err = op(ctx)
		if err == nil {
			return nil
		}
		retryable, outage := retryKind(ctx, err)
		if !retryable || (attempt >= retryAttempts && (!outage || time.Since(start) >= retryOutage)) {
			return err
		}
		log.Warn("transient error, retrying", "op", what, "attempt", attempt, "wait", delay, "err", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, retryMaxDelay)
	}
}
