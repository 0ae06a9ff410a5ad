package postgres_test

import (
	"database/sql"
	"testing"

	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/schema"
)

// openDB opens a new empty database through the dialect and runs ddl in it.
func openDB(t testing.TB, ddl ...string) (postgres.Dialect, *sql.DB) {
	t.Helper()
	d := postgres.Dialect{}
	db, err := d.Open(t.Context(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec(t, db, ddl...)
	return d, db
}

func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// execPastTriggers runs the statements in one transaction with triggers
// off (session_replication_role = replica), as logical replication or a
// restore writes: past the guard an offline in-place job puts on its table.
func execPastTriggers(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, s := range append([]string{"SET LOCAL session_replication_role = replica"}, stmts...) {
		if _, err := tx.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readTable(t *testing.T, d postgres.Dialect, db *sql.DB, name string) *schema.Table {
	t.Helper()
	tb, err := d.ReadTable(t.Context(), db, schema.ParseTableName(name))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}
