package sqlite

import (
	"bytes"
	"database/sql"
	"fmt"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// The rebuild tests run on a table whose name needs quoting, with an
// encrypted column ct (TEXT plaintext, a BLOB in the replacement) and
// columns kept as they are: src (TEXT, some NULL) and n (untyped, holding
// every storage class).
const (
	rbName   = `we"ird t`
	rbQuoted = `"we""ird t"`
	// The refusal has both quote characters, which the trigger body must
	// escape.
	rbRefusal = `colcrypt: we"ird t is read-only while job 'j1' encrypts it offline`
	rbRows    = 60
)

type rebuildCase struct {
	name   string
	create string
	key    []string
	// fill gives the key values of row i; nil: SQLite assigns the key.
	fill    func(i int) []any
	iv      bool // the encrypted column has an IV column, ct_iv
	autoinc bool
}

func rebuildCases() []rebuildCase {
	return []rebuildCase{
		{name: "integer primary key", create: `CREATE TABLE ` + rbQuoted + ` (id INTEGER PRIMARY KEY, src TEXT, n, ct TEXT)`,
			key: []string{"id"}, fill: func(i int) []any { return []any{int64(i*1_000_003 - 400_000)} }, iv: true},
		{name: "rowid", create: `CREATE TABLE ` + rbQuoted + ` (src TEXT, n, ct TEXT)`,
			key: []string{"rowid"}},
		{name: "text nocase", create: `CREATE TABLE ` + rbQuoted + ` (k TEXT COLLATE NOCASE PRIMARY KEY, src TEXT, n, ct TEXT)`,
			// Alternating case: NOCASE order differs from binary order.
			key: []string{"k"}, fill: func(i int) []any { return []any{fmt.Sprintf("%sey%03d '\"é", []string{"k", "K"}[i%2], i)} }, iv: true},
		{name: "untyped, every storage class", create: `CREATE TABLE ` + rbQuoted + ` (k PRIMARY KEY, src TEXT, n, ct TEXT)`,
			// 5, 5.5, '5' and x'35' are four keys.
			key: []string{"k"}, fill: func(i int) []any {
				j := i / 4
				switch i % 4 {
				case 0:
					return []any{int64(j)}
				case 1:
					return []any{float64(j) + 0.5}
				case 2:
					return []any{fmt.Sprint(j)}
				}
				return []any{[]byte(fmt.Sprint(j))}
			}},
		{name: "composite without rowid", create: `CREATE TABLE ` + rbQuoted + ` (a INTEGER, b TEXT, src TEXT, n, ct TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID`,
			key: []string{"a", "b"}, fill: func(i int) []any { return []any{int64(i % 3), fmt.Sprintf("b%04d", i)} }, iv: true},
		{name: "generated columns", create: `CREATE TABLE ` + rbQuoted + ` (id INTEGER PRIMARY KEY,
				g TEXT GENERATED ALWAYS AS ('g:' || src) VIRTUAL, src TEXT, n,
				s GENERATED ALWAYS AS (typeof(n) || ':' || coalesce(src, '-')) STORED, ct TEXT)`,
			key: []string{"id"}},
		{name: "autoincrement", create: `CREATE TABLE ` + rbQuoted + ` (id INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT, n, ct TEXT)`,
			key: []string{"id"}, iv: true, autoinc: true},
	}
}

// rbMixed is row i's value of the untyped column n: every storage class.
func rbMixed(i int) any {
	switch i % 6 {
	case 0:
		return int64(i)
	case 1:
		return float64(i) + 0.25
	case 2:
		return fmt.Sprint(i) // digits as text
	case 3:
		return []byte{byte(i), 0, 'x'}
	case 4:
		return nil
	}
	return int64(-i) << 40
}

// rbKeyString identifies a row by its key values, storage class included.
func rbKeyString(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		if x, ok := v.([]byte); ok {
			fmt.Fprintf(&b, "blob:%x|", x)
			continue
		}
		fmt.Fprintf(&b, "%T:%v|", v, v)
	}
	return b.String()
}

