// Package e2e runs the built colcrypt binary the way a user does: real
// processes, real files, exit codes, and kill -9 in the middle of a job.
package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/colcrypt/colcrypt/dialect/sqlite" // registers the "sqlite" driver
	"github.com/colcrypt/colcrypt/internal/sqlitesnap"
	"github.com/colcrypt/colcrypt/keystore"
)

// colcryptBin is the binary TestMain builds.
var colcryptBin string

// passphrase protects the throwaway keystores of these tests.
const passphrase = "e2e test passphrase"

// helperBin is a build of this test binary without the race detector,
// which runs the heavy SQLite work of the tests (see helperMain); the test
// binary itself when it is not race-instrumented.
var helperBin string

// helperVariable makes the test binary run helperMain instead of tests.
const helperVariable = "COLCRYPT_E2E_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperVariable) == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "colcrypt-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	colcryptBin = filepath.Join(dir, "colcrypt")
	args := []string{"build", "-o", colcryptBin}
	// COLCRYPT_E2E_RACE=1 builds the binary with the race detector too; it
	// is off by default because it makes every job several times slower.
	if os.Getenv("COLCRYPT_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/colcrypt/colcrypt/cmd/colcrypt")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	start := time.Now()
	cmd := exec.Command(goTool, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/colcrypt: %v\n%s", err, out)
		return 2
	}
	// The pure-Go SQLite engine runs many times slower under the race
	// detector; the tests' own bulk reads and writes (36,000 rows, several
	// times per kill) go to an uninstrumented build of this package's tests.
	if raceEnabled {
		helperBin = filepath.Join(dir, "e2e-helper")
		cmd := exec.Command(goTool, "test", "-c", "-o", helperBin, "github.com/colcrypt/colcrypt/e2e")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go test -c ./e2e (helper without -race): %v\n%s", err, out)
			return 2
		}
	} else if helperBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "built %s (and helper) in %s\n", colcryptBin, time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// result is what one run of the binary did.
type result struct {
	code           int
	killed         bool // ended by our SIGKILL
	stdout, stderr string
	took           time.Duration
}

// runner runs the binary in one folder with a controlled environment.
type runner struct {
	t   *testing.T
	dir string
	env []string
}

// newRunner gives a runner whose environment holds no colcrypt secret but
// the given variables (name=value).
func newRunner(t *testing.T, dir string, vars ...string) *runner {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COLCRYPT_") {
			env = append(env, kv)
		}
	}
	return &runner{t: t, dir: dir, env: append(env, vars...)}
}

// run runs colcrypt with args to the end (at most a minute).
func (r *runner) run(args ...string) result {
	r.t.Helper()
	return r.runKill(-1, args...)
}

// runKill runs colcrypt and sends SIGKILL after killAfter (never when
// negative). A process that ended before the kill just reports its exit.
func (r *runner) runKill(killAfter time.Duration, args ...string) result {
	r.t.Helper()
	return r.runDuring(func(p *os.Process, exited <-chan struct{}) {
		if killAfter < 0 {
			return
		}
		select {
		case <-time.After(killAfter):
			_ = p.Signal(syscall.SIGKILL)
		case <-exited:
		}
	}, args...)
}

