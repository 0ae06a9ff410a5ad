package migrate

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/planner"
	"github.com/colcrypt/colcrypt/schema"
)

// encryptPhases are the phases of an encryption job, in order.
var encryptPhases = []string{phasePrepared, phaseCopied, phaseVerified, phaseCutover, phasePurged}

// BlockedError is returned when the plan has blockers: apply changes nothing.
type BlockedError struct {
	Report *planner.Report
}

func (b *BlockedError) Error() string {
	var lines []string
	for _, t := range b.Report.Tables {
		for _, f := range t.Findings {
			if f.Severity == planner.SeverityBlocker {
				where := f.Object
				if f.Column != "" {
					where = t.Name + "." + f.Column
				}
				lines = append(lines, fmt.Sprintf("%s: %s", where, f.Message))
			}
		}
	}
	return fmt.Sprintf("the plan has %d blocker(s); nothing was changed:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// Result says what a run of apply did.
type Result struct {
	JobID   string
	Phase   string // the last phase completed
	Already bool   // the job had already finished: nothing to do
	Verify  *VerifyResult
}

// Apply runs the encryption job, or resumes it where it stopped.
func (e *Engine) Apply(ctx context.Context) (*Result, error) {
	unlock, err := e.lockTables(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// colcrypt's own tables are created only once the plan has passed
	// (startJob): a refused apply leaves the database untouched.
	id := e.jobID()
	j, states, err := e.openJob(ctx, id)
	if err != nil {
		return nil, err
	}
	tables, err := e.tables(ctx, id, states)
	if err != nil {
		return nil, err
	}
	if err := e.resolveOnline(j, tables); err != nil {
		return nil, err
	}
	if j == nil || (j.Kind == jobKindRevert && j.Phase == phaseDone) {
		if j, err = e.startJob(ctx, id, j, tables, states); err != nil {
			return nil, err
		}
	} else if err := e.checkResume(j, tables); err != nil {
		return nil, err
	}
	if err := e.useJob(j); err != nil {
		return nil, err
	}
	res := &Result{JobID: id, Phase: j.Phase}
	if j.Phase == phaseDone {
		res.Already = true
		e.restoreJournal(ctx, id, "") // an earlier run killed before it did
		return res, nil
	}
	if e.opt.Until != "" && phaseIndex(encryptPhases, j.Phase) >= phaseIndex(encryptPhases, e.opt.Until) {
		e.log.Info("the job is already past the phase --until names; nothing to do", "until", e.opt.Until, "phase", j.Phase)
		return res, nil
	}
	// Verify passed in an earlier run: the plaintext goes at the cut-over,
	// so what was verified then is verified again now, hours or days
	// later maybe, in case a value changed since.
	if j.Phase == phaseVerified {
		if err := e.verifyAgain(ctx, j, tables, res); err != nil {
			e.note(ctx, id, "verify before cut-over failed", err.Error())
			return res, err
		}
	}
	journal, err := e.switchJournal(ctx, j.ID)
	if err != nil {
		return res, err
	}
	for _, phase := range encryptPhases {
		if phaseIndex(encryptPhases, phase) <= phaseIndex(encryptPhases, j.Phase) {
			continue
		}
		if err := e.runPhase(ctx, j, phase, tables, res); err != nil {
			e.note(ctx, id, phase+" failed", err.Error())
			return res, err
		}
		from := j.Phase
		j.Phase = phase
		if phase == phasePurged {
			j.Phase = phaseDone
		}
		if err := e.st.advanceJob(ctx, j, j.Kind, from); err != nil {
			return res, err
		}
		res.Phase = phase
		if e.opt.Until == phase {
			e.log.Info("stopped after phase as asked", "phase", phase)
			return res, nil
		}
	}
	res.Phase = phaseDone
	e.restoreJournal(ctx, j.ID, journal)
	return res, nil
}

// verifyAgain verifies, before a cut-over that an earlier run's verify
// cleared, the tables not cut over yet.
func (e *Engine) verifyAgain(ctx context.Context, j *job, tables []*tableJob, res *Result) error {
	var pending []*tableJob
	for _, t := range tables {
		swapped, err := e.swappedAlready(ctx, j, t)
		if err != nil {
			return err
		}
		if !swapped {
			pending = append(pending, t)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	e.log.Info("verifying again before the cut-over: the verify that passed was an earlier run's", "job", j.ID)
	vr, err := e.verifyAll(ctx, j.ID, pending, false, false)
	if err != nil {
		return err
	}
	res.Verify = vr
	if err := vr.Err(); err != nil {
		return exitcode.Fail(fmt.Errorf("verify passed in an earlier run, but not now, before the cut-over, which was not begun: %w", err))
	}
	return nil
}

// phaseIndex ranks a job's last completed phase within its phase list:
// -1 before the first, len(list) once the job is done. A phase from
// neither is an error in the recorded state, ranked done so that nothing
// is ever redone destructively on it.
func phaseIndex(list []string, phase string) int {
	switch phase {
	case "":
		return -1
	case phaseDone:
		return len(list)
	}
	for i, p := range list {
		if p == phase {
			return i
		}
	}
	return len(list)
}

// openJob loads this plan's job and the column states, and refuses to
// touch a column another plan's unfinished job is working on.
func (e *Engine) openJob(ctx context.Context, id string) (*job, map[string]*columnState, error) {
	j, err := e.st.loadJob(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	all, err := e.loadStates(ctx)
	if err != nil {
		return nil, nil, err
	}
	mine := map[string]*columnState{}
	// Other jobs' columns, found by name as names compare across plans
	// (columnKey): one table spelled two ways is one table.
	others := map[string]*columnState{}
	for _, s := range all {
		if s.JobID != id {
			others[e.columnKey(s.Table, s.Column)] = s
		}
	}
	for _, tp := range e.plan.Tables {
		tn := e.tableName(tp.Name).String()
		for _, cp := range tp.Columns {
			if s := all[stateKey(tn, cp.Name)]; s != nil && s.JobID == id {
				mine[stateKey(tn, cp.Name)] = s
				continue
			}
			if s := others[e.columnKey(tn, cp.Name)]; s != nil && s.State != StateUnencrypted && s.State != StateEncrypted {
				return nil, nil, exitcode.Input(fmt.Errorf("%s.%s is being changed by another job (%s, state %d %s): the plan differs from the one that started it; "+
					"finish or revert that job with its original plan", tn, cp.Name, s.JobID, s.State, StateDesc(s.State)))
			}
		}
	}
	// Columns encrypted by another job must be blocked by the planner, not
	// resumed.
	for k, s := range others {
		if s.State == StateEncrypted {
			e.alreadyEncrypted = append(e.alreadyEncrypted, k)
		}
	}
	return j, mine, nil
}

// startJob plans, refuses on blockers, and records a new job. Nothing in
// the user's tables changes before this returns.
func (e *Engine) startJob(ctx context.Context, id string, prev *job, tables []*tableJob, states map[string]*columnState) (*job, error) {
	if prev != nil {
		// A finished revert of the same plan: start over cleanly.
		for _, t := range tables {
			for _, phase := range []string{phaseCopy, phaseDecrypt, phaseRekey} {
				if err := e.st.clearChunks(ctx, id, t.tn.String(), phase); err != nil {
					return nil, err
				}
			}
			for _, c := range t.cols {
				c.state = nil
			}
		}
		if err := e.st.clearDDL(ctx, id); err != nil {
			return nil, err
		}
		for _, t := range tables {
			fresh, err := e.d.ReadTable(ctx, e.db, t.tn)
			if err != nil {
				return nil, err
			}
			t.model = fresh
		}
	}
	encrypted := map[string]bool{}
	for _, k := range e.alreadyEncrypted {
		encrypted[k] = true
	}
	report, err := planner.Analyze(ctx, e.plan, e.d, e.db, planner.Options{BlockersOnly: true, AlreadyEncrypted: func(table, column string) bool {
		return encrypted[e.columnKey(table, column)]
	}})
	if err != nil {
		return nil, err
	}
	if report.Blockers() > 0 {
		return nil, exitcode.Fail(&BlockedError{Report: report})
	}
	for _, tr := range report.Tables {
		for _, t := range tables {
			if t.name == tr.Name && tr.Measured {
				t.rows = tr.Rows
			}
		}
	}
	checks, err := e.keyChecks(tables)
	if err != nil {
		return nil, err
	}
	if err := e.st.ensure(ctx); err != nil {
		return nil, err
	}
	first := tables[0].cols[0].plan.Key
	info, err := e.ks.Latest(first)
	if err != nil {
		return nil, exitcode.Input(fmt.Errorf("key %q: %w", first, err))
	}
	j := &job{ID: id, Fingerprint: e.plan.Fingerprint(), Kind: jobKindEncrypt, PlanPath: e.plan.Path, KeyChecks: checks,
		DigestKey: info.Name + "/" + strconv.Itoa(int(info.Version))}
	if err := e.st.saveJob(ctx, j); err != nil {
		return nil, err
	}
	_ = states
	e.note(ctx, id, "job started", fmt.Sprintf("plan %s, %d table(s)", e.plan.Path, len(tables)))
	return j, nil
}

// checkResume refuses to resume with a different keystore.
func (e *Engine) checkResume(j *job, tables []*tableJob) error {
	if j.Kind == jobKindRevert {
		return exitcode.Input(fmt.Errorf("a revert of this plan is in progress (phase %q): run colcrypt revert %s to finish it first", j.Phase, e.plan.Path))
	}
	if j.Fingerprint != e.plan.Fingerprint() {
		return exitcode.Input(fmt.Errorf("the plan changed since the job started: run apply with the original plan, or revert"))
	}
	return e.checkKeys(j)
}

// checkKeys refuses a keystore that does not hold every key the job
// recorded with the check value it recorded: another keystore, or one
// whose key of that name and version was made anew, would read nothing
// the job wrote, and write what the job's own keystore could not read.
func (e *Engine) checkKeys(j *job) error {
	for _, name := range slices.Sorted(maps.Keys(j.KeyChecks)) {
		keyName, version, _ := strings.Cut(name, "/")
		v, err := strconv.ParseUint(version, 10, 16)
		if err == nil {
			var info keystore.KeyInfo
			_, info, err = e.ks.Key(keyName, uint16(v))
			if err == nil && info.CheckValue != j.KeyChecks[name] {
				err = errors.New("another key of that name and version")
			}
		}
		if err != nil {
			return exitcode.Input(fmt.Errorf("keystore %s does not hold key %s with the check value job %s recorded (%v): "+
				"it is another keystore, or that key was made again; run with the keystore the job ran with. Nothing was changed",
				e.plan.Keystore, name, j.ID, err))
		}
	}
	return nil
}

// runPhase runs one phase over every table.
func (e *Engine) runPhase(ctx context.Context, j *job, phase string, tables []*tableJob, res *Result) error {
	e.log.Info("phase started", "phase", phase, "job", j.ID)
	e.note(ctx, j.ID, phase+" started", "")
	var err error
	switch phase {
	case phasePrepared:
		err = e.prepare(ctx, j, tables)
	case phaseCopied:
		err = e.copyAll(ctx, j, tables, phaseCopy, StateEncrypting)
		if err == nil {
			err = e.catchUpAll(ctx, tables) // online tables only
		}
		if err == nil {
			err = e.finishRebuilds(ctx, tables, true)
		}
	case phaseVerified:
		res.Verify, err = e.verifyAll(ctx, j.ID, tables, false, false)
		if err == nil {
			err = res.Verify.Err()
			if err != nil {
				err = exitcode.Fail(err)
			}
		}
	case phaseCutover:
		err = e.cutover(ctx, j, tables)
	case phasePurged:
		if e.plan.Job.Purge {
			for _, t := range tables {
				if t.rebuild && e.d.Limits().DropFreesStorage {
					// The table holding the plaintext was dropped whole.
					e.note(ctx, j.ID, "nothing to purge", t.tn.String()+": rebuilt, and the table that held the plaintext was dropped")
					continue
				}
				// The plaintext columns were dropped at the cut-over, and
				// a VersionKeeper's rebuild drops their values from the
				// row versions it keeps too: nothing to wait for.
				if err = e.purge(ctx, j.ID, t, "the plaintext", false); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return err
	}
	e.log.Info("phase done", "phase", phase, "job", j.ID)
	e.note(ctx, j.ID, phase+" done", "")
	return nil
}

// prepare records the tables' definitions, then adds the ciphertext, IV and
// row-id columns. Every step checks what is already there, so a prepare
// interrupted at any point runs again cleanly.
func (e *Engine) prepare(ctx context.Context, j *job, tables []*tableJob) error {
	ivGroup := e.ivGroups(tables)
	for _, t := range tables {
		model, err := json.Marshal(t.model)
		if err != nil {
			return err
		}
		key, err := json.Marshal(t.model.UsableKey())
		if err != nil {
			return err
		}
		recs := []ddlRecord{{Kind: modelRecord, Name: t.tn.String(), Definition: string(model)},
			{Kind: keyRecord, Name: t.tn.String(), Definition: string(key)}}
		if r, ok := e.rebuilder(t); ok {
			recs = append(recs, ddlRecord{Kind: rebuildRecord, Name: r.RebuildName(t.tn).String()})
		}
		// Recorded once: a run resuming after a crash keeps the way the
		// first one chose.
		if err := e.st.recordDDL(ctx, j.ID, t.tn.String(), recs); err != nil {
			return err
		}
		recorded, err := e.records(ctx, j.ID, t.tn.String())
		if err != nil {
			return err
		}
		t.rebuild = recorded.has(rebuildRecord)
		for _, c := range t.cols {
			if c.state == nil {
				info, err := e.ks.Latest(c.plan.Key)
				if err != nil {
					return exitcode.Input(fmt.Errorf("key %q: %w", c.plan.Key, err))
				}
				st := &columnState{Table: t.tn.String(), Column: c.col.Name, JobID: j.ID, State: StateEncrypting,
					KeyName: info.Name, KeyVersion: int(info.Version), Suite: string(c.plan.Suite), IVMode: string(c.plan.IV),
					Versioned: c.plan.Versioned, SourceType: c.col.Declared, Temp: c.col.Name + ciphertextColumnSuffix}
				if cipher.IVLen(c.plan.Suite, c.plan.IV) > 0 {
					st.IVColumn = c.col.Name + ivColumnSuffix
				}
				if c.plan.IV == cipher.IVColumn {
					dek, _, err := e.ks.EncryptionKey(info.Name, info.Version)
					if err != nil {
						return exitcode.Input(err)
					}
					if iv := cipher.ColumnIV(c.plan.Suite, dek[:c.plan.Suite.KeySize()], ivGroup(t, c.col.Name)); iv != nil {
						st.ColumnIV = hex.EncodeToString(iv)
					}
				}
				// The state, with the column IV, is durable before any
				// value is encrypted under it.
				if err := e.st.putColumn(ctx, st); err != nil {
					return err
				}
				c.state = st
			}
		}
		if t.rowID != "" {
			if err := e.ddl(ctx, "add "+rowIDColumn+" to "+t.name, func(ctx context.Context) error { return e.m.AddRowID(ctx, e.db, t.tn) }); err != nil {
				return err
			}
		}
		if t.rebuild {
			if err := e.prepareRebuild(ctx, j.ID, t, true); err != nil {
				return err
			}
			e.note(ctx, j.ID, "prepared table", t.tn.String()+": its replacement is built during the copy; the table is read-only until cut-over")
			continue
		}
		for _, c := range t.cols {
			if err := e.ddl(ctx, "add ciphertext column to "+t.name, func(ctx context.Context) error {
				return e.m.AddColumn(ctx, e.db, t.tn, c.state.Temp, c.ctType)
			}); err != nil {
				return err
			}
			if c.state.IVColumn != "" {
				if err := e.ddl(ctx, "add IV column to "+t.name, func(ctx context.Context) error {
					return e.m.AddColumn(ctx, e.db, t.tn, c.state.IVColumn, c.ivType)
				}); err != nil {
					return err
				}
			}
		}
		if t.online {
			if err := e.prepareCapture(ctx, j, t); err != nil {
				return err
			}
		} else if err := e.guardWrites(ctx, j.ID, t, true); err != nil {
			return err
		}
		e.note(ctx, j.ID, "prepared table", t.tn.String())
	}
	return nil
}

// ddl runs one idempotent schema change through the retry helper, so a
// lock timeout waits and tries again instead of failing the run.
func (e *Engine) ddl(ctx context.Context, what string, op func(context.Context) error) error {
	if err := retry(ctx, e.log, what, op); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// purge rebuilds table t so that what the job replaced (what: the
// plaintext, the old ciphertexts) is gone from its files. With wait, where
// the rebuild keeps the row versions an open transaction may still need
// (dialect.VersionKeeper), it first waits, up to Options.PurgeWait, until
// no transaction begun before it is left, and says what it waits for.
func (e *Engine) purge(ctx context.Context, jobID string, t *tableJob, what string, wait bool) error {
	if vk, ok := e.m.(dialect.VersionKeeper); ok && wait {
		var holders func(context.Context) ([]string, error)
		err := retry(ctx, e.log, "purge "+t.name, func(ctx context.Context) (err error) {
			holders, err = vk.VersionHolders(ctx, e.db)
			return err
		})
		if err != nil {
			return fmt.Errorf("purge %s: %w", t.name, err)
		}
		limit := e.opt.PurgeWait
		if limit <= 0 {
			limit = defaultPurgeWait
		}
		deadline := time.Now().Add(limit)
		var logged time.Time
		for {
			var list []string
			err := retry(ctx, e.log, "purge "+t.name, func(ctx context.Context) (err error) {
				list, err = holders(ctx)
				return err
			})
			if err != nil {
				return fmt.Errorf("purge %s: %w", t.name, err)
			}
			if len(list) == 0 {
				break
			}
			if !time.Now().Before(deadline) {
				return fmt.Errorf("purge %s: after %s, %d transaction(s) begun before the purge still keep the row versions holding %s from being removed: %s. End them, then run the command again: the job resumes at the purge",
					t.name, limit.Round(time.Second), len(list), what, strings.Join(list, "; "))
			}
			if time.Since(logged) >= purgeWaitLog {
				e.log.Warn("purge waits: transactions begun before it keep the row versions holding "+what+" from being removed",
					"table", t.name, "holders", strings.Join(list, "; "), "gives up in", time.Until(deadline).Round(time.Second))
				e.note(ctx, jobID, "purge waits", t.name+": "+strings.Join(list, "; "))
				logged = time.Now()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(purgePoll):
			}
		}
	}
	return e.ddl(ctx, "purge "+t.name+" of "+what, func(ctx context.Context) error {
		return e.m.Purge(ctx, e.db, t.tn)
	})
}

// How long purge waits for the transactions that keep old row versions
// (Options.PurgeWait overrides the default), how often it looks, and how
// often it says so.
const (
	defaultPurgeWait = 5 * time.Minute
	purgePoll        = time.Second
	purgeWaitLog     = 30 * time.Second
)

// copyAll runs the copy (or another chunked phase) over every table and
// keeps the columns' percent complete current for status.
func (e *Engine) copyAll(ctx context.Context, j *job, tables []*tableJob, phase string, state int) error {
	for _, t := range tables {
		total, err := e.withProgress(ctx, t, t, phase, state, func(prog *progress) error {
			return e.copyTable(ctx, j.ID, t, phase, prog)
		})
		if err != nil {
			return err
		}
		e.saveProgress(ctx, t, state, total, total)
	}
	return nil
}

// withProgress runs a chunked phase over table t with progress toward its
// row count (progressRows), kept current in state for the columns of of,
// and returns the phase's final row count (walkedRows).
func (e *Engine) withProgress(ctx context.Context, t, of *tableJob, label string, state int, run func(*progress) error) (int64, error) {
	total, estimated, err := e.progressRows(ctx, t)
	if err != nil {
		return 0, err
	}
	prog := e.newProgress(ctx, label+" "+t.name, total, func(done, total int64) { e.saveProgress(ctx, of, state, done, total) })
	err = run(prog)
	prog.finish()
	if err != nil {
		return 0, err
	}
	return walkedRows(t, total, estimated, prog), nil
}

// progressRows is the row count a phase's progress counts toward, and
// whether it is only the catalog's estimate. An offline table is counted
// once per run: by the blocker scan, when it read the table; else, when
// the catalog keeps an estimate (PostgreSQL's reltuples, SQL Server's
// partition counts), the phase starts from that and ends with the rows it
// walked (walkedRows), which the next phases reuse; else by counting. On
// 1M rows of PostgreSQL the count held the copy back by 0.25 s. An online
// table, whose rows change, is counted each time.
func (e *Engine) progressRows(ctx context.Context, t *tableJob) (n int64, estimated bool, err error) {
	if !t.online {
		if t.rows > 0 {
			return t.rows, false, nil
		}
		if t.model != nil && t.model.RowCount > 0 {
			return t.model.RowCount, true, nil
		}
	}
	err = retry(ctx, e.log, "count rows of "+t.name, func(ctx context.Context) error {
		return e.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+e.d.QuoteTable(t.tn)).Scan(&n)
	})
	if err != nil {
		return 0, false, fmt.Errorf("count rows of %s: %w", t.name, err)
	}
	if !t.online {
		t.rows = n
	}
	return n, false, nil
}

// walkedRows is a phase's final row count: the rows it walked, when it
// started from an estimate (every chunk of an offline table, this run's
// and the recorded ones, so the table's exact count); else its total.
func walkedRows(t *tableJob, total int64, estimated bool, prog *progress) int64 {
	if !estimated {
		return total
	}
	t.rows = prog.rows()
	return t.rows
}

// saveProgress records percent complete of a table's columns; a failure
// only delays what status shows, so it is logged, not returned.
func (e *Engine) saveProgress(ctx context.Context, t *tableJob, state int, done, total int64) {
	if e.writeMu != nil {
		e.writeMu.Lock()
		defer e.writeMu.Unlock()
	}
	pct := 100
	if total > 0 {
		pct = int(min(done*100/total, 100))
	}
	for _, c := range t.cols {
		c.state.State, c.state.Percent, c.state.RowsDone, c.state.RowsTotal = state, pct, done, total
		if err := e.st.putColumn(ctx, c.state); err != nil && ctx.Err() == nil {
			e.log.Warn("could not record progress", "table", t.name, "err", err)
		}
	}
}

// verifyAll verifies every table.
// verifyAll verifies every table (verifyTable); copiedSoFar verifies, of a
// copy still under way, the chunks it recorded.
func (e *Engine) verifyAll(ctx context.Context, jobID string, tables []*tableJob, afterCutover, copiedSoFar bool) (*VerifyResult, error) {
	res := &VerifyResult{CopiedSoFar: copiedSoFar}
	for _, t := range tables {
		total, _, err := e.progressRows(ctx, t)
		if err != nil {
			return nil, err
		}
		prog := e.newProgress(ctx, "verify "+t.name, total, nil)
		err = e.verifyTable(ctx, jobID, t, afterCutover, copiedSoFar, res, prog)
		prog.finish()
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// cutover swaps the columns group by group, after checking that a keystore
// backup newer than the last key change exists.
func (e *Engine) cutover(ctx context.Context, j *job, tables []*tableJob) error {
	if e.ks.LastBackup().Before(e.ks.LastKeyChange()) || e.ks.LastBackup().IsZero() {
		if !e.opt.NoBackupCheck {
			return exitcode.Input(fmt.Errorf("cut-over destroys the plaintext, and keystore %s has no backup taken after its last key change: "+
				"run colcrypt keys backup %s FILE first (or pass --no-backup-check to waive this)", e.plan.Keystore, e.plan.Keystore))
		}
		e.log.Warn("keystore backup check waived with --no-backup-check", "keystore", e.plan.Keystore)
		e.note(ctx, j.ID, "backup check waived", "--no-backup-check given; keystore "+e.plan.Keystore)
	} else if err := e.checkBackupFile(ctx, j.ID, "cut-over destroys the plaintext"); err != nil {
		return err
	}
	if err := e.checkNewDependents(ctx, tables); err != nil {
		return err
	}
	for _, group := range groupTables(tables) {
		// Online: shrink what the cut-over's lock must re-encrypt.
		if err := e.catchUpAll(ctx, group); err != nil {
			return err
		}
		var swaps []dialect.TableSwap
		for _, t := range group {
			s := e.tableSwap(t, true)
			e.onlineSwap(&s, t)
			if !t.online && !t.rebuild {
				s.CatchUp = e.unencryptedGuard(t)
			}
			swaps = append(swaps, s)
		}
		if err := retry(ctx, e.log, "cut-over", func(ctx context.Context) error { return e.m.Swap(ctx, e.db, swaps) }); err != nil {
			return fmt.Errorf("cut-over of %s: %w (the job can be resumed with apply, or undone with revert)", groupNames(group), err)
		}
		for _, t := range group {
			if t.online {
				if err := e.rebaseline(ctx, j.ID, t); err != nil {
					return fmt.Errorf("record the digests of %s after the cut-over: %w (run apply again to finish)", t.name, err)
				}
			}
		}
		for _, t := range group {
			for _, c := range t.cols {
				c.state.State, c.state.Percent = StateEncrypted, 100
				if err := e.st.putColumn(ctx, c.state); err != nil {
					return err
				}
			}
			if t.keyIsEnc {
				if err := e.st.redactBoundaries(ctx, j.ID, t.tn.String(), phaseCopy); err != nil {
					return err
				}
			}
			e.note(ctx, j.ID, "cut over table", t.tn.String())
		}
	}
	return nil
}

// unencryptedGuard runs inside the swap's transaction of an offline job:
// a row written after its chunk was copied (an insert, or NULL set to a
// value) has plaintext but no ciphertext, and dropping the plaintext would
// lose it. Such rows stop the cut-over, naming the count; run the job
// online when other writers cannot be stopped.
func (e *Engine) unencryptedGuard(t *tableJob) func(context.Context, dialect.Querier) error {
	return func(ctx context.Context, q dialect.Querier) error {
		var found []string
		for _, c := range t.cols {
			cond := e.d.Quote(c.col.Name) + " IS NOT NULL AND " + e.d.Quote(c.state.Temp) + " IS NULL"
			rows, err := q.QueryContext(ctx, "SELECT COUNT(*) FROM "+e.d.QuoteTable(t.tn)+" WHERE "+cond)
			if err != nil {
				return err
			}
			var n int64
			for rows.Next() {
				if err := rows.Scan(&n); err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if n > 0 {
				found = append(found, fmt.Sprintf("%s (%d rows)", c.col.Name, n))
			}
		}
		if len(found) > 0 {
			return exitcode.Input(fmt.Errorf("cut-over of %s refused: values in %s have no ciphertext (written after the copy), "+
				"and dropping the plaintext would lose them; nothing was changed. Run colcrypt verify to see the rows; stop the writers, "+
				"then revert and apply again, or run the job with --online", t.name, strings.Join(found, ", ")))
		}
		return nil
	}
}

// checkNewDependents re-reads the live schema before cut-over: a trigger,
// view or computed column created on a planned column since the job was
// planned would break, or silently read ciphertext, once the column is
// swapped. Nothing is changed when one is found.
func (e *Engine) checkNewDependents(ctx context.Context, tables []*tableJob) error {
	for _, t := range tables {
		live, err := e.d.ReadTable(ctx, e.db, t.tn)
		if err != nil {
			return fmt.Errorf("re-read %s before cut-over: %w", t.name, err)
		}
		var planned []string
		for _, c := range t.cols {
			planned = append(planned, c.col.Name)
		}
		touches := func(cols []string) string {
			for _, c := range cols {
				if schema.ContainsFold(planned, c) {
					return c
				}
			}
			return ""
		}
		for _, tr := range live.Triggers {
			if strings.HasPrefix(strings.ToLower(tr.Name), "colcrypt_") {
				continue
			}
			if c := touches(tr.Columns); c != "" {
				return exitcode.Input(fmt.Errorf("before executing this operation, you must drop trigger %s defined on %s "+
					"(it references %s, and was created after the job was planned); then run apply again", tr.Name, t.name, c))
			}
		}
		for _, dep := range live.Dependents {
			if dep.Kind == schema.KindExtendedStatistics {
				continue // dropped with the column, which the plan warns of
			}
			if c := touches(dep.Columns); c != "" {
				return exitcode.Input(fmt.Errorf("%s %s depends on %s.%s, which cut-over would turn into ciphertext: drop it, then run apply again",
					dep.Kind, dep.Name, t.name, c))
			}
		}
	}
	return nil
}

func groupNames(group []*tableJob) string {
	var names []string
	for _, t := range group {
		names = append(names, t.name)
	}
	return strings.Join(names, ", ")
}

// tableSwap describes the swap of one table: forward (cut-over) or back.
func (e *Engine) tableSwap(t *tableJob, forward bool) dialect.TableSwap {
	s := dialect.TableSwap{Table: t.model, RowID: t.rowID, KeepPlaintext: e.plan.Job.Plaintext == "null",
		DropChecks: e.plan.Job.DropCheckConstraints, DropDefaults: e.plan.Job.DropDefaults, Rebuilt: e.rebuilds(t, forward), Reverse: !forward}
	for _, c := range t.cols {
		sc := dialect.SwapColumn{Name: c.col.Name, IV: c.state.IVColumn}
		if forward {
			sc.Temp, sc.TempType = c.state.Temp, c.ctType
			if s.KeepPlaintext {
				sc.Plaintext = c.col.Name + dialect.PlaintextKeptSuffix
			}
		} else {
			sc.Temp, sc.TempType = c.col.Name+restoredColumnSuffix, c.col.Declared
		}
		s.Columns = append(s.Columns, sc)
	}
	return s
}

var errNoJob = errors.New("no job")
