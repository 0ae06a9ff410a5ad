package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/colcrypt/colcrypt/dialect"

	"github.com/colcrypt/colcrypt/internal/exitcode"
)

// ColumnStatus is one planned column's state, as status prints it.
type ColumnStatus struct {
	Table      string `json:"table"`
	Column     string `json:"column"`
	State      int    `json:"state"`
	StateDesc  string `json:"state_desc"`
	Percent    int    `json:"percent_complete"`
	Key        string `json:"key"`
	KeyVersion int    `json:"key_version"`
	Suite      string `json:"suite"`
	IV         string `json:"iv,omitempty"`
	RowsDone   int64  `json:"rows_done"`
	RowsTotal  int64  `json:"rows_total"`
	// Versions counts the values under each key version (versioned
	// columns): what a retire would leave unreadable, and how far a rekey is.
	Versions []VersionCount `json:"versions,omitempty"`
}

// VersionSummary is Versions in one line, e.g. "v1: 10, v2: 90".
func (c ColumnStatus) VersionSummary() string { return formatCounts(c.Versions) }

// StatusReport is what status shows: per-column state, the job, and the
// latest events.
type StatusReport struct {
	Columns []ColumnStatus `json:"columns"`
	Job     *JobStatus     `json:"job,omitempty"`
	Events  []Event        `json:"events,omitempty"`
}

// JobStatus summarises the plan's job.
type JobStatus struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Phase string `json:"phase"`
}

// statusEvents is how many recent events status shows.
const statusEvents = 8

// Status reads the state of the plan's columns. It needs no keys and only
// reads, so it can run from another terminal while a job runs.
func (e *Engine) Status(ctx context.Context) (*StatusReport, error) {
	all, err := e.loadStates(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := e.keyVersionCounts(ctx)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{Columns: []ColumnStatus{}}
	for _, tp := range e.plan.Tables {
		tn := e.tableName(tp.Name).String()
		for _, cp := range tp.Columns {
			cs := ColumnStatus{Table: tn, Column: cp.Name, State: StateUnencrypted, Key: cp.Key, Suite: string(cp.Suite), IV: string(cp.IV)}
			if s := all[stateKey(tn, cp.Name)]; s != nil {
				cs.Column = s.Column
				cs.State, cs.Percent, cs.Key, cs.KeyVersion = s.State, s.Percent, s.KeyName, s.KeyVersion
				cs.Suite, cs.IV, cs.RowsDone, cs.RowsTotal = s.Suite, s.IVMode, s.RowsDone, s.RowsTotal
			}
			cs.StateDesc = StateDesc(cs.State)
			cs.Versions = counts[stateKey(tn, cs.Column)]
			rep.Columns = append(rep.Columns, cs)
		}
	}
	ok, err := e.st.exists(ctx, jobTableName)
	if err != nil {
		return nil, err
	}
	if ok {
		j, err := e.st.loadJob(ctx, e.jobID())
		if err != nil {
			return nil, err
		}
		if j != nil {
			rep.Job = &JobStatus{ID: j.ID, Kind: j.Kind, Phase: j.Phase}
			if rep.Events, err = e.st.events(ctx, j.ID, statusEvents); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

// Verify checks every value of the plan's columns: against the plaintext
// while it exists, against the digests recorded during copy after cut-over.
func (e *Engine) Verify(ctx context.Context) (*VerifyResult, error) {
	ok, err := e.st.exists(ctx, jobTableName)
	if err != nil {
		return nil, err
	}
	var j *job
	if ok {
		if j, err = e.st.loadJob(ctx, e.jobID()); err != nil {
			return nil, err
		}
	}
	if j == nil {
		return nil, exitcode.Input(fmt.Errorf("nothing to verify: no job of plan %s in this database (run colcrypt apply first)", e.plan.Path))
	}
	if j.Kind == jobKindRevert {
		return nil, exitcode.Input(fmt.Errorf("nothing to verify: the job of plan %s was reverted (phase %s)", e.plan.Path, j.Phase))
	}
	// While the copy is under way (or has not begun), the chunks it
	// recorded are verified; the rest of the table is not copied yet.
	copying := j.Phase == "" || j.Phase == phasePrepared
	if err := e.checkResume(j, nil); err != nil {
		return nil, err
	}
	if err := e.useJob(j); err != nil {
		return nil, err
	}
	_, states, err := e.openJob(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	tables, err := e.tables(ctx, j.ID, states)
	if err != nil {
		return nil, err
	}
	if copying {
		// A table whose prepare did not record every column's state yet
		// (killed, or another apply preparing now) has nothing copied.
		prepared := tables[:0]
		for _, t := range tables {
			if !slices.ContainsFunc(t.cols, func(c *colJob) bool { return c.state == nil }) {
				prepared = append(prepared, t)
			}
		}
		tables = prepared
	}
	after := phaseIndex(encryptPhases, j.Phase) >= phaseIndex(encryptPhases, phaseCutover)
	if j.Phase == phaseVerified {
		// A cut-over that swapped a group's columns and stopped before it
		// recorded them (killed, or a failure after its commit) left
		// tables that read neither as before it nor as after it.
		for _, t := range tables {
			if swapped, err := e.swappedAlready(ctx, j, t); err != nil {
				return nil, err
			} else if swapped {
				return nil, exitcode.Input(fmt.Errorf("the cut-over of %s was interrupted after it swapped the columns: "+
					"run colcrypt apply %s to finish it, then verify", t.name, e.plan.Path))
			}
		}
	}
	res, err := e.verifyAll(ctx, j.ID, tables, after, copying)
	if err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("%d rows, %d values", res.Rows, res.Values)
	if copying {
		detail += ", those the copy has written so far"
	}
	if !res.OK() {
		detail = "FAILED: " + res.Err().Error()
	}
	e.note(ctx, j.ID, "verify", detail)
	return res, nil
}

// EncryptedColumns reads colcrypt's job state and reports which columns it
// has encrypted, for the planner's "already encrypted" rule; tables are
// named as in a plan. A database without job state has none.
func EncryptedColumns(ctx context.Context, d dialect.Dialect, db *sql.DB) (func(table, column string) bool, error) {
	m, ok := d.(dialect.Mover)
	if !ok {
		return func(string, string) bool { return false }, nil
	}
	st := &store{db: db, d: d, m: m}
	list, err := st.columns(ctx)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, c := range list {
		if c.State == StateEncrypted || c.State == StateKeyChange {
			done[stateKey(dialect.ResolveTableName(d, c.Table).String(), c.Column)] = true
		}
	}
	return func(table, column string) bool {
		return done[stateKey(dialect.ResolveTableName(d, table).String(), column)]
	}, nil
}

// RecordProtectionChange appends a keystore protection change (a rewrap:
// the same data keys under a new master key, no row touched) to the plan's
// job log, so the job's history shows when its keys' protection changed.
func (e *Engine) RecordProtectionChange(ctx context.Context, detail string) error {
	j, err := e.st.loadJob(ctx, e.jobID())
	if err != nil {
		return err
	}
	if j == nil {
		return exitcode.Input(fmt.Errorf("plan %s has no job in this database to record the rewrap in", e.plan.Path))
	}
	return e.st.event(ctx, j.ID, "protection change", detail)
}
