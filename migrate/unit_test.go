package migrate

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/schema"
)

func TestKeyEncodingRoundTrip(t *testing.T) {
	when := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC)
	keys := [][]any{
		{int64(math.MinInt64)}, {int64(math.MaxInt64)}, {"O'Brien \"x\" 日本"}, {""},
		{[]byte{0, 255, 1}}, {[]byte{}}, {true}, {1.5}, {when}, {int64(7), "a", []byte("z")},
	}
	for _, k := range keys {
		enc, err := encodeKey(k)
		if err != nil {
			t.Fatalf("encode %v: %v", k, err)
		}
		got, err := decodeKey(enc)
		if err != nil {
			t.Fatalf("decode %q: %v", enc, err)
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", k) {
			t.Errorf("round trip of %#v gave %#v", k, got)
		}
	}
	if _, err := encodeKey([]any{struct{}{}}); err == nil {
		t.Error("a key of an unknown Go type must not be checkpointed silently")
	}
	if _, err := decodeKey(`["x1"]`); err == nil {
		t.Error("an unknown tag must be an error")
	}
}

func TestDigestIsOrderIndependentAndSensitive(t *testing.T) {
	rows := [][][]byte{{[]byte("a"), nil}, {[]byte(""), []byte("b")}, {nil, nil}, {[]byte("ab"), []byte("")}}
	key := []byte("test digest key")
	fwd, rev := newDigest(key), newDigest(key)
	for i := range rows {
		fwd.appendRow(nil, nil, rows[i])
		rev.appendRow(nil, nil, rows[len(rows)-1-i])
	}
	if fwd.String() != rev.String() {
		t.Fatal("digest depends on row order")
	}
	// Split into two chunks and add the chunk digests: same total.
	c1, c2 := newDigest(key), newDigest(key)
	var total digest
	c1.appendRow(nil, nil, rows[0])
	c1.appendRow(nil, nil, rows[1])
	c2.appendRow(nil, nil, rows[2])
	c2.appendRow(nil, nil, rows[3])
	total.add(c1)
	total.add(c2)
	if total.String() != fwd.String() {
		t.Fatal("chunk digests do not add up to the table digest")
	}
	// NULL and empty differ, and so does moving bytes between columns.
	for _, other := range [][][]byte{{[]byte(""), nil}, {[]byte("a"), []byte("")}, {nil, []byte("a")}} {
		a, b := newDigest(key), newDigest(key)
		a.appendRow(nil, nil, rows[0])
		b.appendRow(nil, nil, other)
		if a.String() == b.String() {
			t.Errorf("rows %q and %q have the same digest", rows[0], other)
		}
	}
	// Another key gives another digest: nothing stored can be recomputed
	// from plaintext guesses without the keystore.
	other := newDigest([]byte("another key"))
	for _, r := range rows {
		other.appendRow(nil, nil, r)
	}
	if other.String() == fwd.String() {
		t.Fatal("the digest does not depend on its key")
	}
	// Equal values in different rows have different per-value MACs.
	if h1, h2 := fwd.appendRow(nil, []any{"row 1"}, [][]byte{[]byte("123-45-6789")}), fwd.appendRow(nil, []any{"row 2"}, [][]byte{[]byte("123-45-6789")}); string(h1) == string(h2) {
		t.Fatal("equal values in two rows show equal hashes")
	}
	back, err := parseDigest(fwd.String())
	if err != nil || back.String() != fwd.String() {
		t.Fatalf("parseDigest round trip: %v", err)
	}
}

func TestKeyCompareSQL(t *testing.T) {
	e := &Engine{m: fakeMover{}}
	cases := []struct {
		key   []string
		after bool
		want  string
	}{
		{[]string{"id"}, true, "((id > $1))"},
		{[]string{"id"}, false, "((id <= $1))"},
		{[]string{"a", "b"}, true, "((a > $1) OR (a = $2 AND b > $3))"},
		{[]string{"a", "b", "c"}, false, "((a < $1) OR (a = $2 AND b < $3) OR (a = $4 AND b = $5 AND c <= $6))"},
	}
	for _, c := range cases {
		q := &query{e: e}
		vals := make([]any, len(c.key))
		q.keyCompare(&tableJob{key: c.key}, vals, c.after)
		if got := q.b.String(); got != c.want {
			t.Errorf("keyCompare(%v, after=%v) = %s, want %s", c.key, c.after, got, c.want)
		}
	}
}

// keyBinder casts a key of declared type "numeric" bound as text, as
// dialect.KeyBinder lets SQL Server do.
type keyBinder struct{ fakeMover }

