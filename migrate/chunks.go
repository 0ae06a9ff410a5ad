package migrate

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Chunk sizing. The copy aims for chunks that take about the plan's
// chunk_target each: long enough that per-chunk round trips and the
// checkpoint are noise, short enough that a lock is never held for long and
// a crash repeats little work.
const (
	minChunkRows    = 100 // below this the per-chunk overhead dominates
	maxChunkFactor  = 4   // never grow past 4× batch_rows, whatever the timing says: the chunks in memory (read ahead, encrypted, staged) bound peak RSS
	maxChunkGrowth  = 1.5 // grow at most 50% per chunk, so one fast chunk does not overshoot
	maxChunkShrink  = 0.5 // shrink at most by half per chunk
	chunkQueueDepth = 2   // chunks computed ahead per worker: keeps workers busy without reading far ahead
	verifyFirstRows = 10  // rows named when verification fails
	// tailFloorDivisor: the last chunks shrink to no less than batch_rows
	// divided by this (tailRows).
	tailFloorDivisor = 4
)

// defaultChunkBytes is Options.ChunkBytes unless set. A chunk whose rows
// carry every column (dialect.Carrier) holds them all in memory while it
// waits for a worker; on 1M rows of SPEC §8's table, 2 workers, 2 MiB
// kept the live heap about 30 MB and the process's CPU about 5 s, where
// 8 MiB kept 60–70 MB live and took 8 s of CPU, much of it collecting.
const defaultChunkBytes = 2 << 20

// chunk is a contiguous key range (lo, hi] of a table; nil lo is the
// start of the table and nil hi its end.
type chunk struct {
	lo, hi       []any
	loEnc, hiEnc string
	// rows are the chunk's rows (key values, then the work's expressions)
	// when the walker read them with the chunk; read tells them apart from
	// a chunk of no rows. A retry reads the range again instead.
	rows [][]any
	read bool
	// bytes is about the memory the rows read with it hold (valueBytes).
	bytes int64
	// where, when set, selects the chunk's rows instead of the key range:
	// a physical slice of the table (dialect.PhysicalSlicer), read in no
	// particular order.
	where string
}

// query builds SQL with the engine's placeholders numbered in order.
type query struct {
	e    *Engine
	b    strings.Builder
	args []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return q.e.m.Placeholder(len(q.args))
}

func (q *query) write(parts ...string) {
	for _, p := range parts {
		q.b.WriteString(p)
	}
}

// keyArg binds v, read from the table's i-th key column, as the engine
// must see it to compare that column with it (dialect.KeyBinder).
func (q *query) keyArg(tj *tableJob, i int, v any) string {
	kb, ok := q.e.m.(dialect.KeyBinder)
	if !ok {
		return q.arg(v)
	}
	var col *schema.Column
	if i < len(tj.keyCols) && tj.model != nil {
		col = tj.model.Column(tj.keyCols[i])
	}
	q.args = append(q.args, nil)
	expr, bind := kb.KeyArg(col, v, q.e.m.Placeholder(len(q.args)))
	q.args[len(q.args)-1] = bind
	return expr
}

// keyCompare writes the keyset condition comparing the table's key with
// vals: after=true gives key > vals, else key <= vals. It is spelled out as
// ORs of equalities because SQL Server has no row-value comparison.
func (q *query) keyCompare(tj *tableJob, vals []any, after bool) {
	key := tj.key
	q.write("(")
	for i := range key {
		if i > 0 {
			q.write(" OR ")
		}
		q.write("(")
		for j := 0; j < i; j++ {
			q.write(key[j], " = ", q.keyArg(tj, j, vals[j]), " AND ")
		}
		op := ">"
		if !after {
			op = "<"
			if i == len(key)-1 {
				op = "<="
			}
		}
		q.write(key[i], " ", op, " ", q.keyArg(tj, i, vals[i]), ")")
	}
	q.write(")")
}

// rangeWhere writes the WHERE clause of a chunk, or nothing for a whole table.
func (q *query) rangeWhere(tj *tableJob, ch chunk) {
	var conds int
	if ch.lo != nil {
		q.write(" WHERE ")
		q.keyCompare(tj, ch.lo, true)
		conds++
	}
	if ch.hi != nil {
		if conds == 0 {
			q.write(" WHERE ")
		} else {
			q.write(" AND ")
		}
		q.keyCompare(tj, ch.hi, false)
	}
}

