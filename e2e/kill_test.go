package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Kill schedule. Delays spread from just after start (the process is still
// opening the keystore) to well into a job, so kills land in prepare, copy,
// verify and cut-over, and on revert in its prepare, decrypt, verify and
// cut-over (see killDelay).
const (
	killMinDelay     = 20 * time.Millisecond
	killMaxDelay     = 1500 * time.Millisecond
	killEarlyWindow  = 300 * time.Millisecond
	minKills         = 10 // across apply and revert
	minKillsPerJob   = 4  // of apply, and of revert
	maxRunsPerJob    = 12 // then one run without a kill, so the test ends in time
	maxCycles        = 8  // apply+revert cycles while fewer than minKills landed (a cycle takes a few seconds)
	killPeopleRows   = 30_000
	killVisitRows    = 6_000
	killBatchRows    = 500
	killWorkers      = 2
	killSeedVariable = "COLCRYPT_E2E_SEED" // set it to replay a failing schedule
)

const killPlan = `version: 1
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
      - name: notes
        suite: 3des-cbc
        versioned: false
      - name: born
        suite: aes-128-cbc
        iv: column
  - name: visits
    columns:
      - name: ip
        suite: aes-192-cbc
`

// plannedColumns are the columns killPlan encrypts, by table.
var plannedColumns = map[string][]string{
	"people": {"ssn", "email", "phone", "notes", "born"},
	"visits": {"ip"},
}

// createKillDatabase fills an empty database with the tables killPlan
// encrypts: people (a key, a unique column, NULLs, integers among text,
// DATETIME text) and visits (no key at all). It runs in the helper.
func createKillDatabase(db *sql.DB, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed))
	for _, s := range []string{
		`CREATE TABLE people (
  id    INTEGER PRIMARY KEY,
  ssn   TEXT NOT NULL UNIQUE,
  email TEXT,
  phone TEXT,
  notes TEXT,
  score REAL,
  born  DATETIME
)`,
		`CREATE INDEX people_email ON people (email)`,
		`CREATE TABLE visits (at TEXT, ip TEXT, bytes INTEGER)`,
	} {
		if _, err := db.Exec(s); err != nil {
			return err
		}
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	notes := []any{nil, "", "  padded  ", "VIP — call first ☎", "emoji 😀🧪", strings.Repeat("long note ", 30)}
	stmt, err := tx.Prepare(`INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	for i := 1; i <= killPeopleRows; i++ {
		var email, phone any
		if rng.IntN(10) != 0 {
			email = fmt.Sprintf("user%d@example.com", i)
		}
		switch rng.IntN(5) {
		case 0:
		case 1:
			phone = int64(4_700_000_000 + i) // an integer among the text
		default:
			phone = fmt.Sprintf("+47 %08d", rng.IntN(100_000_000))
		}
		born := fmt.Sprintf("19%02d-%02d-%02d %02d:%02d:00", 40+rng.IntN(60), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60))
		if _, err := stmt.Exec(i, fmt.Sprintf("%09d", i*7919%899_999_999+100_000_000), email, phone,
			notes[rng.IntN(len(notes))], rng.Float64()*100, born); err != nil {
			return err
		}
	}
	stmt.Close()
	if stmt, err = tx.Prepare(`INSERT INTO visits VALUES (?, ?, ?)`); err != nil {
		return err
	}
	for i := 0; i < killVisitRows; i++ {
		ip := any(fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256)))
		if i%13 == 0 {
			ip = nil
		}
		if _, err := stmt.Exec(fmt.Sprintf("2025-01-%02d", 1+i%28), ip, rng.IntN(1<<20)); err != nil {
			return err
		}
	}
	stmt.Close()
	return tx.Commit()
}

// killSeed is the schedule's seed: COLCRYPT_E2E_SEED when set, else the clock.
func killSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv(killSeedVariable); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", killSeedVariable, s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// where says how far a job got, from colcrypt's own tables, for the log,
// and the job's last event.
func where(t *testing.T, path string) (string, string) {
	t.Helper()
	exists := query(t, path, `SELECT count(*) FROM sqlite_master WHERE name = 'colcrypt_events'`)
	if exists[0] == float64(0) {
		return "no job recorded yet", "nothing"
	}
	row := query(t, path, `SELECT (SELECT kind FROM colcrypt_job), (SELECT phase FROM colcrypt_job),
		(SELECT event FROM colcrypt_events ORDER BY job_id, seq DESC LIMIT 1)`)
	if len(row) != 3 || row[0] == nil {
		return "no job recorded yet", "nothing"
	}
	if row[1] == "" {
		row[1] = "none"
	}
	event, _ := row[2].(string)
	return fmt.Sprintf("%s job, last phase completed %q, last event %q", row[0], row[1], event), event
}

// sqliteWhere is where for the database file at path.
func sqliteWhere(path string) func(*testing.T) (string, string) {
	return func(t *testing.T) (string, string) { return where(t, path) }
}

// TestKillAndResume kills apply and revert with SIGKILL at random moments
// until each finishes, and checks after every kill that nothing the job
// must not touch was touched, after apply that every value decrypts once
// to the original (verify), and after revert that the database is exactly
// what it was.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a 36,000-row job many times")
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
	if err := os.WriteFile(planPath, []byte(fmt.Sprintf(killPlan, killWorkers, killBatchRows)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, dir, "COLCRYPT_PASSPHRASE="+passphrase)
	original := takeSnapshot(t, dbPath, false)
	originalCopy := filepath.Join(dir, "original.db")
	originalColumns := copyDatabase(t, dbPath, originalCopy)

	kills := map[string]int{}
	landed := map[string]int{} // where the kills landed: the job's last event
	// The longest delay worth drawing for each command: after a run that
	// was not killed at all, its whole duration.
	longest := map[string]time.Duration{"apply": killMaxDelay, "revert": killMaxDelay}
	// need says whether a job still needs kills; after the first cycle
	// only the job short of kills is killed again.
	need := func(cmd string) bool {
		return kills[cmd] < minKillsPerJob || kills["apply"]+kills["revert"] < minKills
	}
	enough := func() bool { return !need("apply") && !need("revert") }
	for cycle := 1; cycle <= maxCycles && (cycle == 1 || !enough()); cycle++ {
		// Apply, killed until it exits 0.
		applyKills := runUntilDone(t, r, rng, sqliteWhere(dbPath), "apply", planPath, need("apply"), longest, landed, func(t *testing.T) {
			// Before a table's cut-over its plaintext columns and the rest
			// of its data are exactly the original.
			for table, cols := range plannedColumns {
				if columnExists(t, dbPath, table, cols[0]+"__colcrypt") {
					sameRows(t, dbPath, originalCopy, table, originalColumns[table])
				}
			}
		})
		kills["apply"] += applyKills

		for table, cols := range plannedColumns {
			for _, c := range cols {
				row := query(t, dbPath, `SELECT count(*) FROM `+quote(table)+` WHERE typeof(`+quote(c)+`) NOT IN ('blob', 'null')`)
				if row[0] != float64(0) {
					t.Fatalf("after apply, %s.%s still holds %v plaintext values", table, c, row[0])
				}
			}
		}
		// Every ciphertext decrypts, once, to the plaintext whose digest the
		// copy recorded: a value encrypted twice would decrypt to ciphertext.
		res := r.run("verify", planPath)
		if res.code != 0 {
			t.Fatalf("cycle %d: verify after the killed and resumed apply: exit %d\n%s%s", cycle, res.code, res.stdout, res.stderr)
		}
		t.Logf("cycle %d: verify took %s: %s", cycle, res.took.Round(time.Millisecond), strings.TrimSpace(res.stdout))
		checkStatus(t, r, planPath, 3)
		encryptedCopy := filepath.Join(dir, fmt.Sprintf("encrypted-%d.db", cycle))
		encryptedColumns := copyDatabase(t, dbPath, encryptedCopy)

		// Revert, killed until it exits 0.
		revertKills := runUntilDone(t, r, rng, sqliteWhere(dbPath), "revert", planPath, need("revert"), longest, landed, func(t *testing.T) {
			// Before its own cut-over, revert writes only the restore
			// columns: the ciphertexts stay as apply left them.
			for table, cols := range plannedColumns {
				if columnExists(t, dbPath, table, cols[0]+"__colcrypt_plain") {
					sameRows(t, dbPath, encryptedCopy, table, encryptedColumns[table])
				}
			}
		})
		kills["revert"] += revertKills
		if d := original.diff(takeSnapshot(t, dbPath, false)); d != "" {
			t.Fatalf("cycle %d: after apply and revert, killed %d and %d times, the database differs:\n%s", cycle, applyKills, revertKills, d)
		}
		checkStatus(t, r, planPath, 1)
		t.Logf("cycle %d: %d kills during apply, %d during revert; database identical to the original", cycle, applyKills, revertKills)
	}
	if !enough() {
		t.Errorf("only %d kills during apply and %d during revert landed in %d cycles, want %d in all and %d of each",
			kills["apply"], kills["revert"], maxCycles, minKills, minKillsPerJob)
	}
	var spots []string
	for k, n := range landed {
		spots = append(spots, fmt.Sprintf("%d× after %q", n, k))
	}
	sort.Strings(spots)
	t.Logf("%d kills during apply, %d during revert, in %s; they landed %s", kills["apply"], kills["revert"],
		time.Since(testStart).Round(time.Millisecond), strings.Join(spots, ", "))
}

// runUntilDone runs `colcrypt cmd plan extra...`, when kill is set killing
// it after a random delay up to longest[cmd], until a run exits 0; after
// each kill it counts where it landed (where: how far the job got, and its
// last event) and runs check. It returns the number of runs the kill
// ended.
func runUntilDone(t *testing.T, r *runner, rng *rand.Rand, where func(*testing.T) (string, string), cmd, plan string, kill bool,
	longest map[string]time.Duration, landed map[string]int, check func(*testing.T), extra ...string) int {
	t.Helper()
	kills := 0
	for run := 1; ; run++ {
		delay := time.Duration(-1)
		if kill && run <= maxRunsPerJob {
			delay = killDelay(rng, longest[cmd])
		}
		res := r.runKill(delay, append([]string{cmd, plan}, extra...)...)
		switch {
		case res.killed:
			kills++
			w, event := where(t)
			landed[cmd+": "+event]++
			t.Logf("%s run %d: killed after %s: %s", cmd, run, delay.Round(time.Millisecond), w)
			check(t)
		case cmd == "rekey" && run > 1 && res.code == 0 && strings.Contains(res.stdout, "nothing to rekey"):
			// Only when no column is left in state 4: the kill came after
			// the last column was recorded done. The caller checks that
			// every value is under the new version.
			t.Logf("%s run %d: nothing left to do: the killed run had finished", cmd, run)
			return kills
		case res.code == 0:
			t.Logf("%s run %d: finished in %s (kill was due at %s)", cmd, run, res.took.Round(time.Millisecond), delay.Round(time.Millisecond))
			if run == 1 && delay >= 0 {
				longest[cmd] = min(longest[cmd], res.took)
			}
			return kills
		default:
			w, _ := where(t)
			t.Fatalf("%s run %d (kill due at %s) failed with exit %d: %s\n%s", cmd, run, delay.Round(time.Millisecond), res.code, res.stderr, w)
		}
	}
}

// killDelay draws when to kill a run. A resumed run needs a few hundred
// milliseconds (start, keystore, catalog) before it writes anything, so a
// third of the kills fall in that early window, log-uniformly, to land in
// start-up, prepare and the first moments of a cut-over; the rest fall
// uniformly after it, where each run also makes progress.
func killDelay(rng *rand.Rand, longest time.Duration) time.Duration {
	longest = max(longest, 2*killEarlyWindow)
	if rng.IntN(3) == 0 {
		ratio := float64(killEarlyWindow) / float64(killMinDelay)
		return time.Duration(float64(killMinDelay) * math.Pow(ratio, rng.Float64()))
	}
	return killEarlyWindow + time.Duration(rng.Int64N(int64(longest-killEarlyWindow)))
}

// checkStatus checks that every planned column of the kill plan is in the
// state.
func checkStatus(t *testing.T, r *runner, plan string, state int) {
	t.Helper()
	checkStatusOf(t, r, plan, 6, state)
}

// checkStatusOf checks that the plan's n columns are in the state.
func checkStatusOf(t *testing.T, r *runner, plan string, n, state int) {
	t.Helper()
	res := r.run("status", "--format", "json", plan)
	if res.code != 0 {
		t.Fatalf("status: exit %d: %s", res.code, res.stderr)
	}
	var st struct {
		Columns []struct {
			Table, Column string
			State         int
		}
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, res.stdout)
	}
	if len(st.Columns) != n {
		t.Errorf("status lists %d columns, want %d", len(st.Columns), n)
	}
	for _, c := range st.Columns {
		if c.State != state {
			t.Errorf("status of %s.%s: state %d, want %d", c.Table, c.Column, c.State, state)
		}
	}
}

// copyDatabase writes a copy of the database to dest and returns the
// columns each planned table has now (the columns sameRows compares).
func copyDatabase(t *testing.T, path, dest string) map[string][]string {
	t.Helper()
	query(t, path, "VACUUM INTO "+sqlString(dest), "SELECT 1")
	cols := map[string][]string{}
	for table := range plannedColumns {
		row := query(t, path, "SELECT group_concat(name, char(31)) FROM (SELECT name FROM pragma_table_xinfo("+sqlString(table)+") ORDER BY cid)")
		cols[table] = strings.Split(row[0].(string), "\x1f")
	}
	return cols
}

// sameRows checks, in SQL, that the table holds exactly the rows of the
// copy in the given columns: rowid, storage class and value.
func sameRows(t *testing.T, path, copyPath, table string, columns []string) {
	t.Helper()
	sel := []string{"rowid"}
	for _, c := range columns {
		sel = append(sel, "typeof("+quote(c)+")", quote(c))
	}
	list := strings.Join(sel, ", ")
	here := "SELECT " + list + " FROM main." + quote(table)
	there := "SELECT " + list + " FROM copy." + quote(table)
	row := query(t, path, "ATTACH DATABASE "+sqlString(copyPath)+" AS copy",
		"SELECT (SELECT count(*) FROM ("+there+" EXCEPT "+here+")), (SELECT count(*) FROM ("+here+" EXCEPT "+there+"))")
	if row[0] != float64(0) || row[1] != float64(0) {
		t.Fatalf("%s differs from %s in columns %v: %v rows missing or changed, %v unexpected", table, filepath.Base(copyPath), columns, row[0], row[1])
	}
}
