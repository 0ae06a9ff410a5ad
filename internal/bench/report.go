package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Measurement IDs: each names one way of rewriting the column on one
// engine. The targets below refer to them.
const (
	PGUpdate     = "pg.update"
	PGPgcrypto   = "pg.pgcrypto"
	PGCopy       = "pg.copy"
	PGApply      = "pg.apply"
	SQLiteUpdate = "sqlite.update"
	SQLiteCopy   = "sqlite.copy"
	SQLiteApply  = "sqlite.apply"
)

// Measurement is one timed way of rewriting the column.
type Measurement struct {
	ID      string // one of the IDs above
	Label   string // the row's name in the table
	Rows    int64
	Elapsed time.Duration
	// Baseline marks the denominator of the ratios of this measurement's
	// engine (the plain server-side UPDATE).
	Baseline bool
	// PeakRSS (bytes) and CPU (user + system) of the colcrypt process;
	// zero for statements timed on the server.
	PeakRSS int64
	CPU     time.Duration
	// ServerCPU is the CPU time the PostgreSQL server used meanwhile
	// (every backend and background process), 0 when not measured.
	ServerCPU time.Duration
	// Phases are colcrypt's phase durations, as its log reports them.
	Phases []Phase
	// Job is the time from colcrypt's first phase starting to its last
	// one ending, for a measurement of the whole process; 0 otherwise.
	Job time.Duration
}

// Engine is the engine a measurement ID belongs to: "pg" or "sqlite".
func Engine(id string) string {
	e, _, _ := strings.Cut(id, ".")
	return e
}

// PerMillion is the time the measurement would take for 1,000,000 rows at
// the same cost per row.
func (m Measurement) PerMillion() time.Duration {
	if m.Rows <= 0 {
		return 0
	}
	return time.Duration(float64(m.Elapsed) * 1e6 / float64(m.Rows))
}

// Median returns the run with the median time (the lower middle one of an
// even count), so that its other figures (RSS, CPU, phases) belong to the
// same run.
func Median(runs []Measurement) Measurement {
	if len(runs) == 0 {
		return Measurement{}
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b Measurement) int { return cmp.Compare(a.Elapsed, b.Elapsed) })
	return sorted[(len(sorted)-1)/2]
}

// Phase is one of colcrypt's job phases with its duration.
type Phase struct {
	Name    string
	Elapsed time.Duration
}

// Report is the outcome of one side-by-side run.
type Report struct {
	Title        string   // what was measured, on what
	Notes        []string // settings worth knowing when reading the numbers
	Measurements []Measurement
	// Rounds are every run of each way by ID, in the order of the
	// round-robin: run k of every way belongs to round k. Measurements
	// holds each way's median run.
	Rounds map[string][]Measurement
}

// RoundRatios are the ratios of a way's runs to its engine's baseline run
// of the same round. On a shared machine a busy spell slows the runs of
// one round together, so these pairs vary less than runs far apart, and
// their spread shows how far one run's verdict can be trusted.
func (r *Report) RoundRatios(id string) []float64 {
	runs := r.Rounds[id]
	for bid, base := range r.Rounds {
		if len(base) == 0 || !base[0].Baseline || Engine(bid) != Engine(id) {
			continue
		}
		var out []float64
		for k := range min(len(runs), len(base)) {
			if base[k].Elapsed > 0 {
				out = append(out, perRow(runs[k])/perRow(base[k]))
			}
		}
		return out
	}
	return nil
}

// Find returns the measurement with the ID, or nil.
func (r *Report) Find(id string) *Measurement {
	for i := range r.Measurements {
		if r.Measurements[i].ID == id {
			return &r.Measurements[i]
		}
	}
	return nil
}

