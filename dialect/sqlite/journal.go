package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
)

var _ dialect.JournalSwitcher = Dialect{}

// journalModes are the journal modes SQLite knows, lower case.
var journalModes = map[string]bool{"delete": true, "truncate": true, "persist": true, "memory": true, "wal": true, "off": true}

// JournalMode implements dialect.JournalSwitcher.
func (Dialect) JournalMode(ctx context.Context, db *sql.DB) (string, error) {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return "", fmt.Errorf("read the journal mode: %w", err)
	}
	return strings.ToLower(mode), nil
}

// JobJournalMode implements dialect.JournalSwitcher.
func (Dialect) JobJournalMode() string { return "wal" }

// SwitchJournal implements dialect.JournalSwitcher: the file goes to the
// write-ahead log, which lets the copy's readers read while its one writer
// writes. An in-memory database keeps its mode.
func (d Dialect) SwitchJournal(ctx context.Context, db *sql.DB) error {
	was, err := d.JournalMode(ctx, db)
	if err != nil || was == "wal" || was == "memory" {
		return err
	}
	var now string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&now); err != nil {
		return fmt.Errorf("switch the database to the write-ahead log: %w", err)
	}
	if !strings.EqualFold(now, "wal") {
		return fmt.Errorf("switch the database to the write-ahead log: it stays in journal mode %s (a read-only file, or one other connections hold)", now)
	}
	return nil
}

// RestoreJournal implements dialect.JournalSwitcher. Leaving the
// write-ahead log needs the file to itself: with another connection open
// on it, SQLite keeps the log, and that is the error.
func (Dialect) RestoreJournal(ctx context.Context, db *sql.DB, mode string) error {
	mode = strings.ToLower(mode)
	if !journalModes[mode] {
		return fmt.Errorf("journal mode %q is not one of SQLite's", mode)
	}
	if mode == "wal" || mode == "memory" {
		return nil
	}
	// On a connection of its own that does not wait: a file another
	// connection reads is not worth the busy timeout at the job's end.
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return err
	}
	defer c.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMillis)) //nolint:errcheck // best effort
	now := "wal"
	err = c.QueryRowContext(ctx, "PRAGMA journal_mode = "+mode).Scan(&now)
	if err != nil || !strings.EqualFold(now, mode) {
		reason := "another connection has it open"
		if err != nil {
			reason = err.Error()
		}
		return fmt.Errorf("the database stays in journal mode %s, not %s as before the job (%s): "+
			"run PRAGMA journal_mode = %s once no one else uses it", strings.ToLower(now), mode, reason, strings.ToUpper(mode))
	}
	return nil
}
