package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
)

// newCipherWorker gives each worker its own column ciphers: they reuse
// buffers and block ciphers and are not safe to share.
func (e *Engine) newCipherWorker(tj *tableJob, encrypt bool) func() (*worker, error) {
	return func() (*worker, error) {
		w := &worker{}
		for _, c := range tj.cols {
			cc, err := e.columnCipher(c, encrypt)
			if err != nil {
				return nil, err
			}
			w.ciphers = append(w.ciphers, cc)
			var target *cipher.Column
			if c.state.Target != nil && !encrypt {
				if target, err = e.targetCipher(c); err != nil {
					return nil, err
				}
			}
			w.targets = append(w.targets, target)
		}
		return w, nil
	}
}

// copyTable encrypts every planned column of a table into its ciphertext
// column, chunk by chunk. Each chunk reads plaintext, encrypts it, and in
// one transaction writes the ciphertexts and the chunk's checkpoint with the
// digest of its plaintext. Since the source is always the untouched
// plaintext column, repeating a chunk rewrites the same values (with fresh
// IVs) and can never encrypt a ciphertext again.
func (e *Engine) copyTable(ctx context.Context, jobID string, tj *tableJob, phase string, prog *progress) error {
	done, err := e.resumableChunks(ctx, jobID, tj, phase)
	if err != nil {
		return err
	}
	var exprs, set []string
	for _, c := range tj.cols {
		exprs = append(exprs, c.codec.SelectExpr(e.d.Quote(c.col.Name)))
		if tj.rebuild {
			set = append(set, c.col.Name) // the replacement's own column
		} else {
			set = append(set, c.state.Temp)
		}
		if c.state.IVColumn != "" {
			set = append(set, c.state.IVColumn)
		}
	}
	// Online: each row's version is read with it, becomes the version of
	// its ciphertext, and guards the write, so a row changed since the read
	// stays stale for the catch-up instead of getting an old ciphertext.
	guard := ""
	if tj.online {
		exprs = append(exprs, e.d.Quote(dialect.VersionColumn))
		set = append(set, dialect.EncVersionColumn)
		guard = dialect.VersionColumn
	}
	nKey := len(tj.key)
	// A rebuilt table's chunk is verified as it is written (checkWritten),
	// and where the engine can (dialect.Carrier) its rows are written
	// whole from the walker's read: the values of the other columns
	// follow exprs, from carryAt on.
	checkAtWrite := tj.rebuild && phase == phaseCopy
	carryAt := -1
	if checkAtWrite {
		carry, err := e.carryExprs(ctx, tj, set)
		if err != nil {
			return err
		}
		if carry != nil {
			carryAt = nKey + len(exprs)
			exprs = append(exprs, carry...)
		}
	}
	var cipherExprs [][]string
	if checkAtWrite {
		cipherExprs = e.rebuiltCipherExprs(tj)
	}
	work := func(ctx context.Context, w *worker, ch chunk) (int64, error) {
		// Sized for the rows read ahead with the chunk, when it was.
		out := make([][]any, 0, len(ch.rows))
		var read, carried [][]any
		if checkAtWrite {
			read = make([][]any, 0, len(ch.rows))
		}
		if carryAt >= 0 {
			carried = make([][]any, 0, len(ch.rows))
		}
		dg := newDigest(e.digestKey)
		hashes := make([]byte, 0, len(ch.rows)*len(tj.cols)*valueHashLen)
		plain := make([][]byte, len(tj.cols))
		width := nKey + len(set)
		if guard != "" {
			width++ // the version is written and compared
		}
		rows := rowSlab{width: width, rows: len(ch.rows)}
		err := e.eachRow(ctx, tj, exprs, ch, func(vals []any) error {
			if checkAtWrite {
				read = append(read, vals)
			}
			row := append(rows.next(), vals[:nKey]...)
			for i, c := range tj.cols {
				v := vals[nKey+i]
				plain[i] = nil
				if v == nil {
					row = append(row, nil)
					if c.state.IVColumn != "" {
						row = append(row, nil)
					}
					continue
				}
				p, err := c.codec.Encode(v)
				if err != nil {
					return fmt.Errorf("encode %s.%s at %s: %w", tj.name, c.col.Name, tj.describeKey(vals[:nKey]), err)
				}
				if p == nil {
					p = []byte{}
				}
				plain[i] = p
				ct, iv, err := w.ciphers[i].Encrypt(p)
				if err != nil {
					return fmt.Errorf("encrypt %s.%s: %w", tj.name, c.col.Name, err)
				}
				row = append(row, ct)
				if c.state.IVColumn != "" {
					row = append(row, iv)
				}
			}
			hashes = dg.appendRow(hashes, vals[:nKey], plain)
			if guard != "" {
				v, ok := versionOf(vals[len(vals)-1])
				if !ok {
					return fmt.Errorf("read chunk of %s: %s holds %T, want an integer", tj.name, guard, vals[len(vals)-1])
				}
				row = append(row, v, v)
			}
			out = append(out, row)
			if carryAt >= 0 {
				carried = append(carried, vals[carryAt:])
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		// A rebuilt table's chunk is read back and compared in the
		// transaction that wrote it: a chunk that fails is never committed.
		// So every row of the replacement, whichever run wrote it last,
		// passed the check, and a range this run checked needs no second
		// look even if another run of the plan rewrote it since. (On
		// SQLite, running the check after the commit, outside the one
		// writer's turn, was measured and gained nothing: 1M rows, three
		// alternated runs each, copy 5.42-5.80 s against 5.52-5.76 s.)
		var check func(context.Context, *sql.Tx) error
		var values int64
		if checkAtWrite {
			check = func(ctx context.Context, tx *sql.Tx) (err error) {
				written, err := e.readRebuilt(ctx, tx, tj, cipherExprs, ch)
				if err != nil {
					return err
				}
				values, err = checkWritten(tj, w, cipherExprs, read, written)
				return err
			}
		}
		err = e.writeChunk(ctx, jobID, tj, phase, ch,
			dialect.Update{Table: tj.tn, Key: tj.keyCols, KeyTypes: tj.keyTypes, Set: set, Rows: out, Guard: guard,
				Lo: ch.lo, Hi: ch.hi, Carry: carried}, dg, hashes, check)
		if err != nil {
			return 0, err
		}
		if checkAtWrite {
			tj.checked.add(ch, int64(len(out)), values)
		}
		return int64(len(out)), nil
	}
	if err := e.runChunks(ctx, tj, done, exprs, e.newCipherWorker(tj, true), work, prog); err != nil {
		return err
	}
	return nil
}

// physicalSlices cuts an offline table into about n storage slices, or
// gives nil when the engine cannot (or the table is online: another
// writer may move a row from a slice not yet read into one already read).
func (e *Engine) physicalSlices(ctx context.Context, tj *tableJob, n int) ([]chunk, error) {
	ps, ok := e.d.(dialect.PhysicalSlicer)
	if !ok || tj.online {
		return nil, nil
	}
	var conds []string
	err := retry(ctx, e.log, "slice "+tj.name, func(ctx context.Context) error {
		var err error
		conds, err = ps.PhysicalSlices(ctx, e.db, tj.tn, n)
		return err
	})
	if err != nil || conds == nil {
		return nil, err
	}
	out := make([]chunk, len(conds))
	for i, c := range conds {
		out[i] = chunk{where: c}
	}
	return out, nil
}

// writeChunk writes a chunk's rows and its checkpoint in one transaction.
// check, when not nil, runs in that transaction after the writes, and its
// error rolls the chunk back.
func (e *Engine) writeChunk(ctx context.Context, jobID string, tj *tableJob, phase string, ch chunk, u dialect.Update, dg *digest, rowHashes []byte,
	check func(context.Context, *sql.Tx) error) error {
	if e.writeMu != nil {
		e.writeMu.Lock()
		defer e.writeMu.Unlock()
		if tj.online && phase == phaseCopy {
			defer e.yieldWriteLock(ctx, time.Now()) // runs before the unlock
		}
	}
	// A chunk written whole runs its transaction on a connection taken
	// for it, which the engine's bulk path reaches (dialect.RawQuerier).
	begin := e.db.BeginTx
	var conn *sql.Conn
	if u.Carry != nil {
		var err error
		if conn, err = e.db.Conn(ctx); err != nil {
			return fmt.Errorf("write chunk of %s: %w", tj.name, err)
		}
		defer conn.Close()
		begin = conn.BeginTx
	}
	tx, err := begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("write chunk of %s: %w", tj.name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var q dialect.Querier = tx
	if conn != nil {
		q = connTx{tx, conn}
	}
	forward := phase == phaseCopy // else a revert's decrypt, or a rekey
	switch r, ok := e.d.(dialect.Rebuilder); {
	case ok && (forward || phase == phaseDecrypt) && e.rebuilds(tj, forward):
		// Every chunk writes, even one of no rows: the range may hold rows
		// of an earlier attempt to remove.
		if err := r.RebuildChunk(ctx, q, e.tableSwap(tj, forward), u); err != nil {
			return fmt.Errorf("write chunk of %s: %w", tj.name, err)
		}
	case len(u.Rows) > 0:
		if err := e.m.BulkUpdate(ctx, tx, u); err != nil {
			return fmt.Errorf("write chunk of %s: %w", tj.name, err)
		}
	}
	if check != nil {
		if err := check(ctx, tx); err != nil {
			return err
		}
	}
	var hi any
	if ch.hiEnc != "" {
		hi = ch.hiEnc
	}
	// A retry after a COMMIT whose reply was lost finds its own checkpoint:
	// the chunk is idempotent, so its record is replaced, not duplicated.
	key, err := e.st.boundHash(tj.keyIsEnc, ch.loEnc)
	if err != nil {
		return err
	}
	lo, err := e.st.storedBound(tj.keyIsEnc, ch.loEnc)
	if err != nil {
		return err
	}
	if hi != nil {
		if hi, err = e.st.storedBound(tj.keyIsEnc, ch.hiEnc); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, e.st.clearCheckpointSQL(), jobID, tj.tn.String(), phase, key, loHash(ch.loEnc)); err != nil {
		return fmt.Errorf("checkpoint chunk of %s: %w", tj.name, err)
	}
	if _, err := tx.ExecContext(ctx, e.st.checkpointSQL(), jobID, tj.tn.String(), phase, key, lo, hi, int64(len(u.Rows)),
		dg.String(), rowHashes, time.Now().UTC().Format(timeLayout)); err != nil {
		return fmt.Errorf("checkpoint chunk of %s: %w", tj.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit chunk of %s: %w", tj.name, err)
	}
	return nil
}

// connTx is a chunk's transaction with the connection it runs on
// (dialect.RawQuerier).
type connTx struct {
	*sql.Tx
	conn *sql.Conn
}

func (c connTx) Raw(f func(driverConn any) error) error { return c.conn.Raw(f) }

// carryExprs gives the expressions that read the other columns of a
// rebuilt table's rows with each chunk, for an engine that writes them
// back whole (dialect.Carrier), or nil.
func (e *Engine) carryExprs(ctx context.Context, tj *tableJob, set []string) ([]string, error) {
	c, ok := e.d.(dialect.Carrier)
	if !ok {
		return nil, nil
	}
	var exprs []string
	err := retry(ctx, e.log, "read the column types of "+tj.name, func(ctx context.Context) error {
		var err error
		exprs, err = c.CarryExprs(ctx, e.db, e.tableSwap(tj, true), set)
		return err
	})
	return exprs, err
}

// tableDigest adds up the recorded chunk digests of a phase.
func (e *Engine) tableDigest(ctx context.Context, jobID string, tj *tableJob, phase string) (*digest, int64, error) {
	done, err := e.st.chunks(ctx, jobID, tj.tn.String(), phase)
	if err != nil {
		return nil, 0, err
	}
	var total digest
	var rows int64
	for _, c := range done {
		d, err := parseDigest(c.Digest)
		if err != nil {
			return nil, 0, err
		}
		total.add(d)
		rows += c.Rows
	}
	return &total, rows, nil
}

// compareRowHashes names the rows and columns of a replayed chunk whose
// decrypted values differ from what the copy recorded for them.
func compareRowHashes(tj *tableJob, rec chunkRecord, ch chunk, keys [][]any, hashes []byte) []Mismatch {
	if string(rec.RowHashes) == string(hashes) {
		return nil
	}
	rowLen := len(tj.cols) * valueHashLen
	if len(rec.RowHashes) != len(hashes) {
		at := "the range starting at the table's first row"
		if ch.lo != nil {
			at = "the range after " + tj.describeKey(ch.lo)
		}
		return []Mismatch{{Table: tj.name, Column: "*", Row: at,
			Reason: fmt.Sprintf("the copy recorded %d rows here, verify read %d: rows were added or deleted since",
				len(rec.RowHashes)/rowLen, len(hashes)/rowLen)}}
	}
	var out []Mismatch
	for i := range keys {
		for j, c := range tj.cols {
			at := i*rowLen + j*valueHashLen
			if string(hashes[at:at+valueHashLen]) != string(rec.RowHashes[at:at+valueHashLen]) {
				out = append(out, Mismatch{Table: tj.name, Column: c.col.Name, Row: tj.describeKey(keys[i]),
					Reason: "the decrypted value differs from the plaintext the copy recorded"})
			}
		}
	}
	return out
}

// Mismatch is a row verify found different.
type Mismatch struct {
	Table  string
	Column string
	Row    string // key columns and values
	Reason string
	// Undecryptable: the value does not decrypt (tampered, or not written
	// under the job's keys), as opposed to decrypting to another value.
	Undecryptable bool
}

// VerifyResult is the outcome of verify.
type VerifyResult struct {
	Rows       int64
	Values     int64
	Mismatches []Mismatch // the first rows that differ
	// Undecryptable counts the values that did not decrypt at all.
	Undecryptable int64
	// CopiedSoFar: the copy is still under way, and only the rows it has
	// written were verified.
	CopiedSoFar bool
	// Unpaired are the tables of Digests read after cut-over without the
	// copy's chunks (their key is encrypted, or they have none): their
	// rows cannot be compared one by one with what the copy recorded.
	Unpaired []string
	Digests  []string // tables whose digest did not match
	// Stale counts the rows of online tables that other writers changed
	// since their ciphertext was made: not compared, since the cut-over
	// re-encrypts and checks them under its lock.
	Stale int64
}

// add merges o, the result of other tables, into r.
func (r *VerifyResult) add(o *VerifyResult) {
	r.Rows += o.Rows
	r.Values += o.Values
	r.Undecryptable += o.Undecryptable
	r.Stale += o.Stale
	r.CopiedSoFar = r.CopiedSoFar || o.CopiedSoFar
	r.Unpaired = append(r.Unpaired, o.Unpaired...)
	r.Digests = append(r.Digests, o.Digests...)
	for _, m := range o.Mismatches {
		if len(r.Mismatches) < verifyFirstRows {
			r.Mismatches = append(r.Mismatches, m)
		}
	}
}

// OK reports whether everything matched.
func (r *VerifyResult) OK() bool { return len(r.Mismatches) == 0 && len(r.Digests) == 0 }

// Err gives an exit-1 error describing the failure, or nil.
func (r *VerifyResult) Err() error {
	if r.OK() {
		return nil
	}
	var lines []string
	for _, m := range r.Mismatches {
		lines = append(lines, fmt.Sprintf("%s.%s at %s: %s", m.Table, m.Column, m.Row, m.Reason))
	}
	for _, t := range r.Digests {
		line := t + ": the decrypted values do not add up to the digest recorded during copy"
		if slices.Contains(r.Unpaired, t) {
			line += " (its key is encrypted, or it has none, so its rows cannot be paired with the copy's records to name the ones " +
				"that differ: rows changed, added or deleted since the copy, by the application once the job was done or " +
				"behind its back, make the totals differ)"
		}
		lines = append(lines, line)
	}
	return fmt.Errorf("%w: %s", ErrVerify, strings.Join(lines, "; "))
}

// verifyTable decrypts every ciphertext of the table. While the plaintext
// column still exists (cipherCols are the temp columns) each value is
// compared with it; after cut-over the ciphertext sits under the original
// name and the sum of the decrypted rows' digests must equal the digest the
// copy recorded.
//
// Before the cut-over of a rebuilt table, each chunk's rows are paired
// with its replacement's rows of the same range, and a row found on one
// side only is a mismatch; since the chunks must chain from the table's
// first row to its last, no row of the replacement goes unseen.
//
// copiedSoFar verifies, of a copy still under way, the chunks it recorded:
// they need not cover the table yet.
func (e *Engine) verifyTable(ctx context.Context, jobID string, tj *tableJob, afterCutover, copiedSoFar bool, res *VerifyResult, prog *progress) error {
	var exprs []string
	// Before the cut-over of a table whose replacement the copy built, the
	// ciphertexts are read from the replacement's row of the same key
	// (pairRebuilt); exprs then read only the table's plaintext.
	rebuilt := !afterCutover && tj.rebuild
	var cipherExprs [][]string
	if rebuilt {
		cipherExprs = e.rebuiltCipherExprs(tj)
	}
	for _, c := range tj.cols {
		if !afterCutover {
			exprs = append(exprs, c.codec.SelectExpr(e.d.Quote(c.col.Name)))
		}
		switch {
		case rebuilt:
		case afterCutover:
			exprs = append(exprs, e.cipherColumns(c, c.col.Name)...)
		default:
			exprs = append(exprs, e.cipherColumns(c, c.state.Temp)...)
		}
	}
	// Online, before cut-over: each row's versions tell whether its
	// ciphertext was made from the plaintext it has now.
	online := tj.online && !afterCutover
	if online {
		exprs = append(exprs, e.d.Quote(dialect.VersionColumn), e.d.Quote(dialect.EncVersionColumn))
	}
	nKey := len(tj.key)
	var mu = make(chan struct{}, 1)
	var total digest
	var rowsSeen int64
	// Verify replays the copy's own chunks. After cut-over that lets each
	// row be compared with the hash recorded for it, so a difference names
	// its row; it needs keys that still read as they did during copy: not
	// encrypted themselves, and not a row-id column cut-over dropped.
	var records map[string]chunkRecord
	var produce func(context.Context, chan<- chunk) error
	switch {
	case afterCutover && tj.rowID != "":
		// Cut-over dropped the row id this keyless table was copied by:
		// read it in one unordered pass; the table digest does not depend
		// on order.
		keyless := *tj
		keyless.key, keyless.keyCols, keyless.keyTypes = nil, nil, nil
		tj = &keyless
		nKey = 0
		produce = sendAll([]chunk{{}})
	case afterCutover && tj.keyIsEnc:
		// The key itself is ciphertext now and orders differently.
		produce = func(ctx context.Context, out chan<- chunk) error {
			return e.walk(ctx, tj, nil, exprs, newChunkSizer(e.opt.BatchRows, 0), out, nil)
		}
	default:
		// The copy's own chunks: no boundary to search for, and after
		// cut-over each row is compared with the hash recorded for it.
		copied, err := e.st.chunks(ctx, jobID, tj.tn.String(), phaseCopy)
		if err != nil {
			return err
		}
		if produce, err = replay(copied); err != nil {
			return err
		}
		if afterCutover {
			records = copied
			break
		}
		// Verify replays the copy's chunks: a range no chunk recorded would
		// go unchecked, and may never have been copied.
		if !chained(copied) && !copiedSoFar {
			res.Mismatches = append(res.Mismatches, Mismatch{Table: tj.name, Column: "*", Row: "the copy's checkpoints",
				Reason: "they do not cover the table from its first row to its last: a range may never have been copied; revert, then apply again"})
		}
		// Before the cut-over of an offline job, where no one moves rows,
		// storage slices read less than key ranges, when the engine can;
		// not when the rows are paired with their replacement's, which are
		// found by key range. Those chunks this run's copy verified where
		// it wrote them are not read again.
		if rebuilt {
			rest := map[string]chunkRecord{}
			for lo, r := range copied {
				c, ok := tj.checked.get(r)
				if !ok {
					rest[lo] = r
					continue
				}
				rowsSeen += c.rows
				res.Values += c.values
				prog.add(c.rows)
			}
			if produce, err = replay(rest); err != nil {
				return err
			}
			break
		}
		if copiedSoFar {
			break
		}
		if slices, err := e.physicalSlices(ctx, tj, len(copied)); err != nil {
			return err
		} else if slices != nil {
			produce = sendAll(slices)
		}
	}
	work := func(ctx context.Context, w *worker, ch chunk) (int64, error) {
		dg := newDigest(e.digestKey)
		var n, stale int64
		rc := newRowCheck(tj, w, afterCutover)
		var keys [][]any
		var hashes []byte
		rows := func(fn func(vals []any) error) error { return e.eachRow(ctx, tj, exprs, ch, fn) }
		if rebuilt {
			rows = func(fn func(vals []any) error) error {
				written, err := e.readRebuilt(ctx, e.db, tj, cipherExprs, ch)
				if err != nil {
					return err
				}
				return pairRebuilt(tj, cipherExprs, written, func(fn func([]any) error) error {
					return e.eachRow(ctx, tj, exprs, ch, fn)
				}, fn, rc.missing)
			}
		}
		err := rows(func(vals []any) error {
			n++
			if records != nil {
				keys = append(keys, vals[:nKey])
			}
			if online && isStale(vals[len(vals)-2], vals[len(vals)-1]) {
				stale++
				return nil
			}
			if err := rc.row(vals); err != nil {
				return err
			}
			// Before cut-over each value was compared with its plaintext;
			// the digests matter only after it.
			if afterCutover {
				hashes = dg.appendRow(hashes, vals[:nKey], rc.plain)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		bad, values := rc.bad, rc.values
		if records != nil {
			bad = append(bad, compareRowHashes(tj, records[ch.loEnc], ch, keys, hashes)...)
		}
		mu <- struct{}{}
		total.add(dg)
		rowsSeen += n
		res.Values += values
		res.Undecryptable += rc.undecryptable
		res.Stale += stale
		for _, m := range bad {
			if len(res.Mismatches) < verifyFirstRows {
				res.Mismatches = append(res.Mismatches, m)
			}
		}
		<-mu
		return n, nil
	}
	if err := e.runPool(ctx, tj, produce, e.newCipherWorker(tj, false), work, nil, prog); err != nil {
		return err
	}
	res.Rows += rowsSeen
	if afterCutover {
		want, _, err := e.tableDigest(ctx, jobID, tj, phaseCopy)
		if err != nil {
			return err
		}
		if want.String() != total.String() {
			res.Digests = append(res.Digests, tj.name)
			if records == nil {
				res.Unpaired = append(res.Unpaired, tj.name)
			}
		}
	}
	return nil
}

// rowCheck decrypts the ciphertexts of one row at a time and compares each
// with its plaintext (before cut-over), collecting what differs. A row is
// laid out as the key, then per planned column: the plaintext (before
// cut-over only), the ciphertext, and the IV when the column has its own.
type rowCheck struct {
	tj           *tableJob
	w            *worker
	afterCutover bool
	nKey         int
	plain        [][]byte // the last row's decrypted values, per column
	bad          []Mismatch
	values       int64 // non-NULL values decrypted
	// undecryptable counts the values that did not decrypt.
	undecryptable int64
}

func newRowCheck(tj *tableJob, w *worker, afterCutover bool) *rowCheck {
	return &rowCheck{tj: tj, w: w, afterCutover: afterCutover, nKey: len(tj.key), plain: make([][]byte, len(tj.cols))}
}

// missing records a row found on one side of a pairing only.
func (rc *rowCheck) missing(key []any, reason string) {
	rc.bad = append(rc.bad, Mismatch{Table: rc.tj.name, Column: "*", Row: rc.tj.describeKey(key), Reason: reason})
}

func (rc *rowCheck) row(vals []any) error {
	tj, key := rc.tj, vals[:rc.nKey]
	at := rc.nKey
	for i, c := range tj.cols {
		var want []byte
		hasPlain := false
		if !rc.afterCutover {
			if v := vals[at]; v != nil {
				var err error
				if want, err = c.codec.Encode(v); err != nil {
					return err
				}
				if want == nil {
					want = []byte{}
				}
				hasPlain = true
			}
			at++
		}
		ct, _ := vals[at].([]byte)
		ctNull := vals[at] == nil
		at++
		var iv []byte
		if hasIVColumn(c) {
			iv, _ = vals[at].([]byte)
			at++
		}
		rc.plain[i] = nil
		mismatch := func(reason string) {
			rc.bad = append(rc.bad, Mismatch{Table: tj.name, Column: c.col.Name, Row: tj.describeKey(key), Reason: reason})
		}
		switch {
		case ctNull && (rc.afterCutover || !hasPlain):
			continue // NULL stays NULL
		case ctNull:
			mismatch("plaintext has a value but the ciphertext is NULL")
			continue
		case !rc.afterCutover && !hasPlain:
			mismatch("plaintext is NULL but a ciphertext exists")
			continue
		}
		rc.values++
		got, err := decryptAny(c, rc.w.ciphers[i], rc.w.targets[i], ct, iv)
		if err != nil {
			mismatch("cannot decrypt: " + err.Error())
			rc.bad[len(rc.bad)-1].Undecryptable = true
			rc.undecryptable++
			continue
		}
		rc.plain[i] = got
		if !rc.afterCutover && string(got) != string(want) {
			mismatch("decrypted value differs from the plaintext")
		}
	}
	return nil
}

// cipherColumns are a planned column's ciphertext column, named ctCol,
// and its IV column when it has one, quoted.
func (e *Engine) cipherColumns(c *colJob, ctCol string) []string {
	cols := []string{e.d.Quote(ctCol)}
	if hasIVColumn(c) {
		cols = append(cols, e.d.Quote(c.col.Name+ivColumnSuffix))
	}
	return cols
}

// rebuiltCipherExprs are, per planned column, the columns of the table's
// replacement that hold its ciphertext and IV.
func (e *Engine) rebuiltCipherExprs(tj *tableJob) [][]string {
	out := make([][]string, len(tj.cols))
	for i, c := range tj.cols {
		out[i] = e.cipherColumns(c, c.col.Name)
	}
	return out
}