// selectChunk reads the key and exprs of the rows of a chunk, in key order.
// Every selected expression gets its own alias: a key column that is also
// an encrypted column would otherwise appear twice under one name, and
// ORDER BY on that name is ambiguous.
func (e *Engine) selectChunk(tj *tableJob, exprs []string, ch chunk) (string, []any) {
	q := &query{e: e}
	var list []string
	for i, k := range e.keySelect(tj) {
		list = append(list, k+" AS "+e.d.Quote(fmt.Sprintf("colcrypt_k%d", i+1)))
	}
	for i, x := range exprs {
		list = append(list, x+" AS "+e.d.Quote(fmt.Sprintf("colcrypt_v%d", i+1)))
	}
	q.write("SELECT ", strings.Join(list, ", "), " FROM ", e.d.QuoteTable(tj.tn))
	if ch.where != "" {
		q.write(" WHERE ", ch.where)
		return q.b.String(), q.args
	}
	q.rangeWhere(tj, ch)
	if len(tj.key) > 0 {
		q.write(" ORDER BY ", strings.Join(tj.key, ", "))
	}
	return q.b.String(), q.args
}

// keySelect gives the expressions that read the key columns.
func (e *Engine) keySelect(tj *tableJob) []string {
	kr, ok := e.d.(dialect.KeyReader)
	if !ok {
		return tj.key
	}
	out := make([]string, len(tj.key))
	for i, k := range tj.key {
		out[i] = kr.KeySelect(k)
	}
	return out
}

// readAhead reads the next chunk after lo: up to size rows in key order,
// with the key and exprs of each. The chunk ends at the last row read, or
// at the end of the table when fewer rows remain. Reading here, in the one
// walker goroutine, costs one ordered range scan per chunk; the workers
// then only transform and write.
func (e *Engine) readAhead(ctx context.Context, tj *tableJob, exprs []string, lo []any, loEnc string, size int64) (chunk, error) {
	ch := chunk{lo: lo, loEnc: loEnc}
	sqlText, args := e.selectChunk(tj, exprs, chunk{lo: lo})
	sqlText = e.m.FirstRows(sqlText, 0, size)
	full := false
	ch.rows = make([][]any, 0, min(size, 1<<16)) // size is what the walker expects
	err := retry(ctx, e.log, "read chunk of "+tj.name, func(ctx context.Context) error {
		ch.rows, ch.bytes, full = ch.rows[:0], 0, false
		err := scanRows(ctx, e.db, "read chunk of "+tj.name, sqlText, args, len(tj.key)+len(exprs), func(vals []any) error {
			ch.rows = append(ch.rows, vals)
			if ch.bytes += valueBytes(vals); ch.bytes >= e.opt.ChunkBytes {
				return errChunkFull
			}
			return nil
		})
		if errors.Is(err, errChunkFull) {
			full, err = true, nil
		}
		return err
	})
	if err != nil {
		return chunk{}, err
	}
	ch.read = true
	if int64(len(ch.rows)) < size && !full {
		return ch, nil // the last chunk: to the end of the table
	}
	ch.hi = ch.rows[len(ch.rows)-1][:len(tj.key)]
	if ch.hiEnc, err = encodeKey(ch.hi); err != nil {
		return chunk{}, err
	}
	return ch, nil
}

// errChunkFull stops the walker's read of a chunk at Options.ChunkBytes.
var errChunkFull = errors.New("chunk full")

// valueBytes is about the memory a row's values hold.
func valueBytes(vals []any) int64 {
	n := int64(16 * len(vals))
	for _, v := range vals {
		switch x := v.(type) {
		case []byte:
			n += int64(len(x))
		case string:
			n += int64(len(x))
		}
	}
	return n
}

// eachRow calls fn with every row of a chunk in key order (key values,
// then exprs): the rows the walker read with it, or else a fresh read of
// its range, streamed. Errors of fn are returned as they are.
func (e *Engine) eachRow(ctx context.Context, tj *tableJob, exprs []string, ch chunk, fn func(vals []any) error) error {
	if ch.read {
		for _, vals := range ch.rows {
			if err := fn(vals); err != nil {
				return err
			}
		}
		return nil
	}
	sqlText, args := e.selectChunk(tj, exprs, ch)
	return scanRows(ctx, e.db, "read chunk of "+tj.name, sqlText, args, len(tj.key)+len(exprs), fn)
}

