package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/planner"
	"github.com/colcrypt/colcrypt/schema"
)

// rebuildRecord is the colcrypt_ddl kind that marks a table whose copy
// builds its replacement (dialect.Rebuilder). It is recorded with the
// table's model, once, so a resumed job never switches ways.
const rebuildRecord = "rebuild"

// rebuilder gives the engine's Rebuilder when the table's job uses it
// (planner.OfflineRebuild): an offline job, since another writer's change
// to a copied row would be lost by the swap, on a table paged by its key
// or the engine's own row id.
func (e *Engine) rebuilder(t *tableJob) (dialect.Rebuilder, bool) {
	r, ok := e.d.(dialect.Rebuilder)
	if !ok || e.opt.InPlace || t.online || t.rowID != "" {
		return nil, false
	}
	var planned []string
	for _, c := range t.cols {
		planned = append(planned, c.col.Name)
	}
	return r, planner.OfflineRebuild(e.d, t.model, planned)
}

// revertWayRecord is the colcrypt_ddl kind that records, when a revert
// of a table the job rebuilt begins, whether it builds a replacement too
// (revertByReplacement) or decrypts in place (revertInPlace), so that a
// resumed revert never switches ways.
const (
	revertWayRecord     = "revert-way"
	revertByReplacement = "replacement"
	revertInPlace       = "in place"
)

// revertsByReplacement reports whether the revert was recorded to build a
// replacement.
func (rs tableRecords) revertsByReplacement() bool {
	way, _ := rs.definition(revertWayRecord)
	return way == revertByReplacement
}

// rebuilds reports whether the table's job builds its replacement: on the
// way to encryption (forward) when it was recorded so at prepare, and on
// the way back when the revert recorded so (chooseRevertWay).
func (e *Engine) rebuilds(t *tableJob, forward bool) bool {
	if !t.rebuild {
		return false
	}
	if forward {
		_, ok := e.d.(dialect.Rebuilder)
		return ok
	}
	_, ok := e.d.(dialect.RevertRebuilder)
	return ok && t.revertRebuild
}

// chooseRevertWay decides, once, how the revert of a table the job rebuilt
// goes, and records it: through a replacement of the recorded definition
// where the engine can (dialect.RevertRebuilder) and the table still has
// exactly the columns the cut-over left, in place otherwise, since a
// replacement would lose a column added since (or bring back one
// dropped), where an in-place revert leaves them be.
func (e *Engine) chooseRevertWay(ctx context.Context, jobID string, t *tableJob) error {
	if _, ok := e.d.(dialect.RevertRebuilder); !ok || !t.rebuild {
		return nil
	}
	table := t.tn.String()
	recs, err := e.records(ctx, jobID, table)
	if err != nil {
		return err
	}
	if !recs.has(revertWayRecord) {
		live, err := e.d.ReadTable(ctx, e.db, t.tn)
		if err != nil {
			return err
		}
		way := revertByReplacement
		if changed := e.columnsChanged(t, live); changed != "" {
			way = revertInPlace
			e.note(ctx, jobID, "revert in place", table+": "+changed+" since the cut-over, which a replacement would not keep")
		}
		if err := e.st.addRecord(ctx, jobID, table, ddlRecord{Kind: revertWayRecord, Name: table, Definition: way}); err != nil {
			return err
		}
		if recs, err = e.records(ctx, jobID, table); err != nil {
			return err
		}
	}
	t.revertRebuild = recs.revertsByReplacement()
	return nil
}

// columnsChanged describes how the encrypted table's columns (live)
// differ from what the cut-over left: the recorded ones, and the IV
// columns and kept plaintext columns the job added; "" when they do not.
func (e *Engine) columnsChanged(t *tableJob, live *schema.Table) string {
	left, added := map[string]bool{}, map[string]bool{}
	for _, c := range t.model.Columns {
		left[c.Name] = true
	}
	for _, c := range t.cols {
		if c.state != nil && c.state.IVColumn != "" {
			added[c.state.IVColumn] = true
		}
		if e.plan.Job.Plaintext == "null" {
			added[c.col.Name+dialect.PlaintextKeptSuffix] = true
		}
	}
	for _, c := range live.Columns {
		switch {
		case left[c.Name]:
			delete(left, c.Name)
		case !added[c.Name]:
			return "column " + c.Name + " was added"
		}
	}
	for name := range left {
		return "column " + name + " was dropped"
	}
	return ""
}

