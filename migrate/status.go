package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/planner"
	"github.com/colcrypt/colcrypt/schema"
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
	// RowsDone of RowsTotal rows are done, and Percent is their share, for
	// this plan's job only: in states 2, 4 and 5 the rows its chunks wrote
	// (from the checkpoints, committed with the rows, so a job stopped at
	// any instant shows what it wrote), in state 3 every row, in state 1
	// none. A column another job left encrypted shows 100 percent and no
	// rows; RowsTotal 0 means not counted.
	RowsDone  int64 `json:"rows_done"`
	RowsTotal int64 `json:"rows_total"`
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
	if err := e.checkPlanned(ctx, all); err != nil {
		return nil, err
	}
	counts, err := e.keyVersionCounts(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*columnState{}
	for _, s := range all {
		byName[e.columnKey(s.Table, s.Column)] = s
	}
	rep := &StatusReport{Columns: []ColumnStatus{}}
	rows := map[string]int64{} // row counts of tables, counted once
	for _, tp := range e.plan.Tables {
		tn := e.tableName(tp.Name)
		for _, cp := range tp.Columns {
			cs := ColumnStatus{Table: tn.String(), Column: cp.Name, State: StateUnencrypted, Key: cp.Key, Suite: string(cp.Suite), IV: string(cp.IV)}
			s := all[stateKey(tn.String(), cp.Name)]
			if s == nil {
				s = byName[e.columnKey(tn.String(), cp.Name)] // another plan's spelling of the table
			}
			if s != nil {
				cs.Column = s.Column
				cs.State, cs.Key, cs.KeyVersion = s.State, s.KeyName, s.KeyVersion
				cs.Suite, cs.IV = s.Suite, s.IVMode
				switch {
				case s.JobID == e.jobID():
					if cs.RowsDone, cs.RowsTotal, cs.Percent, err = e.progressOf(ctx, tn, s, rows); err != nil {
						return nil, err
					}
				case s.State == StateEncrypted:
					cs.Percent = 100
				}
			}
			cs.StateDesc = StateDesc(cs.State)
			cs.Versions = counts[stateKey(tn.String(), cs.Column)]
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

// checkPlanned refuses a plan naming a table or column the database does
// not have, as plan and apply do (file:line:column, exit 2): status would
// show it as unencrypted. A table that this plan's job has recorded a
// column of is its own and is not read (a cut-over may be swapping it).
func (e *Engine) checkPlanned(ctx context.Context, all map[string]*columnState) error {
	_, err := planner.ReadTargets(ctx, e.plan, e.d, e.db, func(tp *planner.TablePlan) bool {
		tn := e.tableName(tp.Name)
		return slices.ContainsFunc(tp.Columns, func(cp planner.ColumnPlan) bool {
			s := all[stateKey(tn.String(), cp.Name)]
			return s != nil && s.JobID == e.jobID()
		})
	})
	return err
}

// progressOf gives a column's rows done, of how many, and percent, for
// this plan's job. While rows move (states 2, 4, 5) the rows done are
// those the checkpoints of the phase record: they commit with the rows, so
// they are exact at any instant, where the percent the job records every
// few seconds lags, and is not recorded at all once the job is
// interrupted. The total is the job's count (or the catalog's estimate),
// or, before the job recorded one, counted here (rows caches it).
func (e *Engine) progressOf(ctx context.Context, tn schema.TableName, s *columnState, rows map[string]int64) (done, total int64, pct int, err error) {
	var phase string
	switch s.State {
	case StateEncrypted:
		return s.RowsTotal, s.RowsTotal, 100, nil
	case StateUnencrypted, StateNone:
		return 0, s.RowsTotal, 0, nil
	case StateEncrypting:
		phase = phaseCopy
	case StateKeyChange:
		phase = phaseRekey
	case StateDecrypting:
		phase = phaseDecrypt
	default:
		return s.RowsDone, s.RowsTotal, s.Percent, nil
	}
	if done, err = e.st.chunkRows(ctx, s.JobID, s.Table, phase); err != nil {
		return 0, 0, 0, err
	}
	total = s.RowsTotal
	if total == 0 {
		n, ok := rows[tn.String()]
		if !ok {
			err = retry(ctx, e.log, "count rows of "+tn.String(), func(ctx context.Context) error {
				return e.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+e.d.QuoteTable(tn)).Scan(&n)
			})
			if err != nil {
				return 0, 0, 0, fmt.Errorf("count rows of %s: %w", tn, err)
			}
			rows[tn.String()] = n
		}
		total = n
	}
	total = max(total, done)
	pct = 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	return done, total, pct, nil
}

// chunkRows sums the rows of a phase's checkpoints of one table.
func (s *store) chunkRows(ctx context.Context, jobID, table, phase string) (int64, error) {
	return retried(ctx, s, "read checkpoints", func(ctx context.Context) (int64, error) {
		var n int64
		err := s.db.QueryRowContext(ctx, "SELECT COALESCE(SUM(rows_done), 0) FROM "+s.table(chunkTableName)+" WHERE job_id = "+s.ph(1)+
			" AND table_name = "+s.ph(2)+" AND phase = "+s.ph(3), jobID, table, phase).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("read checkpoints of %s: %w", table, err)
		}
		return n, nil
	})
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
		if j.Phase != phaseDone {
			return nil, exitcode.Input(fmt.Errorf("nothing to verify: the revert of plan %s was stopped before it finished; "+
				"finish it with colcrypt revert %s (then colcrypt apply %s encrypts again, if that is what you want)", e.plan.Path, e.plan.Path, e.plan.Path))
		}
		return nil, exitcode.Input(fmt.Errorf("nothing to verify: the job of plan %s was reverted", e.plan.Path))
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
	} else {
		for _, t := range tables {
			for _, c := range t.cols {
				if c.state == nil {
					return nil, exitcode.Input(fmt.Errorf("%s.%s has no recorded state in the job of plan %s, whose copy is done: "+
						"the job's records do not name it as this plan does; run colcrypt status %s", t.name, c.col.Name, e.plan.Path, e.plan.Path))
				}
			}
		}
	}
	after := phaseIndex(encryptPhases, j.Phase) >= phaseIndex(encryptPhases, phaseCutover)
	var cut []*tableJob // cut over by a cut-over still under way
	if j.Phase == phaseVerified {
		// The cut-over goes group by group, and records each group's
		// columns as encrypted once its swap committed: a table all of
		// whose columns are recorded is verified as after it, the others
		// as before it. A table swapped and not (or not wholly) recorded
		// (killed between the two) reads as neither.
		var before []*tableJob
		for _, t := range tables {
			n := 0
			for _, c := range t.cols {
				if c.state.State == StateEncrypted {
					n++
				}
			}
			swapped := n > 0
			if n == len(t.cols) {
				cut = append(cut, t)
				continue
			}
			if !swapped {
				var err error
				if swapped, err = e.swappedAlready(ctx, j, t); err != nil {
					return nil, err
				}
			}
			if swapped {
				return nil, exitcode.Input(fmt.Errorf("the cut-over of %s was interrupted after it swapped the columns: "+
					"run colcrypt apply %s to finish it, then verify", t.name, e.plan.Path))
			}
			before = append(before, t)
		}
		tables = before
	}
	res, err := e.verifyAll(ctx, j.ID, tables, after, copying)
	if err != nil {
		return nil, err
	}
	if len(cut) > 0 {
		done, err := e.verifyAll(ctx, j.ID, cut, true, false)
		if err != nil {
			return nil, err
		}
		res.add(done)
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
			done[stateKey(dialect.TableKey(d, schema.ParseTableName(c.Table)), c.Column)] = true
		}
	}
	return func(table, column string) bool {
		return done[stateKey(dialect.TableKey(d, schema.ParseTableName(table)), column)]
	}, nil
}

