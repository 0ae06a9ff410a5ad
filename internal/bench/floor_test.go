package bench

import (
	"context"
	"database/sql"
	"testing"

	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// The floors are only worth printing if they do the whole rewrite they
// stand for: every row's copy must hold the e-mail's bytes afterwards.

// floorRows is two full chunks and a partial one.
const floorRows = 12_345

// runFloor runs a PostgreSQL floor on a table of floorRows rows loaded with
// setup, and gives its database for the checks.
func runFloor(t *testing.T, setup string, run func(context.Context, *sql.DB) (int64, error)) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := (&Postgres{}).load(t.Context(), db, floorRows, setup); err != nil {
		t.Fatal(err)
	}
	n, err := run(t.Context(), db)
	if err != nil || n != floorRows {
		t.Fatalf("floor = %d, %v; want %d rows", n, err, floorRows)
	}
	return db
}

// wantNone fails the test unless the counting query gives 0.
func wantNone(t *testing.T, db *sql.DB, count, what string) {
	t.Helper()
	var wrong int
	if err := db.QueryRowContext(t.Context(), count).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d of %d rows %s", wrong, floorRows, what)
	}
}

func TestClientFloorRewritesEveryRow(t *testing.T) {
	db := runFloor(t, "ALTER TABLE t ADD COLUMN copy bytea", clientCopy)
	wantNone(t, db, `SELECT count(*) FROM t WHERE copy IS DISTINCT FROM convert_to(email, 'UTF8')`,
		"do not hold the e-mail's bytes in copy")
}

func TestRebuildFloorWritesEveryRow(t *testing.T) {
	db := runFloor(t, rebuildFloorTable, func(ctx context.Context, db *sql.DB) (int64, error) {
		return walkChunks(ctx, db, rebuildCarried, rebuildChunk)
	})
	wantNone(t, db, `SELECT count(*) FROM t FULL JOIN t_new AS n USING (id)
WHERE n.email IS DISTINCT FROM convert_to(t.email, 'UTF8') OR n.ssn IS DISTINCT FROM t.ssn OR n.notes IS DISTINCT FROM t.notes`,
		"of t_new differ from t")
}

func TestGoCallFloorRewritesEveryRow(t *testing.T) {
	ctx := t.Context()
	s := &SQLite{Dir: t.TempDir()}
	const rows = 3_000
	path, drop, err := s.database(ctx, "gocall", rows, "ALTER TABLE t ADD COLUMN copy BLOB")
	if err != nil {
		t.Fatal(err)
	}
	defer drop()
	if err := registerFloor(); err != nil {
		t.Fatal(err)
	}
	db, err := openSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "UPDATE t SET copy = "+floorFunction+"(email)"); err != nil {
		t.Fatal(err)
	}
	var wrong int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE copy IS NOT CAST(email AS BLOB) OR typeof(copy) <> 'blob'`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d of %d rows do not hold the e-mail's bytes in copy", wrong, rows)
	}
}
