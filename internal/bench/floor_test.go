package bench

import (
	"database/sql"
	"testing"

	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// The floors are only worth printing if they do the whole rewrite they
// stand for: every row's copy must hold the e-mail's bytes afterwards.

func TestClientFloorRewritesEveryRow(t *testing.T) {
	ctx := t.Context()
	db, err := sql.Open("pgx", pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rows = 12_345 // two full chunks and a partial one
	if err := (&Postgres{}).load(ctx, db, rows, "ALTER TABLE t ADD COLUMN copy bytea"); err != nil {
		t.Fatal(err)
	}
	n, err := clientCopy(ctx, db)
	if err != nil || n != rows {
		t.Fatalf("clientCopy = %d, %v; want %d rows", n, err, rows)
	}
	var wrong int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE copy IS DISTINCT FROM convert_to(email, 'UTF8')`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d of %d rows do not hold the e-mail's bytes in copy", wrong, rows)
	}
}

func TestRebuildFloorWritesEveryRow(t *testing.T) {
	ctx := t.Context()
	db, err := sql.Open("pgx", pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rows = 12_345
	if err := (&Postgres{}).load(ctx, db, rows, rebuildFloorTable); err != nil {
		t.Fatal(err)
	}
	n, err := walkChunks(ctx, db, rebuildChunk)
	if err != nil || n != rows {
		t.Fatalf("rebuild = %d, %v; want %d rows", n, err, rows)
	}
	var wrong int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t FULL JOIN t_new AS n USING (id)
WHERE n.email IS DISTINCT FROM convert_to(t.email, 'UTF8') OR n.ssn IS DISTINCT FROM t.ssn OR n.notes IS DISTINCT FROM t.notes`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Errorf("%d of %d rows of t_new differ from t", wrong, rows)
	}
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
