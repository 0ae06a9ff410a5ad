package migrate

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/planner"
	"github.com/colcrypt/colcrypt/schema"
)

// Rekey re-encrypts encrypted columns in place under their key's newest
// version, and under the plan's suite and IV mode when those changed (state
// 4, resumable like apply). Every value carries a versioned header naming
// its suite and key version, so while the job runs each value decrypts with
// whichever key wrote it, and a chunk repeated after a crash skips values
// already rewritten: nothing is ever unreadable or encrypted twice.
// columns are TABLE.COLUMN names; none means every planned column.
func (e *Engine) Rekey(ctx context.Context, columns []string) (*Result, error) {
	unlock, err := e.lockTables(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := e.loadStates(ctx)
	if err != nil {
		return nil, err
	}
	selected, jobID, err := e.selectRekeyColumns(columns, all)
	if err != nil {
		return nil, err
	}
	j, err := e.st.loadJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if j == nil {
		return nil, exitcode.Input(fmt.Errorf("the job that encrypted these columns (%s) is missing from the database", jobID))
	}
	if err := e.checkKeys(j); err != nil {
		return nil, err
	}
	if err := e.useJob(j); err != nil {
		return nil, err
	}
	states := map[string]*columnState{}
	for k, s := range all {
		if s.JobID == jobID {
			states[k] = s
		}
	}
	tables, err := e.tables(ctx, jobID, states)
	if err != nil {
		return nil, err
	}
	res := &Result{JobID: jobID}
	started := false
	// A rekey stopped midway resumes: the columns it already finished are
	// at their target and are skipped, not refused as "nothing newer".
	resuming := false
	for _, s := range states {
		if selected[stateKey(s.Table, s.Column)] && s.State == StateKeyChange {
			resuming = true
		}
	}
	// The columns to start, each checked before anything changes.
	type start struct {
		target *rekeyTarget
		info   keystore.KeyInfo
	}
	starts := map[*colJob]start{}
	for _, t := range tables {
		for _, c := range rekeyColumns(t, selected) {
			// A column already at its target is skipped: a rekey of
			// several columns killed between two of them resumes with no
			// column in state 4.
			if c.state.State != StateEncrypted || e.atRekeyTarget(c) {
				continue
			}
			target, info, err := e.rekeyTargetOf(ctx, j, t, c)
			if err != nil {
				return nil, err
			}
			starts[c] = start{target, info}
		}
	}
	// Every selected column already under its target, and no rekey to
	// finish: done, as a finished apply is (a rekey killed just after its
	// last write, run again, ends here).
	if !resuming && len(starts) == 0 {
		res.Already = true
		res.Phase = phaseDone
		e.restoreJournal(ctx, jobID, "") // an earlier run killed before it did
		return res, nil
	}
	// A rekey about to begin first decrypts every value, so that one that
	// does not decrypt stops it before it rewrites any.
	if !resuming {
		if err := e.checkDecryptable(ctx, jobID, tables, "rekey"); err != nil {
			return nil, err
		}
	}
	journal, err := e.switchJournal(ctx, jobID)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		var cols []*colJob
		for _, c := range rekeyColumns(t, selected) {
			if c.state.State == StateEncrypted {
				st, ok := starts[c]
				if !ok {
					continue // already at its target
				}
				if err := e.recordRekey(ctx, j, t, c, st.target, st.info); err != nil {
					return nil, err
				}
				started = true
			}
			cols = append(cols, c)
		}
		if len(cols) == 0 {
			continue
		}
		if err := e.rekeyTable(ctx, j, t, cols); err != nil {
			e.note(ctx, j.ID, "rekey failed", err.Error())
			return res, err
		}
	}
	if !started {
		e.log.Info("rekey resumed and finished")
	}
	// A rekey that applied a changed plan (another suite or IV mode) makes
	// the job the new plan's.
	if j.Fingerprint != e.plan.Fingerprint() {
		if err := e.st.moveJob(ctx, j.ID, e.jobID(), e.plan.Fingerprint()); err != nil {
			return res, err
		}
		res.JobID = e.jobID()
	}
	res.Phase = phaseDone
	e.restoreJournal(ctx, res.JobID, journal)
	return res, nil
}

