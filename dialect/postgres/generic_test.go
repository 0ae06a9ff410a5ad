package postgres_test

import (
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// TestChunkWritesReadTheKeyIndex: a chunk's write plans once per
// connection (a generic plan) only where that plan cannot read the whole
// table: a range bounded on both sides by a one-column key. Every chunk,
// of either kind, of either write (rebuilt or in place), reads the table
// through its key's index and never scans it whole, as the transaction's
// own statistics show.
func TestChunkWritesReadTheKeyIndex(t *testing.T) {
	d, db := openDB(t,
		`CREATE TABLE one (id bigint PRIMARY KEY, email text, copy bytea)`,
		`INSERT INTO one SELECT g, 'u' || g, NULL FROM generate_series(1, 20000) g`,
		`CREATE TABLE two (a int, b int, email text, copy bytea, PRIMARY KEY (a, b))`,
		`INSERT INTO two SELECT g / 100, g % 100, 'u' || g, NULL FROM generate_series(1, 20000) g`,
		`ANALYZE one`, `ANALYZE two`)
	ctx := t.Context()
	tables := map[string]*schema.Table{}
	for _, name := range []string{"one", "two"} {
		model, err := d.ReadTable(ctx, db, schema.TableName{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		tables[name] = model
	}
	type chunk struct {
		table   string
		lo, hi  []any
		rows    [][]any
		generic bool
	}
	oneRows := func(lo, hi int64) [][]any {
		var out [][]any
		for id := lo + 1; id <= hi; id++ {
			out = append(out, []any{id, []byte("x")})
		}
		return out
	}
	twoRows := func(a int64) [][]any {
		var out [][]any
		for b := int64(0); b < 100; b++ {
			out = append(out, []any{a, b, []byte("x")})
		}
		return out
	}
	var chunks []chunk
	chunks = append(chunks, chunk{"one", nil, []any{int64(2000)}, oneRows(0, 2000), false})
	for lo := int64(2000); lo < 18000; lo += 2000 {
		chunks = append(chunks, chunk{"one", []any{lo}, []any{lo + 2000}, oneRows(lo, lo+2000), true})
	}
	chunks = append(chunks, chunk{"one", []any{int64(18000)}, nil, oneRows(18000, 20000), false})
	for a := int64(10); a < 17; a++ {
		chunks = append(chunks, chunk{"two", []any{a - 1, int64(99)}, []any{a, int64(99)}, twoRows(a), false})
	}
	swap := func(model *schema.Table) dialect.TableSwap {
		return dialect.TableSwap{Table: model, Rebuilt: true, Columns: []dialect.SwapColumn{{Name: "email", Temp: "email", TempType: "bytea"}}}
	}
	for _, rebuilt := range []bool{false, true} {
		if rebuilt {
			for _, model := range tables {
				if err := d.PrepareRebuild(ctx, db, swap(model), "read-only for the test"); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, c := range chunks {
			model := tables[c.table]
			u := dialect.Update{Table: model.Name, Key: model.UsableKey(), KeyTypes: []string{"bigint"}, Set: []string{"email"},
				Rows: c.rows, Lo: c.lo, Hi: c.hi}
			if c.table == "two" {
				u.KeyTypes = []string{"integer", "integer"}
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The transaction's counts include those of earlier
			// transactions of its connection not yet reported.
			scans := func() (seq, idx int64) {
				if err := tx.QueryRowContext(ctx, `SELECT seq_scan, coalesce(idx_scan, 0)
FROM pg_catalog.pg_stat_xact_user_tables WHERE relid = to_regclass($1)`, c.table).Scan(&seq, &idx); err != nil {
					t.Fatal(err)
				}
				return seq, idx
			}
			seq0, idx0 := scans()
			if rebuilt {
				err = d.RebuildChunk(ctx, tx, swap(model), u)
			} else {
				u.Set = []string{"copy"}
				err = d.BulkUpdate(ctx, tx, u)
			}
			if err != nil {
				t.Fatalf("chunk %d of %s (rebuilt %v): %v", i, c.table, rebuilt, err)
			}
			var mode string
			if err := tx.QueryRowContext(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&mode); err != nil {
				t.Fatal(err)
			}
			seq1, idx1 := scans()
			seqScans, idxScans := seq1-seq0, idx1-idx0
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if generic := mode == "force_generic_plan"; generic != c.generic {
				t.Errorf("chunk %d of %s (rebuilt %v, bounds %v–%v): plan_cache_mode %s", i, c.table, rebuilt, c.lo, c.hi, mode)
			}
			if seqScans != 0 || idxScans == 0 {
				t.Errorf("chunk %d of %s (rebuilt %v, bounds %v–%v): %d scans of the whole table, %d of an index",
					i, c.table, rebuilt, c.lo, c.hi, seqScans, idxScans)
			}
		}
	}
}
