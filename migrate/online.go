package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
)

// Online mode (SPEC §4, §7: no update made by another writer during the
// job is lost).
//
// Prepare adds to each table a version column that a trigger changes
// whenever a planned column of the row changes (dialect.ChangeCapture),
// and a column holding the version each row's ciphertext was made from.
// Every write of a ciphertext is a compare-and-set on the version read
// with the plaintext, so a row changed between the read and the write is
// left stale rather than given the ciphertext of its old value. Stale rows
// (inserted: no ciphertext version; updated: another version) are
// re-encrypted by catch-up passes after the copy and before the cut-over,
// and for the last time inside the cut-over's transaction, with the tables
// locked against every other writer, before the plaintext is dropped.

// Catch-up tuning. Each pass re-encrypts the rows changed during the one
// before; with writers running, the passes shrink toward what the writers
// change in one pass, and the rest waits for the cut-over's lock.
const (
	// maxCatchUpPasses bounds the passes before verify and again before the
	// cut-over: past a few, a pass no longer shrinks what the lock must do.
	maxCatchUpPasses = 8
	// captureRecord is the colcrypt_ddl kind that marks a table prepared
	// online: the job stays online on every later run, with or without
	// --online, until the cut-over removes the capture.
	captureRecord = "change capture"
)

// resolveOnline decides whether this run of apply is online, table by
// table. A job is online when apply asks for it (--online or the plan's
// job.online) before prepare has finished, or when an earlier run prepared
// it online. A job prepared offline cannot become online: rows written
// before the capture existed could have changed unseen.
func (e *Engine) resolveOnline(j *job, tables []*tableJob) error {
	requested := e.opt.Online || e.plan.Job.Online
	fresh := j == nil || (j.Kind == jobKindRevert && j.Phase == phaseDone)
	recorded := false
	for _, t := range tables {
		recorded = recorded || t.online
	}
	switch {
	case fresh:
		// A finished revert's records are cleared when the job starts over.
		recorded = false
		for _, t := range tables {
			t.online = false
		}
	case requested && !recorded && j.Kind == jobKindEncrypt && j.Phase != "":
		if phaseIndex(encryptPhases, j.Phase) >= phaseIndex(encryptPhases, phaseCutover) {
			requested = false // cut over already: no plaintext left for other writers to change
			break
		}
		return exitcode.Input(fmt.Errorf("the job of plan %s was prepared offline (phase %s done): it cannot continue online, "+
			"since rows changed before the change capture existed would be missed; finish it without --online and "+
			"with no other writers, or revert it and apply --online again", e.plan.Path, j.Phase))
	}
	online := requested || recorded
	if !online {
		return nil
	}
	if _, ok := e.d.(dialect.ChangeCapture); !ok {
		return exitcode.Input(fmt.Errorf("engine %s cannot run a job online (it has no change capture): "+
			"run apply without --online (and without job.online) while no other session writes to the planned tables", e.d.Name()))
	}
	if !requested {
		e.log.Info("the job was prepared online and continues online", "job", e.jobID())
	}
	for _, t := range tables {
		t.online = true
	}
	return nil
}

// prepareCapture records that the table is online, then adds its change
// capture: the record comes first, so that a crash in between leaves a job
// that knows to drop the capture on revert.
func (e *Engine) prepareCapture(ctx context.Context, j *job, t *tableJob) error {
	cc, ok := e.d.(dialect.ChangeCapture)
	if !ok {
		return fmt.Errorf("engine %s has no change capture", e.d.Name())
	}
	table := t.tn.String()
	recs, err := e.st.ddl(ctx, j.ID, table)
	if err != nil {
		return err
	}
	marked := false
	for _, r := range recs {
		marked = marked || r.Kind == captureRecord
	}
	if !marked {
		if _, err := e.db.ExecContext(ctx, "INSERT INTO "+e.st.table(ddlTableName)+" (job_id, table_name, seq, kind, name, definition) VALUES ("+
			e.st.placeholders(1, 6)+")", j.ID, table, len(recs)+1, captureRecord, table, dialect.CapturePrefix+t.model.Name.Name); err != nil {
			return fmt.Errorf("record the change capture of %s: %w", t.name, err)
		}
	}
	var planned []string
	for _, c := range t.cols {
		planned = append(planned, c.col.Name)
	}
	return e.ddl(ctx, "add change capture to "+t.name, func(ctx context.Context) error {
		return cc.AddCapture(ctx, e.db, t.tn, planned, t.keyCols)
	})
}