// prepareRebuild creates the table's replacement and makes the table
// read-only until the cut-over: for the encryption (forward) or its
// revert.
func (e *Engine) prepareRebuild(ctx context.Context, jobID string, t *tableJob, forward bool) error {
	r, _ := e.d.(dialect.Rebuilder)
	refusal := fmt.Sprintf("colcrypt: %s is read-only while job %s encrypts it offline; run colcrypt apply %s to finish the job, "+
		"or colcrypt revert %s to stop it", t.name, jobID, e.plan.Path, e.plan.Path)
	if !forward {
		refusal = fmt.Sprintf("colcrypt: %s is read-only while job %s decrypts it offline; run colcrypt revert %s to finish the revert",
			t.name, jobID, e.plan.Path)
	}
	return e.ddl(ctx, "build the replacement of "+t.name, func(ctx context.Context) error {
		return r.PrepareRebuild(ctx, e.db, e.tableSwap(t, forward), refusal)
	})
}

// dropRebuild drops the replacement and the read-only triggers (revert
// before cut-over).
func (e *Engine) dropRebuild(ctx context.Context, t *tableJob) error {
	r, ok := e.d.(dialect.Rebuilder)
	if !t.rebuild || !ok {
		return nil
	}
	return e.ddl(ctx, "drop the replacement of "+t.name, func(ctx context.Context) error {
		return r.DropRebuild(ctx, e.db, t.tn)
	})
}

// finishRebuilds completes the replacements the copy (or the revert's
// decrypt) filled, their other indexes on PostgreSQL, before verify reads
// them.
func (e *Engine) finishRebuilds(ctx context.Context, tables []*tableJob, forward bool) error {
	r, _ := e.d.(dialect.Rebuilder)
	for _, t := range tables {
		if !e.rebuilds(t, forward) {
			continue
		}
		if err := e.ddl(ctx, "finish the replacement of "+t.name, func(ctx context.Context) error {
			return r.FinishRebuild(ctx, e.db, t.tn)
		}); err != nil {
			return err
		}
	}
	return nil
}

// rebuiltExists reports whether the table's replacement is still there: the
// cut-over has not swapped it in.
func (e *Engine) rebuiltExists(ctx context.Context, t *tableJob) (bool, error) {
	r, _ := e.d.(dialect.Rebuilder)
	_, err := e.d.ReadTable(ctx, e.db, r.RebuildName(t.tn))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, dialect.ErrTableNotFound):
		return false, nil
	}
	return false, err
}

// readRebuilt reads, through q, a chunk's rows of the table's
// replacement: the key, then the cipher expressions of every planned
// column (cipher, as rebuiltCipherExprs gives them), in key order. One
// range scan of the chunk costs far less than a search per row.
func (e *Engine) readRebuilt(ctx context.Context, q dialect.Querier, tj *tableJob, cipher [][]string, ch chunk) ([][]any, error) {
	rt := e.replacementJob(tj)
	var flat []string
	for _, c := range cipher {
		flat = append(flat, c...)
	}
	rebuilt := make([][]any, 0, len(ch.rows))
	sqlText, args := e.selectChunk(rt, flat, ch)
	err := scanRows(ctx, q, "read chunk of the replacement of "+tj.name, sqlText, args, len(tj.key)+len(flat), func(vals []any) error {
		rebuilt = append(rebuilt, vals)
		return nil
	})
	return rebuilt, err
}

// replacementJob is the table's job pointed at its replacement, for
// reading the replacement as the table is read.
func (e *Engine) replacementJob(tj *tableJob) *tableJob {
	r, _ := e.d.(dialect.Rebuilder)
	rt := *tj
	rt.tn = r.RebuildName(tj.tn)
	rt.name = rt.tn.String()
	return &rt
}

