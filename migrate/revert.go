package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
)

// revertPhases are the phases of the reverse job after a cut-over.
var revertPhases = []string{phasePrepared, phaseDecrypt, phaseVerified, phaseCutover}

// Revert undoes the plan's job. Before cut-over the plaintext is intact,
// so it only drops what prepare added. After cut-over it decrypts every
// value into a column of the original type (state 5, resumable like
// apply), proves the restored values add up to the digest recorded during
// copy, and swaps back, restoring type, nullability, default, checks, keys,
// indexes and foreign keys as recorded.
func (e *Engine) Revert(ctx context.Context) (*Result, error) {
	unlock, err := e.lockTables(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	id := e.jobID()
	j, states, err := e.openJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if j == nil || (j.Kind == jobKindRevert && j.Phase == phaseDone) {
		return &Result{JobID: id, Already: true, Phase: phaseDone}, nil
	}
	if err := e.useJob(j); err != nil {
		return nil, err
	}
	tables, err := e.tables(ctx, id, states)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		for _, c := range t.cols {
			if c.state == nil {
				return nil, exitcode.Input(fmt.Errorf("%s.%s has no recorded state: the job did not get as far as preparing it", t.name, c.col.Name))
			}
		}
	}
	res := &Result{JobID: id}
	if j.Kind == jobKindEncrypt && phaseIndex(encryptPhases, j.Phase) < phaseIndex(encryptPhases, phaseCutover) {
		// Only columns to drop: the file may keep its mode, and gets back
		// the one a killed apply recorded.
		if err := e.revertBeforeCutover(ctx, j, tables); err != nil {
			return res, err
		}
		e.restoreJournal(ctx, id, "")
		return res, nil
	}
	if j.Kind != jobKindRevert {
		if err := e.checkResume(j, tables); err != nil {
			return nil, err
		}
		if err := e.checkDecryptable(ctx, id, tables, "revert"); err != nil {
			return nil, err
		}
	}
	journal, err := e.switchJournal(ctx, id)
	if err != nil {
		return res, err
	}
	if j.Kind != jobKindRevert {
		fromKind, fromPhase := j.Kind, j.Phase
		j.Kind, j.Phase = jobKindRevert, ""
		if err := e.st.advanceJob(ctx, j, fromKind, fromPhase); err != nil {
			return nil, err
		}
		e.note(ctx, id, "revert started", "")
	}
	for _, phase := range revertPhases {
		if phaseIndex(revertPhases, phase) <= phaseIndex(revertPhases, j.Phase) {
			continue
		}
		if err := e.runRevertPhase(ctx, j, phase, tables, res); err != nil {
			e.note(ctx, id, "revert "+phase+" failed", err.Error())
			return res, err
		}
		from := j.Phase
		j.Phase = phase
		if phase == phaseCutover {
			j.Phase = phaseDone
		}
		if err := e.st.advanceJob(ctx, j, j.Kind, from); err != nil {
			return res, err
		}
		res.Phase = phase
	}
	res.Phase = phaseDone
	e.restoreJournal(ctx, id, journal)
	return res, nil
}