// rbValue is the recognisable "ciphertext" (what = "ct") or IV of a row
// for a given attempt tag; some rows get a large one.
func rbValue(tag, what, key string) []byte {
	v := []byte(tag + ":" + what + ":" + key)
	if crc32.ChecksumIEEE([]byte(key))%11 == 0 {
		v = bytes.Repeat(v, 70000/len(v)+1)
	}
	return v
}

type rbRow struct {
	kept []any // rowid (rowid tables), then each kept column and its typeof
	enc  []any // each encrypted-side column and its typeof
}

type rbChunk struct {
	lo, hi []any
	keys   [][]any // the keys of its rows, in key order
}

type rebuildFixture struct {
	t     *testing.T
	d     Dialect
	db    *sql.DB
	tc    rebuildCase
	ts    dialect.TableSwap
	rowid bool
	kept  []string          // every column but ct
	keys  [][]any           // every row's key, in key order
	null  map[string]bool   // rows whose ct is NULL
	orig  map[string]rbRow  // the table as it was before PrepareRebuild
	sch   map[string]string // sqlite_master as it was before PrepareRebuild
}

// newRebuildFixture creates the table with rbRows rows (rowid tables with
// gaps in their rowids), runs before, then reads the model as the engine
// does before a job and builds the TableSwap of an offline rebuild.
func newRebuildFixture(t *testing.T, tc rebuildCase, before func(db *sql.DB)) *rebuildFixture {
	t.Helper()
	f := &rebuildFixture{t: t, db: openTemp(t), tc: tc, null: map[string]bool{}}
	ctx := t.Context()
	mustExec(t, f.db, tc.create)
	f.rowid = !parseCreateTable(tc.create).withoutRowid
	for i := range rbRows {
		src := any(fmt.Sprintf("v%d", i))
		if i%10 == 3 {
			src = nil
		}
		ct := any(fmt.Sprintf("secret %d", i))
		if i%7 == 2 {
			ct = nil
		}
		f.insert(tc.fill, i, src, rbMixed(i), ct)
	}
	if f.rowid {
		mustExec(t, f.db, `DELETE FROM `+rbQuoted+` WHERE rowid % 7 = 3`)
	}
	if before != nil {
		before(f.db)
	}
	model, err := f.d.ReadTable(ctx, f.db, schema.TableName{Name: rbName})
	if err != nil {
		t.Fatal(err)
	}
	sc := dialect.SwapColumn{Name: "ct", Temp: "ct__colcrypt", TempType: "BLOB"}
	if tc.iv {
		sc.IV = "ct_iv"
	}
	f.ts = dialect.TableSwap{Table: model, Columns: []dialect.SwapColumn{sc}, Rebuilt: true}
	for _, c := range model.Columns {
		if !strings.EqualFold(c.Name, "ct") {
			f.kept = append(f.kept, c.Name)
		}
	}
	for _, r := range queryAll(t, f.db, "SELECT "+f.keySelect()+", ct IS NULL FROM "+rbQuoted+" ORDER BY "+f.keyOrder()) {
		key := r[:len(tc.key)]
		f.keys = append(f.keys, key)
		f.null[rbKeyString(key)] = r[len(tc.key)].(int64) == 1
	}
	if len(f.keys) < 30 {
		t.Fatalf("only %d rows", len(f.keys))
	}
	f.orig = f.read(rbName, "ct")
	f.sch = f.schema()
	return f
}

// insert adds row i with the given values of src, n, ct.
func (f *rebuildFixture) insert(fill func(int) []any, i int, vals ...any) {
	f.t.Helper()
	cols := []string{"src", "n", "ct"}
	if fill != nil {
		cols = append(append([]string{}, f.tc.key...), cols...)
		vals = append(fill(i), vals...)
	}
	mustExec(f.t, f.db, `INSERT INTO `+rbQuoted+` (`+strings.Join(cols, ", ")+`) VALUES (?`+strings.Repeat(", ?", len(cols)-1)+`)`, vals...)
}

