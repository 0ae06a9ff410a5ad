package migrate_test

import (
	"fmt"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestExtendedStatisticsDoNotStopCutoverPostgres: PostgreSQL drops an
// extended statistics object with a column it covers, and the plan warns
// of it (rule dependent, a warning with its definition); the check of new
// dependents before the cut-over must not then refuse the job it let
// through, after the copy and the verify.
func TestExtendedStatisticsDoNotStopCutoverPostgres(t *testing.T) {
	ctx := t.Context()
	d, db, p, ks := postgresJob(t, func(dsn string) string {
		return fmt.Sprintf(`version: 1
database:
  engine: postgres
  dsn: "%s"
keystore: test.keystore
defaults:
  key: pii
  iv: column
tables:
  - name: d3
    columns:
      - name: a
`, dsn)
	},
		`CREATE TABLE d3 (id int PRIMARY KEY, a text, b text)`,
		`INSERT INTO d3 SELECT g, g % 10, g % 20 FROM generate_series(1, 100) g`,
		`CREATE STATISTICS d3_st (dependencies) ON a, b FROM d3`)
	e, err := migrate.New(p, d, db, ks, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var typ string
	if err := db.QueryRowContext(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'd3'::regclass AND attname = 'a'`).Scan(&typ); err != nil || typ != "bytea" {
		t.Errorf("d3.a after apply: %q (%v), want bytea", typ, err)
	}
}
