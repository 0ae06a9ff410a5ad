package postgres_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect/dialecttest"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// advisoryHolders counts the sessions of this database, other than the
// asking one, that hold an advisory lock.
func advisoryHolders(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(DISTINCT pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJobLock(t *testing.T) {
	dsn := pgtest.DSN(t)
	open := func() *sql.DB {
		db, err := postgres.Dialect{}.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	first, second := open(), open()
	const people, orders = "public\x00people", "public\x00orders"

	release := dialecttest.MustLock(t, postgres.Dialect{}, first, people)
	dialecttest.MustBeHeld(t, postgres.Dialect{}, second, people)
	// All or none: with people held, a lock of both leaves orders free.
	dialecttest.MustBeHeld(t, postgres.Dialect{}, second, orders, people)
	dialecttest.MustLock(t, postgres.Dialect{}, second, orders)()
	// Another session of the same pool is refused too.
	dialecttest.MustBeHeld(t, postgres.Dialect{}, first, people)
	release()
	release() // a second release is harmless
	if n := advisoryHolders(t, second); n != 0 {
		t.Fatalf("after release %d sessions still hold advisory locks", n)
	}
	dialecttest.MustLock(t, postgres.Dialect{}, second, people, orders)()

	// The holding session ends (a killed process, a lost connection): its
	// locks go with it.
	release = dialecttest.MustLock(t, postgres.Dialect{}, first, people)
	dialecttest.MustBeHeld(t, postgres.Dialect{}, second, people)
	if _, err := second.ExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); advisoryHolders(t, second) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the terminated session still holds its advisory lock after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	dialecttest.MustLock(t, postgres.Dialect{}, second, people)()
	release() // on the terminated connection: closes it without an error
	dialecttest.MustLock(t, postgres.Dialect{}, first, people)()
}
