package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/planner"
)

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func TestTargetsVerdicts(t *testing.T) {
	rep := &Report{Measurements: []Measurement{
		{ID: PGUpdate, Rows: 1_000_000, Elapsed: sec(4), Baseline: true},
		{ID: PGCopy, Rows: 1_000_000, Elapsed: sec(4)},    // exactly 1.0 × A: passes
		{ID: PGApply, Rows: 1_000_000, Elapsed: sec(6.4)}, // 1.6 × A: misses 1.5
		{ID: SQLiteApply, Rows: 1_000_000, Elapsed: sec(3)},
		// no SQLite baseline: its target cannot be judged
	}}
	want := map[string]struct {
		verdict string
		ratio   float64
	}{
		PGCopy:      {"PASS", 1.0},
		PGApply:     {"MISS", 1.6},
		SQLiteApply: {"n/a", 0},
	}
	got := rep.Targets()
	if len(got) != len(want) {
		t.Fatalf("got %d targets, want %d", len(got), len(want))
	}
	for _, tg := range got {
		w := want[tg.ID]
		if tg.Verdict() != w.verdict || math.Abs(tg.Ratio-w.ratio) > 1e-9 {
			t.Errorf("%s: %s at %.3f ×, want %s at %.3f ×", tg.Name, tg.Verdict(), tg.Ratio, w.verdict, w.ratio)
		}
	}
}

func TestRatioComparesPerRow(t *testing.T) {
	rep := &Report{Measurements: []Measurement{
		{ID: SQLiteUpdate, Rows: 100_000, Elapsed: sec(1), Baseline: true},
		{ID: PGUpdate, Rows: 100_000, Elapsed: sec(10), Baseline: true},
	}}
	// Twice the rows in three times the time: 1.5 × per row, against the
	// SQLite baseline only, never PostgreSQL's.
	m := Measurement{ID: SQLiteApply, Rows: 200_000, Elapsed: sec(3)}
	got, ok := rep.Ratio(m)
	if !ok || math.Abs(got-1.5) > 1e-9 {
		t.Fatalf("Ratio = %v, %v; want 1.5, true", got, ok)
	}
	if pm := m.PerMillion(); pm != sec(15) {
		t.Errorf("PerMillion = %v, want 15s", pm)
	}
}