func (keyBinder) KeyArg(col *schema.Column, v any, ph string) (string, any) {
	if b, ok := v.([]byte); ok && col != nil && col.Declared == "numeric" {
		return "CAST(" + ph + " AS numeric)", string(b)
	}
	return ph, v
}

// TestKeyCompareBindsThroughTheDialect: every key value of a keyset
// condition goes through the mover's KeyBinder with its own column, and
// the placeholders stay numbered in order.
func TestKeyCompareBindsThroughTheDialect(t *testing.T) {
	e := &Engine{m: keyBinder{}}
	tj := &tableJob{key: []string{"a", "b"}, keyCols: []string{"a", "b"},
		model: &schema.Table{Columns: []*schema.Column{{Name: "a", Declared: "text"}, {Name: "b", Declared: "numeric"}}}}
	q := &query{e: e}
	q.keyCompare(tj, []any{"x", []byte("12.5")}, true)
	if want := "((a > $1) OR (a = $2 AND b > CAST($3 AS numeric)))"; q.b.String() != want {
		t.Errorf("keyCompare = %s, want %s", q.b.String(), want)
	}
	if want := []any{"x", "x", "12.5"}; !reflect.DeepEqual(q.args, want) {
		t.Errorf("bound %#v, want %#v", q.args, want)
	}
	// A row id (no column in the model) is bound as it is.
	q = &query{e: e}
	q.keyCompare(&tableJob{key: []string{"rowid"}, keyCols: []string{"rowid"}, model: tj.model}, []any{[]byte("7")}, false)
	if want := "((rowid <= $1))"; q.b.String() != want || !reflect.DeepEqual(q.args, []any{[]byte("7")}) {
		t.Errorf("row id: keyCompare = %s bound to %#v", q.b.String(), q.args)
	}
}

