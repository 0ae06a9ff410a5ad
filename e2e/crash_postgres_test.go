package e2e

import (
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// crashRows and crashAtChunk place the server crash: the kill plan writes
// chunks of 500 rows, so a job of crashRows rows writes 60 chunks a phase,
// and the crash comes once crashAtChunk of them are recorded.
const (
	crashRows    = 30_000
	crashAtChunk = 20
	// crashLongOutage keeps the server down during the rekey longer than
	// a job's retry attempts take (about 11 s): only its outage budget
	// (two minutes) lets it ride that out.
	crashLongOutage = 15 * time.Second
)

// TestServerCrashDuringJobs crashes PostgreSQL itself in the middle of
// apply, rekey and revert, and then of an apply's cut-over: every server
// process ends at once, without a checkpoint (pg_ctl stop -m immediate),
// and the server is started again and recovers from its write-ahead log:
// at once, or after crashLongOutage during the rekey. Every connection of
// the running colcrypt dies, its walker's and its writers' alike, and the
// server refuses new ones until it has recovered. The job must ride this
// out with its retries and finish in the same process, and lose nothing:
// verify passes after apply and after rekey, every value is then under
// the new key, and after revert the table, what binds to it and every row
// are as they were.
func TestServerCrashDuringJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes and restarts a PostgreSQL cluster four times")
	}
	cluster := pgtest.NewCluster(t)
	dsn, err := pgtest.WithDatabase(cluster.DSN, "crash")
	if err != nil {
		t.Fatal(err)
	}
	admin := openPG(t, cluster.DSN)
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE crash"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	db := openPG(t, dsn)
	planPath, r := pgKillJob(t, db, dsn, crashRows)
	original, originalRows := pgTableState(t, db), pgRowsDigest(t, db)
	db.Close()

	// crashThrough runs colcrypt args and crashes the server for down
	// once the job has recorded crashAtChunk chunks of phase; the process
	// must then finish by itself, having seen the crash.
	crashThrough := func(phase string, down time.Duration, args ...string) {
		t.Helper()
		crashed := false
		res := r.runDuring(func(_ *os.Process, exited <-chan struct{}) {
			crashed = crashWhenRecorded(t, cluster, dsn, phase, down, exited)
		}, args...)
		if !crashed {
			t.Fatalf("colcrypt %s ended (exit %d) before it recorded %d chunks of %s: nothing to crash\n%s",
				args[0], res.code, crashAtChunk, phase, lastLines(res.stderr, 5))
		}
		if res.code != 0 {
			t.Fatalf("colcrypt %s did not ride out the server's crash: exit %d\n%s", args[0], res.code, lastLines(res.stderr, 8))
		}
		if !strings.Contains(res.stderr, "transient error, retrying") {
			t.Fatalf("colcrypt %s finished without retrying anything: the crash missed the job\n%s", args[0], lastLines(res.stderr, 8))
		}
		t.Logf("colcrypt %s rode out a server crash in %s, down for %s, and finished in %s", args[0], phase, down, res.took.Round(time.Millisecond))
	}

	crashThrough("copy", 300*time.Millisecond, "apply", planPath)
	r.mustRun(0, "verify", planPath)
	checkStatusOf(t, r, planPath, 3, 3)

	r.mustRun(0, "keys", "add", "kill.keystore", "pii")
	r.mustRun(0, "keys", "backup", "kill.keystore", "kill.keystore.after-v2")
	crashThrough("rekey", crashLongOutage, "rekey", planPath, "--all")
	r.mustRun(0, "verify", planPath)
	checkAllUnderVersion(t, r, planPath, 2)

	crashThrough("decrypt", 300*time.Millisecond, "revert", planPath)
	db = openPG(t, dsn)
	defer db.Close()
	if got := pgTableState(t, db); got != original {
		t.Fatalf("after the crashed revert the table differs.\nbefore:\n%s\nafter:\n%s", original, got)
	}
	if pgRowsDigest(t, db) != originalRows {
		t.Fatal("after the crashed revert the rows differ")
	}
	checkStatusOf(t, r, planPath, 3, 1)

	// Again, with the crash in the cut-over: a reader holds the table
	// from the copy on, so the swap's transaction waits for its lock
	// (up to the mover's lock_timeout of 5 s) when the server goes.
	since := time.Now()
	res := r.runDuring(func(_ *os.Process, exited <-chan struct{}) {
		crashInCutover(t, cluster, dsn, since, exited)
	}, "apply", planPath)
	if res.code != 0 {
		t.Fatalf("colcrypt apply did not ride out the server's crash in its cut-over: exit %d\n%s", res.code, lastLines(res.stderr, 8))
	}
	if !strings.Contains(res.stderr, `op=cut-over`) {
		t.Fatalf("colcrypt apply never retried its cut-over: the crash missed it\n%s", lastLines(res.stderr, 8))
	}
	t.Logf("colcrypt apply rode out a server crash in its cut-over and finished in %s", res.took.Round(time.Millisecond))
	r.mustRun(0, "verify", planPath)
	checkStatusOf(t, r, planPath, 3, 3)
	r.mustRun(0, "revert", planPath)
	if got := pgTableState(t, db); got != original {
		t.Fatalf("after the apply crashed in its cut-over and a revert the table differs.\nbefore:\n%s\nafter:\n%s", original, got)
	}
	if pgRowsDigest(t, db) != originalRows {
		t.Fatal("after the apply crashed in its cut-over and a revert the rows differ")
	}
}

