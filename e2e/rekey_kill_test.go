package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Rekey kill schedule: delays from killDelay (20 ms to rekeyMaxDelay). A
// full rekey of the kill database takes a few seconds, so rekeyKills runs
// are killed and the next one runs to the end. Status runs after every kill;
// verify (seconds) and the check of the columns a rekey must not touch
// after every rekeyVerifyEvery-th one.
const (
	rekeyKills       = 10
	minRekeyKills    = 8
	rekeyVerifyEvery = 4
	// rekeyMaxDelay: the whole rekey is about three seconds of work
	// (each run spends ~0.3 s starting), so later kills would let it
	// finish before rekeyKills of them landed.
	rekeyMaxDelay = killMaxDelay / 2
)

// rekeyKillPlan encrypts the kill database's columns with every versioned
// suite and both IV modes: a unique column with the deterministic AEAD IV,
// AEAD and AES-256-CBC with field IVs, AES-128-CBC with the column IV, and
// a keyless table.
const rekeyKillPlan = `version: 1
database:
  engine: sqlite
  dsn: kill.db
keystore: kill.keystore
defaults:
  key: pii
job:
  workers: %d
  batch_rows: %d
tables:
  - name: people
    columns:
      - name: ssn
        iv: column
      - name: email
      - name: phone
        suite: aes-256-cbc
      - name: born
        suite: aes-128-cbc
        iv: column
  - name: visits
    columns:
      - name: ip
        suite: aes-192-cbc
`

// rekeyPlanned are rekeyKillPlan's columns by table; rekeyUntouched the
// columns of the same tables a rekey must never write.
var (
	rekeyPlanned   = map[string][]string{"people": {"ssn", "email", "phone", "born"}, "visits": {"ip"}}
	rekeyUntouched = map[string][]string{"people": {"id", "notes", "score"}, "visits": {"at", "bytes"}}
)

// rekeyStatus is what the test reads from status --format json.
type rekeyStatus struct {
	Columns []struct {
		Table      string `json:"table"`
		Column     string `json:"column"`
		State      int    `json:"state"`
		KeyVersion int    `json:"key_version"`
		Versions   []struct {
			Suite   string `json:"suite"`
			Version int    `json:"key_version"`
			Values  int64  `json:"values"`
		} `json:"versions"`
	} `json:"columns"`
}

// readRekeyStatus runs status --format json and checks what must hold at
// any instant of a rekey: every column encrypted or mid-rekey, and its
// values, counted by the key version in their headers, adding up to the
// column's non-NULL values, each under v1 or v2. It returns the count per
// column and version ("people.ssn" → {1: n, 2: m}) and the states.
func readRekeyStatus(t *testing.T, r *runner, plan string, nonNull map[string]int64) (map[string]map[int]int64, map[string]int) {
	t.Helper()
	res := r.run("status", "--format", "json", plan)
	if res.code != 0 {
		t.Fatalf("status: exit %d: %s", res.code, res.stderr)
	}
	var st rekeyStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, res.stdout)
	}
	counts, states := map[string]map[int]int64{}, map[string]int{}
	for _, c := range st.Columns {
		name := strings.TrimPrefix(c.Table, "main.") + "." + c.Column
		states[name] = c.State
		counts[name] = map[int]int64{}
		var sum int64
		for _, v := range c.Versions {
			if (v.Version != 1 && v.Version != 2) || v.Suite == "unreadable header" {
				t.Errorf("status of %s counts %d values under %s v%d", name, v.Values, v.Suite, v.Version)
			}
			counts[name][v.Version] += v.Values
			sum += v.Values
		}
		if c.State != 3 && c.State != 4 {
			t.Errorf("status of %s: state %d, want 3 (encrypted) or 4 (key change in progress)", name, c.State)
		}
		if sum != nonNull[name] {
			t.Errorf("status of %s counts %d values by key version %v, want all %d non-NULL values", name, sum, counts[name], nonNull[name])
		}
	}
	if len(st.Columns) != len(nonNull) {
		t.Errorf("status lists %d columns, want %d", len(st.Columns), len(nonNull))
	}
	return counts, states
}

