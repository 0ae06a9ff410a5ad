package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The status test's job: one worker writing chunks of statusBatchRows rows
// (the fewest the copy writes in a chunk) keeps the copy going for seconds,
// and status is asked every statusPollEvery.
const (
	statusBatchRows = 100
	statusPollEvery = 150 * time.Millisecond
)

// killFixture is the kill test's database, keystore and plan in a new
// folder, with its original snapshot.
func killFixture(t *testing.T) (dir, dbPath, planPath string, r *runner, original snapshot) {
	t.Helper()
	dir = t.TempDir()
	dbPath = filepath.Join(dir, "kill.db")
	runHelper(t, "create-kill-db", dbPath, "42")
	newKeystore(t, filepath.Join(dir, "kill.keystore"))
	planPath = filepath.Join(dir, "kill.yaml")
	if err := os.WriteFile(planPath, []byte(fmt.Sprintf(killPlan, killWorkers, killBatchRows)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, dbPath, planPath, newRunner(t, dir, "COLCRYPT_PASSPHRASE="+passphrase), takeSnapshot(t, dbPath, false)
}

// TestStatusWhileApplyRuns: status, run from another terminal while apply
// runs, answers at once (not when apply is done) with every planned
// column, shows the copy under way (state 2, encryption in progress, at a
// percent between 0 and 100), only ever moves forward, and ends at state 3
// (encrypted) at 100% for every column.
func TestStatusWhileApplyRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 36,000-row job")
	}
	dir, _, _, r, _ := killFixture(t)
	// Chunks of statusBatchRows rows make the copy long enough, even on a
	// slow machine, for several polls to land in it, and its percent move
	// in small steps.
	plan := filepath.Join(dir, "status.yaml")
	if err := os.WriteFile(plan, []byte(fmt.Sprintf(killPlan, 1, statusBatchRows)), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for table, cols := range plannedColumns {
		for _, c := range cols {
			want[table+"."+c] = true
		}
	}
	type applyEnd struct {
		res result
		err error
		at  time.Time
	}
	done := make(chan applyEnd, 1)
	go func() {
		res, err := r.tryRun("apply", plan)
		done <- applyEnd{res, err, time.Now()}
	}()
	type colState struct{ state, percent int }
	type poll struct {
		ended      time.Time
		inProgress string // a column seen in state 2 at a percent strictly between 0 and 100
	}
	last := map[string]colState{}
	var polls []poll
	var ended time.Time
	for finished := false; !finished; {
		select {
		case a := <-done:
			if a.err != nil {
				t.Fatalf("apply: %v", a.err)
			}
			if a.res.code != 0 {
				t.Fatalf("apply: exit %d\n%s", a.res.code, a.res.stderr)
			}
			finished, ended = true, a.at
		case <-time.After(statusPollEvery):
		}
		res := r.run("status", "--format", "json", plan)
		if res.code != 0 {
			t.Fatalf("status while apply runs: exit %d\n%s", res.code, res.stderr)
		}
		p := poll{ended: time.Now()}
		var st struct {
			Columns []struct {
				Table, Column string
				State         int
				Percent       int `json:"percent_complete"`
			}
		}
		if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
			t.Fatalf("status --format json: %v\n%s", err, res.stdout)
		}
		seen := map[string]bool{}
		for _, c := range st.Columns {
			k := c.Table + "." + c.Column
			if !want[k] || seen[k] {
				t.Fatalf("status poll %d shows %s, which is not a planned column or shown twice:\n%s", len(polls)+1, k, res.stdout)
			}
			seen[k] = true
			prev := last[k]
			if c.State < prev.state || (c.State == prev.state && c.Percent < prev.percent) {
				t.Errorf("status of %s went back from state %d at %d%% to state %d at %d%%", k, prev.state, prev.percent, c.State, c.Percent)
			}
			if c.State != 1 && c.State != 2 && c.State != 3 {
				t.Errorf("status of %s during apply: state %d", k, c.State)
			}
			if c.State == 2 && c.Percent > 0 && c.Percent < 100 {
				p.inProgress = fmt.Sprintf("%s at %d%%", k, c.Percent)
			}
			last[k] = colState{c.State, c.Percent}
		}
		if len(seen) != len(want) {
			t.Fatalf("status poll %d shows %d columns, want the %d planned:\n%s", len(polls)+1, len(seen), len(want), res.stdout)
		}
		polls = append(polls, p)
	}
	during, copying, inProgress := 0, 0, ""
	for _, p := range polls {
		if p.ended.Before(ended) {
			during++
		}
		if p.inProgress != "" {
			copying++
			if inProgress == "" {
				inProgress = p.inProgress
			}
		}
	}
	t.Logf("%d status polls, %d answered while apply ran, %d during the copy (the first saw %q)", len(polls), during, copying, inProgress)
	if during < 2 {
		t.Errorf("%d status polls answered while apply ran, want at least 2: status waits for apply instead of answering", during)
	}
	if inProgress == "" {
		t.Errorf("no status poll showed a column in state 2 (encryption in progress) between 0%% and 100%%, in %d polls", len(polls))
	}
	for k := range want {
		if s := last[k]; s.state != 3 || s.percent != 100 {
			t.Errorf("status of %s after apply: state %d at %d%%, want 3 at 100%%", k, s.state, s.percent)
		}
	}
}

