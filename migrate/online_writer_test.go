package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The acceptance test of online mode (SPEC §7: in online mode, no update
// made by another writer during the job is lost) runs on SQLite and on
// PostgreSQL: an application writer, on its own connection, keeps updating
// the planned columns of random rows (new text, empty strings, NULLs),
// inserting rows, and deleting rows and inserting them again under the
// same key, for as long as apply runs. It remembers the last value it
// wrote to every row. Its plaintext writes end at the cut-over, when the
// columns become ciphertext (an application would encrypt from then on):
// a write the cut-over refuses was not made. Then the job is reverted and
// every row must hold the writer's last value, or its original.

// onlineRows is the table size: large enough, with small chunks, that the
// writer overlaps the copy, the catch-up passes, verify and the cut-over.
// The race detector makes the pure-Go SQLite about ten times slower (an
// offline apply of 30,000 rows takes some 40 s under it), so a race run
// checks the same with fewer rows and still within onlineDeadline.
var onlineRows = int64(30000)

func init() {
	if raceEnabled {
		onlineRows = 8000
	}
}

const (
	onlineBatchRows = 300
	onlineDeadline  = 60 * time.Second
)

// onlineTable is the table, the same on both engines.
const onlineTable = "people"

// rowValue is a row's planned columns; Valid false is NULL.
type rowValue struct {
	email, notes sql.NullString
}

// writerOps are an engine's statements and error classes.
type writerOps struct {
	// begin starts the writer's transaction; for a plaintext write it must
	// also check, atomically with the write, that the cut-over has not
	// happened: it returns errCutover when it has.
	begin func(ctx context.Context, db *sql.DB, plaintext bool) (*sql.Tx, error)
	// update sets email and notes of a row (email, notes, id); insert adds
	// a row (id, email, notes); remove deletes one (id); touch changes a
	// column that is not planned (id).
	update, insert, remove, touch string
	// cutover reports an error meaning the cut-over refused a plaintext
	// write; transient an error worth retrying (counted).
	cutover, transient func(error) bool
	// pause is the writer's think time between writes. SQLite has one
	// writer at a time, and a client that takes the lock again the instant
	// it commits starves every other writer that waits in the busy handler,
	// colcrypt's chunk writes included: no application holds the lock
	// like that.
	pause time.Duration
}

var errCutover = errors.New("the cut-over has happened")

// onlineWriter is the application.
type onlineWriter struct {
	db   *sql.DB
	ops  writerOps
	rnd  *rand.Rand
	want map[int64]*rowValue // nil: deleted
	live []int64
	next int64

	phase *atomic.Value // the job's current phase, from its log

	updates, inserts, deletes, reinserts, touches, retries int
	slowest                                                time.Duration // the longest a write waited, retries included
	perPhase                                               map[string]int
	sawCutover                                             bool
	err                                                    error
}

// originalRow is the value row id starts with.
func originalRow(id int64) *rowValue {
	r := &rowValue{email: sql.NullString{String: fmt.Sprintf("user%d@example.com", id), Valid: true}}
	if id%10 != 0 {
		r.notes = sql.NullString{String: fmt.Sprintf("note %d", id), Valid: true}
	}
	return r
}

func newOnlineWriter(db *sql.DB, ops writerOps, phase *atomic.Value) *onlineWriter {
	w := &onlineWriter{db: db, ops: ops, rnd: rand.New(rand.NewPCG(42, 7)), want: map[int64]*rowValue{},
		next: onlineRows + 1, phase: phase, perPhase: map[string]int{}}
	for id := int64(1); id <= onlineRows; id++ {
		w.want[id] = originalRow(id)
		w.live = append(w.live, id)
	}
	return w
}

// value picks a new value: NULL, empty, trailing spaces, Unicode, or text.
func (w *onlineWriter) value() sql.NullString {
	switch n := w.rnd.IntN(20); {
	case n == 0:
		return sql.NullString{}
	case n == 1:
		return sql.NullString{Valid: true}
	case n == 2:
		return sql.NullString{String: fmt.Sprintf("padded %d  ", w.rnd.IntN(1000)), Valid: true}
	case n == 3:
		return sql.NullString{String: fmt.Sprintf("zoë 😀 例え %d", w.rnd.IntN(1000)), Valid: true}
	default:
		return sql.NullString{String: fmt.Sprintf("w%d@example.org", w.rnd.Int64()), Valid: true}
	}
}

func nullable(s sql.NullString) any {
	if !s.Valid {
		return nil
	}
	return s.String
}

// run writes until stop is closed, the cut-over refuses a plaintext write,
// or a write fails.
func (w *onlineWriter) run(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if w.ops.pause > 0 {
			time.Sleep(w.ops.pause)
		}
		if err := w.step(ctx); err != nil {
			if errors.Is(err, errCutover) {
				w.sawCutover = true
			} else {
				w.err = err
			}
			return
		}
	}
}