func (f *rebuildFixture) keySelect() string {
	var sel []string
	for _, k := range f.tc.key {
		sel = append(sel, f.d.KeySelect(f.d.keyExpr(k)))
	}
	return strings.Join(sel, ", ")
}

func (f *rebuildFixture) keyOrder() string {
	var out []string
	for _, k := range f.tc.key {
		out = append(out, f.d.keyExpr(k))
	}
	return strings.Join(out, ", ")
}

// rebuilt is the replacement's name.
func (f *rebuildFixture) rebuilt() string {
	return f.d.RebuildName(schema.TableName{Name: rbName}).Name
}

// enc are the columns the replacement gets from the chunks.
func (f *rebuildFixture) enc() []string {
	if f.tc.iv {
		return []string{"ct", "ct_iv"}
	}
	return []string{"ct"}
}

// read reads every row of a table by key: the kept columns (with the rowid
// on a rowid table), then enc, each value with its typeof.
func (f *rebuildFixture) read(table string, enc ...string) map[string]rbRow {
	f.t.Helper()
	sel := []string{f.keySelect()}
	if f.rowid {
		sel = append(sel, "rowid")
	}
	for _, c := range append(append([]string{}, f.kept...), enc...) {
		sel = append(sel, quoteIdent(c), "typeof("+quoteIdent(c)+")")
	}
	nk, nKept := len(f.tc.key), 2*len(f.kept)
	if f.rowid {
		nKept++
	}
	out := map[string]rbRow{}
	for _, r := range queryAll(f.t, f.db, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(table)) {
		k := rbKeyString(r[:nk])
		if _, dup := out[k]; dup {
			f.t.Fatalf("%s holds key %s twice", table, k)
		}
		out[k] = rbRow{kept: r[nk : nk+nKept], enc: r[nk+nKept:]}
	}
	return out
}

// schema is every sqlite_master entry.
func (f *rebuildFixture) schema() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, r := range queryAll(f.t, f.db, "SELECT type, name, tbl_name, sql FROM sqlite_master") {
		out[fmt.Sprintf("%s %s on %s", r[0], r[1], r[2])] = fmt.Sprint(r[3])
	}
	return out
}

// chunks cuts the table into three key ranges, as the walker does: the
// first from the start, the last to the end.
func (f *rebuildFixture) chunks() []rbChunk {
	n := len(f.keys)
	p1, p2 := n/3, 2*n/3
	return []rbChunk{
		{lo: nil, hi: f.keys[p1], keys: f.keys[:p1+1]},
		{lo: f.keys[p1], hi: f.keys[p2], keys: f.keys[p1+1 : p2+1]},
		{lo: f.keys[p2], hi: nil, keys: f.keys[p2+1:]},
	}
}

// update is the chunk's write, with every row's values made for tag, less
// the rows at the positions in skip.
func (f *rebuildFixture) update(c rbChunk, tag string, skip ...int) dialect.Update {
	var rows [][]any
	for i, key := range c.keys {
		if containsInt(skip, i) {
			continue
		}
		ks := rbKeyString(key)
		row := append([]any{}, key...)
		for _, col := range f.enc() {
			if f.null[ks] {
				row = append(row, nil) // NULL plaintext: NULL ciphertext and IV
			} else {
				row = append(row, rbValue(tag, col, ks))
			}
		}
		rows = append(rows, row)
	}
	return dialect.Update{Table: schema.TableName{Name: rbName}, Key: f.tc.key, Set: f.enc(), Rows: rows, Lo: c.lo, Hi: c.hi}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// build runs RebuildChunk in its own transaction, committed when it
// succeeds and rolled back otherwise.
func (f *rebuildFixture) build(u dialect.Update) error {
	ctx := f.t.Context()
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.d.RebuildChunk(ctx, tx, f.ts, u); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			f.t.Fatal(rerr)
		}
		return err
	}
	return tx.Commit()
}

