package pgtest_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// TestDSNIsolated checks what callers rely on: each call gives a new,
// empty database, and it is gone after the test.
func TestDSNIsolated(t *testing.T) {
	var names []string
	t.Run("create", func(t *testing.T) {
		for range 2 {
			dsn := pgtest.DSN(t)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var name string
			var tables int
			err = db.QueryRowContext(t.Context(), `SELECT current_database(),
				(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public')`).Scan(&name, &tables)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, "colcrypt_t_") || tables != 0 {
				t.Errorf("database %s has %d relations in public, want a new empty colcrypt_t_ database", name, tables)
			}
			names = append(names, name)
			// An open connection must not keep the database from being dropped.
			if _, err := db.ExecContext(t.Context(), `CREATE TABLE left_open (x int)`); err != nil {
				t.Fatal(err)
			}
		}
		if names[0] == names[1] {
			t.Errorf("two calls gave the same database %s", names[0])
		}
	})
	if len(names) != 2 {
		return // skipped or failed above
	}
	base := pgtest.DSN(t)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range names {
		var n int
		if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/colcrypt_t_x?sslmode=disable"},
		{"postgresql://h", "postgresql://h/colcrypt_t_x"},
		{"host=h dbname=postgres user=u", "host=h dbname=postgres user=u dbname=colcrypt_t_x"},
	} {
		got, err := pgtest.WithDatabase(tc.in, "colcrypt_t_x")
		if err != nil || got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := pgtest.WithDatabase("postgres://u:secret@h:bad port/", "x"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: err = %v, want an error without the password", err)
	}
}

// fakeTB records Skip and Fatal instead of ending the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...); panic(stopped{}) }
func (f *fakeTB) Fatal(args ...any) { f.failed = fmt.Sprint(args...); panic(stopped{}) }

func call(t *testing.T, f *fakeTB) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	pgtest.DSN(f)
	t.Error("DSN returned without a database variable")
}

func TestDSNWithoutCluster(t *testing.T) {
	const msg = "COLCRYPT_POSTGRES_DSN is not set: run ./scripts/test, which starts PostgreSQL"
	t.Setenv(pgtest.EnvDSN, "")

	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	call(t, f)
	if f.skipped != msg || f.failed != "" {
		t.Errorf("outside CI: skipped %q, failed %q; want a skip", f.skipped, f.failed)
	}

	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	call(t, f)
	if f.failed != msg || f.skipped != "" {
		t.Errorf("in CI: skipped %q, failed %q; want a failure", f.skipped, f.failed)
	}
}
