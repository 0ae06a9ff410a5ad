package migrate_test

import (
	"fmt"
	"strings"
	"testing"

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
