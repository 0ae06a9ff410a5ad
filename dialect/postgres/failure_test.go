package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// These tests break the database under a running job — connections
// killed mid-chunk, a lock held at cut-over, a statement of the cut-over
// failing — and check what a DBA would check afterwards: the job finished
// or stopped where it can resume, the table's catalog is either the old one
// or the new one, and every value reads back as it was.

// failureApp names the test's own sessions (the killer, the lock holder)
// so that they never kill or wait for themselves.
const failureApp = "colcrypt-failure-test"

// failurePlan encrypts three columns of accounts: an AEAD column with
// field IVs, a deterministic NOT NULL unique key, and a CBC column with
// NULLs and empty strings.
const failurePlan = `version: 1
database:
  engine: postgres
  dsn: "%DSN%"
keystore: test.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 500
tables:
  - name: accounts
    columns:
      - name: email
      - name: ssn
        iv: column
      - name: note
        suite: aes-128-cbc
`

// failureColumns are the columns of accounts compared with accounts_orig.
const failureColumns = "id, ssn, email, note"

// failureSetup creates accounts with n rows and accounts_orig, a copy of
// it that no job touches.
func failureSetup(n int) []string {
	return []string{
		`CREATE TABLE accounts (
			id bigint PRIMARY KEY,
			ssn char(11) NOT NULL CONSTRAINT accounts_ssn_key UNIQUE,
			email varchar(64),
			note text
		)`,
		fmt.Sprintf(`INSERT INTO accounts
			SELECT g, lpad(g::text, 11, '0'),
				CASE WHEN g %% 11 = 0 THEN NULL ELSE 'user' || g || '@example.com' END,
				CASE g %% 5 WHEN 0 THEN '' WHEN 1 THEN NULL ELSE 'note ' || g || ' ü' END
			FROM generate_series(1, %d) g`, n),
		`CREATE TABLE accounts_orig AS SELECT * FROM accounts`,
	}
}

// failureRun is one database holding accounts, a plan and a keystore, the
// engine's pool, and a separate pool for the test's own sessions.
type failureRun struct {
	t     *testing.T
	dsn   string
	db    *sql.DB // the engine's
	admin *sql.DB // the test's: killer, lock holder, catalog checks
	plan  *planner.Plan
	ks    *keystore.Keystore
	// inPlace runs the job as it runs on a table the offline rebuild
	// cannot move: ciphertext columns added to the table.
	inPlace bool
}

