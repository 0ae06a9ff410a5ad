package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Report is the dry run of a plan: per table the sizing and the findings,
// the foreign-key groups, and totals. Its JSON form is SPEC §5's
// `plan --format json` object.
type Report struct {
	Engine string         `json:"engine"`
	Tables []*TableReport `json:"tables"`
	Totals Totals         `json:"totals"`
	// Groups are the planned tables in foreign-key groups, in the order the
	// job processes them (see Groups).
	Groups [][]string `json:"groups"`
	// Job is the plan's own job when one is under way (Options.Job).
	Job *JobInProgress `json:"job,omitempty"`
}

// Totals sum the tables.
type Totals struct {
	BytesNow   int64 `json:"bytes_now"`
	BytesAfter int64 `json:"bytes_after"`
	BytesPeak  int64 `json:"bytes_peak"`
	Blockers   int   `json:"blockers"`
	Actions    int   `json:"actions"`
	Warnings   int   `json:"warnings"`
}

// TableReport is one planned table.
type TableReport struct {
	Name  string        `json:"name"` // as written in the plan
	Table *schema.Table `json:"-"`
	// Key is the usable key the job pages by; nil when the engine pages by
	// a row id (colcrypt_row_id, or the engine's own).
	Key []string `json:"-"`

	Rows int64 `json:"rows"`
	// Measured is false when Analyze with BlockersOnly did not read the
	// table's rows (no measurement could find a blocker); every measured
	// field is then 0. A read with BlockersOnly may fill only Rows and the
	// columns' Rows and MaxPlainBytes (measureLongest).
	Measured bool `json:"-"`
	// BytesNow is the stored bytes of every column of every row; BytesAfter
	// the same after cut-over (planned plaintext replaced by ciphertext and
	// IVs); BytesPeak while the job runs, when plaintext, ciphertext, IVs and
	// the row id coexist.
	BytesNow   int64 `json:"bytes_now"`
	BytesAfter int64 `json:"bytes_after"`
	BytesPeak  int64 `json:"bytes_peak"`
	// The longest row today, after cut-over and during the job, in bytes.
	MaxRowBytesNow    int64 `json:"max_row_bytes_now"`
	MaxRowBytesAfter  int64 `json:"max_row_bytes_after"`
	MaxRowBytesDuring int64 `json:"max_row_bytes_during"`
	// RowLimit is the engine's in-row limit, 0 where it has none;
	// OffendingRows the rows that would exceed it during the job.
	RowLimit      int64           `json:"row_limit"`
	OffendingRows int64           `json:"offending_rows"`
	Columns       []*ColumnReport `json:"columns"`
	Findings      []Finding       `json:"findings"`
}

// ColumnReport is one planned column.
type ColumnReport struct {
	Name       string `json:"name"`
	SourceType string `json:"source_type"`
	Suite      string `json:"suite"`
	IV         string `json:"iv"`
	Rows       int64  `json:"rows"`
	Nulls      int64  `json:"nulls"`
	BytesNow   int64  `json:"bytes_now"`
	// CiphertextType is the type of the ciphertext column, sized for the
	// longest value the source type can hold.
	CiphertextType     string `json:"ciphertext_type"`
	MaxCiphertextBytes int64  `json:"max_ciphertext_bytes"`
	// BytesAfter counts ciphertext only; IVBytes the companion IV column.
	BytesAfter int64 `json:"bytes_after"`
	IVBytes    int64 `json:"iv_bytes"`
	// MaxPlainBytes is the longest canonical plaintext today.
	MaxPlainBytes int64 `json:"max_plaintext_bytes"`
	// LargeObjects counts values over the plan's large-object limit;
	// ValueLimitRows ciphertexts over the engine's largest value.
	LargeObjects   int64 `json:"large_objects"`
	ValueLimitRows int64 `json:"value_limit_rows"`

	Column *schema.Column `json:"-"`
	Plan   ColumnPlan     `json:"-"`
	// Codec is nil when the type is unsupported.
	Codec dialect.Codec `json:"-"`
}

// Blockers counts the blocker findings: apply runs only when it is 0.
func (r *Report) Blockers() int { return r.count(SeverityBlocker) }

func (r *Report) count(s Severity) int {
	n := 0
	for _, t := range r.Tables {
		for _, f := range t.Findings {
			if f.Severity == s {
				n++
			}
		}
	}
	return n
}

