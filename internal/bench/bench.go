// Package bench measures colcrypt against the baselines of SPEC §8, side by
// side in one run: a plain server-side UPDATE rewriting the column (the
// denominator of every ratio), pgcrypto's encrypt_iv, and the built colcrypt
// binary's copy phase and whole apply, on PostgreSQL and SQLite; and how
// colcrypt's memory and cost per row scale with the table's size. It owns
// the scenarios, the subprocess accounting (peak RSS, CPU) and the report;
// scripts/bench starts the throwaway PostgreSQL and runs cmd/bench.
package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Engines a run can measure.
const (
	EnginePostgres = "pg"
	EngineSQLite   = "sqlite"
)

// Runner holds what every scenario needs.
type Runner struct {
	Plan     PlanSettings
	Colcrypt *Colcrypt
	Fixture  *Fixture
	Postgres *Postgres // nil: PostgreSQL is not measured
	SQLite   *SQLite   // nil: SQLite is not measured
	Log      io.Writer // one line per finished scenario
	// Ways, when not empty, limits Compare to these ways (WayNames: the
	// part of the measurement ID after the dot).
	Ways map[string]bool
}

// WayNames are the ways Compare can measure, as --ways names them.
var WayNames = []string{"update", "pgcrypto", "client", "rebuild", "gocall", "copy", "apply"}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "bench: "+format+"\n", args...)
	}
}

// Compare measures every way of rewriting email on a table of rows rows.
// With repeat > 1 the ways run round-robin that many times, each on a fresh
// table, and each way keeps its run with the median time: the machine may
// be shared, and interleaving spreads a busy spell over all the ways.
func (r *Runner) Compare(ctx context.Context, rows int64, repeat int) (*Report, error) {
	type way struct {
		id  string
		run func() (Measurement, error)
	}
	var ways []way
	if p := r.Postgres; p != nil {
		ways = append(ways,
			way{PGUpdate, func() (Measurement, error) {
				return p.Statement(ctx, PGUpdate, "A: UPDATE t SET copy = convert_to(email,'UTF8')", rows, pgUpdateSQL,
					"ALTER TABLE t ADD COLUMN copy bytea")
			}},
			way{PGPgcrypto, func() (Measurement, error) {
				return p.Statement(ctx, PGPgcrypto, "pgcrypto encrypt_iv aes-cbc/pad:pkcs, random IV", rows, pgPgcryptoSQL,
					"CREATE EXTENSION IF NOT EXISTS pgcrypto", "ALTER TABLE t ADD COLUMN copy bytea")
			}},
			way{PGClient, func() (Measurement, error) { return p.Client(ctx, rows) }},
			way{PGRebuild, func() (Measurement, error) { return p.Rebuild(ctx, rows) }},
			way{PGCopy, func() (Measurement, error) {
				res, err := p.Colcrypt(ctx, r.Colcrypt, r.Fixture, r.Plan, "copy", rows, "--until", "copy")
				if err != nil {
					return Measurement{}, err
				}
				return copyMeasurement(PGCopy, rows, res)
			}},
			way{PGApply, func() (Measurement, error) {
				res, err := p.Colcrypt(ctx, r.Colcrypt, r.Fixture, r.Plan, "apply", rows)
				if err != nil {
					return Measurement{}, err
				}
				return applyMeasurement(PGApply, rows, res), nil
			}})
	}
	if s := r.SQLite; s != nil {
		ways = append(ways,
			way{SQLiteUpdate, func() (Measurement, error) { return s.Update(ctx, rows) }},
			way{SQLiteGoCall, func() (Measurement, error) { return s.GoCall(ctx, rows) }},
			way{SQLiteCopy, func() (Measurement, error) {
				res, err := s.Colcrypt(ctx, r.Colcrypt, r.Fixture, r.Plan, "copy", rows, "--until", "copy")
				if err != nil {
					return Measurement{}, err
				}
				return copyMeasurement(SQLiteCopy, rows, res)
			}},
			way{SQLiteApply, func() (Measurement, error) {
				res, err := s.Colcrypt(ctx, r.Colcrypt, r.Fixture, r.Plan, "apply", rows)
				if err != nil {
					return Measurement{}, err
				}
				return applyMeasurement(SQLiteApply, rows, res), nil
			}})
	}
	var chosen []way
	for _, w := range ways {
		if _, name, _ := strings.Cut(w.id, "."); len(r.Ways) == 0 || r.Ways[name] {
			chosen = append(chosen, w)
		}
	}
	runs := make([][]Measurement, len(chosen))
	for range max(repeat, 1) {
		for i, w := range chosen {
			m, err := w.run()
			if err != nil {
				return nil, err
			}
			r.logf("%-8s %-55s %8.2f s", Engine(m.ID), m.Label, m.Elapsed.Seconds())
			runs[i] = append(runs[i], m)
		}
	}
	rep := &Report{Rounds: map[string][]Measurement{}}
	for i, ms := range runs {
		rep.Measurements = append(rep.Measurements, Median(ms))
		rep.Rounds[chosen[i].id] = ms
	}
	return rep, nil
}

// copyMeasurement is the copy phase alone, as colcrypt's log times it.
func copyMeasurement(id string, rows int64, res *RunResult) (Measurement, error) {
	d, ok := res.Phase("copy")
	if !ok {
		return Measurement{}, fmt.Errorf("%s: colcrypt's log (%s) has no finished copy phase", id, res.LogPath)
	}
	return Measurement{ID: id, Label: "colcrypt copy phase (apply --until copy)", Rows: rows, Elapsed: d,
		PeakRSS: res.PeakRSS, CPU: res.CPU, ServerCPU: res.ServerCPU, Phases: res.Phases}, nil
}

// applyMeasurement is the whole colcrypt process: start-up, keystore
// unlock, planning and every phase.
func applyMeasurement(id string, rows int64, res *RunResult) Measurement {
	return Measurement{ID: id, Label: "colcrypt apply, whole process", Rows: rows, Elapsed: res.Wall,
		PeakRSS: res.PeakRSS, CPU: res.CPU, ServerCPU: res.ServerCPU, Phases: res.Phases, Job: res.Job}
}

// Scale runs the whole apply at each size on each engine.
func (r *Runner) Scale(ctx context.Context, sizes []int64) ([]ScalePoint, error) {
	var points []ScalePoint
	add := func(engine string, rows int64, res *RunResult) {
		points = append(points, ScalePoint{Engine: engine, Rows: rows, Wall: res.Wall, Job: res.Job, PeakRSS: res.PeakRSS,
			CPU: res.CPU + res.ServerCPU})
		r.logf("scale %-6s %9d rows: wall %.2f s, job %.2f s, peak RSS %.0f MB", engine, rows,
			res.Wall.Seconds(), res.Job.Seconds(), MB(res.PeakRSS))
	}
	for _, n := range sizes {
		if p := r.Postgres; p != nil {
			res, err := p.Colcrypt(ctx, r.Colcrypt, r.Fixture, r.Plan, "scale", n)
			if err != nil {
				return points, err
			}
			add(EnginePostgres, n, res)
		}
		if s := r.SQLite; s != nil {
			res, err := s.Colcrypt(ctx, r.Colcrypt, r.Fixture, r.Plan, "scale", n)
			if err != nil {
				return points, err
			}
			add(EngineSQLite, n, res)
		}
	}
	return points, nil
}