func (f *rebuildFixture) mustBuild(c rbChunk, tag string, tags map[string]string) {
	f.t.Helper()
	if err := f.build(f.update(c, tag)); err != nil {
		f.t.Fatalf("chunk (%v, %v]: %v", c.lo, c.hi, err)
	}
	for _, k := range c.keys {
		tags[rbKeyString(k)] = tag
	}
}

func (f *rebuildFixture) prepare() {
	f.t.Helper()
	if err := f.d.PrepareRebuild(f.t.Context(), f.db, f.ts, rbRefusal); err != nil {
		f.t.Fatal(err)
	}
}

// check asserts that table holds exactly the rows of tags (key → the tag of
// the attempt that wrote them), each with the kept values of the original
// row (storage class and rowid included) and the ciphertext and IV made
// for it.
func (f *rebuildFixture) check(table string, tags map[string]string) {
	f.t.Helper()
	got := f.read(table, f.enc()...)
	if len(got) != len(tags) {
		f.t.Errorf("%s has %d rows, want %d", table, len(got), len(tags))
	}
	bad := 0
	for k, tag := range tags {
		if bad > 5 {
			f.t.Errorf("…")
			return
		}
		g, ok := got[k]
		if !ok {
			f.t.Errorf("%s lacks row %s", table, k)
			bad++
			continue
		}
		if o := f.orig[k]; !reflect.DeepEqual(g.kept, o.kept) {
			f.t.Errorf("%s row %s: kept columns %v are %v, want %v", table, k, append([]string{"(rowid)"}, f.kept...), g.kept, o.kept)
			bad++
		}
		for i, col := range f.enc() {
			v, typ := g.enc[2*i], g.enc[2*i+1]
			var want []byte
			wantType := "null"
			if !f.null[k] {
				want, wantType = rbValue(tag, col, k), "blob"
			}
			b, _ := v.([]byte)
			if typ != wantType || !bytes.Equal(b, want) || (want == nil) != (v == nil) {
				f.t.Errorf("%s row %s: %s is %s %.40q, want %s %.40q", table, k, col, typ, v, wantType, want)
				bad++
			}
		}
	}
	for k := range got {
		if _, ok := tags[k]; !ok && bad <= 5 {
			f.t.Errorf("%s has row %s, which no chunk written so far holds", table, k)
			bad++
		}
	}
}

// unchanged asserts the table still holds its original rows and schema
// entries; with prepared, the replacement (with its autoindexes) and the
// read-only triggers may be there too.
func (f *rebuildFixture) unchanged(prepared bool) {
	f.t.Helper()
	if got := f.read(rbName, "ct"); !reflect.DeepEqual(got, f.orig) {
		f.t.Errorf("%s changed: %d rows, want %d as before", rbName, len(got), len(f.orig))
	}
	now := f.schema()
	if prepared {
		for k := range now {
			if strings.HasSuffix(k, " on "+f.rebuilt()) {
				delete(now, k)
			}
		}
		for _, n := range readonlyNames() {
			delete(now, "trigger "+n+" on "+rbName)
		}
	}
	if !reflect.DeepEqual(now, f.sch) {
		f.t.Errorf("schema changed:\n got %v\nwant %v", now, f.sch)
	}
}