// step runs one operation, retrying it while the error is transient.
func (w *onlineWriter) step(ctx context.Context) error {
	var op func(tx *sql.Tx) error
	var apply func()
	plaintext := true
	switch n := w.rnd.IntN(100); {
	case n < 65: // update the planned columns of a live row
		id := w.live[w.rnd.IntN(len(w.live))]
		v := &rowValue{email: w.value(), notes: w.value()}
		op = func(tx *sql.Tx) error {
			return execOne(ctx, tx, w.ops.update, nullable(v.email), nullable(v.notes), id)
		}
		apply = func() { w.want[id] = v; w.updates++ }
	case n < 80: // insert a new row
		id := w.next
		v := &rowValue{email: w.value(), notes: w.value()}
		op = func(tx *sql.Tx) error {
			return execOne(ctx, tx, w.ops.insert, id, nullable(v.email), nullable(v.notes))
		}
		apply = func() { w.want[id] = v; w.live = append(w.live, id); w.next++; w.inserts++ }
	case n < 88: // delete a row and insert it again under the same key
		i := w.rnd.IntN(len(w.live))
		id := w.live[i]
		v := &rowValue{email: w.value(), notes: w.value()}
		op = func(tx *sql.Tx) error {
			if err := execOne(ctx, tx, w.ops.remove, id); err != nil {
				return err
			}
			return execOne(ctx, tx, w.ops.insert, id, nullable(v.email), nullable(v.notes))
		}
		apply = func() { w.want[id] = v; w.reinserts++ }
	case n < 93: // delete a row
		i := w.rnd.IntN(len(w.live))
		id := w.live[i]
		plaintext = false
		op = func(tx *sql.Tx) error { return execOne(ctx, tx, w.ops.remove, id) }
		apply = func() {
			w.want[id] = nil
			w.live[i] = w.live[len(w.live)-1]
			w.live = w.live[:len(w.live)-1]
			w.deletes++
		}
	default: // change a column that is not planned
		id := w.live[w.rnd.IntN(len(w.live))]
		plaintext = false
		op = func(tx *sql.Tx) error { return execOne(ctx, tx, w.ops.touch, id) }
		apply = func() { w.touches++ }
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		err := w.try(ctx, plaintext, op)
		if err == nil {
			w.slowest = max(w.slowest, time.Since(start))
			apply()
			phase, _ := w.phase.Load().(string)
			w.perPhase[phase]++
			return nil
		}
		if errors.Is(err, errCutover) || (plaintext && w.ops.cutover(err)) {
			return errCutover
		}
		if !w.ops.transient(err) || attempt == 50 || ctx.Err() != nil {
			return err
		}
		w.retries++
		time.Sleep(time.Millisecond)
	}
}

