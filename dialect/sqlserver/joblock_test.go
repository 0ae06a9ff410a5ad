package sqlserver

import (
	"strings"
	"testing"
)

// TestJobLockStatementsAreTSQL: no SQL Server runs where the unit tests
// run, so the job lock statements are checked by the T-SQL grammar only.
func TestJobLockStatementsAreTSQL(t *testing.T) {
	requireTSQL(t, "get the job lock", getJobLock)
	requireTSQL(t, "release the job lock", releaseJobLock)
}

func TestJobLockResource(t *testing.T) {
	a, b := jobLockResource("dbo\x00people"), jobLockResource("dbo\x00orders")
	if a == b {
		t.Errorf("two tables share the job lock resource %s", a)
	}
	long := jobLockResource("dbo\x00" + strings.Repeat("x", 4000))
	for _, r := range []string{a, long} {
		if !strings.HasPrefix(r, jobLockPrefix) || len(r) > 255 {
			t.Errorf("job lock resource %q: want %q and at most 255 characters (sp_getapplock's limit)", r, jobLockPrefix+"…")
		}
	}
	if a != jobLockResource("dbo\x00people") {
		t.Error("the job lock resource of one table differs between calls")
	}
}