// selectRekeyColumns resolves TABLE.COLUMN names against the plan and
// checks they are encrypted (or mid-rekey) by one job.
func (e *Engine) selectRekeyColumns(columns []string, all map[string]*columnState) (map[string]bool, string, error) {
	selected := map[string]bool{}
	var jobID string
	for _, tp := range e.plan.Tables {
		tn := e.tableName(tp.Name).String()
		for _, cp := range tp.Columns {
			want := len(columns) == 0
			for _, name := range columns {
				i := strings.LastIndexByte(name, '.')
				if i > 0 && strings.EqualFold(name[i+1:], cp.Name) && strings.EqualFold(e.tableName(name[:i]).String(), tn) {
					want = true
				}
			}
			if !want {
				continue
			}
			s := all[stateKey(tn, cp.Name)]
			if s == nil || (s.State != StateEncrypted && s.State != StateKeyChange) {
				state := StateUnencrypted
				if s != nil {
					state = s.State
				}
				return nil, "", exitcode.Input(fmt.Errorf("%s.%s is not encrypted (state %d %s): rekey works on encrypted columns; run colcrypt apply first",
					tn, cp.Name, state, StateDesc(state)))
			}
			if jobID != "" && s.JobID != jobID {
				return nil, "", exitcode.Input(fmt.Errorf("%s.%s was encrypted by another job than the other columns: rekey them with their own plans", tn, cp.Name))
			}
			jobID = s.JobID
			selected[stateKey(tn, cp.Name)] = true
		}
	}
	if len(selected) < max(len(columns), 1) {
		return nil, "", exitcode.Input(fmt.Errorf("--column %s: not a column of plan %s (write TABLE.COLUMN as in the plan)", strings.Join(columns, ", "), e.plan.Path))
	}
	return selected, jobID, nil
}

func rekeyColumns(t *tableJob, selected map[string]bool) []*colJob {
	var out []*colJob
	for _, c := range t.cols {
		if selected[stateKey(t.tn.String(), c.col.Name)] {
			out = append(out, c)
		}
	}
	return out
}

// atRekeyTarget reports whether a column is already under its key's
// newest version with the plan's suite and IV mode.
func (e *Engine) atRekeyTarget(c *colJob) bool {
	info, err := e.ks.Latest(c.plan.Key)
	st := c.state
	return err == nil && info.Name == st.KeyName && int(info.Version) == st.KeyVersion && string(c.plan.Suite) == st.Suite &&
		string(c.plan.IV) == st.IVMode && c.plan.Versioned == st.Versioned
}