// runDuring runs colcrypt (at most a minute) and, in the test's goroutine
// while it runs, during, which may stop it with SIGKILL; exited is closed
// when the process has ended. It returns once both have. It fails the test
// (t.Fatalf), so it must run on the test's goroutine; other goroutines use
// tryRun.
func (r *runner) runDuring(during func(p *os.Process, exited <-chan struct{}), args ...string) result {
	r.t.Helper()
	res, err := r.runOrError(during, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// tryRun runs colcrypt to the end (at most a minute) and returns what a
// run would fail the test with as an error instead: it may run on any
// goroutine.
func (r *runner) tryRun(args ...string) (result, error) {
	return r.runOrError(func(*os.Process, <-chan struct{}) {}, args...)
}

// runOrError is runDuring, with an error where runDuring fails the test:
// the process could not start, ended on a signal other than our SIGKILL,
// or ran out of time.
func (r *runner) runOrError(during func(p *os.Process, exited <-chan struct{}), args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, colcryptBin, args...)
	cmd.Dir = r.dir
	cmd.Env = r.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Stdin stays nil: /dev/null, not a terminal, so no prompt can hang.
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, fmt.Errorf("start colcrypt %s: %w", strings.Join(args, " "), err)
	}
	exited := make(chan struct{})
	var err error
	go func() {
		err = cmd.Wait()
		close(exited)
	}()
	during(cmd.Process, exited)
	<-exited
	res := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.killed = ws.Signal() == syscall.SIGKILL
			if !res.killed || ctx.Err() != nil {
				return res, fmt.Errorf("colcrypt %s ended by %v (timeout: %v)\nstderr:\n%s", strings.Join(args, " "), ws.Signal(), ctx.Err(), res.stderr)
			}
		}
	default:
		return res, fmt.Errorf("colcrypt %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// mustRun runs colcrypt and fails the test unless it exits with want.
func (r *runner) mustRun(want int, args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != want {
		r.t.Fatalf("colcrypt %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// cheapKDF keeps keystore opens fast in every process the tests start.
var cheapKDF = keystore.WithKDF(keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})

// newKeystore writes a keystore with data key "pii" and a backup taken
// after it, so cut-over's backup check passes.
func newKeystore(t *testing.T, path string) {
	t.Helper()
	ks, err := keystore.Create(path, keystore.Secret{Passphrase: []byte(passphrase)}, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := ks.Backup(path+".backup", []byte("backup "+passphrase), cheapKDF); err != nil {
		t.Fatal(err)
	}
}

// openDB opens a SQLite file directly, as another client would.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// snapshot is every schema entry and every row outside colcrypt's own
// tables and sqlite_sequence.
type snapshot sqlitesnap.Snapshot

// diff describes the first differences, "" when the snapshots are equal.
func (a snapshot) diff(b snapshot) string {
	return sqlitesnap.Snapshot(a).Diff(sqlitesnap.Snapshot(b))
}

// takeSnapshot reads the snapshot of the database file at path (through
// the helper process).
func takeSnapshot(t *testing.T, path string, dataOnly bool) snapshot {
	t.Helper()
	var s snapshot
	if err := json.Unmarshal(runHelper(t, "snapshot", path, strconv.FormatBool(dataOnly)), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// query runs statements on the database file at path in one connection
// (through the helper process) and returns the first row of the last one,
// numbers as float64 and blobs as hex.
func query(t *testing.T, path string, stmts ...string) []any {
	t.Helper()
	var row []any
	if err := json.Unmarshal(runHelper(t, append([]string{"query", path}, stmts...)...), &row); err != nil {
		t.Fatal(err)
	}
	return row
}

func runHelper(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helperBin, args...)
	cmd.Env = append(os.Environ(), helperVariable+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// helperMain runs one helper operation and returns the exit code.
func helperMain(args []string) int {
	if err := helper(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helper(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: snapshot|query|create-kill-db PATH ...")
	}
	db, err := sql.Open("sqlite", args[1]+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // ATTACH and the statements after it share a connection
	out := json.NewEncoder(os.Stdout)
	switch args[0] {
	case "snapshot":
		s, err := sqlitesnap.Take(db, sqlitesnap.Options{DataOnly: len(args) > 2 && args[2] == "true", NoSequence: true})
		if err != nil {
			return err
		}
		return out.Encode(s)
	case "query":
		stmts := args[2:]
		for _, st := range stmts[:len(stmts)-1] {
			if _, err := db.Exec(st); err != nil {
				return fmt.Errorf("%s: %w", st, err)
			}
		}
		last := stmts[len(stmts)-1]
		rows, err := db.Query(last)
		if err != nil {
			return fmt.Errorf("%s: %w", last, err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		vals := make([]any, len(cols))
		if rows.Next() {
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = fmt.Sprintf("%x", b)
				}
			}
		} else {
			vals = nil
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return out.Encode(vals)
	case "create-kill-db":
		seed, err := strconv.ParseUint(args[2], 10, 64)
		if err != nil {
			return err
		}
		return createKillDatabase(db, seed)
	}
	return fmt.Errorf("unknown helper operation %q", args[0])
}

// columnExists reports whether a table has a column now.
func columnExists(t *testing.T, path, table, column string) bool {
	t.Helper()
	row := query(t, path, "SELECT count(*) FROM pragma_table_xinfo("+sqlString(table)+") WHERE name = "+sqlString(column))
	return row[0] != float64(0)
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