func newFailureRun(t *testing.T, rows int) *failureRun {
	t.Helper()
	dsn := pgtest.DSN(t)
	d := postgres.Dialect{}
	db, err := d.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	admin, err := sql.Open("pgx", withApplicationName(dsn, failureApp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	exec(t, admin, failureSetup(rows)...)
	dir := t.TempDir()
	ks := engineKeystore(t, filepath.Join(dir, "test.keystore"))
	planPath := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planPath, []byte(strings.Replace(failurePlan, "%DSN%", dsn, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := planner.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	return &failureRun{t: t, dsn: dsn, db: db, admin: admin, plan: p, ks: ks}
}

// withApplicationName sets application_name in a URL or keyword/value DSN.
func withApplicationName(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "application_name=" + name
	}
	return dsn + " application_name=" + name
}

func (r *failureRun) engine(opt migrate.Options) *migrate.Engine {
	r.t.Helper()
	opt.InPlace = opt.InPlace || r.inPlace
	e, err := migrate.New(r.plan, postgres.Dialect{}, r.db, r.ks, opt)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// apply runs apply and fails the test on error.
func (r *failureRun) apply(opt migrate.Options) *migrate.Result {
	r.t.Helper()
	res, err := r.engine(opt).Apply(r.t.Context())
	if err != nil {
		r.t.Fatalf("apply (until %q): %v", opt.Until, err)
	}
	return res
}

// wantFinished runs apply to the end and checks the job is done, verify
// passes, and revert gives back the catalog and every value.
func (r *failureRun) wantFinished(when string, catalog map[string]string) {
	r.t.Helper()
	if res := r.apply(migrate.Options{}); res.Phase != "done" {
		r.t.Errorf("apply %s ended at phase %q, want done", when, res.Phase)
	}
	r.wantJob("done", migrate.StateEncrypted)
	r.wantVerified("after cut-over")
	r.wantRevertedToOriginal(catalog)
}

// wantJob checks the phase of the job and the state of every column, as
// colcrypt status shows them.
func (r *failureRun) wantJob(phase string, state int) {
	r.t.Helper()
	rep, err := r.engine(migrate.Options{}).Status(r.t.Context())
	if err != nil {
		r.t.Fatalf("status: %v", err)
	}
	if rep.Job == nil || rep.Job.Phase != phase {
		r.t.Errorf("status: job %+v, want phase %q", rep.Job, phase)
	}
	for _, c := range rep.Columns {
		if c.State != state {
			r.t.Errorf("status of %s.%s: state %d (%s), want %d (%s)", c.Table, c.Column, c.State, c.StateDesc, state, migrate.StateDesc(state))
		}
	}
}

// wantVerified runs colcrypt verify and wants every value to match.
func (r *failureRun) wantVerified(when string) {
	r.t.Helper()
	vr, err := r.engine(migrate.Options{}).Verify(r.t.Context())
	if err != nil {
		r.t.Fatalf("verify %s: %v", when, err)
	}
	if !vr.OK() {
		r.t.Fatalf("verify %s: %v", when, vr.Err())
	}
}

// wantPlaintextIntact checks that accounts still holds exactly the rows
// of accounts_orig in its plaintext columns.
func (r *failureRun) wantPlaintextIntact() {
	r.t.Helper()
	sameRows(r.t, r.admin, "accounts", failureColumns)
}

// wantRevertedToOriginal reverts the finished job and checks that the
// catalog and every row are as they were before it.
func (r *failureRun) wantRevertedToOriginal(catalog map[string]string) {
	r.t.Helper()
	if _, err := r.engine(migrate.Options{}).Revert(r.t.Context()); err != nil {
		r.t.Fatalf("revert: %v", err)
	}
	if got := catalogSnapshot(r.t, r.admin, "accounts"); !maps.Equal(got, catalog) {
		r.t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, got))
	}
	r.wantPlaintextIntact()
}

// wantCopied checks a job stopped after its copy: each of the rows copied
// once, the job at copy, the plaintext intact, and verify passing.
func (r *failureRun) wantCopied(rows int64) {
	r.t.Helper()
	chunks, done, distinct := r.chunkTotals()
	if done != rows || distinct != chunks {
		r.t.Errorf("the copy recorded %d chunks (%d distinct) holding %d rows, want %d rows, each chunk once", chunks, distinct, done, rows)
	}
	r.wantJob("copy", migrate.StateEncrypting)
	r.wantPlaintextIntact()
	r.wantVerified("after the copy")
}

// chunkTotals sums the recorded chunks of the copy: how many, how many
// rows, and how many distinct lower bounds.
func (r *failureRun) chunkTotals() (chunks, rows, distinct int64) {
	r.t.Helper()
	if err := r.admin.QueryRowContext(r.t.Context(), `SELECT count(*), coalesce(sum(rows_done), 0), count(DISTINCT lo)
		FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&chunks, &rows, &distinct); err != nil {
		r.t.Fatal(err)
	}
	return chunks, rows, distinct
}

// retryLog records the engine's "transient error, retrying" warnings.
type retryLog struct {
	mu      sync.Mutex
	retries []retryRecord
	notify  chan retryRecord // each retry, when someone waits for one
}

type retryRecord struct {
	op, err string
}

func newRetryLog() *retryLog { return &retryLog{notify: make(chan retryRecord, 64)} }

func (l *retryLog) logger() *slog.Logger { return slog.New(&retryHandler{log: l}) }

func (l *retryLog) all() []retryRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]retryRecord(nil), l.retries...)
}

// count gives the retries of operations whose name starts with op.
func (l *retryLog) count(op string) int {
	n := 0
	for _, r := range l.all() {
		if strings.HasPrefix(r.op, op) {
			n++
		}
	}
	return n
}

// retryHandler is a slog.Handler that keeps the retry warnings only.
type retryHandler struct{ log *retryLog }

func (h *retryHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *retryHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *retryHandler) WithGroup(string) slog.Handler            { return h }
func (h *retryHandler) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "transient error, retrying" {
		return nil
	}
	var r retryRecord
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "op":
			r.op = a.Value.String()
		case "err":
			r.err = a.Value.String()
		}
		return true
	})
	h.log.mu.Lock()
	h.log.retries = append(h.log.retries, r)
	h.log.mu.Unlock()
	select {
	case h.log.notify <- r:
	default:
	}
	return nil
}

// killer terminates the engine's backends that match a filter on
// pg_stat_activity, from the test's own session, until it has killed
// `want` of them or is stopped.
type killer struct {
	kills  atomic.Int64
	errs   chan error
	cancel context.CancelFunc
	done   chan struct{}
}

// killPoll is how often the killer looks for a backend to kill: often
// enough to catch a chunk's UPDATE, which takes tens of milliseconds.
const killPoll = 5 * time.Millisecond

// startKiller starts killing. Each backend counts once: a terminated one
// can still show in pg_stat_activity for a moment while it exits.
func startKiller(ctx context.Context, admin *sql.DB, filter string, want int) *killer {
	ctx, cancel := context.WithCancel(ctx)
	k := &killer{errs: make(chan error, 1), cancel: cancel, done: make(chan struct{})}
	// OFFSET 0 keeps the filter inside: only matching backends are killed.
	q := `SELECT pid FROM (
		SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
			AND backend_type = 'client backend' AND application_name <> '` + failureApp + `'
			AND pid <> ALL($1::int[]) AND (` + filter + `)
		OFFSET 0) a
		WHERE pg_terminate_backend(pid)`
	go func() {
		defer close(k.done)
		tick := time.NewTicker(killPoll)
		defer tick.Stop()
		killed := []int32{}
		for len(killed) < want {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			err := func() error {
				rows, err := admin.QueryContext(ctx, q, killed)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var pid int32
					if err := rows.Scan(&pid); err != nil {
						return err
					}
					killed = append(killed, pid)
					k.kills.Add(1)
				}
				return rows.Err()
			}()
			if err != nil {
				if ctx.Err() == nil {
					k.errs <- err
				}
				return
			}
		}
	}()
	return k
}

// stop ends the killer and returns how many backends it terminated.
func (k *killer) stop(t *testing.T) int64 {
	t.Helper()
	k.cancel()
	<-k.done
	select {
	case err := <-k.errs:
		t.Fatalf("killer: %v", err)
	default:
	}
	return k.kills.Load()
}

// slowChunkWrites makes every UPDATE of accounts last at least 50 ms, ten
// times the killer's poll, so that a chunk's write is in flight long
// enough for the killer to find it however fast the machine: the kills
// land mid-chunk every run. The trigger is created after the plan was
// checked and dropped before cut-over; it touches no column.
// In place the chunks update accounts; otherwise they insert into its
// replacement.
func slowChunkWrites(inPlace bool) []string {
	on := "AFTER INSERT ON accounts__colcrypt_new"
	if inPlace {
		on = "AFTER UPDATE ON accounts"
	}
	return []string{
		`CREATE FUNCTION slow_statement() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM pg_sleep(0.05);
		RETURN NULL;
	END
	$$`,
		`CREATE TRIGGER slow_chunk_writes ` + on + ` FOR EACH STATEMENT EXECUTE FUNCTION slow_statement()`,
	}
}

// TestApplySurvivesKilledConnections kills the engine's connections while
// the copy runs, as a failover, a proxy timeout or a DBA's
// pg_terminate_backend would. The retry helper must ride it out: apply
// finishes without an error, no chunk is counted twice, verify passes
// after cut-over, and revert gives back every value.
func TestApplySurvivesKilledConnections(t *testing.T) {
	t.Parallel()
	const rows = 10_000
	for _, tc := range []struct {
		name   string
		filter string // which backends to kill, on pg_stat_activity
		// chunkRetries says each kill must make a chunk retry: the kills
		// land inside a chunk's write. (An idle pooled connection that
		// was killed may instead be found dead by the pool's ping.)
		chunkRetries bool
		inPlace      bool
	}{
		// A chunk's bulk UPDATE, or its INSERT into the replacement, while
		// it runs: the chunk's transaction is lost and the chunk must be
		// written again.
		{"chunk write in flight, in place", `state = 'active' AND query LIKE 'UPDATE "public"."accounts" AS t SET %'`, true, true},
		// (The replacement is written by COPY.)
		{"chunk write in flight, rebuilt", `state = 'active' AND query LIKE 'COPY "public"."accounts__colcrypt_new" %'`, true, false},
		// Every connection of the job, busy or idle in the pool, once the
		// first chunk is recorded: whatever the engine does next on a
		// pooled connection meets a dead one.
		{"every connection of the job", `EXISTS (SELECT 1 FROM colcrypt_chunks)`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Fewer kills than the retry helper's attempts (8): even if
			// every kill hits the same chunk, its last attempt goes
			// through. And every kill makes a chunk write again, which the
			// killer finds in turn, so the copy cannot end before the
			// kills are done: the test is the same on any machine.
			const kills = 4
			r := newFailureRun(t, rows)
			r.inPlace = tc.inPlace
			catalog := catalogSnapshot(t, r.admin, "accounts")
			r.apply(migrate.Options{Until: "prepare"})
			exec(t, r.admin, slowChunkWrites(tc.inPlace)...)

			log := newRetryLog()
			k := startKiller(t.Context(), r.admin, tc.filter, kills)
			start := time.Now()
			res, err := r.engine(migrate.Options{Log: log.logger(), Until: "copy"}).Apply(t.Context())
			took := time.Since(start)
			killed := k.stop(t)
			for _, rr := range log.all() {
				t.Logf("retried %s after: %s", rr.op, rr.err)
			}
			t.Logf("the copy took %v; %d backends killed, %d retries", took.Round(time.Millisecond), killed, len(log.all()))
			if err != nil {
				t.Fatalf("the copy failed with %d connections killed under it: %v", killed, err)
			}
			if killed < kills {
				t.Fatalf("the copy finished after only %d kills, the test wants %d", killed, kills)
			}
			if res.Phase != "copy" {
				t.Errorf("apply --until copy ended at phase %q", res.Phase)
			}
			if log.count("") == 0 {
				t.Errorf("%d connections were killed but the engine retried nothing", killed)
			}
			if n := log.count("chunk of accounts"); tc.chunkRetries && n < int(killed) {
				t.Errorf("%d chunk writes were killed but %d chunks retried", killed, n)
			}
			r.wantCopied(rows)

			exec(t, r.admin, `DROP TRIGGER slow_chunk_writes ON `+map[bool]string{true: "accounts", false: "accounts__colcrypt_new"}[tc.inPlace])
			if res := r.apply(migrate.Options{}); res.Phase != "done" || res.Verify == nil || !res.Verify.OK() {
				t.Fatalf("apply after the copy: phase %q, verify %+v", res.Phase, res.Verify)
			}
			r.wantJob("done", migrate.StateEncrypted)
			r.wantVerified("after cut-over")
			r.wantRevertedToOriginal(catalog)
		})
	}
}

// TestApplyAfterPoolConnectionsDropped drops every connection of the
// engine's pool between two phases, as a failover or a restart of the
// server does, and runs apply on the same pool (as a Go program using the
// packages does). The first statement of the run meets a dead connection
// and fails with SQLSTATE 57P01, which the retry helper counts as
// transient: apply must retry it, not fail.
func TestApplyAfterPoolConnectionsDropped(t *testing.T) {
	t.Parallel()
	const rows = 3000
	r := newFailureRun(t, rows)
	catalog := catalogSnapshot(t, r.admin, "accounts")
	for _, until := range []string{"prepare", "copy", "verify", ""} {
		var killed int
		if err := r.admin.QueryRowContext(t.Context(), `SELECT count(*) FROM (
			SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
				AND backend_type = 'client backend' AND application_name <> '`+failureApp+`') k
			WHERE killed`).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		res, err := r.engine(migrate.Options{Until: until}).Apply(t.Context())
		if err != nil {
			t.Fatalf("apply --until %q after %d pooled connections were dropped: %v", until, killed, err)
		}
		if until != "" && res.Phase != until {
			t.Errorf("apply --until %q ended at phase %q", until, res.Phase)
		}
	}
	r.wantJob("done", migrate.StateEncrypted)
	r.wantVerified("after cut-over")
	r.wantRevertedToOriginal(catalog)
}

// TestChunkRetryAfterLostCommit loses the answer to a chunk's COMMIT:
// the server committed the chunk's ciphertexts and its checkpoint, but the
// connection dies before the engine hears so. The retry helper must ride
// it out like any dropped connection — writing a chunk again is harmless,
// chunks are idempotent — and count the chunk once.
func TestChunkRetryAfterLostCommit(t *testing.T) {
	t.Parallel()
	const rows = 10_000
	r := newFailureRun(t, rows)
	catalog := catalogSnapshot(t, r.admin, "accounts")
	r.apply(migrate.Options{Until: "prepare"})

	proxy, dsn := startCommitCutter(t, r.dsn)
	db, err := postgres.Dialect{}.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The copy's only transactions are its chunks': the third COMMIT is
	// a chunk's, with chunks committed before it.
	proxy.cutCommit(3)
	log := newRetryLog()
	e, err := migrate.New(r.plan, postgres.Dialect{}, db, r.ks, migrate.Options{Log: log.logger(), Until: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Apply(t.Context())
	for _, rr := range log.all() {
		t.Logf("retried %s after: %s", rr.op, rr.err)
	}
	if n := proxy.cut.Load(); n != 1 {
		t.Fatalf("the proxy cut %d COMMITs, want 1", n)
	}
	if err != nil {
		t.Fatalf("the copy failed after the answer to a chunk's COMMIT was lost: %v", err)
	}
	if log.count("chunk of accounts") == 0 {
		t.Errorf("the lost COMMIT was not retried; retries: %v", log.all())
	}
	chunks, done, distinct := r.chunkTotals()
	if done != rows || distinct != chunks {
		t.Errorf("the copy recorded %d chunks (%d distinct) holding %d rows, want %d rows, each chunk once", chunks, distinct, done, rows)
	}
	r.wantJob("copy", migrate.StateEncrypting)
	r.wantPlaintextIntact()
	r.wantVerified("after the copy")
	if res := r.apply(migrate.Options{}); res.Phase != "done" {
		t.Fatalf("apply after the copy ended at phase %q", res.Phase)
	}
	r.wantVerified("after cut-over")
	r.wantRevertedToOriginal(catalog)
}

// cutoverLockHolder holds a lock on accounts from the test's own session
// until release, as a long report query or a forgotten transaction would.
func cutoverLockHolder(t *testing.T, admin *sql.DB, lock string) (release func()) {
	t.Helper()
	tx, err := admin.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), lock); err != nil {
		t.Fatalf("%s: %v", lock, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			// At cleanup the test's context has already rolled it back.
			if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
				t.Errorf("release the lock: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// wantUntouchedBeforeCutover checks what a cut-over that did not happen
// must leave: the catalog of accounts as it was after verify (plaintext
// and ciphertext columns side by side), the plaintext values, and the job
// at phase verify with every column in state 2.
func (r *failureRun) wantUntouchedBeforeCutover(catalog map[string]string) {
	r.t.Helper()
	got := catalogSnapshot(r.t, r.admin, "accounts")
	if !maps.Equal(got, catalog) {
		r.t.Errorf("a failed cut-over changed the catalog:\n%s", diffSnapshots(catalog, got))
	}
	want := map[string]string{
		"accounts.email": "character varying(64) NULL", "accounts.ssn": "character(11) NOT NULL", "accounts.note": "text NULL",
	}
	if r.inPlace {
		maps.Copy(want, map[string]string{
			"accounts.email__colcrypt": "bytea NULL", "accounts.ssn__colcrypt": "bytea NULL",
			"accounts.note__colcrypt": "bytea NULL", "accounts.note_iv": "bytea NULL"})
	} else {
		// The replacement is as the copy left it, under its own name.
		maps.Copy(got, catalogSnapshot(r.t, r.admin, "accounts__colcrypt_new"))
		maps.Copy(want, map[string]string{
			"accounts__colcrypt_new.email": "bytea NULL", "accounts__colcrypt_new.ssn": "bytea NOT NULL",
			"accounts__colcrypt_new.note": "bytea NULL", "accounts__colcrypt_new.note_iv": "bytea NULL"})
	}
	for col, want := range want {
		if got["column "+col] != want {
			r.t.Errorf("after a failed cut-over %s is %q, want %q", col, got["column "+col], want)
		}
	}
	r.wantPlaintextIntact()
	r.wantJob("verify", migrate.StateEncrypting)
}

// TestCutoverWaitsOutALock holds a lock that conflicts with cut-over's
// ACCESS EXCLUSIVE. The mover gives up on it after its lock_timeout (5 s,
// SQLSTATE 55P03) and the retry helper tries again.
//
// Waiting out the whole retry budget would take about 51 s: 8 attempts of
// 5 s each plus backoff waits of 0.1+0.2+0.4+0.8+1.6+3.2+5 s (retry.go).
// So one case releases the lock after the first retry and wants the
// cut-over to go through; the other gives the job a deadline shorter than
// the budget and wants a clear error with nothing half-done, then a later
// apply to finish.
func TestCutoverWaitsOutALock(t *testing.T) {
	t.Parallel()
	const rows = 3000
	const lock = `LOCK TABLE accounts IN ACCESS SHARE MODE`

	t.Run("lock released after a retry", func(t *testing.T) {
		t.Parallel()
		r := newFailureRun(t, rows)
		catalog := catalogSnapshot(t, r.admin, "accounts")
		r.apply(migrate.Options{Until: "verify"})
		release := cutoverLockHolder(t, r.admin, lock)

		log := newRetryLog()
		type outcome struct {
			res *migrate.Result
			err error
		}
		done := make(chan outcome, 1)
		start := time.Now()
		go func() {
			res, err := r.engine(migrate.Options{Log: log.logger()}).Apply(t.Context())
			done <- outcome{res, err}
		}()
		select {
		case rr := <-log.notify:
			if !strings.HasPrefix(rr.op, "cut-over") || !strings.Contains(strings.ToLower(rr.err), "sqlstate 55p03") {
				t.Errorf("first retry: %s after %q, want cut-over after a lock timeout (SQLSTATE 55P03)", rr.op, rr.err)
			}
		case o := <-done:
			t.Fatalf("apply returned before retrying the blocked cut-over: %+v, %v", o.res, o.err)
		case <-time.After(30 * time.Second):
			t.Fatal("no retry of the cut-over within 30 s")
		}
		waited := time.Since(start)
		release()
		o := <-done
		if o.err != nil {
			t.Fatalf("apply after the lock was released: %v", o.err)
		}
		t.Logf("first lock timeout after %v; apply done after %v", waited.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if waited < 4*time.Second {
			t.Errorf("the cut-over gave up on the lock after %v: the mover's lock_timeout is 5 s", waited)
		}
		if o.res.Phase != "done" {
			t.Errorf("apply ended at phase %q, want done", o.res.Phase)
		}
		r.wantJob("done", migrate.StateEncrypted)
		r.wantVerified("after cut-over")
		r.wantRevertedToOriginal(catalog)
	})

	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("lock held past the deadline, in place %t", inPlace), func(t *testing.T) {
			t.Parallel()
			r := newFailureRun(t, rows)
			r.inPlace = inPlace
			catalog := catalogSnapshot(t, r.admin, "accounts")
			r.apply(migrate.Options{Until: "verify"})
			verified := catalogSnapshot(t, r.admin, "accounts")
			release := cutoverLockHolder(t, r.admin, lock)

			// Past the first lock timeout (5 s) and its retry, well short of
			// the whole budget.
			const deadline = 7 * time.Second
			log := newRetryLog()
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			start := time.Now()
			_, err := r.engine(migrate.Options{Log: log.logger()}).Apply(ctx)
			took := time.Since(start)
			t.Logf("apply gave up after %v: %v", took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("apply went through a cut-over while another session held a lock on the table")
			}
			msg := strings.ToLower(err.Error())
			for _, want := range []string{"cut-over", "accounts", "lock"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the error does not wrap the deadline that ended the wait: %v", err)
			}
			if took > deadline+3*time.Second {
				t.Errorf("apply returned %v after its deadline", took-deadline)
			}
			if n := log.count("cut-over"); n == 0 {
				t.Errorf("the cut-over was not retried after the lock timeout; retries: %v", log.all())
			}
			r.wantUntouchedBeforeCutover(verified)
			r.wantVerified("after the cut-over gave up")

			release()
			r.wantFinished("after the lock was released", catalog)
		})
	}
}

// TestCutoverStatementFails makes one statement of the cut-over's
// transaction fail, by a change made between verify and cut-over. The
// whole swap must roll back: catalog and plaintext as after verify, the
// job still at verify; once the cause is removed, apply finishes.
func TestCutoverStatementFails(t *testing.T) {
	t.Parallel()
	const rows = 2000
	for _, tc := range []struct {
		name  string
		setup []string // between verify and cut-over, on accounts and accounts_orig alike
		want  []string // in the error, lower case
		// unverified names the rows verify must report after the failed
		// cut-over, "" when verify must pass.
		unverified string
		fix        []string
		inPlace    bool
		// pastTriggers writes setup with triggers off.
		pastTriggers bool
	}{
		{
			// DROP COLUMN email fails, first thing in the swap: the view
			// depends on it. The DBA must learn which object is in the way.
			name:  "view on the plaintext column",
			setup: []string{`CREATE VIEW account_emails AS SELECT id, email FROM accounts`},
			want:  []string{"cut-over", "accounts", "email", "account_emails"},
			fix:   []string{`DROP VIEW account_emails`},
		},
		{
			name:    "view on the plaintext column, in place",
			setup:   []string{`CREATE VIEW account_emails AS SELECT id, email FROM accounts`},
			want:    []string{"cut-over", "accounts", "email", "account_emails"},
			fix:     []string{`DROP VIEW account_emails`},
			inPlace: true,
		},
		{
			// A view on another column does not stop the in-place swap,
			// but it is bound to the table itself: DROP TABLE fails, in
			// the middle of the swap of a rebuilt table.
			name:  "view on another column of a rebuilt table",
			setup: []string{`CREATE VIEW account_ids AS SELECT id FROM accounts`},
			want:  []string{"cut-over", "accounts", "account_ids"},
			fix:   []string{`DROP VIEW account_ids`},
		},
		{
			// A row written after the copy has no ciphertext: the drop
			// and the renames succeed, then SET NOT NULL on ssn fails,
			// late in the transaction. (The job's guard refuses such an
			// INSERT, and a rebuilt table is read-only: this one comes
			// past the triggers, as replication would write it.)
			name:         "row without ciphertext under NOT NULL",
			inPlace:      true,
			pastTriggers: true,
			setup: []string{
				`INSERT INTO accounts (id, ssn, email, note) VALUES (1000000, 'late-row', 'late@example.com', 'late')`,
				`INSERT INTO accounts_orig (id, ssn, email, note) VALUES (1000000, 'late-row', 'late@example.com', 'late')`,
			},
			want:       []string{"cut-over", "accounts", "ssn"},
			unverified: "id=1000000",
			fix: []string{
				`DELETE FROM accounts WHERE id = 1000000`,
				`DELETE FROM accounts_orig WHERE id = 1000000`,
			},
		},
		// A value changed (not added) between verify and an offline
		// cut-over past the guard is not detected: offline mode assumes
		// the planned tables have no other writers, and catching such a
		// change would mean decrypting every row again under the
		// cut-over's lock. Online mode captures it and re-encrypts it
		// under the lock; see migrate/online_writer_test.go.
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newFailureRun(t, rows)
			r.inPlace = tc.inPlace
			catalog := catalogSnapshot(t, r.admin, "accounts")
			r.apply(migrate.Options{Until: "verify"})
			if tc.pastTriggers {
				execPastTriggers(t, r.admin, tc.setup...)
			} else {
				exec(t, r.admin, tc.setup...)
			}
			verified := catalogSnapshot(t, r.admin, "accounts")

			_, err := r.engine(migrate.Options{}).Apply(t.Context())
			if err == nil {
				// Show what the DBA lost: revert and compare.
				_, rerr := r.engine(migrate.Options{}).Revert(t.Context())
				t.Errorf("apply went through the cut-over despite the %s; after revert (%v) the values are:", tc.name, rerr)
				r.wantPlaintextIntact()
				t.FailNow()
			}
			t.Logf("cut-over failed as it should: %v", err)
			for _, want := range tc.want {
				if !strings.Contains(strings.ToLower(err.Error()), want) {
					t.Errorf("the error does not name %q: %v", want, err)
				}
			}
			r.wantUntouchedBeforeCutover(verified)
			if tc.unverified == "" {
				r.wantVerified("after the failed cut-over")
			} else if vr, err := r.engine(migrate.Options{}).Verify(t.Context()); err != nil || vr.OK() ||
				!strings.Contains(vr.Err().Error(), tc.unverified) {
				t.Errorf("verify after the failed cut-over: %+v, %v; want it to name %s", vr, err, tc.unverified)
			}

			exec(t, r.admin, tc.fix...)
			r.wantFinished("after the fix", catalog)
		})
	}
}

// TestCutoverRefusesADisabledTrigger: a trigger the job relies on until its
// cut-over (the read-only trigger of a rebuilt table, the guard of an
// in-place one, the change capture of an online job) disabled with ALTER
// TABLE ... DISABLE TRIGGER may have let writes past it, which the
// cut-over would lose. The cut-over refuses, naming the trigger and how
// to go on, with nothing changed; once the trigger is enabled again, the
// job finishes and reverts to the original.
func TestCutoverRefusesADisabledTrigger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		inPlace, online bool
		trigger         string
	}{
		{"rebuilt", false, false, "colcrypt_readonly_accounts"},
		{"in place", true, false, dialect.GuardPrefix + "accounts"},
		{"online", true, true, dialect.CapturePrefix + "accounts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newFailureRun(t, 500)
			r.inPlace = tc.inPlace
			catalog := catalogSnapshot(t, r.admin, "accounts")
			r.apply(migrate.Options{Until: "verify", Online: tc.online})
			exec(t, r.admin, `ALTER TABLE accounts DISABLE TRIGGER `+tc.trigger)
			verified := catalogSnapshot(t, r.admin, "accounts")
			_, err := r.engine(migrate.Options{Online: tc.online}).Apply(t.Context())
			for _, want := range []string{"trigger " + tc.trigger + ", which", "is disabled", `ENABLE ALWAYS TRIGGER "` + tc.trigger + `"`, "nothing was changed"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("cut-over with %s disabled: %v; want an error saying %q", tc.trigger, err, want)
				}
			}
			r.wantUntouchedBeforeCutover(verified)
			exec(t, r.admin, `ALTER TABLE accounts ENABLE ALWAYS TRIGGER `+tc.trigger)
			r.wantFinished("after the trigger was enabled again", catalog)
		})
	}
}
