// Command bench measures colcrypt against SPEC §8's baselines on PostgreSQL
// (the cluster named by COLCRYPT_POSTGRES_DSN) and SQLite, running the
// built colcrypt binary given with --colcrypt. scripts/bench builds both
// and starts a throwaway PostgreSQL; run that rather than this directly.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/colcrypt/colcrypt/internal/bench"
)

// Defaults of SPEC §8's measurement.
const (
	defaultRows      = 1_000_000
	defaultWorkers   = 2
	defaultBatchRows = 5000
	defaultScaleRows = "100000,1000000,4000000"
)

type options struct {
	rows      int64
	scale     bool
	scaleRows string
	engines   string
	suite     string
	iv        string
	workers   int
	batchRows int
	colcrypt  string
	workDir   string
	keep      bool
	profile   string
	repeat    int
	ways      string
}

func main() {
	var o options
	flag.Int64Var(&o.rows, "rows", defaultRows, "rows in the table of the side-by-side comparison")
	flag.BoolVar(&o.scale, "scale", false, "measure peak RSS and cost per row at the --scale-rows sizes instead")
	flag.StringVar(&o.scaleRows, "scale-rows", defaultScaleRows, "table sizes of --scale, comma-separated")
	flag.StringVar(&o.engines, "engines", "pg,sqlite", "engines to measure: pg, sqlite, or both")
	flag.StringVar(&o.suite, "suite", "aead-aes-256-cbc-hmac-sha256", "suite of the plan (the default suite; aes-256-cbc adds an IV column)")
	flag.StringVar(&o.iv, "iv", "field", "iv mode of the plan: field or column")
	flag.IntVar(&o.workers, "workers", defaultWorkers, "job.workers of the plan")
	flag.IntVar(&o.batchRows, "batch-rows", defaultBatchRows, "job.batch_rows of the plan")
	flag.StringVar(&o.colcrypt, "colcrypt", "", "the built colcrypt binary (required unless --profile)")
	flag.StringVar(&o.workDir, "work-dir", "", "folder for keystore, plans, logs and SQLite files (default: a new temporary folder)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder (colcrypt's logs) afterwards")
	flag.StringVar(&o.profile, "profile", "", "instead of benchmarking, write CPU and allocation profiles of colcrypt's copy and verify phases, run in process, to this folder")
	flag.IntVar(&o.repeat, "repeat", 1, "run each way this many times and keep the median (the machine may be shared)")
	flag.StringVar(&o.ways, "ways", "", "measure only these ways, comma-separated: "+strings.Join(bench.WayNames, ", ")+" (default: all)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	engines := map[string]bool{}
	for _, e := range strings.Split(o.engines, ",") {
		switch e = strings.TrimSpace(e); e {
		case bench.EnginePostgres, bench.EngineSQLite:
			engines[e] = true
		default:
			return fmt.Errorf("--engines: unknown engine %q (pg, sqlite)", e)
		}
	}
	dir := o.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "colcrypt-bench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	ps := bench.PlanSettings{Suite: o.suite, IV: o.iv, Workers: o.workers, BatchRows: o.batchRows}
	fx, err := bench.NewFixture(dir)
	if err != nil {
		return fmt.Errorf("create keystore: %w", err)
	}
	r := &bench.Runner{Plan: ps, Fixture: fx, Log: os.Stderr, Colcrypt: &bench.Colcrypt{Bin: o.colcrypt, LogDir: dir}}
	if o.ways != "" {
		r.Ways = map[string]bool{}
		for _, w := range strings.Split(o.ways, ",") {
			w = strings.TrimSpace(w)
			if !slices.Contains(bench.WayNames, w) {
				return fmt.Errorf("--ways: unknown way %q (%s)", w, strings.Join(bench.WayNames, ", "))
			}
			r.Ways[w] = true
		}
	}
	var notes []string
	if engines[bench.EnginePostgres] {
		dsn := os.Getenv("COLCRYPT_POSTGRES_DSN")
		if dsn == "" {
			return fmt.Errorf("COLCRYPT_POSTGRES_DSN is not set: run scripts/bench, which starts PostgreSQL, or pass --engines sqlite")
		}
		if r.Postgres, err = bench.OpenPostgres(ctx, dsn); err != nil {
			return err
		}
		defer r.Postgres.Close()
		settings, err := r.Postgres.Settings(ctx)
		if err != nil {
			return err
		}
		notes = append(notes, settings)
	}
	if engines[bench.EngineSQLite] {
		r.SQLite = &bench.SQLite{Dir: dir}
		notes = append(notes, "SQLite (modernc.org/sqlite) in WAL mode with colcrypt's own connection settings, file in "+dir)
	}
	notes = append(notes,
		fmt.Sprintf("plan: encrypt t.email, suite %s, iv: %s, workers %d, batch_rows %d; keystore unlocked with the default argon2id cost",
			ps.Suite, ps.IV, ps.Workers, ps.BatchRows),
		"every scenario runs on a freshly loaded, vacuumed and checkpointed table; ratios compare seconds per row",
		"peak RSS and colcrypt CPU are of the whole colcrypt process (rusage after exit); the copy row's seconds are the copy phase alone")

	if o.profile != "" {
		return bench.Profile(ctx, r, o.rows, o.profile)
	}
	if o.colcrypt == "" {
		return fmt.Errorf("--colcrypt: give the built colcrypt binary (go build -o /tmp/colcrypt ./cmd/colcrypt)")
	}
	if r.Colcrypt.Bin, err = filepath.Abs(o.colcrypt); err != nil {
		return err
	}
	start := time.Now()
	if o.scale {
		sizes, err := parseSizes(o.scaleRows)
		if err != nil {
			return err
		}
		points, err := r.Scale(ctx, sizes)
		if err != nil {
			return err
		}
		notes = append(notes, "1-minute load average at the end: "+loadAverage())
		title := fmt.Sprintf("colcrypt scale benchmark: whole apply at %s rows (%s)", o.scaleRows, time.Since(start).Round(time.Second))
		return bench.WriteScale(os.Stdout, title, notes, points)
	}
	load := loadAverage()
	rep, err := r.Compare(ctx, o.rows, o.repeat)
	if err != nil {
		return err
	}
	rep.Title = fmt.Sprintf("colcrypt benchmark: %d rows, SPEC §8 table shape (%s)", o.rows, time.Since(start).Round(time.Second))
	rep.Notes = append(notes, fmt.Sprintf("median of %d run(s) each; 1-minute load average %s before, %s after (2 cores here: other work skews everything)",
		max(o.repeat, 1), load, loadAverage()))
	return rep.Write(os.Stdout)
}

// loadAverage is the 1-minute load average, "?" where unknown.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--scale-rows: %q is not a row count", part)
		}
		out = append(out, n)
	}
	return out, nil
}
