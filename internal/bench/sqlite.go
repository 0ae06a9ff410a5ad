package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/sqlite" // registers the sqlite engine
)

// SQLite's equivalent of SPEC §8's table, filled the same way as the
// PostgreSQL one: an INTEGER PRIMARY KEY (SQLite's 64-bit key), an 11-byte
// ssn, an e-mail of 20–27 bytes and 200 bytes of notes.
const (
	sqliteCreateTable = `CREATE TABLE t (id INTEGER PRIMARY KEY, ssn CHAR(11), email VARCHAR(64), notes TEXT)`
	sqliteLoadRows    = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
INSERT INTO t (id, ssn, email, notes)
SELECT i, printf('%03d-%02d-%04d', i % 1000, (i / 1000) % 100, i % 10000),
       'u' || i || '.' || lower(hex(randomblob(3))) || '@example.com',
       hex(randomblob(100))
FROM s`
	// sqliteUpdateSQL is the baseline: one UPDATE rewriting the column's
	// bytes into a new BLOB column.
	sqliteUpdateSQL = `UPDATE t SET copy = CAST(email AS BLOB)`
)

// SQLite runs the SQLite scenarios, each on a database file of its own in
// Dir, deleted afterwards.
type SQLite struct {
	Dir string
}

// open connects as colcrypt does (busy timeout, foreign keys) with the
// file in the write-ahead log, as colcrypt's job puts it, so the baseline
// and colcrypt write through the same settings.
func openSQLite(ctx context.Context, path string) (*sql.DB, error) {
	d, err := dialect.Get("sqlite")
	if err != nil {
		return nil, err
	}
	db, err := d.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// database creates a file with the loaded table and returns its path; drop
// deletes it with its WAL and shared-memory files.
func (s *SQLite) database(ctx context.Context, name string, rows int64, extra ...string) (path string, drop func(), err error) {
	path = filepath.Join(s.Dir, "sqlite-"+name+".db")
	drop = func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			_ = os.Remove(path + suffix)
		}
	}
	drop()
	f, err := os.Create(path)
	if err != nil {
		return "", nil, err
	}
	f.Close()
	db, err := openSQLite(ctx, path)
	if err != nil {
		drop()
		return "", nil, err
	}
	defer db.Close()
	stmts := append([]string{sqliteCreateTable}, extra...)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			drop()
			return "", nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, sqliteLoadRows, rows); err != nil {
		drop()
		return "", nil, fmt.Errorf("load %d rows: %w", rows, err)
	}
	// Every scenario starts with the rows in the database file and an
	// empty write-ahead log.
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		drop()
		return "", nil, err
	}
	return path, drop, nil
}

// Update times the baseline UPDATE on a fresh copy of the table.
func (s *SQLite) Update(ctx context.Context, rows int64) (Measurement, error) {
	m := Measurement{ID: SQLiteUpdate, Label: "B: UPDATE t SET copy = CAST(email AS BLOB)", Rows: rows, Baseline: true}
	return s.timeUpdate(ctx, m, "update", sqliteUpdateSQL)
}

// timeUpdate times one UPDATE of every row into a new column copy, on a
// fresh copy of the table.
func (s *SQLite) timeUpdate(ctx context.Context, m Measurement, name, stmt string) (Measurement, error) {
	path, drop, err := s.database(ctx, name, m.Rows, "ALTER TABLE t ADD COLUMN copy BLOB")
	if err != nil {
		return m, err
	}
	defer drop()
	db, err := openSQLite(ctx, path)
	if err != nil {
		return m, err
	}
	defer db.Close()
	start := time.Now()
	res, err := db.ExecContext(ctx, stmt)
	m.Elapsed = time.Since(start)
	if err != nil {
		return m, fmt.Errorf("%s: %w", m.Label, err)
	}
	if n, _ := res.RowsAffected(); n != m.Rows {
		return m, fmt.Errorf("%s: %d rows, want %d", m.Label, n, m.Rows)
	}
	return m, nil
}

// Colcrypt runs `colcrypt apply` (with args) on a fresh copy of the table.
func (s *SQLite) Colcrypt(ctx context.Context, cc *Colcrypt, fx *Fixture, ps PlanSettings, name string, rows int64, args ...string) (*RunResult, error) {
	path, drop, err := s.database(ctx, name, rows)
	if err != nil {
		return nil, err
	}
	defer drop()
	plan, err := fx.WritePlan("sqlite-"+name, "sqlite", benchTable, ps)
	if err != nil {
		return nil, err
	}
	return cc.Apply(ctx, "sqlite-"+name, plan, path, args...)
}