func TestRetryClassifiesAndBacksOff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	transient := []error{
		errors.New("ERROR: canceling statement due to lock timeout (SQLSTATE 55P03)"),
		errors.New("ERROR: could not serialize access (SQLSTATE 40001)"),
		errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)"),
		errors.New("database is locked (5) (SQLITE_BUSY)"),
		fmt.Errorf("write chunk: %w", io.ErrUnexpectedEOF),
		errors.New("mssql: Transaction (Process ID 52) was deadlocked on lock resources"),
	}
	for _, err := range transient {
		if !isTransient(err) {
			t.Errorf("%q should be retried", err)
		}
	}
	fatal := []error{errors.New(`ERROR: column "x" does not exist (SQLSTATE 42703)`), context.Canceled, errors.New("cipher: message authentication failed"),
		errors.New("ERROR: no data left in message (SQLSTATE 08P01)")}
	for _, err := range fatal {
		if isTransient(err) {
			t.Errorf("%q must not be retried", err)
		}
	}
	// An outage is waited out past the attempts; a lock, a conflict or a
	// killed session is not.
	outage := []error{
		fmt.Errorf("read chunk: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
		errors.New("failed to connect to `user=postgres database=crash`: dial error: dial tcp 127.0.0.1:5432: connect: connection refused"),
		errors.New("FATAL: the database system is in recovery mode (SQLSTATE 57P03)"),
	}
	for _, err := range outage {
		if !isTransient(err) || !isOutage(err) {
			t.Errorf("%q should be waited out as an outage", err)
		}
	}
	for _, err := range transient {
		if isOutage(err) {
			t.Errorf("%q is not an outage", err)
		}
	}
	// A connect that timed out (connect_timeout in the DSN) is retried
	// while the job's own context lives, and not once it ended.
	timeouts := 0
	err := retry(context.Background(), log, "test", func(context.Context) error {
		if timeouts++; timeouts < 3 {
			return fmt.Errorf("failed to connect: timeout: %w", context.DeadlineExceeded)
		}
		return nil
	})
	if err != nil || timeouts != 3 {
		t.Fatalf("retry after connect timeouts: err=%v calls=%d, want success on the third call", err, timeouts)
	}
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelExpired()
	timeouts = 0
	err = retry(expired, log, "test", func(ctx context.Context) error { timeouts++; return ctx.Err() })
	if timeouts != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the job's own deadline was retried (%d calls) or lost: %v", timeouts, err)
	}
	calls := 0
	err = retry(context.Background(), log, "test", func(context.Context) error {
		calls++
		if calls < 3 {
			return transient[0]
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("retry: err=%v calls=%d, want success on the third call", err, calls)
	}
	calls = 0
	err = retry(context.Background(), log, "test", func(context.Context) error { calls++; return fatal[0] })
	if calls != 1 || !errors.Is(err, fatal[0]) {
		t.Fatalf("a fatal error was retried (%d calls) or lost: %v", calls, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retry(ctx, log, "test", func(context.Context) error { return transient[0] }); !errors.Is(err, context.Canceled) {
		t.Fatalf("retry ignored a cancelled context: %v", err)
	}
}

func TestPhaseIndexNeverRanksDoneBeforeCutover(t *testing.T) {
	if phaseIndex(encryptPhases, phaseDone) <= phaseIndex(encryptPhases, phaseCutover) {
		t.Fatal("a finished job ranks before cut-over: revert would take the before-cut-over path and drop IV columns")
	}
	if phaseIndex(encryptPhases, "") >= phaseIndex(encryptPhases, phasePrepared) {
		t.Fatal("a new job ranks at or after prepare")
	}
	if phaseIndex(encryptPhases, "garbage") <= phaseIndex(encryptPhases, phaseCutover) {
		t.Fatal("an unknown recorded phase must rank as done, never as before cut-over")
	}
}

func TestGroupTablesFollowsForeignKeys(t *testing.T) {
	mk := func(name string, fks ...string) *tableJob {
		m := &schema.Table{Name: schema.TableName{Name: name}}
		for _, ref := range fks {
			m.ForeignKeys = append(m.ForeignKeys, &schema.ForeignKey{Table: m.Name, RefTable: schema.TableName{Name: ref}})
		}
		return &tableJob{name: name, model: m}
	}
	groups := groupTables([]*tableJob{mk("customers"), mk("audit"), mk("orders", "customers"), mk("items", "orders"), mk("misc", "elsewhere")})
	var got []string
	for _, g := range groups {
		got = append(got, groupNames(g))
	}
	want := []string{"customers, orders, items", "audit", "misc"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("groups = %q, want %q", got, want)
	}
}

type fakeMover struct{ dialectMoverStub }

func (fakeMover) Placeholder(n int) string { return fmt.Sprintf("$%d", n) }

// TestDigestMatchesItsDefinition recomputes a chunk digest and its per-value
// MACs from the definition, with fresh HMACs and a modulo, and checks the
// reusing implementation gives the same bytes across many rows.
func TestDigestMatchesItsDefinition(t *testing.T) {
	key := []byte("digest definition key")
	frame := func(v []byte) []byte {
		if v == nil {
			return []byte{0}
		}
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		return append(append([]byte{1}, n[:]...), v...)
	}
	want := new(big.Int)
	mod := new(big.Int).Lsh(big.NewInt(1), 256)
	d := newDigest(key)
	for r := 0; r < 300; r++ {
		// A key of two columns, framed as appendRowKey must: each value's
		// 4-byte length, then its bytes (an int64 in 8 big-endian bytes).
		keyVals := []any{int64(r), fmt.Sprint("row", r)}
		rowKey := binary.BigEndian.AppendUint32(nil, 8)
		rowKey = binary.BigEndian.AppendUint64(rowKey, uint64(r))
		rowKey = binary.BigEndian.AppendUint32(rowKey, uint32(len(keyVals[1].(string))))
		rowKey = append(rowKey, keyVals[1].(string)...)
		values := [][]byte{[]byte(fmt.Sprint(r * 7)), nil, {}, bytes.Repeat([]byte{byte(r)}, r%40)}
		prefix := []byte("hashes of earlier rows")
		got := d.appendRow(prefix, keyVals, values)
		if !bytes.HasPrefix(got, []byte("hashes of earlier rows")) {
			t.Fatalf("row %d: appendRow lost what dst held", r)
		}
		got = got[len(prefix):]
		row := hmac.New(sha256.New, key)
		for i, v := range values {
			row.Write(frame(v))
			one := hmac.New(sha256.New, key)
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(rowKey)))
			one.Write(n[:])
			one.Write(rowKey)
			binary.BigEndian.PutUint64(n[:], uint64(i))
			one.Write(n[:])
			one.Write(frame(v))
			if !bytes.Equal(got[i*valueHashLen:(i+1)*valueHashLen], one.Sum(nil)[:valueHashLen]) {
				t.Fatalf("row %d value %d: MAC differs from its definition", r, i)
			}
		}
		want.Add(want, new(big.Int).SetBytes(row.Sum(nil)))
		want.Mod(want, mod)
	}
	b := make([]byte, 32)
	want.FillBytes(b)
	if d.String() != hex.EncodeToString(b) {
		t.Fatal("the chunk digest differs from the sum of row MACs modulo 2^256")
	}
}

// TestProgressGrowsPastItsEstimate: a phase that starts from the catalog's
// estimate and walks more rows than it said reports the rows walked as
// its total, never more rows done than in total, and keeps what it walked
// as the table's count for the next phases.
func TestProgressGrowsPastItsEstimate(t *testing.T) {
	e := &Engine{log: slog.New(slog.DiscardHandler)}
	p := e.newProgress(t.Context(), "copy t", 100, nil)
	p.add(60)
	if done, total := p.done.Load(), p.total.Load(); done != 60 || total != 100 {
		t.Errorf("after 60 rows of an estimated 100: %d of %d, want 60 of 100", done, total)
	}
	p.add(90)
	if done, total := p.done.Load(), p.total.Load(); done != 150 || total != 150 {
		t.Errorf("after 150 rows of an estimated 100: %d of %d, want 150 of 150", done, total)
	}
	p.finish()
	tj := &tableJob{}
	if n := walkedRows(tj, 100, true, p); n != 150 || tj.rows != 150 {
		t.Errorf("walked rows from an estimate: %d (table's count %d), want 150", n, tj.rows)
	}
	if n := walkedRows(&tableJob{}, 100, false, p); n != 100 {
		t.Errorf("walked rows from an exact count: %d, want the count, 100", n)
	}
}

// walkSizes gives the chunk sizes a walk of rows rows takes when the
// sizer asks for size rows each and the progress expects expected rows.
func walkSizes(rows, expected, size int64, workers, batchRows int) []int64 {
	var out []int64
	for passed := int64(0); passed < rows; {
		n := min(tailRows(size, expected-passed, workers, batchRows), rows-passed)
		out = append(out, n)
		passed += n
	}
	return out
}

// TestTailRowsEndsTheWalkInSmallChunks: near the end of the table the
// chunks shrink, so no worker is left writing a large last chunk while the
// others wait; a wrong estimate costs chunk sizes, never rows.
func TestTailRowsEndsTheWalkInSmallChunks(t *testing.T) {
	const workers, batch, size = 2, 5000, 20000
	floor := int64(batch / tailFloorDivisor)
	exact := walkSizes(1_000_000, 1_000_000, size, workers, batch)
	left := int64(1_000_000)
	for i, n := range exact {
		if limit := max(left/workers, floor); n > limit {
			t.Errorf("chunk %d holds %d rows with %d left; want at most %d", i, n, left, limit)
		}
		left -= n
	}
	if last := exact[len(exact)-1]; last > floor {
		t.Errorf("the last chunk holds %d rows; want at most %d (batch_rows/%d)", last, floor, tailFloorDivisor)
	}
	if len(exact) > 1_000_000/size+12 {
		t.Errorf("%d chunks for 1M rows of %d; the tail should add only a few", len(exact), size)
	}
	if exact[0] != size {
		t.Errorf("the first chunk holds %d rows; far from the end the sizer decides (%d)", exact[0], size)
	}

	// An estimate below the table's rows: once passed, the sizer decides
	// again; above them: the chunks never shrink below the sizer's size.
	low := walkSizes(1_000_000, 500_000, size, workers, batch)
	if got := low[len(low)-2]; got != size {
		t.Errorf("past a low estimate a chunk holds %d rows; want the sizer's %d", got, size)
	}
	for i, n := range walkSizes(1_000_000, 2_000_000, size, workers, batch) {
		if n != size {
			t.Errorf("with a high estimate chunk %d holds %d rows; want %d", i, n, size)
		}
	}
	// A sizer that shrank below the floor keeps its size.
	if got := tailRows(300, 1000, workers, batch); got != 300 {
		t.Errorf("tailRows(300, …) = %d; want 300", got)
	}
}

// TestByteBoundAsksForWhatChunkBytesHolds: once the walker knows a row's
// size, it asks for the rows ChunkBytes holds and no more, never for none.
func TestByteBoundAsksForWhatChunkBytesHolds(t *testing.T) {
	for _, tc := range []struct {
		size, chunkBytes, rowBytes, want int64
	}{
		{20_000, 2 << 20, 0, 20_000},    // nothing read yet: the sizer's size
		{20_000, 2 << 20, 300, 6_990},   // SPEC §8's whole rows
		{5_000, 2 << 20, 60, 5_000},     // narrow rows: the sizer's size stands
		{20_000, 2 << 20, 100 << 20, 1}, // a row over the bound: one at a time
		{20_000, 10_000, 1_040, 9},      // TestChunksEndAtChunkBytes's rows
	} {
		if got := byteBound(tc.size, tc.chunkBytes, tc.rowBytes); got != tc.want {
			t.Errorf("byteBound(%d, %d, %d) = %d, want %d", tc.size, tc.chunkBytes, tc.rowBytes, got, tc.want)
		}
	}
}