// Ratio is m's time over the baseline of its engine; ok is false when the
// baseline was not measured.
func (r *Report) Ratio(m Measurement) (ratio float64, ok bool) {
	for _, b := range r.Measurements {
		if b.Baseline && Engine(b.ID) == Engine(m.ID) && b.Elapsed > 0 {
			return perRow(m) / perRow(b), true
		}
	}
	return 0, false
}

// perRow compares measurements taken on tables of different sizes fairly.
func perRow(m Measurement) float64 {
	if m.Rows <= 0 {
		return float64(m.Elapsed)
	}
	return float64(m.Elapsed) / float64(m.Rows)
}

// Target is one of SPEC §8's ratio targets.
type Target struct {
	Name     string  // as SPEC §8 words it
	ID       string  // the measurement it limits
	Limit    float64 // the largest ratio to its engine's baseline that passes
	Ratio    float64 // measured
	Measured bool    // both sides were measured
	// Floor, when set, is the measurement of a way that does less than
	// colcrypt and that colcrypt cannot beat (floor.go): its ratio shows
	// whether the target is reachable by an in-place rewrite at all.
	Floor         string
	FloorRatio    float64
	FloorMeasured bool
	// JobRatio is the ratio of the measurement's phases alone (prepare
	// to cut-over, SPEC §4's job, without process start-up, keystore
	// unlock and planning), when its log timed them; 0 otherwise.
	JobRatio float64
	// Rounds are the ratios of each round (Report.RoundRatios), when
	// there were several.
	Rounds []float64
}

// RoundsWithin counts the rounds whose ratio is within the limit.
func (t Target) RoundsWithin() int {
	n := 0
	for _, x := range t.Rounds {
		if x <= t.Limit {
			n++
		}
	}
	return n
}

// Judged is the ratio the verdict compares with the limit: with several
// rounds the median of the rounds' ratios, each against the baseline run
// of the same round; with one, the ratio of the runs. The ratio of the
// two sides' medians pairs runs from different rounds, so one slow
// baseline run can carry it: in one run the PostgreSQL apply's medians
// gave 1.42 × (a pass) while its rounds gave 1.18, 1.56 and 1.71 ×.
func (t Target) Judged() float64 {
	if len(t.Rounds) < 2 {
		return t.Ratio
	}
	r := slices.Sorted(slices.Values(t.Rounds))
	n := len(r)
	return (r[(n-1)/2] + r[n/2]) / 2
}

// Verdict is PASS, MISS, or "n/a" when the target was not measured.
func (t Target) Verdict() string {
	switch {
	case !t.Measured:
		return "n/a"
	case t.Judged() <= t.Limit:
		return "PASS"
	}
	return "MISS"
}

// specTargets are SPEC §8's ratio targets.
var specTargets = []Target{
	{Name: "PostgreSQL: copy phase ≤ 1.0 × A", ID: PGCopy, Limit: 1.0, Floor: PGClient},
	{Name: "PostgreSQL: whole apply ≤ 1.5 × A", ID: PGApply, Limit: 1.5, Floor: PGRebuild},
	{Name: "SQLite: whole apply ≤ 1.5 × its UPDATE", ID: SQLiteApply, Limit: 1.5, Floor: SQLiteGoCall},
}

// Targets evaluates SPEC §8's ratio targets against the report.
func (r *Report) Targets() []Target {
	out := make([]Target, 0, len(specTargets))
	for _, t := range specTargets {
		if m := r.Find(t.ID); m != nil {
			t.Ratio, t.Measured = r.Ratio(*m)
			if m.Job > 0 {
				job := *m
				job.Elapsed = m.Job
				t.JobRatio, _ = r.Ratio(job)
			}
		}
		if f := r.Find(t.Floor); f != nil {
			t.FloorRatio, t.FloorMeasured = r.Ratio(*f)
		}
		if rounds := r.RoundRatios(t.ID); len(rounds) > 1 {
			t.Rounds = rounds
		}
		out = append(out, t)
	}
	return out
}

