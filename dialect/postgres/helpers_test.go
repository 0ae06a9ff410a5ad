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

// execPastTriggers runs the statements in one transaction with colcrypt's
// triggers disabled, as a superuser's ALTER TABLE ... DISABLE TRIGGER
// would let them through: past the guard an offline job puts on its table.
// The triggers are enabled again as they were before the transaction ends.
// (session_replication_role = replica no longer gets past them: they are
// enabled ALWAYS.)
func execPastTriggers(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	toggle := func(enable bool) {
		t.Helper()
		action := "DISABLE TRIGGER"
		if enable {
			action = "ENABLE ALWAYS TRIGGER"
		}
		if _, err := tx.ExecContext(t.Context(), `DO $$
DECLARE g record;
BEGIN
  FOR g IN SELECT tgrelid::regclass AS tbl, quote_ident(tgname) AS name FROM pg_trigger WHERE tgname LIKE 'colcrypt%' AND NOT tgisinternal LOOP
    EXECUTE format('ALTER TABLE %s `+action+` %s', g.tbl, g.name);
  END LOOP;
END $$`); err != nil {
			t.Fatalf("%s colcrypt's triggers: %v", action, err)
		}
	}
	toggle(false)
	for _, s := range stmts {
		if _, err := tx.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	toggle(true)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// execAsReplica runs stmt in a transaction with session_replication_role
// = replica, as a logical replication subscriber's apply worker or a
// restore writes, and gives its error.
func execAsReplica(t testing.TB, db *sql.DB, stmt string) error {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(t.Context(), "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), stmt); err != nil {
		return err
	}
	return tx.Commit()
}

func readTable(t *testing.T, d postgres.Dialect, db *sql.DB, name string) *schema.Table {
	t.Helper()
	tb, err := d.ReadTable(t.Context(), db, schema.ParseTableName(name))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}