// rekeyTargetOf decides the target of one column's rekey (one not at it
// already, atRekeyTarget), after the checks: a versioned
// column, a backup taken after the new version was added (and still
// there), no foreign key on the column, and the planner's rules for the
// new settings. It changes nothing: recordRekey does.
func (e *Engine) rekeyTargetOf(ctx context.Context, j *job, t *tableJob, c *colJob) (*rekeyTarget, keystore.KeyInfo, error) {
	st := c.state
	info, err := e.ks.Latest(c.plan.Key)
	if err != nil {
		return nil, info, exitcode.Input(fmt.Errorf("key %q for %s.%s: %w", c.plan.Key, t.name, c.col.Name, err))
	}
	target := &rekeyTarget{KeyName: info.Name, KeyVersion: int(info.Version), Suite: string(c.plan.Suite),
		IVMode: string(c.plan.IV), Versioned: c.plan.Versioned}
	if !st.Versioned || !target.Versioned {
		return nil, info, exitcode.Input(fmt.Errorf("%s.%s: rekey needs versioned ciphertexts (versioned: true), because while it runs each value "+
			"must say which key wrote it; revert and apply again instead", t.name, c.col.Name))
	}
	if e.ks.LastBackup().Before(info.Created) && !e.opt.NoBackupCheck {
		return nil, info, exitcode.Input(fmt.Errorf("keystore %s has no backup taken after key %s v%d was added: run colcrypt keys backup %s FILE "+
			"first (or pass --no-backup-check)", e.plan.Keystore, info.Name, info.Version, e.plan.Keystore))
	}
	if err := e.checkBackupFile(ctx, j.ID, fmt.Sprintf("rekey of %s.%s writes values only key %s v%d decrypts", t.name, c.col.Name, info.Name, info.Version)); err != nil {
		return nil, info, err
	}
	for _, fk := range append(append([]*schema.ForeignKey{}, t.model.ForeignKeys...), t.model.ReferencedBy...) {
		cols := fk.Columns
		if strings.EqualFold(fk.RefTable.Name, t.model.Name.Name) {
			cols = append(append([]string{}, cols...), fk.RefColumns...)
		}
		if schema.ContainsFold(cols, c.col.Name) {
			// Rewriting one side of a foreign key in place would break it
			// until the other side is rewritten too.
			return nil, info, exitcode.Input(fmt.Errorf("%s.%s is part of foreign key %s: an in-place rekey would break it while it runs; "+
				"revert the plan and apply it again with the new key instead", t.name, c.col.Name, fk.Label()))
		}
	}
	if err := e.checkRekeyRules(t, c); err != nil {
		return nil, info, err
	}
	if target.Suite == st.Suite && target.KeyVersion == st.KeyVersion {
		// While the rekey runs, a value's header (its suite and key
		// version) is all that tells a rewritten value from an old one
		// (decryptAny). A new key name of the same version number, or a new
		// IV mode alone, would write values that read as old ones: the
		// first would not decrypt, the second would decrypt to garbage.
		var what []string
		fix := "revert the plan and apply it again with the new settings"
		if target.KeyName != st.KeyName {
			what = append(what, fmt.Sprintf("its key (%s v%d → %s v%d)", st.KeyName, st.KeyVersion, target.KeyName, target.KeyVersion))
			fix = fmt.Sprintf("add versions to key %s (colcrypt keys add %s %s) until its newest is not v%d, then rekey; or %s",
				target.KeyName, e.plan.Keystore, target.KeyName, st.KeyVersion, fix)
		}
		if target.IVMode != st.IVMode {
			what = append(what, "its IV mode ("+st.IVMode+" → "+target.IVMode+")")
		}
		return nil, info, exitcode.Input(fmt.Errorf("%s.%s: a rekey that changes only %s keeps suite %s and key version %d, so its values could not be "+
			"told from the old ones while it runs; %s", t.name, c.col.Name, strings.Join(what, " and "), st.Suite, st.KeyVersion, fix))
	}
	suite := c.plan.Suite
	if c.plan.IV == cipher.IVColumn {
		dek, _, err := e.ks.EncryptionKey(info.Name, info.Version)
		if err != nil {
			return nil, info, exitcode.Input(err)
		}
		// A column of a foreign key is refused above: its group is its own.
		if iv := cipher.ColumnIV(suite, dek[:suite.KeySize()], e.columnID(t.tn, c.col.Name)); iv != nil {
			target.ColumnIV = hex.EncodeToString(iv)
		}
	}
	return target, info, nil
}

// recordRekey records a column's rekey to target (state 4), adding its IV
// column first where the target needs one.
func (e *Engine) recordRekey(ctx context.Context, j *job, t *tableJob, c *colJob, target *rekeyTarget, info keystore.KeyInfo) error {
	st := c.state
	if cipher.IVLen(c.plan.Suite, c.plan.IV) > 0 {
		target.IVColumn = c.col.Name + ivColumnSuffix
		if err := e.ddl(ctx, "add IV column to "+t.name, func(ctx context.Context) error {
			return e.m.AddColumn(ctx, e.db, t.tn, target.IVColumn, c.ivType)
		}); err != nil {
			return err
		}
	}
	if err := e.st.clearChunks(ctx, j.ID, t.tn.String(), phaseRekey); err != nil {
		return err
	}
	st.State, st.Percent, st.Target = StateKeyChange, 0, target
	if err := e.st.putColumn(ctx, st); err != nil {
		return err
	}
	j.KeyChecks[info.Name+"/"+strconv.Itoa(int(info.Version))] = info.CheckValue
	if err := e.st.saveJob(ctx, j); err != nil {
		return err
	}
	e.note(ctx, j.ID, "rekey started", fmt.Sprintf("%s.%s: %s v%d %s/%s → %s v%d %s/%s", t.name, c.col.Name,
		st.KeyName, st.KeyVersion, st.Suite, st.IVMode, target.KeyName, target.KeyVersion, target.Suite, target.IVMode))
	return nil
}