// Write prints the report: one table of measurements grouped by engine,
// colcrypt's phase breakdown, then the targets.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	if r.Title != "" {
		fmt.Fprintln(&b, r.Title)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(&b, "  "+n)
	}
	b.WriteString("\n")
	// Labels are padded to one width, so that in the right-aligned table
	// they read left-aligned.
	width := len("way")
	for _, m := range r.Measurements {
		width = max(width, utf8.RuneCountInString(m.Label)+2)
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) }
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, pad("way")+"\trows\tseconds\ts per 1M rows\t× baseline\tpeak RSS MB\tcolcrypt CPU s\tserver CPU s\t")
	engine := ""
	for _, m := range r.Measurements {
		if e := Engine(m.ID); e != engine {
			engine = e
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\n", pad(engineTitle(e)))
		}
		ratio := "–"
		if x, ok := r.Ratio(m); ok {
			ratio = fmt.Sprintf("%.2f", x)
		}
		rss := "–"
		if m.PeakRSS > 0 {
			rss = fmt.Sprintf("%.0f", MB(m.PeakRSS))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t\n", pad("  "+m.Label), m.Rows, m.Elapsed.Seconds(), m.PerMillion().Seconds(),
			ratio, rss, seconds(m.CPU), seconds(m.ServerCPU))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range r.Measurements {
		if len(m.Phases) > 0 {
			fmt.Fprintf(&b, "\n%s %s: %s\n", engineTitle(Engine(m.ID)), m.Label, FormatPhases(m.Phases))
		}
	}
	b.WriteString("\nSPEC §8 targets (ratios per row, measured side by side in this run: the ratio of the medians; \"rounds\" gives\n" +
		"each round's ratio to the baseline run of the same round, and with several rounds the verdict judges their median):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets() {
		got := "not measured"
		if t.Measured {
			got = fmt.Sprintf("%.2f ×", t.Ratio)
		}
		floor := ""
		if t.FloorMeasured {
			floor = fmt.Sprintf("floor %.2f × (%s)", t.FloorRatio, r.Find(t.Floor).Label)
		}
		job := ""
		if t.JobRatio > 0 {
			job = fmt.Sprintf("phases alone %.2f ×", t.JobRatio)
		}
		rounds := ""
		if len(t.Rounds) > 1 {
			rounds = fmt.Sprintf("rounds %.2f–%.2f ×, median %.2f ×, within in %d of %d", slices.Min(t.Rounds), slices.Max(t.Rounds),
				t.Judged(), t.RoundsWithin(), len(t.Rounds))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", t.Name, got, t.Verdict(), rounds, job, floor)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// seconds formats a CPU time, "–" when it was not measured.
func seconds(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", d.Seconds())
}

func engineTitle(e string) string {
	switch e {
	case "pg":
		return "PostgreSQL"
	case "sqlite":
		return "SQLite"
	}
	return e
}

// FormatPhases lists phases with their seconds: "prepare 0.01 s, copy 3.20 s".
func FormatPhases(phases []Phase) string {
	parts := make([]string, len(phases))
	for i, p := range phases {
		parts[i] = fmt.Sprintf("%s %.2f s", p.Name, p.Elapsed.Seconds())
	}
	return strings.Join(parts, ", ")
}

// MB converts bytes to mebibytes.
func MB(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// ScalePoint is one full apply at one table size.
type ScalePoint struct {
	Engine  string // "pg" or "sqlite"
	Rows    int64
	Wall    time.Duration // the colcrypt process, start to exit
	Job     time.Duration // first phase started to last phase done
	PeakRSS int64
	// CPU is colcrypt's CPU time plus, on PostgreSQL, the server's: unlike
	// wall time it hardly changes when other work shares the machine.
	CPU time.Duration
}

// Scale targets of SPEC §8.
const (
	// RSSFlatTolerance: peak RSS "the same ±10% at 1M and 4M rows".
	RSSFlatTolerance = 0.10
	// RSSLimitBytes: "under 200 MB with default settings".
	RSSLimitBytes = 200 << 20
	// CostFlatTolerance: cost per row "constant from 100k to 4M rows (±20%)".
	CostFlatTolerance = 0.20
	// rssFromRows: the RSS target compares table sizes from 1M rows up;
	// smaller tables fit in memory either way.
	rssFromRows = 1_000_000
)

// Spread is max/min − 1 of the values: 0 when they are all equal. Every
// value is then within ±Spread of every other one.
func Spread(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo <= 0 {
		return math.Inf(1)
	}
	return hi/lo - 1
}

// ScaleCheck is one scale target evaluated for one engine.
type ScaleCheck struct {
	Engine   string
	Name     string
	Detail   string // the values it was judged on
	Pass     bool
	Measured bool
}

// Verdict is PASS, MISS or "n/a".
func (c ScaleCheck) Verdict() string {
	switch {
	case !c.Measured:
		return "n/a"
	case c.Pass:
		return "PASS"
	}
	return "MISS"
}

// ScaleChecks evaluates SPEC §8's memory and cost-per-row targets per
// engine. Cost per row is judged on the job's own time (phases), which
// leaves out the fixed start-up (argon2id keystore unlock, planning); the
// process's wall time is shown next to it.
func ScaleChecks(points []ScalePoint) []ScaleCheck {
	var out []ScaleCheck
	for _, engine := range enginesOf(points) {
		var rss, jobCost, wallCost, cpuCost []float64
		var rssDetail, costDetail []string
		maxRSS := int64(0)
		for _, p := range points {
			if p.Engine != engine {
				continue
			}
			maxRSS = max(maxRSS, p.PeakRSS)
			if p.Rows >= rssFromRows {
				rss = append(rss, float64(p.PeakRSS))
				rssDetail = append(rssDetail, fmt.Sprintf("%s: %.0f MB", rowsLabel(p.Rows), MB(p.PeakRSS)))
			}
			if p.Rows > 0 {
				jobCost = append(jobCost, float64(p.Job)/float64(p.Rows))
				wallCost = append(wallCost, float64(p.Wall)/float64(p.Rows))
				cpuCost = append(cpuCost, float64(p.CPU)/float64(p.Rows))
				costDetail = append(costDetail, fmt.Sprintf("%s: %.2f µs", rowsLabel(p.Rows), float64(p.Job.Nanoseconds())/float64(p.Rows)/1e3))
			}
		}
		flat := Spread(rss)
		out = append(out,
			ScaleCheck{Engine: engine, Name: fmt.Sprintf("peak RSS flat ±%.0f%% from 1M rows up", RSSFlatTolerance*100),
				Detail:   fmt.Sprintf("%s (spread %.1f%%)", strings.Join(rssDetail, ", "), flat*100),
				Measured: len(rss) >= 2, Pass: flat <= RSSFlatTolerance},
			ScaleCheck{Engine: engine, Name: fmt.Sprintf("peak RSS < %d MB", RSSLimitBytes>>20),
				Detail:   fmt.Sprintf("max %.0f MB", MB(maxRSS)),
				Measured: maxRSS > 0, Pass: maxRSS < RSSLimitBytes},
			ScaleCheck{Engine: engine, Name: fmt.Sprintf("job cost per row flat ±%.0f%%", CostFlatTolerance*100),
				Detail:   fmt.Sprintf("%s (spread %.1f%%)%s", strings.Join(costDetail, ", "), Spread(jobCost)*100, fitOf(points, engine)),
				Measured: len(jobCost) >= 2, Pass: Spread(jobCost) <= CostFlatTolerance},
			ScaleCheck{Engine: engine, Name: fmt.Sprintf("wall cost per row flat ±%.0f%% (incl. start-up)", CostFlatTolerance*100),
				Detail:   fmt.Sprintf("spread %.1f%%", Spread(wallCost)*100),
				Measured: len(wallCost) >= 2, Pass: Spread(wallCost) <= CostFlatTolerance},
			ScaleCheck{Engine: engine, Name: fmt.Sprintf("CPU per row flat ±%.0f%% (load-independent; incl. start-up)", CostFlatTolerance*100),
				Detail:   fmt.Sprintf("spread %.1f%%", Spread(cpuCost)*100),
				Measured: len(cpuCost) >= 2 && cpuCost[0] > 0, Pass: Spread(cpuCost) <= CostFlatTolerance},
		)
	}
	return out
}

// FixedCost splits an engine's job time into a cost per row and a fixed
// part, in seconds, on a line through its smallest and largest tables:
// job = perRow × rows + fixed. allowed is the largest fixed part that
// would keep the cost per row of those two sizes within
// CostFlatTolerance of each other at this cost per row (+Inf when any
// would). ok is false without two sizes or with a job that did not grow
// with its rows.
func FixedCost(points []ScalePoint, engine string) (perRow, fixed, allowed float64, ok bool) {
	var small, large *ScalePoint
	for i := range points {
		p := &points[i]
		if p.Engine != engine || p.Rows <= 0 {
			continue
		}
		if small == nil || p.Rows < small.Rows {
			small = p
		}
		if large == nil || p.Rows > large.Rows {
			large = p
		}
	}
	if small == nil || large.Rows == small.Rows {
		return 0, 0, 0, false
	}
	perRow = (large.Job - small.Job).Seconds() / float64(large.Rows-small.Rows)
	if perRow <= 0 {
		return 0, 0, 0, false
	}
	fixed = small.Job.Seconds() - perRow*float64(small.Rows)
	// perRow + F/small <= (1+tol)(perRow + F/large)
	//   ⇔ F <= tol·perRow / (1/small − (1+tol)/large)
	allowed = math.Inf(1)
	if room := 1/float64(small.Rows) - (1+CostFlatTolerance)/float64(large.Rows); room > 0 {
		allowed = CostFlatTolerance * perRow / room
	}
	return perRow, fixed, allowed, true
}

// fitOf describes FixedCost for a check's detail, or "".
func fitOf(points []ScalePoint, engine string) string {
	v, f, a, ok := FixedCost(points, engine)
	if !ok {
		return ""
	}
	return fmt.Sprintf("; fitted: %.2f µs/row + %.2f s fixed, and ±%.0f%% allows at most %.2f s fixed",
		v*1e6, f, CostFlatTolerance*100, a)
}

func enginesOf(points []ScalePoint) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range points {
		if !seen[p.Engine] {
			seen[p.Engine] = true
			out = append(out, p.Engine)
		}
	}
	return out
}

// rowsLabel writes a row count the way people say it: 100k, 1M, 4M.
func rowsLabel(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

// WriteScale prints the scale points and the scale targets.
func WriteScale(w io.Writer, title string, notes []string, points []ScalePoint) error {
	var b strings.Builder
	fmt.Fprintln(&b, title)
	for _, n := range notes {
		fmt.Fprintln(&b, "  "+n)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\trows\twall s\tjob s\twall µs/row\tjob µs/row\tCPU µs/row\tpeak RSS MB\t")
	for _, p := range points {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t\n", engineTitle(p.Engine), rowsLabel(p.Rows),
			p.Wall.Seconds(), p.Job.Seconds(), micros(p.Wall, p.Rows), micros(p.Job, p.Rows), micros(p.CPU, p.Rows), MB(p.PeakRSS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\nSPEC §8 scale targets:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range ScaleChecks(points) {
		fmt.Fprintf(tw, "  %s: %s\t%s\t%s\n", engineTitle(c.Engine), c.Name, c.Detail, c.Verdict())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func micros(d time.Duration, rows int64) float64 {
	if rows <= 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / float64(rows) / 1e3
}
