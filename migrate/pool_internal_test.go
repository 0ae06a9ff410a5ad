package migrate

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestWarmPoolLeavesConnectionsIdle: warmPool opens the connections the
// workers will take, all at once, and leaves them in the pool; a pool
// limited to fewer connections gets what it allows, without waiting.
func TestWarmPoolLeavesConnectionsIdle(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "warm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(5)
	warmPool(db, 3)
	if st := db.Stats(); st.OpenConnections != 3 || st.Idle != 3 {
		t.Errorf("after warming 3: %d open, %d idle; want 3 and 3", st.OpenConnections, st.Idle)
	}

	db.SetMaxOpenConns(1)
	start := time.Now()
	warmPool(db, 3)
	if took := time.Since(start); took >= warmPoolTimeout/2 {
		t.Errorf("warming 3 connections of a pool of 1 took %v: it waited for connections the pool cannot open", took)
	}
	if st := db.Stats(); st.OpenConnections != 1 || st.Idle != 1 {
		t.Errorf("with at most 1 open: %d open, %d idle; want 1 and 1", st.OpenConnections, st.Idle)
	}
}
