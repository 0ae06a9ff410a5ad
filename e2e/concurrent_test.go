package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// TestStatusWhileApplyRuns: status, from another process, answers while
// apply runs, and what it shows only moves forward.
func TestStatusWhileApplyRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 36,000-row job")
	}
	_, _, plan, r, _ := killFixture(t)
	done := make(chan result, 1)
	go func() { done <- r.run("apply", plan) }()
	type colState struct{ state, percent int }
	last := map[string]colState{}
	polls := 0
	for finished := false; !finished; {
		select {
		case res := <-done:
			if res.code != 0 {
				t.Fatalf("apply: exit %d\n%s", res.code, res.stderr)
			}
			finished = true
		case <-time.After(150 * time.Millisecond):
		}
		res := r.run("status", "--format", "json", plan)
		if res.code != 0 {
			t.Fatalf("status while apply runs: exit %d\n%s", res.code, res.stderr)
		}
		polls++
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
		for _, c := range st.Columns {
			k := c.Table + "." + c.Column
			prev := last[k]
			if c.State < prev.state || (c.State == prev.state && c.Percent < prev.percent) {
				t.Errorf("status of %s went back from state %d at %d%% to state %d at %d%%", k, prev.state, prev.percent, c.State, c.Percent)
			}
			if c.State != 1 && c.State != 2 && c.State != 3 {
				t.Errorf("status of %s during apply: state %d", k, c.State)
			}
			last[k] = colState{c.State, c.Percent}
		}
	}
	for k, s := range last {
		if s.state != 3 || s.percent != 100 {
			t.Errorf("status of %s after apply: state %d at %d%%, want 3 at 100%%", k, s.state, s.percent)
		}
	}
	t.Logf("%d status polls while apply ran", polls)
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

// TestConcurrentApplies: two applies of the same plan started together
// (a cron job and a person, say) may fail, but must not damage data: a
// later apply finishes, verify passes, and revert restores the original.
func TestConcurrentApplies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 36,000-row job")
	}
	_, dbPath, plan, r, original := killFixture(t)
	var wg sync.WaitGroup
	results := make([]result, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 700 * time.Millisecond)
			results[i] = r.run("apply", plan)
		}()
	}
	wg.Wait()
	for i, res := range results {
		t.Logf("concurrent apply %d: exit %d after %s: %s", i, res.code, res.took.Round(time.Millisecond), lastLine(res.stderr+res.stdout))
	}
	r.mustRun(0, "apply", plan)
	r.mustRun(0, "verify", plan)
	r.mustRun(0, "revert", plan)
	if d := original.diff(takeSnapshot(t, dbPath, false)); d != "" {
		t.Fatalf("after concurrent applies and a revert the database differs:\n%s", d)
	}
}