func (f *rebuildFixture) count(table string) int64 {
	f.t.Helper()
	var n int64
	if err := f.db.QueryRowContext(f.t.Context(), "SELECT count(*) FROM "+quoteIdent(table)).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// objects lists the names of sqlite_master entries of a type matching a
// LIKE pattern.
func (f *rebuildFixture) objects(typ, like string) []string {
	f.t.Helper()
	var out []string
	for _, r := range queryAll(f.t, f.db, fmt.Sprintf("SELECT name FROM sqlite_master WHERE type = '%s' AND name LIKE '%s' ORDER BY name", typ, like)) {
		out = append(out, r[0].(string))
	}
	return out
}

// readonlyNames are the read-only triggers PrepareRebuild creates.
func readonlyNames() []string {
	return []string{readonlyPrefix + rbName + "__delete", readonlyPrefix + rbName + "__insert", readonlyPrefix + rbName + "__update"}
}

// TestRebuildChunk builds the replacement of tables keyed every way SQLite
// allows, chunk by chunk over key ranges of the real rows, then runs one
// chunk again as a retry after a lost COMMIT reply does: the replacement
// must hold each row exactly once, its other columns exactly as they were
// and the ciphertext (and IV) given for that row by the latest attempt.
func TestRebuildChunk(t *testing.T) {
	if got := (Dialect{}).RebuildName(schema.TableName{Schema: "aux", Name: rbName}); got != (schema.TableName{Schema: "aux", Name: rbName + "__colcrypt_new"}) {
		t.Errorf("RebuildName = %+v", got)
	}
	for _, tc := range rebuildCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newRebuildFixture(t, tc, nil)
			f.prepare()
			rebuilt := f.rebuilt()
			if n := f.count(rebuilt); n != 0 {
				t.Fatalf("a new replacement has %d rows", n)
			}
			chunks := f.chunks()
			tags := map[string]string{}
			for i, c := range chunks {
				if len(c.keys) == 0 {
					t.Fatalf("chunk %d is empty", i)
				}
				f.mustBuild(c, "first", tags)
				f.check(rebuilt, tags) // exactly the chunks so far
				if i == 0 {
					// A resumed job prepares again: the replacement keeps
					// its rows.
					f.prepare()
					f.check(rebuilt, tags)
				}
			}
			if len(tags) != len(f.keys) {
				t.Fatalf("the chunks cover %d rows of %d", len(tags), len(f.keys))
			}
			// The middle chunk again, with other values: its rows are
			// replaced, the others left alone.
			f.mustBuild(chunks[1], "retry", tags)
			f.check(rebuilt, tags)
			// The live table is untouched (the replacement is new in the
			// schema, as are the read-only triggers and, for AUTOINCREMENT,
			// its sqlite_sequence row).
			if got := f.read(rbName, "ct"); !reflect.DeepEqual(got, f.orig) {
				t.Errorf("building the replacement changed %s", rbName)
			}
		})
	}
}

// TestRebuildChunkRefusesUnreadRow: a chunk whose rows lack one row of its
// range (read before another writer inserted it, say) fails, and its
// rolled-back transaction leaves the replacement as it was: without the
// chunk's rows on a first attempt, with the earlier attempt's rows on a
// retry.
func TestRebuildChunkRefusesUnreadRow(t *testing.T) {
	for _, tc := range rebuildCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newRebuildFixture(t, tc, nil)
			f.prepare()
			rebuilt := f.rebuilt()
			chunks := f.chunks()
			tags := map[string]string{}
			f.mustBuild(chunks[0], "first", tags)
			for ci := 1; ci < len(chunks); ci++ {
				c := chunks[ci]
				last := len(c.keys) - 1
				// The row just after Lo, one in the middle, the row at Hi.
				for _, skip := range []int{0, last / 2, last} {
					if err := f.build(f.update(c, "partial", skip)); err == nil {
						t.Errorf("chunk %d without its row %v: no error", ci, c.keys[skip])
					}
					f.check(rebuilt, tags)
				}
				f.mustBuild(c, "first", tags)
				if err := f.build(f.update(c, "partial", last/2)); err == nil {
					t.Errorf("retry of chunk %d without its row %v: no error", ci, c.keys[last/2])
				}
				f.check(rebuilt, tags)
			}
			// Rows beyond the range in u.Rows are not written.
			u := f.update(chunks[1], "wide")
			u.Rows = append(u.Rows, f.update(chunks[2], "wide").Rows...)
			if err := f.build(u); err != nil {
				t.Fatal(err)
			}
			for _, k := range chunks[1].keys {
				tags[rbKeyString(k)] = "wide"
			}
			f.check(rebuilt, tags)
		})
	}
}

