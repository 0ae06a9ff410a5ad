package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var _ dialect.Mover = Dialect{}

// PostgreSQL has concurrent writers, so Dialect deliberately does not
// implement dialect.SingleWriter: chunk writes run in parallel.

// rowIDColumn is the column added to tables without a usable key; the
// migration engine names it the same.
const rowIDColumn = "colcrypt_row_id"

// ddlLockTimeout bounds how long a cut-over (and any other ALTER TABLE
// of a job) waits for a table lock. ALTER TABLE takes an ACCESS EXCLUSIVE
// lock, and while it waits every other query on the table queues behind
// it; better to give up after a few seconds (SQLSTATE 55P03, which the
// engine's retry helper treats as transient) and try again than to stall
// the application behind a long transaction.
const ddlLockTimeout = 5 * time.Second

// StateTypes implements dialect.Mover.
func (Dialect) StateTypes() dialect.StateTypes {
	return dialect.StateTypes{Text: "text", Key: "text", Blob: "bytea", BigInt: "bigint"}
}

// Placeholder implements dialect.Mover.
func (Dialect) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

// FirstRows implements dialect.Mover.
func (Dialect) FirstRows(query string, offset, n int64) string {
	return query + " LIMIT " + strconv.FormatInt(n, 10) + " OFFSET " + strconv.FormatInt(offset, 10)
}

// RowID implements dialect.Mover: PostgreSQL's ctid changes with every
// update, so a table without a usable key gets an identity column.
func (Dialect) RowID() (string, bool) { return rowIDColumn, true }

// AddColumn implements dialect.Mover. A nullable column without a default
// is a change to the catalog only: no row is rewritten.
func (d Dialect) AddColumn(ctx context.Context, db *sql.DB, table schema.TableName, column, typ string) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "ALTER TABLE "+d.QuoteTable(table)+" ADD COLUMN IF NOT EXISTS "+d.Quote(column)+" "+typ)
		return err
	})
	if err != nil {
		return fmt.Errorf("add column %s to %s: %w", column, table, err)
	}
	return nil
}

// inDDLTx runs DDL in a transaction that waits at most ddlLockTimeout for
// its locks: ALTER TABLE needs an exclusive lock, and while it waits for
// one every other query on the table queues behind it. A timeout fails
// with SQLSTATE 55P03, which a retry can wait out.
func inDDLTx(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, setLockTimeout); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// execEach runs statements in turn on q, stopping at the first error.
func execEach(ctx context.Context, q dialect.Querier, stmts []string) error {
	for _, stmt := range stmts {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// queryStrings runs a query of one text column on q and gives its rows.
func queryStrings(ctx context.Context, q dialect.Querier, query string, args ...any) ([]string, error) {
	var out []string
	err := dialect.EachRow(ctx, q, query, args, func(rows *sql.Rows) error {
		var v string
		err := rows.Scan(&v)
		out = append(out, v)
		return err
	})
	return out, err
}

// setLockTimeout applies ddlLockTimeout to the current transaction.
var setLockTimeout = "SET LOCAL lock_timeout = '" + strconv.FormatInt(ddlLockTimeout.Milliseconds(), 10) + "ms'"

// AddRowID implements dialect.Mover: an identity column, which numbers the
// existing rows as it is added (a table rewrite), and a unique index on it
// so that keyset paging seeks instead of scanning.
func (d Dialect) AddRowID(ctx context.Context, db *sql.DB, table schema.TableName) error {
	qt := d.QuoteTable(table)
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+qt+" ADD COLUMN IF NOT EXISTS "+d.Quote(rowIDColumn)+
			" bigint GENERATED ALWAYS AS IDENTITY"); err != nil {
			return err
		}
		var indexed bool
		if err := tx.QueryRowContext(ctx, `
SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
  WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
    AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2)`, qt, rowIDColumn).Scan(&indexed); err != nil {
			return fmt.Errorf("look for its index: %w", err)
		}
		if indexed {
			return nil
		}
		// No name: PostgreSQL picks one that is free in the schema.
		_, err := tx.ExecContext(ctx, "CREATE UNIQUE INDEX ON "+qt+" ("+d.Quote(rowIDColumn)+")")
		return err
	})
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", rowIDColumn, table, err)
	}
	return nil
}

// DropColumn implements dialect.Mover.
func (d Dialect) DropColumn(ctx context.Context, db *sql.DB, table schema.TableName, column string) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "ALTER TABLE "+d.QuoteTable(table)+" DROP COLUMN IF EXISTS "+d.Quote(column))
		return err
	})
	if err != nil {
		return fmt.Errorf("drop column %s of %s: %w", column, table, err)
	}
	return nil
}

// Purge implements dialect.Mover. VACUUM FULL writes a new copy of the
// table and its indexes and deletes the old files, so dropped columns and
// dead row versions holding plaintext are gone from the table's storage.
// (The write-ahead log and backups taken before still hold them.)
func (d Dialect) Purge(ctx context.Context, db *sql.DB, table schema.TableName) error {
	// Without arguments pgx sends the simple protocol, outside any
	// transaction block, which VACUUM requires.
	if _, err := db.ExecContext(ctx, "VACUUM FULL "+d.QuoteTable(table)); err != nil {
		return fmt.Errorf("vacuum full %s: %w", table, err)
	}
	return nil
}