// checkRekeyRules runs the planner's rules for the column's new settings on
// the table as it was before encryption (a field-level IV cannot keep a
// unique constraint, whatever the suite).
func (e *Engine) checkRekeyRules(t *tableJob, c *colJob) error {
	for _, tp := range e.plan.Tables {
		if !strings.EqualFold(e.tableName(tp.Name).String(), t.tn.String()) {
			continue
		}
		findings := planner.CheckSchema(e.plan, []planner.Target{{Plan: &tp, Table: t.model}}, e.d, planner.Options{})
		for _, f := range findings[0] {
			if f.Severity == planner.SeverityBlocker && strings.EqualFold(f.Column, c.col.Name) {
				return exitcode.Fail(fmt.Errorf("rekey of %s.%s: %s", t.name, c.col.Name, f.Message))
			}
		}
	}
	return nil
}

// rekeyTable rewrites the selected columns of a table chunk by chunk.
func (e *Engine) rekeyTable(ctx context.Context, j *job, t *tableJob, cols []*colJob) error {
	// Cut-over dropped the row id a keyless table is paged by: the rekey
	// adds it again (a resumed one finds it) and drops it once every value
	// is rewritten, before the columns leave state 4.
	if t.rowID != "" {
		if err := e.ddl(ctx, "add "+rowIDColumn+" to "+t.name, func(ctx context.Context) error { return e.m.AddRowID(ctx, e.db, t.tn) }); err != nil {
			return err
		}
	}
	done, err := e.resumableChunks(ctx, j.ID, t, phaseRekey)
	if err != nil {
		return err
	}
	type pair struct{ old, new *cipher.Column }
	var exprs, set []string
	for _, c := range cols {
		exprs = append(exprs, e.d.Quote(c.col.Name))
		set = append(set, c.col.Name)
		// The IV column is read and written while either the old or the
		// new mode has one: a repeated chunk meets values of both.
		if hasIVColumn(c) {
			exprs = append(exprs, e.d.Quote(c.col.Name+ivColumnSuffix))
			set = append(set, c.col.Name+ivColumnSuffix)
		}
	}
	// A worker holds the old and the new cipher of each column.
	newWorker := func() (*worker, error) {
		w := &worker{}
		for _, c := range cols {
			old, err := e.columnCipher(c, false)
			if err != nil {
				return nil, err
			}
			next, err := e.targetCipher(c)
			if err != nil {
				return nil, err
			}
			w.ciphers = append(w.ciphers, old, next)
		}
		return w, nil
	}
	nKey := len(t.key)
	work := func(ctx context.Context, w *worker, ch chunk) (int64, error) {
		var out [][]any
		dg := newDigest(e.digestKey)
		plain := make([][]byte, len(cols))
		err := e.eachRow(ctx, t, exprs, ch, func(vals []any) error {
			row := append([]any{}, vals[:nKey]...)
			at := nKey
			for i, c := range cols {
				ciphers := pair{w.ciphers[2*i], w.ciphers[2*i+1]}
				ct, _ := vals[at].([]byte)
				isNull := vals[at] == nil
				at++
				var iv []byte
				hasIVCol := hasIVColumn(c)
				if hasIVCol {
					iv, _ = vals[at].([]byte)
					at++
				}
				plain[i] = nil
				if isNull {
					row = append(row, nil)
					if hasIVCol {
						row = append(row, nil)
					}
					continue
				}
				// Values already under the target were rewritten by an
				// earlier run of this chunk: decrypt with the new cipher.
				p, err := decryptAny(c, ciphers.old, ciphers.new, ct, iv)
				if err != nil {
					return fmt.Errorf("decrypt %s.%s at %s: %w", t.name, c.col.Name, t.describeKey(vals[:nKey]), err)
				}
				plain[i] = p
				nct, niv, err := ciphers.new.Encrypt(p)
				if err != nil {
					return err
				}
				row = append(row, nct)
				if hasIVCol {
					if niv == nil {
						row = append(row, nil)
					} else {
						row = append(row, niv)
					}
				}
			}
			dg.appendRow(nil, nil, plain)
			out = append(out, row)
			return nil
		})
		if err != nil {
			return 0, err
		}
		return int64(len(out)), e.writeChunk(ctx, j.ID, t, phaseRekey, ch,
			dialect.Update{Table: t.tn, Key: t.keyCols, KeyTypes: cipherKeyTypes(t), Set: set, Rows: out, Lo: ch.lo, Hi: ch.hi}, dg, nil, nil)
	}
	onlyCols := &tableJob{name: t.name, tn: t.tn, model: t.model, key: t.key, keyCols: t.keyCols, keyTypes: t.keyTypes, cols: cols}
	total, err := e.withProgress(ctx, t, onlyCols, "rekey", StateKeyChange, func(prog *progress) error {
		return e.runChunks(ctx, t, done, exprs, newWorker, work, prog)
	})
	if err != nil {
		return err
	}
	// The rewritten rows left the old ciphertexts in the table's files:
	// dead row versions on PostgreSQL, free pages on SQLite and SQL
	// Server. With purge: true the table is rebuilt before its columns
	// leave state 4, so that a retired or compromised key version opens
	// nothing left there, and a rekey stopped during the purge purges
	// again when resumed.
	if e.plan.Job.Purge {
		if err := e.purge(ctx, j.ID, t, "the old ciphertexts", true); err != nil {
			return err
		}
		e.note(ctx, j.ID, "purged", t.tn.String())
	}
	if t.rowID != "" {
		if err := e.ddl(ctx, "drop "+rowIDColumn+" of "+t.name, func(ctx context.Context) error {
			return e.m.DropColumn(ctx, e.db, t.tn, rowIDColumn)
		}); err != nil {
			return err
		}
	}
	// Every value is under the target now: it becomes the column's state.
	for _, c := range cols {
		st, tg := c.state, c.state.Target
		oldIV := st.IVColumn
		st.KeyName, st.KeyVersion, st.Suite, st.IVMode, st.Versioned = tg.KeyName, tg.KeyVersion, tg.Suite, tg.IVMode, tg.Versioned
		st.ColumnIV, st.IVColumn, st.Target = tg.ColumnIV, tg.IVColumn, nil
		st.State, st.Percent, st.RowsDone, st.RowsTotal = StateEncrypted, 100, total, total
		if err := e.st.putColumn(ctx, st); err != nil {
			return err
		}
		if oldIV != "" && st.IVColumn == "" {
			if err := e.ddl(ctx, "drop the IV column the new suite no longer needs", func(ctx context.Context) error {
				return e.m.DropColumn(ctx, e.db, t.tn, oldIV)
			}); err != nil {
				return err
			}
		}
	}
	e.note(ctx, j.ID, "rekey done", t.tn.String())
	return nil
}