// pairRebuilt calls fn with each row of a chunk of the table joined with
// its replacement's row of the same key (rebuilt, as readRebuilt gives
// them), in the layout verifyTable reads: the key, then for each planned
// column the table's plaintext expression followed by its cipher
// expressions (ciphertext, IV). source gives the table's rows of the
// chunk: the key, then one plaintext expression per planned column. Both
// sides run in key order, so rows pair up in turn; after a row found on
// one side only, the rest of the chunk is matched by key. Such a row goes
// to missing.
func pairRebuilt(tj *tableJob, cipher [][]string, rebuilt [][]any,
	source func(fn func(vals []any) error) error, fn func(vals []any) error, missing func(key []any, reason string)) error {
	nk := len(tj.key)
	nFlat := 0
	for _, c := range cipher {
		nFlat += len(c)
	}
	next := 0
	out := rowSlab{width: nk + len(cipher) + nFlat, rows: len(rebuilt)}
	var byKey map[string]int // the unpaired rest, once rows stopped pairing up
	err := source(func(vals []any) error {
		var c []any
		switch {
		case byKey == nil && next < len(rebuilt) && sameKey(rebuilt[next][:nk], vals[:nk]):
			c = rebuilt[next]
			next++
		default:
			if byKey == nil {
				byKey = map[string]int{}
				for i := next; i < len(rebuilt); i++ {
					byKey[taggedKey(rebuilt[i][:nk])] = i
				}
			}
			k := taggedKey(vals[:nk])
			i, ok := byKey[k]
			if !ok {
				missing(vals[:nk], "the row is missing from the table's replacement")
				return nil
			}
			delete(byKey, k)
			c = rebuilt[i]
		}
		row := append(out.next(), vals[:nk]...)
		at := nk
		for i, cs := range cipher {
			row = append(row, vals[nk+i])
			row = append(row, c[at:at+len(cs)]...)
			at += len(cs)
		}
		return fn(row)
	})
	if err != nil {
		return err
	}
	if byKey == nil {
		for _, c := range rebuilt[next:] {
			missing(c[:nk], "the row is in the table's replacement only")
		}
	}
	for _, i := range byKey {
		missing(rebuilt[i][:nk], "the row is in the table's replacement only")
	}
	return nil
}

// sameKey reports whether two rows' key values are equal, storage class
// included.
func sameKey(a, b []any) bool {
	for i := range a {
		switch x := a[i].(type) {
		case int64:
			if y, ok := b[i].(int64); !ok || x != y {
				return false
			}
		case string:
			if y, ok := b[i].(string); !ok || x != y {
				return false
			}
		case []byte:
			if y, ok := b[i].([]byte); !ok || string(x) != string(y) {
				return false
			}
		default:
			if taggedKey(a[i:i+1]) != taggedKey(b[i:i+1]) {
				return false
			}
		}
	}
	return true
}

// taggedKey encodes key values with their Go types, so that values of
// different storage classes with the same bytes stay different keys.
func taggedKey(vals []any) string {
	var b []byte
	for _, v := range vals {
		b = append(b, fmt.Sprintf("%T", v)...)
		b = appendRowKey(b, []any{v})
	}
	return string(b)
}

// checkWritten is verify for one chunk of a rebuilt table, run by the
// copy in the transaction that writes the chunk, before its checkpoint: it
// pairs the rows the chunk wrote into the replacement (written, read back
// by that transaction) with the table's rows the chunk was made from
// (read, still in memory), and decrypts and compares every value as
// verifyTable does. That costs a fraction of a later pass reading both
// tables again. It gives the number of values decrypted, or ErrVerify
// naming the rows that differ, which rolls the chunk back.
func checkWritten(tj *tableJob, w *worker, cipher [][]string, read, written [][]any) (int64, error) {
	rc := newRowCheck(tj, w, false)
	source := func(fn func([]any) error) error {
		for _, vals := range read {
			if err := fn(vals); err != nil {
				return err
			}
		}
		return nil
	}
	if err := pairRebuilt(tj, cipher, written, source, rc.row, rc.missing); err != nil {
		return 0, err
	}
	if len(rc.bad) > 0 {
		res := &VerifyResult{Mismatches: rc.bad[:min(len(rc.bad), verifyFirstRows)]}
		return 0, fmt.Errorf("copy of %s: %w", tj.name, res.Err())
	}
	return rc.values, nil
}

// checkedChunks are the chunks of a rebuilt table that checkWritten
// verified in this run. Only this run's count: a chunk committed by an
// earlier run may have been changed since (an interrupted job resumed days
// later), so verify reads it again.
type checkedChunks struct {
	mu     sync.Mutex
	ranges map[[2]string]checkedChunk // by the chunk's encoded bounds
}

type checkedChunk struct{ rows, values int64 }

func (c *checkedChunks) add(ch chunk, rows, values int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ranges == nil {
		c.ranges = map[[2]string]checkedChunk{}
	}
	c.ranges[[2]string{ch.loEnc, ch.hiEnc}] = checkedChunk{rows, values}
}

// get reports whether this run verified the recorded chunk r where it was
// written.
func (c *checkedChunks) get(r chunkRecord) (checkedChunk, bool) {
	if c == nil {
		return checkedChunk{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.ranges[[2]string{r.Lo, r.Hi}]
	return v, ok
}