// TestRebuildReadOnlyAndSwap: once prepared, the table refuses every write
// with the job's message; the cut-over of the built replacement leaves one
// table under the original name with the encrypted column a BLOB, every row
// as built, the recorded indexes and user triggers back, AUTOINCREMENT's
// high-water mark kept, and the table writable again. Swapping again does
// nothing.
func TestRebuildReadOnlyAndSwap(t *testing.T) {
	const highID = 100_000
	for _, tc := range rebuildCases() {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			f := newRebuildFixture(t, tc, func(db *sql.DB) {
				mustExec(t, db, `CREATE TABLE audit (src TEXT)`)
				mustExec(t, db, `CREATE INDEX t_src ON `+rbQuoted+` (src)`)
				mustExec(t, db, `CREATE TRIGGER t_audit AFTER UPDATE OF src ON `+rbQuoted+` BEGIN INSERT INTO audit (src) VALUES (NEW.src); END`)
				if tc.autoinc {
					// The high-water mark is above every id left.
					mustExec(t, db, `INSERT INTO `+rbQuoted+` (id, src) VALUES (?, 'high')`, highID)
					mustExec(t, db, `DELETE FROM `+rbQuoted+` WHERE id = ?`, highID)
				}
			})
			f.prepare()
			if got := f.objects("trigger", "colcrypt%"); !reflect.DeepEqual(got, readonlyNames()) {
				t.Errorf("triggers after PrepareRebuild: %q, want %q", got, readonlyNames())
			}
			newKey := 4000
			insCols, insVals := []string{"src"}, []any{"new"}
			if tc.fill != nil {
				insCols, insVals = append(append([]string{}, tc.key...), insCols...), append(tc.fill(newKey), insVals...)
			}
			insert := `INSERT INTO ` + rbQuoted + ` (` + strings.Join(insCols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(insCols)-1) + `)`
			for _, stmt := range []string{
				insert,
				`UPDATE ` + rbQuoted + ` SET src = 'changed'`,
				`UPDATE ` + rbQuoted + ` SET n = 1`,
				`DELETE FROM ` + rbQuoted,
			} {
				var args []any
				if stmt == insert {
					args = insVals
				}
				if _, err := f.db.ExecContext(ctx, stmt, args...); err == nil || !strings.Contains(err.Error(), rbRefusal) {
					t.Errorf("%s on the read-only table: %v, want the refusal %q", stmt, err, rbRefusal)
				}
			}
			f.unchanged(true)

			tags := map[string]string{}
			for _, c := range f.chunks() {
				f.mustBuild(c, "ct", tags)
			}
			if err := f.d.Swap(ctx, f.db, []dialect.TableSwap{f.ts}); err != nil {
				t.Fatal(err)
			}
			if got := f.objects("table", "we%"); !reflect.DeepEqual(got, []string{rbName}) {
				t.Errorf("tables after Swap: %q, want only %q", got, rbName)
			}
			if got := f.objects("trigger", "%"); !reflect.DeepEqual(got, []string{"t_audit"}) {
				t.Errorf("triggers after Swap: %q, want only t_audit", got)
			}
			for _, r := range queryAll(t, f.db, `SELECT type, name, tbl_name FROM sqlite_master WHERE name IN ('t_src', 't_audit')`) {
				if r[2] != rbName {
					t.Errorf("%s %s is on %v, want %s", r[0], r[1], r[2], rbName)
				}
			}
			if got := f.objects("index", "t_src"); len(got) != 1 {
				t.Errorf("index t_src not recreated: %q", got)
			}
			types := map[string]string{}
			for _, r := range queryAll(t, f.db, `SELECT name, type FROM pragma_table_xinfo('`+strings.ReplaceAll(rbName, "'", "''")+`')`) {
				types[r[0].(string)] = r[1].(string)
			}
			for _, c := range f.enc() {
				if types[c] != "BLOB" {
					t.Errorf("%s is declared %q after Swap, want BLOB (columns %v)", c, types[c], types)
				}
			}
			if len(types) != len(f.kept)+len(f.enc()) {
				t.Errorf("columns after Swap: %v", types)
			}
			f.check(rbName, tags)
			var ok string
			if err := f.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
				t.Errorf("integrity_check: %q %v", ok, err)
			}
			if tc.autoinc {
				seqs := queryAll(t, f.db, `SELECT name, seq FROM sqlite_sequence ORDER BY name`)
				if want := [][]any{{rbName, int64(highID)}}; !reflect.DeepEqual(seqs, want) {
					t.Errorf("sqlite_sequence after Swap: %v, want %v", seqs, want)
				}
			}

			// Again, as after a crash before the swap was recorded.
			before, sch := f.read(rbName, f.enc()...), f.schema()
			if err := f.d.Swap(ctx, f.db, []dialect.TableSwap{f.ts}); err != nil {
				t.Fatalf("second Swap: %v", err)
			}
			if !reflect.DeepEqual(f.read(rbName, f.enc()...), before) || !reflect.DeepEqual(f.schema(), sch) {
				t.Errorf("a second Swap changed the table or the schema")
			}

			// Writable again, with the user trigger firing.
			mustExec(t, f.db, insert, insVals...)
			if tc.autoinc {
				var id int64
				if err := f.db.QueryRowContext(ctx, `SELECT id FROM `+rbQuoted+` WHERE src = 'new'`).Scan(&id); err != nil || id != highID+1 {
					t.Errorf("the row inserted after Swap got id %d (%v), want %d", id, err, highID+1)
				}
			}
			mustExec(t, f.db, `UPDATE `+rbQuoted+` SET src = 'changed' WHERE src = 'new'`)
			var audited int
			if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE src = 'changed'`).Scan(&audited); err != nil || audited != 1 {
				t.Errorf("user trigger after Swap: %d audit rows (%v), want 1", audited, err)
			}
			mustExec(t, f.db, `DELETE FROM `+rbQuoted+` WHERE src = 'changed'`)
			if n := f.count(rbName); n != int64(len(f.keys)) {
				t.Errorf("%d rows after insert and delete, want %d", n, len(f.keys))
			}
		})
	}
}

// TestSwapRebuiltRefuses: the cut-over refuses, changing nothing, when the
// table has a row the replacement lacks (written behind the read-only
// triggers) or a column the replacement lacks.
func TestSwapRebuiltRefuses(t *testing.T) {
	tc := rebuildCases()[0]
	setup := func(t *testing.T) (*rebuildFixture, map[string]string) {
		f := newRebuildFixture(t, tc, nil)
		f.prepare()
		tags := map[string]string{}
		for _, c := range f.chunks() {
			f.mustBuild(c, "ct", tags)
		}
		return f, tags
	}
	// stillThere asserts nothing of the swap happened.
	stillThere := func(f *rebuildFixture, tags map[string]string, liveRows int64, triggers []string) {
		f.t.Helper()
		if got := f.objects("table", "we%"); !reflect.DeepEqual(got, []string{rbName, f.rebuilt()}) {
			f.t.Errorf("tables after a refused Swap: %q", got)
		}
		if got := f.objects("trigger", "colcrypt%"); !reflect.DeepEqual(got, triggers) {
			f.t.Errorf("read-only triggers after a refused Swap: %q, want %q", got, triggers)
		}
		if n := f.count(rbName); n != liveRows {
			f.t.Errorf("%s has %d rows after a refused Swap, want %d", rbName, n, liveRows)
		}
		var typ string
		if err := f.db.QueryRowContext(f.t.Context(), `SELECT type FROM pragma_table_info(?) WHERE name = 'ct'`, rbName).Scan(&typ); err != nil || typ != "TEXT" {
			f.t.Errorf("ct of %s is %q (%v) after a refused Swap, want TEXT", rbName, typ, err)
		}
		f.check(f.rebuilt(), tags)
	}

	t.Run("row written behind the triggers", func(t *testing.T) {
		f, tags := setup(t)
		n := int64(len(f.keys))
		mustExec(t, f.db, `DROP TRIGGER `+quoteIdent(readonlyPrefix+rbName+"__insert"))
		f.insert(tc.fill, 4000, "late", 1, "late secret")
		err := f.d.Swap(t.Context(), f.db, []dialect.TableSwap{f.ts})
		if err == nil {
			t.Fatal("Swap of a table with a row its replacement lacks: no error")
		}
		for _, want := range []string{readonlyPrefix + rbName + "__insert", "was dropped", "revert"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		stillThere(f, tags, n+1, []string{readonlyPrefix + rbName + "__delete", readonlyPrefix + rbName + "__update"})
	})

	t.Run("column dropped after prepare", func(t *testing.T) {
		f, tags := setup(t)
		mustExec(t, f.db, `ALTER TABLE `+rbQuoted+` DROP COLUMN src`)
		err := f.d.Swap(t.Context(), f.db, []dialect.TableSwap{f.ts})
		if err == nil || !strings.Contains(err.Error(), "src") || !strings.Contains(err.Error(), "dropped") {
			t.Fatalf("Swap of a table that lost a column since prepare: %v, want an error naming src", err)
		}
		if got := f.objects("table", "we%"); !reflect.DeepEqual(got, []string{rbName, f.rebuilt()}) {
			t.Errorf("tables after a refused Swap: %q", got)
		}
		f.check(f.rebuilt(), tags)
	})

	t.Run("column added after prepare", func(t *testing.T) {
		f, tags := setup(t)
		mustExec(t, f.db, `ALTER TABLE `+rbQuoted+` ADD COLUMN late_col TEXT`)
		err := f.d.Swap(t.Context(), f.db, []dialect.TableSwap{f.ts})
		if err == nil || !strings.Contains(err.Error(), "late_col") {
			t.Fatalf("Swap of a table with a column its replacement lacks: %v, want an error naming late_col", err)
		}
		stillThere(f, tags, int64(len(f.keys)), readonlyNames())
		if got := queryAll(t, f.db, `SELECT count(*) FROM pragma_table_info(`+"'"+strings.ReplaceAll(rbName, "'", "''")+"'"+`) WHERE name = 'late_col'`); got[0][0] != int64(1) {
			t.Errorf("late_col is gone after a refused Swap")
		}
	})
}

// TestDropRebuild: reverting before the cut-over drops the replacement and
// the read-only triggers, leaving the table exactly as it was and writable;
// dropping again is fine.
func TestDropRebuild(t *testing.T) {
	for _, tc := range rebuildCases() {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			f := newRebuildFixture(t, tc, nil)
			f.prepare()
			tags := map[string]string{}
			for _, c := range f.chunks()[:2] {
				f.mustBuild(c, "ct", tags)
			}
			for range 2 {
				if err := f.d.DropRebuild(ctx, f.db, schema.TableName{Name: rbName}); err != nil {
					t.Fatal(err)
				}
				if got := f.objects("table", "we%"); !reflect.DeepEqual(got, []string{rbName}) {
					t.Errorf("tables after DropRebuild: %q", got)
				}
				if got := f.objects("trigger", "%"); len(got) != 0 {
					t.Errorf("triggers after DropRebuild: %q", got)
				}
				f.unchanged(false)
				if tc.autoinc {
					if seqs := queryAll(t, f.db, `SELECT name FROM sqlite_sequence ORDER BY name`); !reflect.DeepEqual(seqs, [][]any{{rbName}}) {
						t.Errorf("sqlite_sequence after DropRebuild: %v, want only %s", seqs, rbName)
					}
				}
			}
			f.insert(tc.fill, 4000, "new", 1, "new secret")
			mustExec(t, f.db, `UPDATE `+rbQuoted+` SET ct = 'changed' WHERE src = 'new'`)
			mustExec(t, f.db, `DELETE FROM `+rbQuoted+` WHERE ct = 'changed'`)
			f.unchanged(false)
		})
	}
}