// PlanOptions gives the dry run of plan p what colcrypt's records in the
// database add to the catalog: the columns other jobs encrypted (the
// already-encrypted rule), and the plan's own job when it is begun and not
// finished, with the columns and tables it added, so that plan does not
// report them as the user's objects in the way of the job (they are the
// job's, and apply resumes it without planning again).
func PlanOptions(ctx context.Context, p *planner.Plan, d dialect.Dialect, db *sql.DB) (planner.Options, error) {
	encrypted, err := EncryptedColumns(ctx, d, db)
	if err != nil {
		return planner.Options{}, err
	}
	opt := planner.Options{AlreadyEncrypted: encrypted}
	m, ok := d.(dialect.Mover)
	if !ok {
		return opt, nil
	}
	st := &store{db: db, d: d, m: m}
	id := jobIDOf(p)
	j, err := st.loadJob(ctx, id)
	if err != nil {
		return opt, err
	}
	list, err := st.columns(ctx)
	if err != nil {
		return opt, err
	}
	resolve := func(table string) string { return dialect.TableKey(d, schema.ParseTableName(table)) }
	planned := map[string]bool{}
	for _, tp := range p.Tables {
		planned[resolve(tp.Name)] = true
	}
	ownCols, ownTables, mine := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var rekeying []string
	var rekeyJob string
	for _, c := range list {
		table := resolve(c.Table)
		if !planned[table] {
			continue
		}
		if c.State == StateKeyChange && c.JobID == id {
			// A rekey of this plan's job in progress: its new IV column.
			// (Another plan's rekey is that plan's to finish.)
			rekeying, rekeyJob = append(rekeying, c.Table+"."+c.Column), c.JobID
			if c.Target != nil && c.Target.IVColumn != "" {
				ownCols[stateKey(table, c.Target.IVColumn)] = true
			}
		}
		if c.JobID != id || j == nil || j.Phase == phaseDone {
			continue
		}
		mine[stateKey(table, c.Column)] = true
		for _, col := range []string{c.Temp, c.IVColumn, c.Column + restoredColumnSuffix, rowIDColumn, dialect.VersionColumn, dialect.EncVersionColumn} {
			if col != "" {
				ownCols[stateKey(table, col)] = true
			}
		}
	}
	inProgress := &planner.JobInProgress{
		OwnColumn: func(table, column string) bool { return ownCols[stateKey(resolve(table), column)] },
		OwnTable:  func(table string) bool { return ownTables[resolve(table)] },
	}
	switch {
	case j != nil && j.Phase != phaseDone:
		inProgress.ID, inProgress.Kind, inProgress.Phase = j.ID, j.Kind, j.Phase
		if j.Kind == jobKindRevert {
			inProgress.Resume = fmt.Sprintf("colcrypt revert %s finishes it", p.Path)
		} else {
			inProgress.Resume = fmt.Sprintf("colcrypt apply %s resumes it, colcrypt revert %s undoes it", p.Path, p.Path)
		}
		if ok, err := st.exists(ctx, ddlTableName); err != nil {
			return opt, err
		} else if ok {
			for _, tp := range p.Tables {
				recs, err := st.ddl(ctx, id, dialect.ResolveTableName(d, tp.Name).String())
				if err != nil {
					return opt, err
				}
				for _, r := range recs {
					if r.Kind == rebuildRecord {
						ownTables[resolve(r.Name)] = true
					}
				}
			}
		}
		// The job's own columns past its cut-over are encrypted by it,
		// not before it.
		opt.AlreadyEncrypted = func(table, column string) bool {
			return !mine[stateKey(resolve(table), column)] && encrypted(table, column)
		}
	case len(rekeying) > 0:
		inProgress.ID, inProgress.Kind = rekeyJob, jobKindRekey
		inProgress.Resume = fmt.Sprintf("colcrypt rekey %s --column %s finishes it", p.Path, strings.Join(rekeying, " --column "))
	default:
		return opt, nil
	}
	opt.Job = inProgress
	return opt, nil
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