// revertBeforeCutover drops the columns prepare added; the plaintext was
// never touched.
func (e *Engine) revertBeforeCutover(ctx context.Context, j *job, tables []*tableJob) error {
	// A cut-over interrupted between one group's swap and the job's record
	// of it leaves a swapped table whose IV column must not be dropped:
	// check every table before touching any.
	for _, t := range tables {
		swapped, err := e.swappedAlready(ctx, j, t)
		if err != nil {
			return err
		}
		if swapped {
			return exitcode.Input(fmt.Errorf("the cut-over of %s was interrupted after it swapped columns: "+
				"run colcrypt apply %s to finish it, then revert", t.name, e.plan.Path))
		}
	}
	for _, t := range tables {
		// The capture trigger goes before the columns it names.
		if err := e.dropCapture(ctx, t); err != nil {
			return err
		}
		if err := e.dropRebuild(ctx, t); err != nil {
			return err
		}
		if err := e.liftGuard(ctx, t); err != nil {
			return err
		}
		drop := []string{}
		for _, c := range t.cols {
			if t.rebuild {
				break // nothing was added to the table
			}
			drop = append(drop, c.state.Temp)
			if c.state.IVColumn != "" {
				drop = append(drop, c.state.IVColumn)
			}
		}
		if t.rowID != "" {
			drop = append(drop, t.rowID)
		}
		for _, col := range drop {
			if err := e.ddl(ctx, "drop "+col+" from "+t.name, func(ctx context.Context) error { return e.m.DropColumn(ctx, e.db, t.tn, col) }); err != nil {
				return err
			}
		}
		for _, c := range t.cols {
			c.state.State, c.state.Percent, c.state.RowsDone = StateUnencrypted, 0, 0
			if err := e.st.putColumn(ctx, c.state); err != nil {
				return err
			}
		}
		if err := e.st.clearChunks(ctx, j.ID, t.tn.String(), phaseCopy); err != nil {
			return err
		}
	}
	j.Kind, j.Phase = jobKindRevert, phaseDone
	if err := e.st.saveJob(ctx, j); err != nil {
		return err
	}
	e.note(ctx, j.ID, "reverted before cut-over", "added columns dropped; plaintext was never changed")
	return nil
}

func (e *Engine) runRevertPhase(ctx context.Context, j *job, phase string, tables []*tableJob, res *Result) error {
	e.note(ctx, j.ID, "revert "+phase+" started", "")
	switch phase {
	case phasePrepared:
		for _, t := range tables {
			if err := e.chooseRevertWay(ctx, j.ID, t); err != nil {
				return err
			}
			if e.rebuilds(t, false) {
				// The restored rows go into a replacement of the recorded
				// definition, which the cut-over swaps in.
				if err := e.prepareRebuild(ctx, j.ID, t, false); err != nil {
					return err
				}
				if err := e.markDecrypting(ctx, t); err != nil {
					return err
				}
				e.note(ctx, j.ID, "prepared table", t.tn.String()+": the restored rows go into a replacement; the table is read-only until cut-over")
				continue
			}
			// Cut-over dropped the row id a keyless table is paged by:
			// the decrypt needs it again (Unswap drops it).
			if t.rowID != "" {
				if err := e.ddl(ctx, "add "+rowIDColumn+" to "+t.name, func(ctx context.Context) error { return e.m.AddRowID(ctx, e.db, t.tn) }); err != nil {
					return err
				}
			}
			for _, c := range t.cols {
				if err := e.ddl(ctx, "add restore column to "+t.name, func(ctx context.Context) error {
					return e.m.AddColumn(ctx, e.db, t.tn, c.col.Name+restoredColumnSuffix, c.col.Declared)
				}); err != nil {
					return err
				}
			}
			if err := e.guardWrites(ctx, j.ID, t, false); err != nil {
				return err
			}
			if err := e.markDecrypting(ctx, t); err != nil {
				return err
			}
		}
	case phaseDecrypt:
		for _, t := range tables {
			total, err := e.withProgress(ctx, t, t, "decrypt", StateDecrypting, func(prog *progress) error {
				return e.decryptTable(ctx, j.ID, t, prog)
			})
			if err != nil {
				return err
			}
			e.saveProgress(ctx, t, StateDecrypting, total, total)
		}
		if err := e.finishRebuilds(ctx, tables, false); err != nil {
			return err
		}
	case phaseVerified:
		vr := &VerifyResult{}
		for _, t := range tables {
			if err := e.verifyRestored(ctx, j.ID, t, vr); err != nil {
				return err
			}
		}
		res.Verify = vr
		if err := vr.Err(); err != nil {
			return exitcode.Fail(err)
		}
	case phaseCutover:
		for _, group := range groupTables(tables) {
			var swaps []dialect.TableSwap
			for _, t := range group {
				swaps = append(swaps, e.tableSwap(t, false))
			}
			if err := retry(ctx, e.log, "revert cut-over", func(ctx context.Context) error { return e.m.Unswap(ctx, e.db, swaps) }); err != nil {
				return fmt.Errorf("revert cut-over of %s: %w (run revert again to resume)", groupNames(group), err)
			}
			for _, t := range group {
				for _, c := range t.cols {
					c.state.State, c.state.Percent = StateUnencrypted, 0
					if err := e.st.putColumn(ctx, c.state); err != nil {
						return err
					}
				}
			}
		}
	}
	e.note(ctx, j.ID, "revert "+phase+" done", "")
	return nil
}