// total fills Totals from the tables.
func (r *Report) total() {
	r.Totals = Totals{
		Blockers: r.count(SeverityBlocker),
		Actions:  r.count(SeverityAction),
		Warnings: r.count(SeverityWarning),
	}
	for _, t := range r.Tables {
		r.Totals.BytesNow += t.BytesNow
		r.Totals.BytesAfter += t.BytesAfter
		r.Totals.BytesPeak += t.BytesPeak
	}
}

// Verdict is the report in one line.
func (r *Report) Verdict() string {
	if r.Job != nil {
		// apply resumes a job from its records and does not plan again.
		found := "No blockers"
		if n := r.Blockers(); n > 0 {
			found = plural(int64(n), "blocker") + " in the tables as they are now"
		}
		return fmt.Sprintf("%s; the job of this plan is in progress: %s.", found, r.Job.Resume)
	}
	if n := r.Blockers(); n > 0 {
		them := "them"
		if n == 1 {
			them = "it"
		}
		return fmt.Sprintf("%s: apply refuses to run until you resolve %s.", plural(int64(n), "blocker"), them)
	}
	return fmt.Sprintf("No blockers: apply can run (%s, %s).",
		plural(int64(r.Totals.Actions), "action"), plural(int64(r.Totals.Warnings), "warning"))
}

// WriteJSON writes the report as SPEC §5's `plan --format json` object.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.normalized())
}

// normalized returns the report with empty lists as [] rather than null,
// so that JSON consumers can iterate without checking.
func (r *Report) normalized() *Report {
	out := *r
	out.Tables = make([]*TableReport, len(r.Tables))
	for i, t := range r.Tables {
		c := *t
		if c.Columns == nil {
			c.Columns = []*ColumnReport{}
		}
		if c.Findings == nil {
			c.Findings = []Finding{}
		}
		out.Tables[i] = &c
	}
	if out.Groups == nil {
		out.Groups = [][]string{}
	}
	return &out
}

// severities in the order reports list them.
var severities = []struct {
	s     Severity
	title string
}{
	{SeverityBlocker, "Blockers"},
	{SeverityAction, "Actions"},
	{SeverityWarning, "Warnings"},
}

// WriteText writes the report for a terminal: per table its sizes, a table
// of columns and the findings grouped by severity, then the totals and a
// one-line verdict.
func WriteText(w io.Writer, r *Report) error {
	p := &printer{w: w}
	p.printf("colcrypt plan: %s, %s\n", r.Engine, plural(int64(len(r.Tables)), "table"))
	if r.Job != nil {
		p.printf("\n%s\n", r.Job.Summary())
	}
	for _, t := range r.Tables {
		p.printf("\nTable %s: %s rows\n", t.Name, thousands(t.Rows))
		p.printf("  bytes now %s, after %s, peak during migration %s\n",
			thousands(t.BytesNow), thousands(t.BytesAfter), thousands(t.BytesPeak))
		p.printf("  longest row now %s, after %s, during %s bytes (limit: %s)\n",
			thousands(t.MaxRowBytesNow), thousands(t.MaxRowBytesAfter), thousands(t.MaxRowBytesDuring), rowLimit(t.RowLimit))
		if len(t.Columns) > 0 {
			p.printf("\n")
			rows := [][]string{columnHeader}
			for _, c := range t.Columns {
				rows = append(rows, columnCells(c))
			}
			for _, line := range alignColumns(rows, columnRight) {
				p.printf("  %s\n", line)
			}
		}
		for _, sv := range severities {
			fs := filter(t.Findings, sv.s)
			if len(fs) == 0 {
				continue
			}
			p.printf("\n  %s (%d)\n", sv.title, len(fs))
			for _, f := range fs {
				p.printf("    [%s] %s: %s\n", f.Rule, f.Object, f.Message)
			}
		}
	}
	if len(r.Groups) > 0 {
		p.printf("\nOrder (foreign-key groups):\n")
		for i, g := range r.Groups {
			p.printf("  %d. %s\n", i+1, strings.Join(g, ", "))
		}
	}
	p.printf("\nTotals: bytes now %s, after %s, peak %s; %s, %s, %s\n",
		thousands(r.Totals.BytesNow), thousands(r.Totals.BytesAfter), thousands(r.Totals.BytesPeak),
		plural(int64(r.Totals.Blockers), "blocker"), plural(int64(r.Totals.Actions), "action"), plural(int64(r.Totals.Warnings), "warning"))
	p.printf("%s\n", r.Verdict())
	return p.err
}