// TestInterruptAndResume: SIGINT and SIGTERM stop a job promptly with a
// non-zero exit, and the next apply finishes it with every value intact.
func TestInterruptAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 36,000-row job")
	}
	_, dbPath, plan, r, original := killFixture(t)
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(colcryptBin, "apply", plan)
		cmd.Dir, cmd.Env = r.dir, r.env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(400+300*i) * time.Millisecond)
		sent := time.Now()
		_ = cmd.Process.Signal(sig)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case err := <-waited:
			took := time.Since(sent)
			if err == nil {
				t.Logf("apply finished before %v arrived", sig)
				break
			}
			t.Logf("apply stopped %s after %v: %v; %s", took.Round(time.Millisecond), sig, err, lastLine(stderr.String()))
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
			t.Fatalf("apply did not stop within 10 s of %v", sig)
		}
	}
	r.mustRun(0, "apply", plan)
	r.mustRun(0, "verify", plan)
	r.mustRun(0, "revert", plan)
	if d := original.diff(takeSnapshot(t, dbPath, false)); d != "" {
		t.Fatalf("after interrupted applies and a revert the database differs:\n%s", d)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestConcurrentApplies: three applies of the same plan started close
// together (a cron job and a person, say) must not damage data. One wins
// and finishes the job (exit 0); each other either finishes too or is
// refused with exit 2 and a message saying another colcrypt run has the
// job, never a verification failure or an engine error the user cannot act
// on. A later apply has nothing left to do, verify passes, and revert
// restores the original.
func TestConcurrentApplies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 36,000-row job")
	}
	_, dbPath, plan, r, original := killFixture(t)
	type outcome struct {
		res result
		err error
	}
	var wg sync.WaitGroup
	outcomes := make([]outcome, 3)
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 700 * time.Millisecond)
			// Not r.run: it may call t.Fatalf, which only the test's
			// goroutine may.
			res, err := r.tryRun("apply", plan)
			outcomes[i] = outcome{res, err}
		}()
	}
	wg.Wait()
	winners := 0
	for i, o := range outcomes {
		if o.err != nil {
			t.Fatalf("concurrent apply %d: %v", i, o.err)
		}
		res := o.res
		msg := lastLine(res.stderr + res.stdout)
		t.Logf("concurrent apply %d: exit %d after %s: %s", i, res.code, res.took.Round(time.Millisecond), msg)
		switch res.code {
		case 0:
			winners++
		case 2:
			if !anotherRun.MatchString(res.stderr) {
				t.Errorf("concurrent apply %d was refused (exit 2) without saying another colcrypt run has the job: %s", i, msg)
			}
		default:
			t.Errorf("concurrent apply %d: exit %d, want 0 (it finished the job) or 2 (refused: another run has it): %s", i, res.code, msg)
		}
	}
	if winners == 0 {
		t.Errorf("none of %d concurrent applies finished the job", len(outcomes))
	}
	r.mustRun(0, "apply", plan)
	r.mustRun(0, "verify", plan)
	r.mustRun(0, "revert", plan)
	if d := original.diff(takeSnapshot(t, dbPath, false)); d != "" {
		t.Fatalf("after concurrent applies and a revert the database differs:\n%s", d)
	}
}

// anotherRun is what the message of an apply refused because another
// colcrypt run has the job says.
var anotherRun = regexp.MustCompile(`(?i)another (colcrypt )?(run|job|apply|process)`)
