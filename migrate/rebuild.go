package migrate

import (
	"context"
	"errors"
	"fmt"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/planner"
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

// prepareRebuild creates the table's replacement and makes the table
// read-only until the cut-over.
func (e *Engine) prepareRebuild(ctx context.Context, jobID string, t *tableJob) error {
	r, _ := e.d.(dialect.Rebuilder)
	refusal := fmt.Sprintf("colcrypt: %s is read-only while job %s encrypts it offline; run colcrypt apply %s to finish the job, "+
		"or colcrypt revert %s to stop it", t.name, jobID, e.plan.Path, e.plan.Path)
	return e.ddl(ctx, "build the replacement of "+t.name, func(ctx context.Context) error {
		return r.PrepareRebuild(ctx, e.db, e.tableSwap(t, true), refusal)
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

// finishRebuilds completes the replacements the copy filled (their other
// indexes, on PostgreSQL) before verify reads them.
func (e *Engine) finishRebuilds(ctx context.Context, tables []*tableJob) error {
	r, ok := e.d.(dialect.Rebuilder)
	for _, t := range tables {
		if !t.rebuild || !ok {
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

// eachRebuiltRow calls fn with each row of a chunk of the table joined with
// its replacement's row of the same key, in the layout verifyTable reads:
// the key, then for each planned column the table's plaintext expression
// followed by its cipher expressions (ciphertext, IV) read from the
// replacement. The replacement's rows are read by one range scan of the
// same chunk, which costs far less than a search of the replacement per
// row. Both scans run in key order, so rows pair up in turn; after a row
// found on one side only, the rest of the chunk is matched by key. Such a
// row goes to missing.
func (e *Engine) eachRebuiltRow(ctx context.Context, tj *tableJob, plain []string, cipher [][]string, ch chunk,
	fn func(vals []any) error, missing func(key []any, reason string)) error {
	r, _ := e.d.(dialect.Rebuilder)
	rt := *tj
	rt.tn = r.RebuildName(tj.tn)
	var flat []string
	for _, c := range cipher {
		flat = append(flat, c...)
	}
	nk := len(tj.key)
	var rebuilt [][]any
	sqlText, args := e.selectChunk(&rt, flat, ch)
	err := scanRows(ctx, e.db, "read chunk of the replacement of "+tj.name, sqlText, args, nk+len(flat), func(vals []any) error {
		rebuilt = append(rebuilt, vals)
		return nil
	})
	if err != nil {
		return err
	}
	next := 0
	var byKey map[string]int // the unpaired rest, once rows stopped pairing up
	err = e.eachRow(ctx, tj, plain, ch, func(vals []any) error {
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
		row := append(make([]any, 0, nk+len(plain)+len(flat)), vals[:nk]...)
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
		b = append(b, rowKeyBytes([]any{v})...)
	}
	return string(b)
}