// WriteMarkdown writes the report as GitHub-flavoured Markdown tables.
func WriteMarkdown(w io.Writer, r *Report) error {
	p := &printer{w: w}
	p.printf("# colcrypt plan (%s)\n", r.Engine)
	if r.Job != nil {
		p.printf("\n**%s**\n", mdEscape(r.Job.Summary()))
	}
	for _, t := range r.Tables {
		p.printf("\n## %s\n\n", mdEscape(t.Name))
		p.printf("| rows | bytes now | bytes after | bytes peak | longest row now | after | during | row limit |\n")
		p.printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		p.printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			thousands(t.Rows), thousands(t.BytesNow), thousands(t.BytesAfter), thousands(t.BytesPeak),
			thousands(t.MaxRowBytesNow), thousands(t.MaxRowBytesAfter), thousands(t.MaxRowBytesDuring), rowLimit(t.RowLimit))
		if len(t.Columns) > 0 {
			p.printf("\n|")
			for _, h := range columnHeader {
				p.printf(" %s |", strings.ToLower(h))
			}
			p.printf("\n|")
			for _, right := range columnRight {
				if right {
					p.printf("---:|")
				} else {
					p.printf("---|")
				}
			}
			p.printf("\n")
			for _, c := range t.Columns {
				p.printf("|")
				for _, cell := range columnCells(c) {
					p.printf(" %s |", mdEscape(cell))
				}
				p.printf("\n")
			}
		}
		if len(t.Findings) > 0 {
			p.printf("\n| severity | rule | object | column | what to do |\n|---|---|---|---|---|\n")
			for _, sv := range severities {
				for _, f := range filter(t.Findings, sv.s) {
					p.printf("| %s | %s | %s | %s | %s |\n", f.Severity, f.Rule, mdEscape(f.Object), mdEscape(f.Column), mdEscape(f.Message))
				}
			}
		}
	}
	if len(r.Groups) > 0 {
		p.printf("\n## Order (foreign-key groups)\n\n")
		for i, g := range r.Groups {
			p.printf("%d. %s\n", i+1, mdEscape(strings.Join(g, ", ")))
		}
	}
	p.printf("\n## Totals\n\n| bytes now | bytes after | bytes peak | blockers | actions | warnings |\n|---:|---:|---:|---:|---:|---:|\n")
	p.printf("| %s | %s | %s | %d | %d | %d |\n\n**%s**\n",
		thousands(r.Totals.BytesNow), thousands(r.Totals.BytesAfter), thousands(r.Totals.BytesPeak),
		r.Totals.Blockers, r.Totals.Actions, r.Totals.Warnings, r.Verdict())
	return p.err
}

var (
	columnHeader = []string{"COLUMN", "TYPE", "SUITE", "IV", "ROWS", "NULLS", "BYTES NOW", "CIPHERTEXT TYPE", "MAX CIPHERTEXT", "BYTES AFTER", "IV BYTES"}
	columnRight  = []bool{false, false, false, false, true, true, true, false, true, true, true}
)

func columnCells(c *ColumnReport) []string {
	return []string{c.Name, c.SourceType, c.Suite, c.IV, thousands(c.Rows), thousands(c.Nulls), thousands(c.BytesNow),
		c.CiphertextType, thousands(c.MaxCiphertextBytes), thousands(c.BytesAfter), thousands(c.IVBytes)}
}

// alignColumns pads cells to a common width per column, numbers to the
// right, with two spaces between columns.
func alignColumns(rows [][]string, right []bool) []string {
	width := make([]int, len(right))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	lines := make([]string, len(rows))
	for r, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if i > 0 {
				b.WriteString("  ")
			}
			if right[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		lines[r] = strings.TrimRight(b.String(), " ")
	}
	return lines
}

func filter(fs []Finding, s Severity) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity == s {
			out = append(out, f)
		}
	}
	return out
}

func rowLimit(n int64) string {
	if n <= 0 {
		return "none"
	}
	return thousands(n)
}

// printer keeps the first write error, so that writers can print freely
// and check once.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, `|`, `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// thousands formats n with comma separators: 1234567 → "1,234,567".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural formats a count with its noun: "1 row", "3 rows".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

// Summary says, in a sentence for the report's head, that the job is
// under way, how far it got and how to finish it.
func (j *JobInProgress) Summary() string {
	phase := j.Phase
	if phase == "" {
		phase = "none yet"
	}
	return fmt.Sprintf("Job %s of this plan is in progress (%s, last phase completed: %s): %s. "+
		"The findings describe the tables as the job has left them so far; the columns and tables colcrypt added for it are not counted against the plan.",
		j.ID, j.Kind, phase, j.Resume)
}
