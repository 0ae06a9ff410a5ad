package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/colcrypt/colcrypt/keystore"
)

// Secrets of the benchmark's throwaway keystore. They protect only the
// generated rows of the benchmark's own databases.
const (
	benchPassphrase       = "BENCH-ONLY passphrase: protects generated rows"
	benchBackupPassphrase = "BENCH-ONLY backup passphrase"
	benchKeyName          = "pii"
	// dsnVariable carries the DSN into the plan, so plans hold no DSN.
	dsnVariable = "COLCRYPT_BENCH_DSN"
)

// Fixture is a folder holding the keystore (with its backup, so cut-over
// runs) and the plans of one benchmark run.
type Fixture struct {
	Dir      string
	Keystore string
}

// NewFixture creates the keystore with the library, under the default
// argon2id cost, as `colcrypt keys init` would: the colcrypt process pays
// the same unlock cost (time and memory) a user's does.
func NewFixture(dir string) (*Fixture, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "bench.keystore")
	for _, p := range []string{path, path + ".backup"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	ks, err := keystore.Create(path, keystore.Secret{Passphrase: []byte(benchPassphrase)})
	if err != nil {
		return nil, err
	}
	if _, err := ks.Add(benchKeyName); err != nil {
		return nil, err
	}
	if err := ks.Backup(path+".backup", []byte(benchBackupPassphrase)); err != nil {
		return nil, err
	}
	return &Fixture{Dir: dir, Keystore: path}, nil
}

// PlanSettings are the job settings every benchmark plan uses.
type PlanSettings struct {
	Suite     string // e.g. aead-aes-256-cbc-hmac-sha256
	IV        string // field | column
	Workers   int
	BatchRows int
}

// PlanYAML is the plan that encrypts email of table t.
func PlanYAML(engine, table, keystorePath string, s PlanSettings) string {
	return fmt.Sprintf(`# colcrypt benchmark plan (generated)
version: 1
database:
  engine: %s
  dsn: ${%s}
keystore: %s
defaults:
  suite: %s
  iv: %s
  key: %s
job:
  workers: %d
  batch_rows: %d
tables:
  - name: %s
    columns:
      - name: email
`, engine, dsnVariable, keystorePath, s.Suite, s.IV, benchKeyName, s.Workers, s.BatchRows, table)
}

// WritePlan writes a plan for the engine's DSN and returns its path.
func (f *Fixture) WritePlan(name, engine, table string, s PlanSettings) (string, error) {
	path := filepath.Join(f.Dir, name+".yaml")
	return path, os.WriteFile(path, []byte(PlanYAML(engine, table, f.Keystore, s)), 0o644)
}

// Colcrypt runs the built colcrypt binary as a subprocess, so that its
// peak RSS and CPU time come from the kernel's accounting of that process
// alone.
type Colcrypt struct {
	Bin    string
	LogDir string // each run's stderr is kept here
}

// RunResult is what one colcrypt process did and cost.
type RunResult struct {
	Wall    time.Duration // start to exit
	PeakRSS int64         // bytes
	CPU     time.Duration // user + system
	// ServerCPU is the database server's CPU time meanwhile, when known.
	ServerCPU time.Duration
	Phases    []Phase       // completed phases, in order
	Job       time.Duration // first phase started to last phase done
	Stdout    string
	LogPath   string
}

// Phase returns the duration of the named phase, and whether it ran.
func (r *RunResult) Phase(name string) (time.Duration, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.Elapsed, true
		}
	}
	return 0, false
}

// Apply runs `colcrypt apply PLAN args...` with the DSN and passphrase in
// its environment.
func (c *Colcrypt) Apply(ctx context.Context, name, plan, dsn string, args ...string) (*RunResult, error) {
	cmd := exec.CommandContext(ctx, c.Bin, append([]string{"apply", plan}, args...)...)
	cmd.Env = append(os.Environ(), "COLCRYPT_PASSPHRASE="+benchPassphrase, dsnVariable+"="+dsn)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(c.LogDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	clock := &PhaseClock{}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Bin, err)
	}
	scanErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			clock.Observe(line, time.Now())
			fmt.Fprintln(logFile, line)
		}
		_, _ = io.Copy(io.Discard, stderr)
		scanErr <- sc.Err()
	}()
	<-scanErr // the pipe closes when the process exits
	err = cmd.Wait()
	wall := time.Since(start)
	end := start.Add(wall)
	res := &RunResult{Wall: wall, Stdout: stdout.String(), LogPath: logPath, Phases: clock.Phases(), Job: clock.Job()}
	if first, last := clock.Span(); !first.IsZero() {
		// Before the first phase: process start, keystore unlock
		// (argon2id), reading the catalog and planning.
		res.Phases = append([]Phase{{Name: "start-up", Elapsed: first.Sub(start)}}, res.Phases...)
		res.Phases = append(res.Phases, Phase{Name: "exit", Elapsed: end.Sub(last)})
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSS = ru.Maxrss * 1024 // kilobytes on Linux
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err != nil {
		return res, fmt.Errorf("colcrypt apply %s %s: %w (log: %s)", plan, strings.Join(args, " "), err, logPath)
	}
	return res, nil
}

// PhaseClock times colcrypt's phases from its log lines
// (msg="phase started" / msg="phase done", with phase=NAME), using the
// time= each line carries, or the time the line arrived when it has none.
type PhaseClock struct {
	started map[string]time.Time
	order   []string
	done    map[string]time.Time
}

// Observe reads one log line.
func (c *PhaseClock) Observe(line string, arrived time.Time) {
	kv := ParseLogLine(line)
	msg, phase := kv["msg"], kv["phase"]
	if phase == "" || (msg != "phase started" && msg != "phase done") {
		return
	}
	at := arrived
	if t, err := time.Parse(time.RFC3339Nano, kv["time"]); err == nil {
		at = t
	}
	if c.started == nil {
		c.started, c.done = map[string]time.Time{}, map[string]time.Time{}
	}
	if msg == "phase started" {
		if _, seen := c.started[phase]; !seen {
			c.order = append(c.order, phase)
		}
		c.started[phase] = at
		return
	}
	c.done[phase] = at
}

// Phases lists the phases that both started and finished, in order.
func (c *PhaseClock) Phases() []Phase {
	var out []Phase
	for _, name := range c.order {
		if end, ok := c.done[name]; ok {
			out = append(out, Phase{Name: name, Elapsed: end.Sub(c.started[name])})
		}
	}
	return out
}

// Job is the time from the first phase's start to the last phase's end.
func (c *PhaseClock) Job() time.Duration {
	first, last := c.Span()
	if first.IsZero() || last.IsZero() {
		return 0
	}
	return last.Sub(first)
}

// Span gives the first phase's start and the last phase's end; zero
// times when no phase started or none finished.
func (c *PhaseClock) Span() (first, last time.Time) {
	for _, name := range c.order {
		s, okS := c.started[name]
		d, okD := c.done[name]
		if okS && (first.IsZero() || s.Before(first)) {
			first = s
		}
		if okD && d.After(last) {
			last = d
		}
	}
	return first, last
}

// ParseLogLine splits a log/slog text line (key=value, values with spaces
// double-quoted with Go escaping) into its fields.
func ParseLogLine(line string) map[string]string {
	out := map[string]string{}
	i := 0
	for i < len(line) {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			break
		}
		key := line[i : i+eq]
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			raw := line[i:min(j+1, len(line))]
			if s, err := strconv.Unquote(raw); err == nil {
				val = s
			} else {
				val = strings.Trim(raw, `"`)
			}
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			val = line[i : i+j]
			i += j
		}
		out[key] = val
	}
	return out
}