func TestReportWrite(t *testing.T) {
	rep := &Report{Title: "title", Measurements: []Measurement{
		{ID: PGUpdate, Label: "A", Rows: 1_000_000, Elapsed: sec(3.8), Baseline: true, ServerCPU: sec(3.5)},
		{ID: PGApply, Label: "colcrypt apply", Rows: 1_000_000, Elapsed: sec(5.7), PeakRSS: 150 << 20, CPU: sec(2),
			Phases: []Phase{{"start-up", sec(1.79)}, {"prepare", sec(0.01)}, {"copy", sec(3.9)}}, Job: sec(3.91)},
		{ID: PGClient, Label: "bare client", Rows: 1_000_000, Elapsed: sec(4.75)},
	}}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"PostgreSQL", "3.80", "1.50", "150", "prepare 0.01 s, copy 3.90 s",
		"PostgreSQL: whole apply ≤ 1.5 × A", "1.50 ×", "PASS", "not measured", "floor 1.25 × (bare client)",
		"phases alone 1.03 ×"} { // (0.01 + 3.9) s of phases against A's 3.8 s
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestTargetsGiveEachRoundsRatio: with several rounds, a target also
// gives each round's ratio to the baseline run of the same round, and in
// how many rounds it was within its limit; the verdict judges the median of
// those ratios, not the ratio of the medians.
func TestTargetsGiveEachRoundsRatio(t *testing.T) {
	run := func(id string, s float64) Measurement {
		return Measurement{ID: id, Label: id, Rows: 1_000_000, Elapsed: sec(s), Baseline: id == PGUpdate || id == SQLiteUpdate}
	}
	rounds := map[string][]Measurement{
		// A run of this machine: A slow in two rounds. The medians give
		// 7.60 / 5.35 = 1.42 (within 1.5), the rounds 1.18, 1.56, 1.71.
		PGUpdate: {run(PGUpdate, 6.11), run(PGUpdate, 5.35), run(PGUpdate, 4.45)},
		PGApply:  {run(PGApply, 7.24), run(PGApply, 8.34), run(PGApply, 7.60)},
		// A SQLite way is compared with SQLite's baseline only.
		SQLiteUpdate: {run(SQLiteUpdate, 2), run(SQLiteUpdate, 2), run(SQLiteUpdate, 2)},
		SQLiteApply:  {run(SQLiteApply, 2), run(SQLiteApply, 3), run(SQLiteApply, 2.5)},
	}
	rep := &Report{Rounds: rounds}
	for _, id := range []string{PGUpdate, PGApply, SQLiteUpdate, SQLiteApply} {
		rep.Measurements = append(rep.Measurements, Median(rounds[id]))
	}
	want := map[string]struct {
		rounds  []float64
		within  int
		verdict string
	}{
		PGCopy:      {nil, 0, "n/a"},
		PGApply:     {[]float64{7.24 / 6.11, 8.34 / 5.35, 7.60 / 4.45}, 1, "MISS"},
		SQLiteApply: {[]float64{1, 1.5, 1.25}, 3, "PASS"},
	}
	for _, tg := range rep.Targets() {
		w := want[tg.ID]
		if len(tg.Rounds) != len(w.rounds) || tg.RoundsWithin() != w.within || tg.Verdict() != w.verdict {
			t.Errorf("%s: rounds %v, %d within, %s; want %v, %d within, %s", tg.Name, tg.Rounds, tg.RoundsWithin(), tg.Verdict(), w.rounds, w.within, w.verdict)
			continue
		}
		for k := range w.rounds {
			if math.Abs(tg.Rounds[k]-w.rounds[k]) > 1e-9 {
				t.Errorf("%s: round %d ratio %.3f, want %.3f", tg.Name, k+1, tg.Rounds[k], w.rounds[k])
			}
		}
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"MISS  rounds 1.18–1.71 ×, median 1.56 ×, within in 1 of 3",
		"rounds 1.00–1.50 ×, median 1.25 ×, within in 3 of 3"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, b.String())
		}
	}
}