// crashInCutover takes a reader's lock on people once the job is copying
// (a copy chunk recorded since since), waits until the job has recorded
// its verify and another session waits for a lock on the table (the
// cut-over's swap), then crashes the cluster and starts it again. Earlier
// jobs' chunks do not count: a lock taken before prepare would make
// prepare's own DDL wait instead.
func crashInCutover(t *testing.T, cluster *pgtest.Cluster, dsn string, since time.Time, exited <-chan struct{}) {
	t.Helper()
	db := openPG(t, dsn)
	defer db.Close()
	var reader *sql.Tx
	for {
		select {
		case <-exited:
			t.Fatal("colcrypt apply ended before its cut-over waited for the reader's lock")
		case <-time.After(10 * time.Millisecond):
		}
		if reader == nil {
			var n int
			if db.QueryRowContext(t.Context(), `SELECT count(*) FROM colcrypt_chunks WHERE phase = 'copy' AND done_at::timestamptz > $1`,
				since).Scan(&n) != nil || n == 0 {
				continue
			}
			var err error
			if reader, err = db.BeginTx(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := reader.ExecContext(t.Context(), `SELECT count(*) FROM people WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var inCutover bool
		if err := db.QueryRowContext(t.Context(), `SELECT (SELECT phase FROM colcrypt_job) = 'verify'
			AND EXISTS (SELECT FROM pg_locks WHERE relation = 'people'::regclass AND NOT granted)`).Scan(&inCutover); err != nil {
			t.Fatal(err)
		}
		if inCutover {
			cluster.Crash(t)
			cluster.Start(t)
			return
		}
	}
}

// crashWhenRecorded polls the job's chunk checkpoints of phase and, once
// there are crashAtChunk, crashes the cluster and starts it again after
// down. It reports whether it did, or returns false when the process
// exited first.
func crashWhenRecorded(t *testing.T, cluster *pgtest.Cluster, dsn, phase string, down time.Duration, exited <-chan struct{}) bool {
	t.Helper()
	db := openPG(t, dsn)
	defer db.Close()
	for {
		select {
		case <-exited:
			return false
		case <-time.After(10 * time.Millisecond):
		}
		var n int
		// Until the job creates its tables the query fails: poll on.
		if db.QueryRowContext(t.Context(), `SELECT count(*) FROM colcrypt_chunks WHERE phase = $1`, phase).Scan(&n) != nil || n < crashAtChunk {
			continue
		}
		cluster.Crash(t)
		time.Sleep(down) // the job's connections fail, and its reconnects are refused
		cluster.Start(t)
		return true
	}
}

// checkAllUnderVersion asserts, from status, that every value of every
// planned column is under key version v.
func checkAllUnderVersion(t *testing.T, r *runner, plan string, v int) {
	t.Helper()
	res := r.mustRun(0, "status", "--format", "json", plan)
	var st rekeyStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, res.stdout)
	}
	for _, c := range st.Columns {
		for _, ver := range c.Versions {
			if ver.Version != v && ver.Values > 0 {
				t.Errorf("%s.%s: %d values still under key version %d, want all under %d", c.Table, c.Column, ver.Values, ver.Version, v)
			}
		}
	}
}

func openPG(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
