package dialecttest

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
)

// MustLock takes the job locks of the named tables through jl and fails
// the test when they are refused.
func MustLock(t *testing.T, jl dialect.JobLocker, db *sql.DB, names ...string) func() {
	t.Helper()
	release, err := jl.TryLockTables(t.Context(), db, names)
	if err != nil {
		t.Fatalf("lock %q: %v", names, err)
	}
	return release
}

// MustBeHeld checks that the job locks of the named tables are refused
// with a *dialect.LockHeldError, as another holder has one of them.
func MustBeHeld(t *testing.T, jl dialect.JobLocker, db *sql.DB, names ...string) {
	t.Helper()
	release, err := jl.TryLockTables(t.Context(), db, names)
	if err == nil {
		release()
		t.Fatalf("lock %q was granted while another holder has it", names)
	}
	var held *dialect.LockHeldError
	if !errors.As(err, &held) || !errors.Is(err, dialect.ErrLockHeld) {
		t.Fatalf("lock %q: %v, want a *dialect.LockHeldError", names, err)
	}
}
