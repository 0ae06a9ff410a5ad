package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// addCustomers adds n rows to the fixture's customers table.
func addCustomers(t *testing.T, f *badInputFixture, n int) {
	t.Helper()
	db := openFixtureDB(t, f)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := tx.Exec(`INSERT INTO customers (ssn, email) VALUES (?, ?)`,
			fmt.Sprintf("x-%09d", i), fmt.Sprintf("user%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func openFixtureDB(t *testing.T, f *badInputFixture) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// statusJSON runs `status --format json` and returns its columns by name.
func statusJSON(t *testing.T, plan string) map[string]migrate.ColumnStatus {
	t.Helper()
	r := mustRun(t, "status", plan, "--format", "json")
	var rep migrate.StatusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, r.stdout)
	}
	out := map[string]migrate.ColumnStatus{}
	for _, c := range rep.Columns {
		out[c.Column] = c
	}
	return out
}

// TestJobFlagsOutOfRange: --workers and --batch-rows take the range the
// plan file's job.workers and job.batch_rows take (--workers 1000 took
// every connection a PostgreSQL server had), and say so with exit 2
// before anything is opened or changed.
func TestJobFlagsOutOfRange(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	plan := f.plan(t, "plan.yaml", goodPlanBody)
	cases := []struct {
		flag, value string
		max         int
	}{
		{"workers", "-3", planner.MaxWorkers},
		{"workers", "0", planner.MaxWorkers},
		{"workers", "65", planner.MaxWorkers},
		{"workers", "1000", planner.MaxWorkers},
		{"batch-rows", "-1", planner.MaxBatchRows},
		{"batch-rows", "0", planner.MaxBatchRows},
		{"batch-rows", "3000000000", planner.MaxBatchRows},
	}
	for _, cmd := range []string{"apply", "revert", "rekey", "verify"} {
		for _, c := range cases {
			t.Run(cmd+" --"+c.flag+" "+c.value, func(t *testing.T) {
				before := snapshotFile(t, filepath.Join(f.dir, "shop.db"))
				args := []string{cmd, plan, "--" + c.flag, c.value}
				if cmd == "rekey" {
					args = append(args, "--all")
				}
				r := runCLI(t, args...)
				want := fmt.Sprintf("colcrypt: --%s must be between 1 and %d, got %s", c.flag, c.max, c.value)
				if r.code != 2 || lastLine(r.stderr) != want {
					t.Errorf("exit %d, want 2\n got: %s\nwant: %s", r.code, lastLine(r.stderr), want)
				}
				if after := snapshotFile(t, filepath.Join(f.dir, "shop.db")); after != before {
					t.Errorf("a refused flag changed the database")
				}
			})
		}
	}
	// The limits themselves are accepted.
	mustRun(t, "apply", plan, "--workers", fmt.Sprint(planner.MaxWorkers), "--batch-rows", "1", "--until", "copy")
	mustRun(t, "apply", plan, "--workers", "1", "--batch-rows", fmt.Sprint(planner.MaxBatchRows), "--no-backup-check")
}

// TestStatusOfMissingTableOrColumn: status of a plan naming a table or a
// column the database lacks says so as plan and apply do, with exit 2,
// instead of showing it unencrypted; before and after colcrypt's own tables
// exist.
func TestStatusOfMissingTableOrColumn(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	noTable := f.plan(t, "notable.yaml", strings.Replace(goodPlanBody, "name: customers", "name: nosuchtable", 1))
	noColumn := f.plan(t, "nocolumn.yaml", strings.Replace(goodPlanBody, "- name: email", "- name: email\n      - name: nosuchcol", 1))
	check := func(when string) {
		t.Helper()
		for _, c := range []struct{ plan, msg string }{
			{noTable, "colcrypt: $DIR/notable.yaml:7:11: table nosuchtable does not exist in the database"},
			{noColumn, "colcrypt: $DIR/nocolumn.yaml:10:15: table customers has no column nosuchcol"},
		} {
			for _, format := range []string{"text", "json"} {
				r := runCLI(t, "status", c.plan, "--format", format)
				got := lastLine(strings.ReplaceAll(r.stderr, f.dir, "$DIR"))
				if r.code != 2 || got != c.msg || r.stdout != "" {
					t.Errorf("%s: status --format %s: exit %d, want 2\n got: %s\nwant: %s\nstdout: %s", when, format, r.code, got, c.msg, r.stdout)
				}
			}
		}
	}
	check("before any job")
	mustRun(t, "apply", f.plan(t, "good.yaml", goodPlanBody), "--no-backup-check")
	check("after a job on the table")
}

// TestStatusCounters: status's percent and rows agree, and belong to this
// plan's job. They did not: a finished revert showed 0% beside every row
// done, a new plan showed the row counts of another plan's job, and an
// interrupted copy showed 0 rows (or a stale percent) though it had
// written many.
func TestStatusCounters(t *testing.T) {
	t.Run("after revert", func(t *testing.T) {
		f := newBadInputFixture(t)
		setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
		plan := f.plan(t, "plan.yaml", goodPlanBody)
		mustRun(t, "apply", plan, "--no-backup-check")
		if c := statusJSON(t, plan)["email"]; c.State != 3 || c.Percent != 100 || c.RowsDone != 2 || c.RowsTotal != 2 {
			t.Errorf("after apply: %+v, want state 3, 100%%, 2 of 2 rows", c)
		}
		mustRun(t, "revert", plan)
		if c := statusJSON(t, plan)["email"]; c.State != 1 || c.Percent != 0 || c.RowsDone != 0 {
			t.Errorf("after revert: %+v, want state 1, 0%%, 0 rows done", c)
		}
	})
	t.Run("another plan's job", func(t *testing.T) {
		f := newBadInputFixture(t)
		setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
		first := f.plan(t, "first.yaml", goodPlanBody)
		mustRun(t, "apply", first, "--no-backup-check")
		mustRun(t, "revert", first)
		addCustomers(t, f, 10)
		other := f.plan(t, "other.yaml", strings.Replace(goodPlanBody, "- name: email", "- name: email\n      - name: status", 1))
		for name, c := range statusJSON(t, other) {
			if c.State != 1 || c.Percent != 0 || c.RowsDone != 0 || c.RowsTotal != 0 {
				t.Errorf("%s of a plan without a job: %+v, want state 1 and no counts (not the first plan's)", name, c)
			}
		}
		mustRun(t, "apply", first, "--no-backup-check")
		if c := statusJSON(t, other)["email"]; c.State != 3 || c.Percent != 100 || c.RowsDone != 0 || c.RowsTotal != 0 {
			t.Errorf("email, encrypted by another plan's job: %+v, want state 3, 100%% and no counts", c)
		}
	})
	t.Run("copy stopped midway", func(t *testing.T) {
		f := newBadInputFixture(t)
		setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
		addCustomers(t, f, 998)
		plan := f.plan(t, "plan.yaml", goodPlanBody)
		mustRun(t, "apply", plan, "--until", "copy", "--batch-rows", "100")
		db := openFixtureDB(t, f)
		// What an interrupted run leaves: some chunks checkpointed, and the
		// progress recorded for status before the first of them, or none.
		var chunks int
		if err := db.QueryRow(`SELECT COUNT(*) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&chunks); err != nil {
			t.Fatal(err)
		}
		if chunks < 3 {
			t.Fatalf("the copy wrote %d chunks; the test needs at least 3", chunks)
		}
		for _, stmt := range []string{
			`DELETE FROM colcrypt_chunks WHERE phase = 'copy' AND rowid IN (SELECT rowid FROM colcrypt_chunks WHERE phase = 'copy' LIMIT 1)`,
			`UPDATE colcrypt_columns SET state = 2, percent_complete = 0, rows_done = 0, rows_total = 0`,
		} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
		var written int64
		if err := db.QueryRow(`SELECT SUM(rows_done) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&written); err != nil {
			t.Fatal(err)
		}
		c := statusJSON(t, plan)["email"]
		if c.State != 2 || c.RowsDone != written || c.RowsTotal != 1000 || c.Percent != int(written*100/1000) {
			t.Errorf("copy with %d of 1000 rows checkpointed: %+v, want state 2, %d of 1000 rows, %d%%", written, c, written, written*100/1000)
		}
	})
}

// TestInterruptSaysHowToResume: a job stopped by Ctrl-C or SIGTERM says
// that it was interrupted, that nothing is lost and which command resumes
// it (it said only "context canceled"), with exit 2; the same command then
// finishes it.
func TestInterruptSaysHowToResume(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	addCustomers(t, f, 20000)
	plan := f.plan(t, "plan.yaml", goodPlanBody)
	args := []string{"apply", plan, "--batch-rows", "50", "--workers", "1", "--no-backup-check"}

	// The signal arrives once the copy has checkpointed its first chunk.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openFixtureDB(t, f)
	go func() {
		for ctx.Err() == nil {
			var n int
			if db.QueryRow(`SELECT COUNT(*) FROM colcrypt_chunks`).Scan(&n) == nil && n > 0 {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr, stdin)
	if ctx.Err() == nil {
		t.Fatalf("the job finished (exit %d) before it could be interrupted\n%s", code, stderr.String())
	}
	want := "colcrypt: interrupted: the job stopped at its last checkpoint and nothing it did is lost; " +
		"run the same command again to resume it: colcrypt " + strings.Join(args, " ")
	if code != 2 || lastLine(stderr.String()) != want {
		t.Errorf("interrupted apply: exit %d, want 2\n got: %s\nwant: %s", code, lastLine(stderr.String()), want)
	}
	if strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("the message still says context canceled:\n%s", stderr.String())
	}
	mustRun(t, args...)
	mustRun(t, "verify", plan)
}

// TestInterruptKeepsAVerdict: a signal that arrives once a command has
// reached its verdict (a failed verify, blockers: exit 1) does not turn it
// into "interrupted" (exit 2); the user must still see what failed. A
// command stopped by the signal without a verdict says it was interrupted.
func TestInterruptKeepsAVerdict(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	verdict := errors.New("verification failed: 1 value differs")
	saved := commands
	t.Cleanup(func() { commands = saved })
	register(func(*app) *cobra.Command {
		return &cobra.Command{Use: "judge", Annotations: map[string]string{resumesAnnotation: "yes"},
			RunE: func(*cobra.Command, []string) error {
				cancel() // the signal, after the verdict and before the exit
				return exitcode.Fail(verdict)
			}}
	})
	register(func(*app) *cobra.Command {
		return &cobra.Command{Use: "stopped", RunE: func(c *cobra.Command, _ []string) error {
			cancel()
			return c.Context().Err()
		}}
	})
	for _, c := range []struct {
		cmd      string
		code     int
		wantLine string
	}{
		{"judge", exitcode.Failed, "colcrypt: " + verdict.Error()},
		{"stopped", exitcode.BadInput, "colcrypt: interrupted: colcrypt stopped stopped before it finished"},
	} {
		ctx, cancel = context.WithCancel(context.Background())
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{c.cmd}, &stdout, &stderr, nil)
		if code != c.code || lastLine(stderr.String()) != c.wantLine {
			t.Errorf("%s, then a signal: exit %d, %q; want exit %d, %q", c.cmd, code, lastLine(stderr.String()), c.code, c.wantLine)
		}
		cancel()
	}
}

// TestShellJoin: the command line to run again can be pasted into a shell.
func TestShellJoin(t *testing.T) {
	if got := shellJoin([]string{"apply", "/my plans/it's.yaml", "--column", "t.c", ""}); got != `apply '/my plans/it'\''s.yaml' --column t.c ''` {
		t.Errorf("shellJoin: %s", got)
	}
}

// TestPlanDuringUnfinishedJob: plan of a job stopped after its copy
// reported colcrypt's own replacement table and IV column as name
// conflicts, blockers telling the user to rename or drop them; it now says
// the job is in progress and how to resume it, and exits 0. A table of
// the same name that no job of the plan made still blocks.
func TestPlanDuringUnfinishedJob(t *testing.T) {
	aesField := strings.Replace(goodPlanBody, "- name: email", "- name: email\n        suite: aes-256-cbc", 1)
	for _, c := range []struct {
		name  string
		body  string
		flags []string
	}{
		{"offline, replacement table", goodPlanBody, nil},
		{"online, IV column", aesField, []string{"--online"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newBadInputFixture(t)
			setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
			plan := f.plan(t, "plan.yaml", c.body)
			before, rep := planJSONOf(t, plan)
			if before.code != 0 || rep.Job != nil {
				t.Fatalf("plan before the job: exit %d, job %+v\n%s", before.code, rep.Job, before.stderr)
			}
			mustRun(t, append([]string{"apply", plan, "--until", "copy"}, c.flags...)...)

			r := runCLI(t, "plan", plan)
			if r.code != 0 || strings.Contains(r.stdout, "name-conflict") ||
				!strings.Contains(r.stdout, "of this plan is in progress (encrypt, last phase completed: copy)") ||
				!strings.Contains(r.stdout, "colcrypt apply "+plan+" resumes it") {
				t.Errorf("plan during the job: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			sized := rep.Tables[0]
			r, rep = planJSONOf(t, plan)
			if r.code != 0 || rep.Job == nil || rep.Job.Phase != "copy" || rep.Totals.Blockers != 0 {
				t.Errorf("plan --format json during the job: exit %d, job %+v, %d blockers\n%s", r.code, rep.Job, rep.Totals.Blockers, r.stdout)
			}
			// The sizes are the table's without what the job added to it
			// (its ciphertext, IV and change-capture columns).
			if rep.Tables[0] != sized {
				t.Errorf("plan during the job sizes the table as %+v, before it %+v", rep.Tables[0], sized)
			}
			mustRun(t, "apply", plan, "--no-backup-check")
			mustRun(t, "verify", plan)
		})
	}
	t.Run("someone else's table of the replacement's name", func(t *testing.T) {
		f := newBadInputFixture(t)
		db := openFixtureDB(t, f)
		if _, err := db.Exec(`CREATE TABLE customers__colcrypt_new (x INT)`); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "plan", f.plan(t, "plan.yaml", goodPlanBody))
		if r.code != 1 || !strings.Contains(r.stdout, "[name-conflict] customers__colcrypt_new") || strings.Contains(r.stdout, "in progress") {
			t.Errorf("plan with a foreign table of the replacement's name: exit %d\n%s", r.code, r.stdout)
		}
	})
}

// planJobJSON is what TestPlanDuringUnfinishedJob reads of `plan --format
// json`.
type planJobJSON struct {
	Job *struct {
		ID    string `json:"id"`
		Kind  string `json:"kind"`
		Phase string `json:"phase"`
	} `json:"job"`
	Tables []struct {
		BytesNow          int64 `json:"bytes_now"`
		MaxRowBytesNow    int64 `json:"max_row_bytes_now"`
		MaxRowBytesDuring int64 `json:"max_row_bytes_during"`
	} `json:"tables"`
	Totals struct {
		Blockers int `json:"blockers"`
	} `json:"totals"`
}

// planJSONOf runs `plan --format json` and decodes the report.
func planJSONOf(t *testing.T, plan string) (cliResult, *planJobJSON) {
	t.Helper()
	r := runCLI(t, "plan", plan, "--format", "json")
	var rep planJobJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("plan --format json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return r, &rep
}