func (w *onlineWriter) try(ctx context.Context, plaintext bool, op func(*sql.Tx) error) error {
	tx, err := w.ops.begin(ctx, w.db, plaintext)
	if err != nil {
		return err
	}
	if err := op(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func execOne(ctx context.Context, tx *sql.Tx, stmt string, args ...any) error {
	res, err := tx.ExecContext(ctx, stmt, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%s: %d rows affected, want 1 (%v)", stmt, n, err)
	}
	return nil
}

// checkRows compares every row of the table with what the writer left.
func (w *onlineWriter) checkRows(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT id, email, notes FROM "+onlineTable)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]rowValue{}
	for rows.Next() {
		var id int64
		var v rowValue
		if err := rows.Scan(&id, &v.email, &v.notes); err != nil {
			t.Fatal(err)
		}
		got[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var bad []string
	for id, want := range w.want {
		g, ok := got[id]
		switch {
		case want == nil && ok:
			bad = append(bad, fmt.Sprintf("row %d was deleted but is there: %+v", id, g))
		case want == nil:
		case !ok:
			bad = append(bad, fmt.Sprintf("row %d is missing", id))
		case g != *want:
			bad = append(bad, fmt.Sprintf("row %d is %s, want %s", id, show(g), show(*want)))
		}
	}
	for id := range got {
		if _, ok := w.want[id]; !ok {
			bad = append(bad, fmt.Sprintf("row %d was never written", id))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("%d rows differ from the writer's last values, e.g.:\n  %s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n  "))
	}
}

func show(v rowValue) string {
	s := func(n sql.NullString) string {
		if !n.Valid {
			return "NULL"
		}
		return fmt.Sprintf("%q", n.String)
	}
	return "(" + s(v.email) + ", " + s(v.notes) + ")"
}

func (w *onlineWriter) report(t *testing.T, engine string, took time.Duration, pl *phaseLog) {
	t.Helper()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	lockRows, passes := *pl.lockRows, *pl.passes
	t.Logf("%s timeline: %s", engine, strings.Join(*pl.timeline, ", "))
	t.Logf("%s online apply: %d rows, %s; writer: %d updates, %d inserts, %d delete+reinserts, %d deletes, %d other-column updates, "+
		"%d retries, slowest write %s, stopped by the cut-over: %t; writes per phase: %v; catch-up passes: %d; rows re-encrypted under the cut-over lock: %d",
		engine, onlineRows, took.Round(time.Millisecond), w.updates, w.inserts, w.reinserts, w.deletes, w.touches, w.retries,
		w.slowest.Round(time.Millisecond), w.sawCutover, w.perPhase, passes, lockRows)
}

// phaseLog is the engine's logger for the test: it follows the job's
// phase, counts catch-up passes and the rows the cut-over re-encrypted
// under its lock.
type phaseLog struct {
	phase    *atomic.Value
	mu       *sync.Mutex
	passes   *int
	lockRows *int64
	timeline *[]string // "phase@elapsed" and catch-up passes, for the report
	start    time.Time
}

func newPhaseLog() *phaseLog {
	p := &phaseLog{phase: &atomic.Value{}, mu: &sync.Mutex{}, passes: new(int), lockRows: new(int64), timeline: new([]string), start: time.Now()}
	p.phase.Store("before")
	return p
}

func (p *phaseLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *phaseLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *phaseLog) WithGroup(string) slog.Handler            { return p }
func (p *phaseLog) Handle(_ context.Context, r slog.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := time.Since(p.start).Round(10 * time.Millisecond)
	switch r.Message {
	case "phase started":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "phase" {
				p.phase.Store(a.Value.String())
				*p.timeline = append(*p.timeline, fmt.Sprintf("%s@%s", a.Value, at))
			}
			return true
		})
	case "catch-up pass":
		*p.passes++
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "rows" {
				*p.timeline = append(*p.timeline, fmt.Sprintf("catch-up %d rows@%s", a.Value.Int64(), at))
			}
			return true
		})
	case "caught up under the cut-over lock":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "rows" {
				*p.lockRows += a.Value.Int64()
			}
			return true
		})
	}
	return nil
}