// dropCapture removes a table's change capture (revert before cut-over).
func (e *Engine) dropCapture(ctx context.Context, t *tableJob) error {
	cc, ok := e.d.(dialect.ChangeCapture)
	if !t.online || !ok {
		return nil
	}
	return e.ddl(ctx, "drop change capture of "+t.name, func(ctx context.Context) error { return cc.DropCapture(ctx, e.db, t.tn) })
}

// versionOf reads a version column's value as the driver scanned it.
func versionOf(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	}
	return 0, false
}

// isStale reports whether a row's ciphertext was made from another version
// of it than the current one (or from none: an inserted row).
func isStale(version, encVersion any) bool {
	if encVersion == nil {
		return true
	}
	v, ok1 := versionOf(version)
	ev, ok2 := versionOf(encVersion)
	return !ok1 || !ok2 || v != ev
}

// staleWhere is the condition selecting stale rows.
func (e *Engine) staleWhere() string {
	enc, ver := e.d.Quote(dialect.EncVersionColumn), e.d.Quote(dialect.VersionColumn)
	return "(" + enc + " IS NULL OR " + enc + " <> " + ver + ")"
}

// catchUpAll runs the catch-up passes over every online table whose
// capture is still there (a resumed cut-over may have swapped some).
func (e *Engine) catchUpAll(ctx context.Context, tables []*tableJob) error {
	for _, t := range tables {
		if !t.online {
			continue
		}
		live, err := e.d.ReadTable(ctx, e.db, t.tn)
		if err != nil {
			return fmt.Errorf("catch up %s: %w", t.name, err)
		}
		if live.Column(dialect.VersionColumn) == nil {
			continue
		}
		if err := e.catchUp(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// catchUp re-encrypts the table's stale rows in passes, until a pass finds
// at most one batch (about what the cut-over's lock will then have to do:
// one batch is one round trip), stops shrinking, or maxCatchUpPasses have
// run. Each pass reads the whole table, so passes that only shave a few
// rows off the lock's work are not worth their scan.
func (e *Engine) catchUp(ctx context.Context, t *tableJob) error {
	newWorker := e.newCipherWorker(t, true)
	prev := int64(-1)
	for pass := 1; pass <= maxCatchUpPasses; pass++ {
		start := time.Now()
		var n int64
		err := retry(ctx, e.log, "catch up "+t.name, func(ctx context.Context) error {
			w, err := newWorker()
			if err != nil {
				return err
			}
			n, err = e.reencryptStale(ctx, e.db, t, w, e.writeGuarded)
			return err
		})
		if err != nil {
			return fmt.Errorf("catch up %s: %w", t.name, err)
		}
		e.log.Info("catch-up pass", "table", t.name, "pass", pass, "rows", n, "took", time.Since(start).Round(time.Millisecond))
		if n <= int64(e.opt.BatchRows) || (prev >= 0 && n >= prev) {
			break
		}
		prev = n
	}
	return nil
}

// maxWriteYield caps yieldWriteLock's pause: long enough for writers
// polling in SQLite's busy handler (which sleeps up to 100 ms between
// tries) to find the lock free often, short enough that a slow chunk does
// not idle the job for long.
const maxWriteYield = 50 * time.Millisecond

// yieldWriteLock pauses, still holding the in-process write mutex, for as
// long as the write that started at start held the database (at most
// maxWriteYield). On a single-writer engine (SQLite) an online job would
// otherwise take the write lock again the moment it let go of it, and
// other sessions waiting in their busy handler would rarely get in: this
// leaves them at least half of the time.
func (e *Engine) yieldWriteLock(ctx context.Context, start time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(min(time.Since(start), maxWriteYield)):
	}
}

// writeGuarded writes one batch of re-encrypted rows in its own
// transaction.
func (e *Engine) writeGuarded(ctx context.Context, u dialect.Update) error {
	if e.writeMu != nil {
		e.writeMu.Lock()
		defer e.writeMu.Unlock()
		defer e.yieldWriteLock(ctx, time.Now())
	}
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := e.m.BulkUpdate(ctx, tx, u); err != nil {
		return err
	}
	return tx.Commit()
}

// errCatchUpCheck is wrapped when a value re-encrypted under the
// cut-over's lock does not decrypt back to its plaintext.
var errCatchUpCheck = errors.New("re-encrypted value does not decrypt to its plaintext")

// reencryptStale reads the table's stale rows through q in key order, a
// batch at a time, encrypts them and has write store each batch under the
// version guard. Every new ciphertext is decrypted again and compared with
// its plaintext before it is written: the passes after verify, and the
// last one under the cut-over's lock, write values no verify phase reads
// before the plaintext goes.
func (e *Engine) reencryptStale(ctx context.Context, q dialect.Querier, t *tableJob, w *worker,
	write func(context.Context, dialect.Update) error) (int64, error) {
	var exprs, set []string
	for _, c := range t.cols {
		exprs = append(exprs, c.codec.SelectExpr(e.d.Quote(c.col.Name)))
		set = append(set, c.state.Temp)
		if c.state.IVColumn != "" {
			set = append(set, c.state.IVColumn)
		}
	}
	exprs = append(exprs, e.d.Quote(dialect.VersionColumn))
	set = append(set, dialect.EncVersionColumn)
	nKey := len(t.key)
	limit := max(e.opt.BatchRows, minChunkRows)
	var lo []any
	var total int64
	for {
		sqlText, args := e.selectStale(t, exprs, lo, limit)
		var out [][]any
		err := scanRows(ctx, q, "read changed rows of "+t.name, sqlText, args, nKey+len(exprs), func(vals []any) error {
			row, err := e.encryptRow(t, w, vals)
			if err != nil {
				return err
			}
			out = append(out, row)
			lo = vals[:nKey]
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(out) > 0 {
			u := dialect.Update{Table: t.tn, Key: t.keyCols, KeyTypes: t.keyTypes, Set: set, Rows: out, Guard: dialect.VersionColumn}
			if err := write(ctx, u); err != nil {
				return total, fmt.Errorf("write changed rows of %s: %w", t.name, err)
			}
		}
		total += int64(len(out))
		if len(out) < limit {
			return total, nil
		}
	}
}

// encryptRow turns one row read by selectStale (key, plaintexts, version)
// into a row of the guarded update (key, ciphertexts and IVs, the version
// as the ciphertext's version, the version as the guard).
func (e *Engine) encryptRow(t *tableJob, w *worker, vals []any) ([]any, error) {
	nKey := len(t.key)
	row := append([]any{}, vals[:nKey]...)
	for i, c := range t.cols {
		v := vals[nKey+i]
		if v == nil {
			row = append(row, nil)
			if c.state.IVColumn != "" {
				row = append(row, nil)
			}
			continue
		}
		p, err := c.codec.Encode(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s.%s at %s: %w", t.name, c.col.Name, t.describeKey(vals[:nKey]), err)
		}
		if p == nil {
			p = []byte{}
		}
		ct, iv, err := w.ciphers[i].Encrypt(p)
		if err != nil {
			return nil, fmt.Errorf("encrypt %s.%s: %w", t.name, c.col.Name, err)
		}
		if got, err := w.ciphers[i].Decrypt(ct, iv); err != nil || string(got) != string(p) {
			return nil, fmt.Errorf("%s.%s at %s: %w", t.name, c.col.Name, t.describeKey(vals[:nKey]), errors.Join(errCatchUpCheck, err))
		}
		row = append(row, ct)
		if c.state.IVColumn != "" {
			row = append(row, iv)
		}
	}
	version, ok := versionOf(vals[len(vals)-1])
	if !ok {
		return nil, fmt.Errorf("%s at %s: %s holds %T, want an integer", t.name, t.describeKey(vals[:nKey]), dialect.VersionColumn, vals[len(vals)-1])
	}
	return append(row, version, version), nil
}

// selectStale reads at most limit stale rows after key lo (nil: from the
// start), in key order.
func (e *Engine) selectStale(t *tableJob, exprs []string, lo []any, limit int) (string, []any) {
	q := &query{e: e}
	var list []string
	for i, k := range e.keySelect(t) {
		list = append(list, k+" AS "+e.d.Quote(fmt.Sprintf("colcrypt_k%d", i+1)))
	}
	for i, x := range exprs {
		list = append(list, x+" AS "+e.d.Quote(fmt.Sprintf("colcrypt_v%d", i+1)))
	}
	q.write("SELECT ", strings.Join(list, ", "), " FROM ", e.d.QuoteTable(t.tn), " WHERE ", e.staleWhere())
	if lo != nil {
		q.write(" AND ")
		q.keyCompare(t, lo, true)
	}
	q.write(" ORDER BY ", strings.Join(t.key, ", "))
	return e.m.FirstRows(q.b.String(), 0, int64(limit)), q.args
}

// onlineSwap fills the cut-over of an online table: Swap drops the
// capture, and first, under its lock, runs the last catch-up, which checks
// every value it writes and then that no stale row is left.
func (e *Engine) onlineSwap(s *dialect.TableSwap, t *tableJob) {
	if !t.online {
		return
	}
	s.Online = true
	s.CatchUp = func(ctx context.Context, q dialect.Querier) error {
		w, err := e.newCipherWorker(t, true)()
		if err != nil {
			return err
		}
		write := func(ctx context.Context, u dialect.Update) error { return e.m.BulkUpdate(ctx, q, u) }
		n, err := e.reencryptStale(ctx, q, t, w, write)
		if err != nil {
			return err
		}
		// Nothing can change under the lock: a row still stale was not
		// written, and its plaintext must not be dropped.
		var left int64
		rows, err := q.QueryContext(ctx, "SELECT COUNT(*) FROM "+e.d.QuoteTable(t.tn)+" WHERE "+e.staleWhere())
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := rows.Scan(&left); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if left > 0 {
			return fmt.Errorf("%d changed rows of %s are still stale after the catch-up under lock", left, t.name)
		}
		e.log.Info("caught up under the cut-over lock", "table", t.name, "rows", n)
		return nil
	}
}

// rebaseline recomputes, after an online cut-over, the copy phase's chunk
// records from the values as they now decrypt, in one pass, so that a later
// verify still checks every value against a digest. Rows other writers
// changed during the job no longer match what the copy recorded; what
// proves the online result right is the verify before the cut-over (every
// row not stale at its reading compared with its plaintext) together with
// the checks of the catch-up (every row re-encrypted after that verify,
// under the cut-over's lock last, decrypted again and compared before it
// was written, and no row left stale under the lock). From here on the
// digests guard the ciphertexts against later damage.
//
// Tables whose chunks verify can replay after the cut-over (keys that are
// neither encrypted nor a dropped row id) keep their chunks and row hashes,
// so a difference still names its row; the others get one record for the
// whole table, as their verify only adds up digests.
func (e *Engine) rebaseline(ctx context.Context, jobID string, t *tableJob) error {
	strays := &strayValues{}
	if err := e.rebaselineTable(ctx, jobID, t, strays); err != nil {
		return err
	}
	if n := strays.n.Load(); n > 0 {
		msg := fmt.Sprintf("%d values of %s written since the cut-over do not decrypt under the job's keys (the application wrote "+
			"something other than colcrypt's ciphertext into an encrypted column), e.g. %s; the job is done, and colcrypt verify names them",
			n, t.name, strings.Join(strays.first, "; "))
		e.log.Warn(msg)
		e.note(ctx, jobID, "values that do not decrypt after the cut-over", msg)
	}
	return nil
}

// strayValues counts the values the rebaseline could not decrypt and
// keeps the first few, for the warning.
type strayValues struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []string
}

func (s *strayValues) add(where string, err error) {
	s.n.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.first) < verifyFirstRows {
		s.first = append(s.first, where+": "+err.Error())
	}
}

func (e *Engine) rebaselineTable(ctx context.Context, jobID string, t *tableJob, strays *strayValues) error {
	var exprs []string
	for _, c := range t.cols {
		exprs = append(exprs, e.d.Quote(c.col.Name))
		if c.state.IVColumn != "" {
			exprs = append(exprs, e.d.Quote(c.state.IVColumn))
		}
	}
	read := func(ctx context.Context, w *worker, tj *tableJob, ch chunk) (*digest, []byte, int64, error) {
		nKey := len(tj.key)
		dg := newDigest(e.digestKey)
		var hashes []byte
		var n int64
		plain := make([][]byte, len(t.cols))
		err := e.eachRow(ctx, tj, exprs, ch, func(vals []any) error {
			n++
			at := nKey
			for i, c := range t.cols {
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
					continue
				}
				var err error
				if plain[i], err = w.ciphers[i].Decrypt(ct, iv); err != nil {
					// The application writes again once the cut-over
					// committed, and may write what is not colcrypt's
					// ciphertext. The digest counts the value as verify
					// will, as nothing; verify then names the row.
					plain[i] = nil
					strays.add(t.name+"."+c.col.Name+" at "+tj.describeKey(vals[:nKey]), err)
				}
			}
			hashes = dg.appendRow(hashes, vals[:nKey], plain)
			return nil
		})
		return dg, hashes, n, err
	}
	newWorker := e.newCipherWorker(t, false)
	if !t.keyIsEnc && t.rowID == "" {
		records, err := e.st.chunks(ctx, jobID, t.tn.String(), phaseCopy)
		if err != nil {
			return err
		}
		produce, err := replay(records)
		if err != nil {
			return err
		}
		update := "UPDATE " + e.st.table(chunkTableName) + " SET rows_done = " + e.st.ph(1) + ", digest = " + e.st.ph(2) +
			", row_hashes = " + e.st.ph(3) + ", done_at = " + e.st.ph(4) + " WHERE job_id = " + e.st.ph(5) +
			" AND table_name = " + e.st.ph(6) + " AND phase = " + e.st.ph(7) + " AND lo_hash IN (" + e.st.ph(8) + ", " + e.st.ph(9) + ")"
		work := func(ctx context.Context, w *worker, ch chunk) (int64, error) {
			dg, hashes, n, err := read(ctx, w, t, ch)
			if err != nil {
				return 0, err
			}
			if e.writeMu != nil {
				e.writeMu.Lock()
				defer e.writeMu.Unlock()
			}
			key, err := e.st.boundHash(t.keyIsEnc, ch.loEnc)
			if err != nil {
				return 0, err
			}
			if _, err := e.db.ExecContext(ctx, update, n, dg.String(), hashes, now(), jobID, t.tn.String(), phaseCopy, key, loHash(ch.loEnc)); err != nil {
				return 0, fmt.Errorf("record the digest of a chunk of %s: %w", t.name, err)
			}
			return n, nil
		}
		return e.runPool(ctx, t, produce, newWorker, work, nil, nil)
	}
	keyless := *t
	keyless.key, keyless.keyCols, keyless.keyTypes = nil, nil, nil
	return retry(ctx, e.log, "record the digest of "+t.name, func(ctx context.Context) error {
		w, err := newWorker()
		if err != nil {
			return err
		}
		dg, _, n, err := read(ctx, w, &keyless, chunk{})
		if err != nil {
			return err
		}
		if e.writeMu != nil {
			e.writeMu.Lock()
			defer e.writeMu.Unlock()
		}
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+e.st.table(chunkTableName)+" WHERE job_id = "+e.st.ph(1)+
			" AND table_name = "+e.st.ph(2)+" AND phase = "+e.st.ph(3), jobID, t.tn.String(), phaseCopy); err != nil {
			return err
		}
		key, err := e.st.boundHash(t.keyIsEnc, "")
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, e.st.checkpointSQL(), jobID, t.tn.String(), phaseCopy, key, "", nil, n,
			dg.String(), nil, now()); err != nil {
			return err
		}
		return tx.Commit()
	})
}