var _ dialect.VersionKeeper = Dialect{}

// VersionHolders implements dialect.VersionKeeper. Every transaction the
// job committed has an xid below the xmax of a snapshot taken now, and
// VACUUM FULL keeps a row version whose deleting xid does not precede its
// horizon: the xmin and xid of every session of the table's database,
// walsenders (a standby's feedback) and replication slots, and its own
// snapshot's xmin, which is held back by any transaction with an xid in any
// database, prepared ones included. (Measured: a write waiting for a lock
// in another database kept every old version of a purged table.) A plain
// (auto)vacuum does not count: the server leaves it out too. Comparing
// ages keeps the comparison right across xid wraparound.
func (Dialect) VersionHolders(ctx context.Context, db *sql.DB) (func(context.Context) ([]string, error), error) {
	var horizon string
	if err := db.QueryRowContext(ctx, `SELECT (pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()) % 4294967296)::text`).Scan(&horizon); err != nil {
		return nil, fmt.Errorf("read the transaction horizon: %w", err)
	}
	return func(ctx context.Context) ([]string, error) {
		rows, err := db.QueryContext(ctx, versionHoldersSQL, horizon)
		if err != nil {
			return nil, fmt.Errorf("list the transactions that can read old row versions: %w", err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return nil, fmt.Errorf("list the transactions that can read old row versions: %w", err)
			}
			out = append(out, s)
		}
		return out, rows.Err()
	}, nil
}

// versionHoldersSQL lists what holds back the horizon of $1 (an xid, as
// text). A session's query text is left out: it may hold the very values
// being purged.
const versionHoldersSQL = `WITH h AS (SELECT pg_catalog.age($1::text::xid) AS age)
SELECT pg_catalog.format('session %s (database %s, user %s, application %s, %s, in a transaction since %s; pg_terminate_backend(%s) ends it)',
	a.pid, coalesce(a.datname::text, '-'), coalesce(a.usename::text, '?'), coalesce(nullif(a.application_name, ''), '?'),
	coalesce(a.state, a.backend_type, '?'), coalesce(a.xact_start::text, '?'), a.pid)
FROM pg_catalog.pg_stat_activity a, h
WHERE a.pid <> pg_catalog.pg_backend_pid()
  AND (pg_catalog.age(a.backend_xid) > h.age
    OR (pg_catalog.age(a.backend_xmin) > h.age AND (a.datname = pg_catalog.current_database() OR a.backend_type = 'walsender')))
  AND NOT (a.backend_type = 'autovacuum worker' AND a.query LIKE 'autovacuum: VACUUM %' AND a.query NOT LIKE '%ANALYZE%')
UNION ALL
SELECT pg_catalog.format('prepared transaction %L (database %s, prepared at %s; COMMIT PREPARED or ROLLBACK PREPARED ends it)', p.gid, p.database, p.prepared)
FROM pg_catalog.pg_prepared_xacts p, h
WHERE pg_catalog.age(p.transaction) > h.age
UNION ALL
SELECT pg_catalog.format('replication slot %L (a standby with hot_standby_feedback, or the slot''s consumer, holds it back)', s.slot_name)
FROM pg_catalog.pg_replication_slots s, h
WHERE pg_catalog.age(s.xmin) > h.age`

var _ dialect.Slicer = Dialect{}

// Substr implements dialect.Slicer: substring on bytea counts bytes, so
// status reads the versioned header of each ciphertext in the database.
func (Dialect) Substr(expr string, from, n int) string {
	return "substring(" + expr + " FROM " + strconv.Itoa(from) + " FOR " + strconv.Itoa(n) + ")"
}

var _ dialect.PhysicalSlicer = Dialect{}

// PhysicalSlices implements dialect.PhysicalSlicer with ranges of heap
// pages, ctid >= '(a,0)' AND ctid < '(b,0)', which PostgreSQL 14 and later
// read with a TID range scan: page by page, no index. The last slice is
// open-ended, so pages added since the table was measured are read too.
// Measured against key ranges on SPEC §8's table right after the copy
// (two row versions per key): 1.0 s instead of 1.5 s, and 40% less server
// CPU. Older servers would scan the whole table for each slice: nil.
func (d Dialect) PhysicalSlices(ctx context.Context, q dialect.Querier, table schema.TableName, n int) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT current_setting('server_version_num')::int, "+
		"pg_relation_size($1::regclass) / current_setting('block_size')::int", d.QuoteTable(table))
	if err != nil {
		return nil, fmt.Errorf("measure %s: %w", table, err)
	}
	defer rows.Close()
	var version int
	var pages int64
	if rows.Next() {
		if err := rows.Scan(&version, &pages); err != nil {
			return nil, fmt.Errorf("measure %s: %w", table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("measure %s: %w", table, err)
	}
	if version < 140000 {
		return nil, nil
	}
	n = max(n, 1)
	step := max((pages+int64(n)-1)/int64(n), 1)
	var out []string
	for lo := int64(0); ; lo += step {
		cond := fmt.Sprintf("ctid >= '(%d,0)'::tid", lo)
		if lo+step >= pages {
			return append(out, cond), nil
		}
		out = append(out, fmt.Sprintf("%s AND ctid < '(%d,0)'::tid", cond, lo+step))
	}
}
