package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/postgres" // registers the postgres engine
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// Profile runs colcrypt's job in this process, through the library as
// `colcrypt apply --until copy` and then `--until verify` do, under the CPU
// profiler: two profiles per engine, written to dir as
// cpu-<engine>-copy.pprof (prepare and copy) and cpu-<engine>-verify.pprof.
func Profile(ctx context.Context, r *Runner, rows int64, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if p := r.Postgres; p != nil {
		dsn, db, drop, err := p.database(ctx, "profile")
		if err != nil {
			return err
		}
		defer drop()
		if err := p.load(ctx, db, rows); err != nil {
			return err
		}
		plan, err := r.Fixture.WritePlan("pg-profile", "postgres", "public."+benchTable, r.Plan)
		if err != nil {
			return err
		}
		if err := r.profileJob(ctx, plan, dsn, filepath.Join(dir, "cpu-pg")); err != nil {
			return err
		}
	}
	if s := r.SQLite; s != nil {
		path, drop, err := s.database(ctx, "profile", rows)
		if err != nil {
			return err
		}
		defer drop()
		plan, err := r.Fixture.WritePlan("sqlite-profile", "sqlite", benchTable, r.Plan)
		if err != nil {
			return err
		}
		if err := r.profileJob(ctx, plan, path, filepath.Join(dir, "cpu-sqlite")); err != nil {
			return err
		}
	}
	return nil
}

// profileJob profiles the phases up to copy, then verify, each into
// prefix-<phase>.pprof, and reports what each allocated (the job runs in
// this process, under Go's default collector settings rather than
// colcrypt's).
func (r *Runner) profileJob(ctx context.Context, planPath, dsn, prefix string) error {
	if err := os.Setenv(dsnVariable, dsn); err != nil {
		return err
	}
	p, err := planner.Load(planPath)
	if err != nil {
		return err
	}
	d, err := dialect.Get(p.Database.Engine)
	if err != nil {
		return err
	}
	db, err := d.Open(ctx, d.ResolveDSN(p.Database.DSN, p.Dir))
	if err != nil {
		return err
	}
	defer db.Close()
	ks, err := keystore.Open(r.Fixture.Keystore, keystore.Secret{Passphrase: []byte(benchPassphrase)})
	if err != nil {
		return err
	}
	for _, until := range []string{"copy", "verify"} {
		var logBuf bytes.Buffer
		e, err := migrate.New(p, d, db, ks, migrate.Options{Until: until, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
		if err != nil {
			return err
		}
		out := prefix + "-" + until + ".pprof"
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		_, err = e.Apply(ctx)
		wall := time.Since(start)
		runtime.ReadMemStats(&m1)
		pprof.StopCPUProfile()
		f.Close()
		if err != nil {
			return fmt.Errorf("apply --until %s in process: %w", until, err)
		}
		// Where the bytes were allocated (go tool pprof -sample_index=alloc_space):
		// the counts are since the process started, so the copy's file
		// includes the start-up's few and the verify's the copy's.
		if err := writeAllocs(prefix + "-" + until + "-allocs.pprof"); err != nil {
			return err
		}
		clock := &PhaseClock{}
		sc := bufio.NewScanner(&logBuf)
		for sc.Scan() {
			clock.Observe(sc.Text(), time.Now())
		}
		r.logf("profile %s --until %s: %.2f s (%s); %.1f M allocations, %.0f MB allocated, %d collections; go tool pprof -top %s",
			p.Database.Engine, until, wall.Seconds(), FormatPhases(clock.Phases()),
			float64(m1.Mallocs-m0.Mallocs)/1e6, float64(m1.TotalAlloc-m0.TotalAlloc)/1e6, m1.NumGC-m0.NumGC, out)
	}
	return nil
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