// scanRows runs a query on q and calls fn with each row of its n columns,
// as fresh values, stopping at the first error. Errors of the query are
// wrapped with what; errors of fn are returned as they are.
func scanRows(ctx context.Context, q dialect.Querier, what, sqlText string, args []any, n int, fn func(vals []any) error) error {
	rows, err := q.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	sc := newRowScanner(n)
	for rows.Next() {
		vals, err := sc.scan(rows)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// chunkSizer adapts the chunk size toward a target duration per chunk.
type chunkSizer struct {
	rows   atomic.Int64
	target time.Duration
	max    int64
}

func newChunkSizer(batchRows int, target time.Duration) *chunkSizer {
	s := &chunkSizer{target: target, max: int64(batchRows) * maxChunkFactor}
	s.rows.Store(int64(batchRows))
	return s
}

func (s *chunkSizer) observe(rows int64, took time.Duration) {
	if s.target <= 0 || rows == 0 || took <= 0 {
		return
	}
	factor := float64(s.target) / float64(took)
	factor = max(min(factor, maxChunkGrowth), maxChunkShrink)
	next := int64(float64(rows) * factor)
	s.rows.Store(max(min(next, s.max), minChunkRows))
}

// chunkWork processes one chunk on a worker; it must be idempotent, since a
// transient error retries it and a crash repeats it.
type chunkWork func(ctx context.Context, w *worker, ch chunk) (rows int64, err error)

// worker holds what one goroutine reuses across chunks (ciphers).
type worker struct {
	ciphers []*cipher.Column // one per planned column of the table, in order
	// targets holds, for columns mid-rekey, the cipher of the rekey's
	// target (nil for the others), so verify reads values of both.
	targets []*cipher.Column
}

// runChunks walks the table in contiguous chunks, reading the key and
// exprs of their rows, and runs work on a bounded pool of workers. done
// holds chunks recorded by an earlier run: they are skipped and their
// boundaries reused, so a resumed run partitions the table exactly as the
// first did. newWorker builds each worker's state.
func (e *Engine) runChunks(ctx context.Context, tj *tableJob, done map[string]chunkRecord, exprs []string,
	newWorker func() (*worker, error), work chunkWork, prog *progress) error {
	sizer := newChunkSizer(e.opt.BatchRows, e.plan.Job.ChunkTarget)
	walk := func(ctx context.Context, out chan<- chunk) error {
		return e.walk(ctx, tj, done, exprs, sizer, out, prog)
	}
	return e.runPool(ctx, tj, walk, newWorker, work, sizer, prog)
}

// runPool runs work on the chunks produce sends, on e.opt.Workers workers.
func (e *Engine) runPool(ctx context.Context, tj *tableJob, produce func(context.Context, chan<- chunk) error,
	newWorker func() (*worker, error), work chunkWork, sizer *chunkSizer, prog *progress) error {
	workers := make([]*worker, e.opt.Workers)
	for i := range workers {
		w, err := newWorker()
		if err != nil {
			return err
		}
		workers[i] = w
	}
	g, ctx := errgroup.WithContext(ctx)
	chunks := make(chan chunk, e.opt.Workers*chunkQueueDepth)
	g.Go(func() error {
		defer close(chunks)
		return produce(ctx, chunks)
	})
	for _, w := range workers {
		g.Go(func() error {
			for ch := range chunks {
				start := time.Now()
				var rows int64
				err := retry(ctx, e.log, "chunk of "+tj.name, func(ctx context.Context) error {
					var err error
					rows, err = work(ctx, w, ch)
					// A retry reads the rows again: the failed attempt
					// may have changed them (a COMMIT whose reply was lost).
					ch.rows, ch.read = nil, false
					return err
				})
				if err != nil {
					return err
				}
				took := time.Since(start)
				if sizer != nil {
					sizer.observe(rows, took)
				}
				if e.log.Enabled(ctx, slog.LevelDebug) {
					e.log.Debug("chunk done", "table", tj.name, "rows", rows, "took", took.Round(time.Millisecond))
				}
				prog.add(rows)
			}
			return nil
		})
	}
	return g.Wait()
}

// resumableChunks gives the recorded chunks of a table's phase for a walk
// to build on. A recorded chunk after a hole (a chunk a crash lost while a
// later one committed) is where the walk filling the hole must stop, and
// the walk finds that point by its key's row (keyWithin). When that row
// was deleted since, the walk would run past it and write and count the
// chunks after it a second time (verify then found the digests no longer
// added up, every time). So such a chunk, and the chunks chained after
// it, are forgotten: the walk writes that range again, as one of its own.
func (e *Engine) resumableChunks(ctx context.Context, jobID string, tj *tableJob, phase string) (map[string]chunkRecord, error) {
	done, err := e.st.chunks(ctx, jobID, tj.tn.String(), phase)
	if err != nil {
		return nil, err
	}
	ends := map[string]bool{}
	for _, r := range done {
		ends[r.Hi] = true
	}
	var lost []string
	for lo := range done {
		if lo == "" || ends[lo] {
			continue
		}
		k, err := decodeKey(lo)
		if err != nil {
			return nil, err
		}
		if there, err := e.keyWithin(ctx, tj, k, nil, nil); err != nil {
			return nil, err
		} else if !there {
			lost = append(lost, lo)
		}
	}
	for _, lo := range lost {
		n := 0
		for enc := lo; ; n++ {
			rec, ok := done[enc]
			if !ok {
				break
			}
			if err := e.forgetChunk(ctx, jobID, tj, phase, enc); err != nil {
				return nil, err
			}
			delete(done, enc)
			if rec.Hi == "" {
				break
			}
			enc = rec.Hi
		}
		e.log.Info("the row a recorded chunk begins at is gone: its chunks are written again", "table", tj.name, "phase", phase, "chunks", n)
	}
	return done, nil
}

// forgetChunk deletes the checkpoint of the chunk that begins at loEnc,
// so that the next walk writes it again. It runs before the workers start.
func (e *Engine) forgetChunk(ctx context.Context, jobID string, tj *tableJob, phase, loEnc string) error {
	key, err := e.st.boundHash(tj.keyIsEnc, loEnc)
	if err != nil {
		return err
	}
	return retry(ctx, e.log, "forget a chunk of "+tj.name, func(ctx context.Context) error {
		_, err := e.db.ExecContext(ctx, e.st.clearCheckpointSQL(), jobID, tj.tn.String(), phase, key, loHash(loEnc))
		return err
	})
}

// walk reads contiguous chunks from the start of the table to its end and
// sends them with their rows.
func (e *Engine) walk(ctx context.Context, tj *tableJob, done map[string]chunkRecord, exprs []string, sizer *chunkSizer,
	out chan<- chunk, prog *progress) error {
	// Recorded chunks that begin where no recorded chunk ends follow a
	// hole: a chunk that a crash lost while a later one committed. A new
	// chunk filling the hole must stop where the recorded one begins, or the
	// two would overlap and their rows count twice.
	ends := map[string]bool{}
	for _, r := range done {
		ends[r.Hi] = true
	}
	var holeEnds [][]any
	for lo := range done {
		if lo != "" && !ends[lo] {
			k, err := decodeKey(lo)
			if err != nil {
				return err
			}
			holeEnds = append(holeEnds, k)
		}
	}
	var lo []any
	loEnc := ""
	passed := int64(0)   // rows of the chunks walked so far, recorded ones too
	rowBytes := int64(0) // the last chunk read's bytes per row
	for {
		if rec, ok := done[loEnc]; ok {
			prog.add(rec.Rows)
			passed += rec.Rows
			if rec.Hi == "" {
				return nil
			}
			hi, err := decodeKey(rec.Hi)
			if err != nil {
				return err
			}
			lo, loEnc = hi, rec.Hi
			continue
		}
		size := tailRows(sizer.rows.Load(), prog.expected()-passed, e.opt.Workers, e.opt.BatchRows)
		ch, err := e.readAhead(ctx, tj, exprs, lo, loEnc, byteBound(size, e.opt.ChunkBytes, rowBytes))
		if err != nil {
			return err
		}
		if len(ch.rows) > 0 {
			rowBytes = max(1, ch.bytes/int64(len(ch.rows)))
		}
		for _, end := range holeEnds {
			if inside, err := e.keyWithin(ctx, tj, end, lo, ch.hi); err != nil {
				return err
			} else if inside {
				// The rows read run past the hole: the worker reads
				// the capped range itself.
				ch = chunk{lo: lo, loEnc: loEnc, hi: end}
				if ch.hiEnc, err = encodeKey(end); err != nil {
					return err
				}
			}
		}
		passed += int64(len(ch.rows)) // none when capped at a hole: the worker reads them
		select {
		case out <- ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if ch.hi == nil {
			return nil
		}
		lo, loEnc = ch.hi, ch.hiEnc
	}
}

// tailRows is the size of the next chunk the walker reads, when about
// left rows of the table remain to be read: as the end comes near it
// shrinks, down to a quarter of batch_rows, so that the workers' last
// chunks end together instead of one worker writing a large last chunk
// while the others wait. Each chunk is at most the remaining rows shared
// among the workers (guided scheduling). left comes from the progress's
// total, which may be the catalog's estimate: once the rows walked pass
// it (left <= 0), the chunks keep the sizer's size.
func tailRows(size, left int64, workers, batchRows int) int64 {
	if left <= 0 || workers <= 0 {
		return size
	}
	floor := max(int64(minChunkRows), int64(batchRows)/tailFloorDivisor)
	return min(size, max(left/int64(workers), floor))
}

// byteBound caps a chunk's size at the rows chunkBytes holds when each
// holds about rowBytes (0: not known yet). The walker asks for no more:
// a read that ChunkBytes cuts short still has the server produce and send
// every row of its LIMIT (PostgreSQL: 1.46M rows read for 1M copied, with
// whole rows of SPEC §8's table and LIMITs of up to 20,000).
func byteBound(size, chunkBytes, rowBytes int64) int64 {
	if rowBytes <= 0 {
		return size
	}
	return max(1, min(size, chunkBytes/rowBytes))
}

// keyWithin reports whether key k lies in (lo, hi] (nil lo: from the start,
// nil hi: to the end), compared by the database on the key columns so the
// columns' own collation decides, as it does for the walk.
func (e *Engine) keyWithin(ctx context.Context, tj *tableJob, k, lo, hi []any) (bool, error) {
	q := &query{e: e}
	q.write("SELECT COUNT(*) FROM ", e.d.QuoteTable(tj.tn), " WHERE ")
	for i, col := range tj.key {
		if i > 0 {
			q.write(" AND ")
		}
		q.write(col, " = ", q.keyArg(tj, i, k[i]))
	}
	if lo != nil {
		q.write(" AND ")
		q.keyCompare(tj, lo, true)
	}
	if hi != nil {
		q.write(" AND ")
		q.keyCompare(tj, hi, false)
	}
	var n int64
	err := retry(ctx, e.log, "compare chunk keys of "+tj.name, func(ctx context.Context) error {
		return e.db.QueryRowContext(ctx, q.b.String(), q.args...).Scan(&n)
	})
	return n > 0, err
}

// sendAll sends the chunks in order.
func sendAll(list []chunk) func(context.Context, chan<- chunk) error {
	return func(ctx context.Context, out chan<- chunk) error {
		for _, ch := range list {
			select {
			case out <- ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
}

// replay sends the recorded chunks of a phase, for work that must see the
// table exactly as that phase partitioned it.
func replay(records map[string]chunkRecord) (func(context.Context, chan<- chunk) error, error) {
	var list []chunk
	for _, r := range records {
		ch := chunk{loEnc: r.Lo, hiEnc: r.Hi}
		var err error
		if r.Lo != "" {
			if ch.lo, err = decodeKey(r.Lo); err != nil {
				return nil, err
			}
		}
		if r.Hi != "" {
			if ch.hi, err = decodeKey(r.Hi); err != nil {
				return nil, err
			}
		}
		list = append(list, ch)
	}
	return sendAll(list), nil
}

// chained reports whether the recorded chunks cover a table from its
// start to its end: from the chunk with no lower bound, each chunk's upper
// bound is the lower bound of another, up to one with no upper bound.
func chained(records map[string]chunkRecord) bool {
	lo := ""
	for range len(records) {
		r, ok := records[lo]
		if !ok {
			return false
		}
		if r.Hi == "" {
			return true
		}
		lo = r.Hi
	}
	return false
}

// rowScanner scans rows of n columns into values that outlive the next
// row, with few allocations: the copy reads every row of the table through
// it. Handed an *any, database/sql copies each []byte value the driver gave
// it, and each row needs its slice of values and of scan targets: on
// PostgreSQL that was about 7 of the copy's 28 allocations per row. Here the
// targets are reused, the rows' value slices are cut from a shared slab,
// and []byte values are copied into shared blocks. A row's values share
// their memory with the rows read around it, so a caller that keeps one
// value long after its chunk should copy it.
type rowScanner struct {
	cells []cell
	ptrs  []any
	slab  rowSlab
	block []byte // room left in the current block of bytes
}

const (
	scanBlockSize = 32 << 10
	// scanOwnBytes is the size from which a value gets an allocation of
	// its own instead of a piece of a block.
	scanOwnBytes = scanBlockSize / 8
)

func newRowScanner(n int) *rowScanner {
	s := &rowScanner{cells: make([]cell, n), ptrs: make([]any, n), slab: rowSlab{width: n}}
	for i := range s.cells {
		s.cells[i].s = s
		s.ptrs[i] = &s.cells[i]
	}
	return s
}

// scan reads the current row of rows.
func (s *rowScanner) scan(rows *sql.Rows) ([]any, error) {
	if err := rows.Scan(s.ptrs...); err != nil {
		return nil, err
	}
	vals := s.slab.next()
	for i := range s.cells {
		vals = append(vals, s.cells[i].v)
		s.cells[i].v = nil
	}
	return vals, nil
}

// rowSlab hands out empty row slices with room for width values, cut from
// one allocation per rows rows (128 when rows is 0) instead of one per row.
// A row that grows past width gets an array of its own, as append gives.
type rowSlab struct {
	width, rows int
	free        []any
}

func (s *rowSlab) next() []any {
	if len(s.free) < s.width {
		n := s.rows
		if n <= 0 {
			n = 128
		}
		s.free = make([]any, s.width*n)
	}
	r := s.free[:0:s.width]
	s.free = s.free[s.width:]
	return r
}

// copyBytes gives a copy of b that stays valid after the next row: nil
// for nil, as bytes.Clone, and empty for empty.
func (s *rowScanner) copyBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	if len(b) == 0 {
		return []byte{}
	}
	if len(b) >= scanOwnBytes {
		return bytes.Clone(b)
	}
	if len(s.block) < len(b) {
		s.block = make([]byte, scanBlockSize)
	}
	c := s.block[:len(b):len(b)]
	copy(c, b)
	s.block = s.block[len(b):]
	return c
}

// cell is one column's scan target (sql.Scanner): it takes the driver's
// value as an *any would, with []byte values copied by copyBytes.
type cell struct {
	s *rowScanner
	v any
}

func (c *cell) Scan(src any) error {
	if b, ok := src.([]byte); ok {
		c.v = c.s.copyBytes(b)
		return nil
	}
	c.v = src
	return nil
}

// describeKey names a row for a message: its key values, at most a few
// bytes each. Keys are logged only at debug level, but verify names the
// rows that differ so the DBA can look at them. The value of a key column
// the job encrypts is the very plaintext it protects (before cut-over) or
// its ciphertext (after): either way a keyed hash stands for it
// (keyFingerprint), as messages end up in logs and in the job's events.
func (t *tableJob) describeKey(vals []any) string {
	var parts []string
	for i, v := range vals {
		name := t.keyCols[i]
		s := fmt.Sprint(v)
		if b, ok := v.([]byte); ok {
			s = fmt.Sprintf("0x%x", b)
		}
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		if t.encrypts(name) {
			s = "(withheld: an encrypted column)"
			if t.fingerprint != nil {
				s = t.fingerprint(v)
			}
		}
		parts = append(parts, name+"="+s)
	}
	return strings.Join(parts, ", ")
}

// encrypts reports whether the job encrypts the table's column name.
func (t *tableJob) encrypts(name string) bool {
	for _, c := range t.cols {
		if strings.EqualFold(c.col.Name, name) {
			return true
		}
	}
	return false
}