// TestRekeyKillAndResume encrypts the kill database, adds key version 2
// (and a backup), then runs `colcrypt rekey PLAN --all`, killing it with
// SIGKILL at seeded random moments, until a run finishes. After every kill
// status must count every non-NULL value under v1 or v2; every few kills
// verify must pass (both versions decrypt at any instant) and the columns
// the rekey does not own must be untouched. At the end every value is under
// v2, verify passes, and revert gives back the original database exactly.
func TestRekeyKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a 36,000-row rekey many times")
	}
	seed := killSeed(t)
	t.Logf("kill schedule seed %d (replay with %s=%d)", seed, killSeedVariable, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	testStart := time.Now()

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "kill.db")
	runHelper(t, "create-kill-db", dbPath, strconv.FormatUint(seed, 10))
	newKeystore(t, filepath.Join(dir, "kill.keystore"))
	planPath := filepath.Join(dir, "kill.yaml")
	if err := os.WriteFile(planPath, []byte(fmt.Sprintf(rekeyKillPlan, killWorkers, killBatchRows)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, dir, "COLCRYPT_PASSPHRASE="+passphrase, "COLCRYPT_BACKUP_PASSPHRASE=backup "+passphrase)
	original := takeSnapshot(t, dbPath, false)

	res := r.mustRun(0, "apply", planPath)
	t.Logf("apply took %s", res.took.Round(time.Millisecond))
	defer func(start time.Time) { t.Logf("the test took %s", time.Since(start).Round(time.Millisecond)) }(testStart)
	nonNull := map[string]int64{}
	for table, cols := range rekeyPlanned {
		for _, c := range cols {
			row := query(t, dbPath, `SELECT count(`+quote(c)+`) FROM `+quote(table))
			nonNull[table+"."+c] = int64(row[0].(float64))
		}
	}
	encryptedCopy := filepath.Join(dir, "encrypted.db")
	copyDatabase(t, dbPath, encryptedCopy)

	r.mustRun(0, "keys", "add", "kill.keystore", "pii")
	if res := r.run("rekey", planPath, "--all"); res.code != 2 || !strings.Contains(res.stderr, "no backup taken after key pii v2") {
		t.Fatalf("rekey without a backup after v2: exit %d, want 2 and a refusal\n%s", res.code, res.stderr)
	}
	r.mustRun(0, "keys", "backup", "kill.keystore", "kill.keystore.after-v2")

	untouched := func(t *testing.T) {
		t.Helper()
		for table, cols := range rekeyUntouched {
			sameRows(t, dbPath, encryptedCopy, table, cols)
		}
	}
	verifyFailures := 0
	verify := func(when string) {
		t.Helper()
		res := r.run("verify", planPath)
		if res.code == 0 {
			t.Logf("verify %s passed in %s", when, res.took.Round(time.Millisecond))
			return
		}
		verifyFailures++
		if verifyFailures <= 2 {
			t.Errorf("verify %s: exit %d, want 0: a value is unreadable mid-rekey\n%s%s", when, res.code, res.stdout, lastLines(res.stderr, 3))
		}
	}

	// A rekey about to begin first decrypts every value (as verify does):
	// until one has begun writing, the kills come after that much time, or
	// they would all land before the rekey writes anything.
	pre := r.run("verify", planPath)
	if pre.code != 0 {
		t.Fatalf("verify before the rekey: exit %d\n%s", pre.code, pre.stderr)
	}
	begun := false
	kills, mixed := 0, 0
	var progress []string // the share of values under v2 after each kill
	args := []string{"rekey", planPath, "--all"}
	share := 0.0 // of the values under v2, after the last kill
	for run := 1; ; run++ {
		delay := time.Duration(-1)
		if kills < rekeyKills {
			delay = killDelay(rng, rekeyMaxDelay)
			if !begun {
				delay += pre.took
			}
			if share > 0.5 && kills < minRekeyKills {
				// Past half the work, kills within start-up only (the
				// first 150 ms of a run: unlocking the keystore alone
				// takes about 0.2 s), so that the kills this test needs
				// land before the rekey ends, however fast the machine
				// finishes the rest.
				delay = min(delay, killEarlyWindow/2)
			}
		}
		res := r.runKill(delay, args...)
		if res.code == 0 && !res.killed {
			t.Logf("rekey run %d: finished in %s (kill due at %s)", run, res.took.Round(time.Millisecond), dueAt(delay))
			break
		}
		if !res.killed {
			// A resumed rekey must finish the job, whatever the kill left:
			// it must not refuse columns an earlier run already finished.
			_, states := readRekeyStatus(t, r, planPath, nonNull)
			w, _ := where(t, dbPath)
			t.Fatalf("rekey run %d (kill due at %s) failed with exit %d (column states %v): %s\n%s", run, dueAt(delay), res.code, states, res.stderr, w)
		}
		kills++
		counts, states := readRekeyStatus(t, r, planPath, nonNull)
		var v1, v2 int64
		for _, c := range counts {
			v1, v2 = v1+c[1], v2+c[2]
		}
		if v1 > 0 && v2 > 0 {
			mixed++
		}
		inProgress := 0
		for _, st := range states {
			if st == 4 {
				inProgress++
			}
		}
		t.Logf("rekey run %d: killed after %s: %d columns in state 4, values under v1 %d, v2 %d", run, delay.Round(time.Millisecond), inProgress, v1, v2)
		begun = begun || inProgress > 0 || v2 > 0
		progress = append(progress, fmt.Sprintf("%d%%", 100*v2/(v1+v2)))
		share = float64(v2) / float64(v1+v2)
		if kills%rekeyVerifyEvery == 0 {
			untouched(t)
			verify(fmt.Sprintf("after kill %d", kills))
		}
	}
	if kills < minRekeyKills {
		t.Errorf("only %d kills landed during the rekey, want at least %d", kills, minRekeyKills)
	}
	if mixed == 0 {
		t.Errorf("none of the %d kills left values under both versions: no kill landed in the middle of the rekey", kills)
	}
	if verifyFailures > 2 {
		t.Errorf("verify failed after %d of the kills in all", verifyFailures)
	}

	// Every value is under v2, by status and by the headers themselves.
	counts, states := readRekeyStatus(t, r, planPath, nonNull)
	for name, n := range nonNull {
		if states[name] != 3 || counts[name][1] != 0 || counts[name][2] != n {
			t.Errorf("after the rekey %s: state %d, values by version %v; want state 3 and all %d under v2", name, states[name], counts[name], n)
		}
	}
	for table, cols := range rekeyPlanned {
		for _, c := range cols {
			row := query(t, dbPath, `SELECT count(*) FROM `+quote(table)+` WHERE `+quote(c)+` IS NOT NULL AND hex(substr(`+quote(c)+`, 2, 2)) <> '0002'`)
			if row[0] != float64(0) {
				t.Errorf("after the rekey %s.%s holds %v values whose header names another version than 2", table, c, row[0])
			}
		}
	}
	untouched(t)
	if res := r.run("verify", planPath); res.code != 0 {
		t.Errorf("verify after the rekey: exit %d\n%s%s", res.code, res.stdout, lastLines(res.stderr, 3))
	}

	res = r.mustRun(0, "revert", planPath)
	t.Logf("revert took %s", res.took.Round(time.Millisecond))
	if d := original.diff(takeSnapshot(t, dbPath, false)); d != "" {
		t.Fatalf("after apply, a rekey killed %d times and revert, the database differs:\n%s", kills, d)
	}
	t.Logf("%d kills during the rekey, %d with both versions in the columns; under v2 after each: %s",
		kills, mixed, strings.Join(progress, " "))
}

// lastLines is the last n lines of s, for messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// dueAt describes a kill delay; negative means no kill.
func dueAt(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}