// hasIVColumn reports whether the column's IV column exists: while a rekey
// runs, it does when either the old or the new mode has one.
func hasIVColumn(c *colJob) bool {
	return c.state.IVColumn != "" || (c.state.Target != nil && c.state.Target.IVColumn != "")
}

// decryptAny decrypts a value of a column that may be mid-rekey: the
// versioned header says whether the old or the target cipher wrote it, and
// each gets the companion IV only if its own mode has one.
func decryptAny(c *colJob, old, target *cipher.Column, ct, iv []byte) ([]byte, error) {
	if c.state.Target != nil && target != nil {
		if suite, version, err := cipher.Header(ct); err == nil &&
			string(suite) == c.state.Target.Suite && int(version) == c.state.Target.KeyVersion {
			if c.state.Target.IVColumn == "" {
				iv = nil
			}
			return target.Decrypt(ct, iv)
		}
	}
	if c.state.IVColumn == "" {
		iv = nil
	}
	return old.Decrypt(ct, iv)
}

// targetCipher builds the cipher a rekey writes with.
func (e *Engine) targetCipher(c *colJob) (*cipher.Column, error) {
	tg := c.state.Target
	shadow := *c.state
	shadow.KeyName, shadow.KeyVersion, shadow.Suite, shadow.IVMode, shadow.Versioned, shadow.ColumnIV =
		tg.KeyName, tg.KeyVersion, tg.Suite, tg.IVMode, tg.Versioned, tg.ColumnIV
	return e.columnCipher(&colJob{plan: c.plan, col: c.col, codec: c.codec, state: &shadow}, true)
}
