package migrate_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestApplyKeepsItsConnectionsPostgres: the workers, the walker and the
// job's own bookkeeping take connections from the pool for every chunk. A
// job that let the pool close them would open new ones all along: on
// PostgreSQL a server process each, and every statement prepared and
// planned again.
func TestApplyKeepsItsConnectionsPostgres(t *testing.T) {
	ctx := t.Context()
	d, db, p, ks := postgresJob(t, func(dsn string) string {
		return strings.Replace(fmt.Sprintf(onlinePostgresPlan, dsn), "batch_rows: 500", "batch_rows: 100", 1)
	},
		`CREATE TABLE `+onlineTable+` (id bigint PRIMARY KEY, email text, notes text, score int)`,
		`INSERT INTO `+onlineTable+` SELECT g, 'user' || g, repeat('n', g % 50), 0 FROM generate_series(1, 6000) g`)
	e, err := migrate.New(p, d, db, ks, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(ctx)
	if err != nil || res.Phase != "done" {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if st := db.Stats(); st.MaxIdleClosed != 0 {
		t.Errorf("the pool closed %d idle connections during the job (and kept %d open)", st.MaxIdleClosed, st.OpenConnections)
	}
}

// TestNewOpensTheWorkersConnectionsPostgres: on PostgreSQL, where each
// connection is a server process, the engine opens its workers'
// connections while the job starts, so the first chunks find them open.
func TestNewOpensTheWorkersConnectionsPostgres(t *testing.T) {
	d, db, p, ks := postgresJob(t, func(dsn string) string { return fmt.Sprintf(onlinePostgresPlan, dsn) },
		`CREATE TABLE `+onlineTable+` (id bigint PRIMARY KEY, email text, notes text, score int)`)
	const workers = 3
	if _, err := migrate.New(p, d, db, ks, migrate.Options{Workers: workers}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.Stats().OpenConnections < workers+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := db.Stats(); st.OpenConnections < workers+1 {
		t.Errorf("%d connections open after New; want at least %d (the workers' and the walker's)", st.OpenConnections, workers+1)
	}
}