// markDecrypting records the table's columns in state 5.
func (e *Engine) markDecrypting(ctx context.Context, t *tableJob) error {
	for _, c := range t.cols {
		c.state.State = StateDecrypting
		c.state.Percent = 0
		if err := e.st.putColumn(ctx, c.state); err != nil {
			return err
		}
	}
	return nil
}

// restoredColumn names the column a revert writes a column's plaintext
// to: the replacement's column of that name when the revert builds one,
// else the restore column added to the table.
func (e *Engine) restoredColumn(t *tableJob, c *colJob) string {
	if e.rebuilds(t, false) {
		return c.col.Name
	}
	return c.col.Name + restoredColumnSuffix
}

// decryptTable decrypts every ciphertext into the restore column (or the
// replacement), chunk by chunk, with a checkpoint and plaintext digest per
// chunk in the same transaction.
func (e *Engine) decryptTable(ctx context.Context, jobID string, tj *tableJob, prog *progress) error {
	done, err := e.resumableChunks(ctx, jobID, tj, phaseDecrypt)
	if err != nil {
		return err
	}
	var exprs, set []string
	var setExpr []func(string) string
	for _, c := range tj.cols {
		exprs = append(exprs, e.d.Quote(c.col.Name))
		if c.state.IVColumn != "" {
			exprs = append(exprs, e.d.Quote(c.state.IVColumn))
		}
		set = append(set, e.restoredColumn(tj, c))
		setExpr = append(setExpr, c.codec.RestoreExpr)
	}
	nKey := len(tj.key)
	work := func(ctx context.Context, w *worker, ch chunk) (int64, error) {
		var out [][]any
		dg := newDigest(e.digestKey)
		plain := make([][]byte, len(tj.cols))
		err := e.eachRow(ctx, tj, exprs, ch, func(vals []any) error {
			row := append([]any{}, vals[:nKey]...)
			at := nKey
			for i, c := range tj.cols {
				ct, _ := vals[at].([]byte)
				ctNull := vals[at] == nil
				at++
				var iv []byte
				if c.state.IVColumn != "" {
					iv, _ = vals[at].([]byte)
					at++
				}
				plain[i] = nil
				if ctNull {
					row = append(row, nil)
					continue
				}
				p, err := w.ciphers[i].Decrypt(ct, iv)
				if err != nil {
					return fmt.Errorf("decrypt %s.%s at %s: %w", tj.name, c.col.Name, tj.describeKey(vals[:nKey]), err)
				}
				plain[i] = p
				v, err := c.codec.Decode(p)
				if err != nil {
					return fmt.Errorf("decode %s.%s at %s: %w", tj.name, c.col.Name, tj.describeKey(vals[:nKey]), err)
				}
				row = append(row, v)
			}
			dg.appendRow(nil, nil, plain)
			out = append(out, row)
			return nil
		})
		if err != nil {
			return 0, err
		}
		return int64(len(out)), e.writeChunk(ctx, jobID, tj, phaseDecrypt, ch,
			dialect.Update{Table: tj.tn, Key: tj.keyCols, KeyTypes: cipherKeyTypes(tj), Set: set, SetExpr: setExpr, Rows: out,
				Lo: ch.lo, Hi: ch.hi}, dg, nil, nil)
	}
	return e.runChunks(ctx, tj, done, exprs, e.newCipherWorker(tj, false), work, prog)
}