func TestMedianKeepsOneRun(t *testing.T) {
	runs := []Measurement{{Elapsed: sec(5), PeakRSS: 5}, {Elapsed: sec(3), PeakRSS: 3}, {Elapsed: sec(4), PeakRSS: 4}, {Elapsed: sec(9), PeakRSS: 9}}
	if m := Median(runs); m.Elapsed != sec(4) || m.PeakRSS != 4 {
		t.Errorf("Median = %v (RSS %d), want the 4s run", m.Elapsed, m.PeakRSS)
	}
	if m := Median(runs[:3]); m.Elapsed != sec(4) {
		t.Errorf("Median of three = %v, want 4s", m.Elapsed)
	}
	if runs[0].Elapsed != sec(5) {
		t.Error("Median reordered its argument")
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{2}, 0},
		{[]float64{100, 110}, 0.10},
		{[]float64{120, 100, 110}, 0.20},
		{[]float64{0, 1}, math.Inf(1)},
	} {
		if got := Spread(tc.in); math.Abs(got-tc.want) > 1e-9 && got != tc.want {
			t.Errorf("Spread(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestScaleChecks(t *testing.T) {
	points := []ScalePoint{
		{Engine: "pg", Rows: 100_000, Job: sec(0.5), Wall: sec(1.5), PeakRSS: 90 << 20},
		{Engine: "pg", Rows: 1_000_000, Job: sec(5), Wall: sec(6), PeakRSS: 150 << 20},
		{Engine: "pg", Rows: 4_000_000, Job: sec(21), Wall: sec(22), PeakRSS: 160 << 20},
		{Engine: "sqlite", Rows: 1_000_000, Job: sec(5), Wall: sec(6), PeakRSS: 150 << 20},
		{Engine: "sqlite", Rows: 4_000_000, Job: sec(30), Wall: sec(31), PeakRSS: 250 << 20},
	}
	got := map[string]string{}
	for _, c := range ScaleChecks(points) {
		got[c.Engine+" "+c.Name] = c.Verdict()
	}
	want := map[string]string{
		// 100k's smaller RSS is not judged: the target starts at 1M rows.
		"pg peak RSS flat ±10% from 1M rows up":               "PASS", // 160/150 = +6.7%
		"pg peak RSS < 200 MB":                                "PASS",
		"pg job cost per row flat ±20%":                       "PASS", // 5.0, 5.0, 5.25 µs
		"pg wall cost per row flat ±20% (incl. start-up)":     "MISS", // 15 µs at 100k
		"sqlite peak RSS flat ±10% from 1M rows up":           "MISS",
		"sqlite peak RSS < 200 MB":                            "MISS",
		"sqlite job cost per row flat ±20%":                   "MISS", // 5.0 → 7.5 µs
		"sqlite wall cost per row flat ±20% (incl. start-up)": "MISS",
		// No CPU measured: not judged.
		"pg CPU per row flat ±20% (load-independent; incl. start-up)":     "n/a",
		"sqlite CPU per row flat ±20% (load-independent; incl. start-up)": "n/a",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got checks %v", got)
	}
	one := ScaleChecks([]ScalePoint{{Engine: "pg", Rows: 100_000, Job: sec(1), Wall: sec(1), PeakRSS: 1}})
	for _, c := range one {
		if strings.Contains(c.Name, "flat") && c.Verdict() != "n/a" {
			t.Errorf("one point: %s is %s, want n/a", c.Name, c.Verdict())
		}
	}
}

func TestParseLogLine(t *testing.T) {
	got := ParseLogLine(`time=2026-01-02T03:04:05.678Z level=INFO msg="phase done" phase=copy detail="a \"quoted\" word" job=abc`)
	want := map[string]string{"time": "2026-01-02T03:04:05.678Z", "level": "INFO", "msg": "phase done",
		"phase": "copy", "detail": `a "quoted" word`, "job": "abc"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestPhaseClock(t *testing.T) {
	lines := []string{
		`time=2026-01-02T03:04:05.000Z level=INFO msg="phase started" phase=prepare job=j`,
		`time=2026-01-02T03:04:05.250Z level=INFO msg="phase done" phase=prepare job=j`,
		`time=2026-01-02T03:04:05.300Z level=INFO msg="phase started" phase=copy job=j`,
		`time=2026-01-02T03:04:06.000Z level=INFO msg=progress phase="copy public.t" rows=10`,
		`time=2026-01-02T03:04:09.300Z level=INFO msg="phase done" phase=copy job=j`,
		`time=2026-01-02T03:04:09.400Z level=INFO msg="phase started" phase=verify job=j`, // never finished
		`not a log line`,
	}
	var c PhaseClock
	for _, l := range lines {
		c.Observe(l, time.Time{})
	}
	got := FormatPhases(c.Phases())
	if want := "prepare 0.25 s, copy 4.00 s"; got != want {
		t.Errorf("phases %q, want %q", got, want)
	}
	if c.Job() != sec(4.3) {
		t.Errorf("Job = %v, want 4.3s", c.Job())
	}
}

// TestPlanYAMLIsAValidPlan parses the generated plan as colcrypt would.
func TestPlanYAMLIsAValidPlan(t *testing.T) {
	t.Setenv(dsnVariable, "/tmp/x.db")
	dir := t.TempDir()
	ks := filepath.Join(dir, "bench.keystore")
	text := PlanYAML("sqlite", "t", ks, PlanSettings{Suite: "aes-256-cbc", IV: "field", Workers: 2, BatchRows: 5000})
	path := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := planner.Load(path)
	if err != nil {
		t.Fatalf("generated plan does not load: %v\n%s", err, text)
	}
	if p.Database.DSN != "/tmp/x.db" || p.Job.Workers != 2 || p.Job.BatchRows != 5000 {
		t.Errorf("plan: dsn %q, workers %d, batch_rows %d", p.Database.DSN, p.Job.Workers, p.Job.BatchRows)
	}
	if len(p.Tables) != 1 || len(p.Tables[0].Columns) != 1 || p.Tables[0].Columns[0].Name != "email" ||
		string(p.Tables[0].Columns[0].Suite) != "aes-256-cbc" {
		t.Errorf("plan tables: %+v", p.Tables)
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "colcrypt_bench_a")
	if err != nil || got != "postgres://postgres@127.0.0.1:5432/colcrypt_bench_a?sslmode=disable" {
		t.Errorf("URL form: %q, %v", got, err)
	}
	got, err = withDatabase("host=/tmp user=postgres", "x")
	if err != nil || got != "host=/tmp user=postgres dbname=x" {
		t.Errorf("keyword form: %q, %v", got, err)
	}
}

func TestScaleChecksCPU(t *testing.T) {
	points := []ScalePoint{
		// Wall time doubles per row under a busy spell; CPU per row stays
		// within 20%, which is what the CPU check judges.
		{Engine: "pg", Rows: 100_000, Job: sec(1), Wall: sec(1.2), CPU: sec(1.1), PeakRSS: 100 << 20},
		{Engine: "pg", Rows: 1_000_000, Job: sec(20), Wall: sec(21), CPU: sec(10), PeakRSS: 100 << 20},
	}
	for _, c := range ScaleChecks(points) {
		want := ""
		switch {
		case strings.HasPrefix(c.Name, "CPU per row"):
			want = "PASS" // 11 and 10 µs: +10%
		case strings.HasPrefix(c.Name, "job cost"), strings.HasPrefix(c.Name, "wall cost"):
			want = "MISS"
		default:
			continue
		}
		if c.Verdict() != want {
			t.Errorf("%s: %s (%s), want %s", c.Name, c.Verdict(), c.Detail, want)
		}
	}
}

// TestFixedCostSaysWhatTheToleranceAllows: a job of 7 µs per row plus
// 0.4 s, measured at 100k and 4M rows, splits back into those two parts,
// and ±20% between those sizes allows 0.2·7 µs / (1/100k − 1.2/4M) ≈
// 0.144 s of fixed cost: the fit shows why such a job misses the target.
func TestFixedCostSaysWhatTheToleranceAllows(t *testing.T) {
	job := func(rows int64) time.Duration { return sec(7e-6*float64(rows) + 0.4) }
	points := []ScalePoint{
		{Engine: "pg", Rows: 1_000_000, Job: job(1_000_000)},
		{Engine: "pg", Rows: 100_000, Job: job(100_000)},
		{Engine: "pg", Rows: 4_000_000, Job: job(4_000_000)},
		{Engine: "sqlite", Rows: 1_000_000, Job: sec(5)},
	}
	v, f, a, ok := FixedCost(points, "pg")
	near := func(got, want float64) bool { return math.Abs(got-want) <= 1e-6*math.Abs(want) }
	if !ok || !near(v, 7e-6) || !near(f, 0.4) || !near(a, 1.4e-6/9.7e-6) {
		t.Errorf("FixedCost = %g s/row, %g s fixed, %g s allowed, %t; want 7e-06, 0.4, 0.144, true", v, f, a, ok)
	}
	if _, _, _, ok := FixedCost(points, "sqlite"); ok {
		t.Error("one table size gives no fit")
	}
	for _, c := range ScaleChecks(points) {
		if c.Engine == "pg" && strings.HasPrefix(c.Name, "job cost per row") {
			if want := "fitted: 7.00 µs/row + 0.40 s fixed, and ±20% allows at most 0.14 s fixed"; !strings.Contains(c.Detail, want) || c.Pass {
				t.Errorf("job cost check: %q, pass %t; want a MISS whose detail holds %q", c.Detail, c.Pass, want)
			}
		}
	}
}
