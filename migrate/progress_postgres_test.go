package migrate_test

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// TestProgressCountsRowsTheCheckDidNotReadPostgres: with only bounded
// columns planned (varchar(n) under the large-object limit), apply's check
// before it changes anything does not read the table, so the job counts the
// rows itself: status shows every row of the table copied, not 0 of 0.
func TestProgressCountsRowsTheCheckDidNotReadPostgres(t *testing.T) {
	d, db, p, ks := postgresJob(t, func(dsn string) string { return fmt.Sprintf(onlinePostgresPlan, dsn) },
		`CREATE TABLE `+onlineTable+` (id bigint PRIMARY KEY, email varchar(64), notes varchar(200), score int)`,
		`INSERT INTO `+onlineTable+` SELECT g, 'user' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('n', g % 50) END, 0 FROM generate_series(1, 3000) g`)
	copyShowsAllRows(t, p, d, db, ks, 3000)
}

// copyShowsAllRows runs apply --until copy and wants status to show want
// rows of want copied, 100 %, for both planned columns.
func copyShowsAllRows(t *testing.T, p *planner.Plan, d dialect.Dialect, db *sql.DB, ks *keystore.Keystore, want int64) {
	t.Helper()
	ctx := t.Context()
	e, err := migrate.New(p, d, db, ks, migrate.Options{Until: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(ctx); err != nil {
		t.Fatalf("apply --until copy: %v", err)
	}
	rep, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Columns) != 2 {
		t.Fatalf("status: %d columns, want 2: %+v", len(rep.Columns), rep.Columns)
	}
	for _, c := range rep.Columns {
		if c.RowsDone != want || c.RowsTotal != want || c.Percent != 100 {
			t.Errorf("status of %s after the copy: %d of %d rows, %d%%; want %d of %d, 100%%", c.Column, c.RowsDone, c.RowsTotal, c.Percent, want, want)
		}
	}
}

// TestProgressEndsWithTheRowsWalkedPostgres: when the table's statistics
// are stale, the copy starts its progress from PostgreSQL's estimate
// (reltuples) instead of counting the table, and status still ends with
// the table's exact row count, whether the estimate was too high or too
// low.
func TestProgressEndsWithTheRowsWalkedPostgres(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change string // after ANALYZE saw 2000 rows
		want   int64
	}{
		{"estimate too high", `DELETE FROM ` + onlineTable + ` WHERE id > 500`, 500},
		{"estimate too low", `INSERT INTO ` + onlineTable + ` SELECT g, 'user' || g, 'n', 0 FROM generate_series(2001, 3500) g`, 3500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, db, p, ks := postgresJob(t, func(dsn string) string { return fmt.Sprintf(onlinePostgresPlan, dsn) },
				`CREATE TABLE `+onlineTable+` (id bigint PRIMARY KEY, email varchar(64), notes varchar(200), score int) WITH (autovacuum_enabled = false)`,
				`INSERT INTO `+onlineTable+` SELECT g, 'user' || g, repeat('n', g % 50), 0 FROM generate_series(1, 2000) g`,
				`ANALYZE `+onlineTable,
				tc.change)
			var estimate int64
			if err := db.QueryRowContext(t.Context(), `SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass`, onlineTable).Scan(&estimate); err != nil {
				t.Fatal(err)
			}
			if estimate != 2000 {
				t.Fatalf("reltuples = %d, want the stale 2000", estimate)
			}
			copyShowsAllRows(t, p, d, db, ks, tc.want)
		})
	}
}