// verifyRestored proves the restored columns hold exactly what the
// ciphertexts decrypted to: the digest of the values read back from the
// database through the codec must equal the digest the decrypt phase
// recorded. (Not the copy's digest: rows may rightly have changed since
// cut-over.) A replacement must also have as many rows as the decrypt
// wrote.
func (e *Engine) verifyRestored(ctx context.Context, jobID string, tj *tableJob, vr *VerifyResult) error {
	want, wantRows, err := e.tableDigest(ctx, jobID, tj, phaseDecrypt)
	if err != nil {
		return err
	}
	var exprs []string
	for _, c := range tj.cols {
		exprs = append(exprs, c.codec.SelectExpr(e.d.Quote(e.restoredColumn(tj, c))))
	}
	read := tj
	if e.rebuilds(tj, false) {
		read = e.replacementJob(tj)
	}
	nKey := len(tj.key)
	var total digest
	lock := make(chan struct{}, 1)
	work := func(ctx context.Context, w *worker, ch chunk) (int64, error) {
		dg := newDigest(e.digestKey)
		var n int64
		plain := make([][]byte, len(tj.cols))
		err := e.eachRow(ctx, read, exprs, ch, func(vals []any) error {
			n++
			for i, c := range tj.cols {
				plain[i] = nil
				if v := vals[nKey+i]; v != nil {
					p, err := c.codec.Encode(v)
					if err != nil {
						return err
					}
					if p == nil {
						p = []byte{}
					}
					plain[i] = p
				}
			}
			dg.appendRow(nil, nil, plain)
			return nil
		})
		if err != nil {
			return 0, err
		}
		lock <- struct{}{}
		total.add(dg)
		vr.Rows += n
		<-lock
		return n, nil
	}
	noCiphers := func() (*worker, error) { return &worker{}, nil }
	start := vr.Rows
	if err := e.runChunks(ctx, read, nil, exprs, noCiphers, work, nil); err != nil {
		return err
	}
	if total.String() != want.String() || (read != tj && vr.Rows-start != wantRows) {
		vr.Digests = append(vr.Digests, tj.name)
	}
	return nil
}

// checkDecryptable decrypts every value of the tables before a revert or a
// rekey begins (SPEC §7: tampered ciphertext is a clear error that changes
// nothing). Found halfway, such a value would stop the job with its table
// guarded and half restored or rewritten, and neither way out open: apply
// refuses while a revert is in progress, and the value never decrypts. A
// value that decrypts to something else than the copy recorded is no
// obstacle: the table lived on after its cut-over.
func (e *Engine) checkDecryptable(ctx context.Context, jobID string, tables []*tableJob, what string) error {
	vr, err := e.verifyAll(ctx, jobID, tables, true, false)
	if err != nil {
		return err
	}
	if vr.Undecryptable == 0 {
		return nil
	}
	var named []string
	for _, m := range vr.Mismatches {
		if m.Undecryptable {
			named = append(named, fmt.Sprintf("%s.%s at %s: %s", m.Table, m.Column, m.Row, m.Reason))
		}
	}
	return exitcode.Input(fmt.Errorf("%s: %d value(s) do not decrypt with the job's keys (changed behind colcrypt's back, or written by something else), "+
		"so the %s could not finish; nothing was changed. Restore those values from a backup of the table, or set them to NULL, then run it again: %s",
		what, vr.Undecryptable, what, strings.Join(named, "; ")))
}

// swappedAlready reports whether the cut-over of t committed: in an earlier
// run, which may have been stopped before it recorded so.
func (e *Engine) swappedAlready(ctx context.Context, j *job, t *tableJob) (bool, error) {
	for _, c := range t.cols {
		if c.state.State == StateEncrypted {
			return true, nil
		}
	}
	if t.rebuild {
		there, err := e.rebuiltExists(ctx, t)
		// Before verify passed the cut-over cannot have begun: a missing
		// replacement is one prepare did not get to create.
		return err == nil && !there && j.Phase == phaseVerified, err
	}
	live, err := e.d.ReadTable(ctx, e.db, t.tn)
	if err != nil {
		return false, err
	}
	for _, c := range t.cols {
		if live.Column(c.state.Temp) == nil {
			return true, nil
		}
	}
	return false, nil
}
