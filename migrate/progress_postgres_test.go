package migrate_test

import (
	"fmt"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestProgressCountsRowsTheCheckDidNotReadPostgres: with only bounded
// columns planned (varchar(n) under the large-object limit), apply's check
// before it changes anything does not read the table, so the job counts the
// rows itself: status shows every row of the table copied, not 0 of 0.
func TestProgressCountsRowsTheCheckDidNotReadPostgres(t *testing.T) {
	ctx := t.Context()
	d, db, p, ks := postgresJob(t, func(dsn string) string { return fmt.Sprintf(onlinePostgresPlan, dsn) },
		`CREATE TABLE `+onlineTable+` (id bigint PRIMARY KEY, email varchar(64), notes varchar(200), score int)`,
		`INSERT INTO `+onlineTable+` SELECT g, 'user' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('n', g % 50) END, 0 FROM generate_series(1, 3000) g`)
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
		if c.RowsDone != 3000 || c.RowsTotal != 3000 || c.Percent != 100 {
			t.Errorf("status of %s after the copy: %d of %d rows, %d%%; want 3000 of 3000, 100%%", c.Column, c.RowsDone, c.RowsTotal, c.Percent)
		}
	}
}
