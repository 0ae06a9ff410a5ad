package migrate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// encodeKey turns a row key, as scanned from the database, into text for a
// checkpoint, keeping the Go type so the decoded key binds exactly as the
// scanned one did.
func encodeKey(vals []any) (string, error) {
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case int64:
			parts[i] = "i" + strconv.FormatInt(x, 10)
		case float64:
			parts[i] = "f" + strconv.FormatFloat(x, 'g', -1, 64)
		case string:
			parts[i] = "s" + x
		case []byte:
			parts[i] = "b" + base64.StdEncoding.EncodeToString(x)
		case bool:
			parts[i] = "t" + strconv.FormatBool(x)
		case time.Time:
			parts[i] = "d" + x.Format(time.RFC3339Nano)
		default:
			return "", fmt.Errorf("key value of type %T cannot be checkpointed", v)
		}
	}
	b, err := json.Marshal(parts)
	return string(b), err
}

func decodeKey(s string) ([]any, error) {
	var parts []string
	if err := json.Unmarshal([]byte(s), &parts); err != nil {
		return nil, fmt.Errorf("decode checkpoint key: %w", err)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("decode checkpoint key: empty part")
		}
		body := p[1:]
		var err error
		switch p[0] {
		case 'i':
			out[i], err = strconv.ParseInt(body, 10, 64)
		case 'f':
			out[i], err = strconv.ParseFloat(body, 64)
		case 's':
			out[i] = body
		case 'b':
			out[i], err = base64.StdEncoding.DecodeString(body)
		case 't':
			out[i], err = strconv.ParseBool(body)
		case 'd':
			out[i], err = time.Parse(time.RFC3339Nano, body)
		default:
			err = fmt.Errorf("unknown tag %q", p[0])
		}
		if err != nil {
			return nil, fmt.Errorf("decode checkpoint key: %w", err)
		}
	}
	return out, nil
}

// appendRowKey appends a row's key values, framed for the per-value MACs:
// cheap, unambiguous, and the same for the same scanned values.
func appendRowKey(out []byte, vals []any) []byte {
	var n [8]byte
	for _, v := range vals {
		var b []byte
		switch x := v.(type) {
		case int64:
			binary.BigEndian.PutUint64(n[:], uint64(x))
			b = n[:]
		case string:
			b = []byte(x)
		case []byte:
			b = x
		default:
			b = []byte(fmt.Sprint(x))
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

// digest is an order-independent digest of a set of rows' plaintext: the
// sum modulo 2^256 of each row's HMAC. Order independence lets verify
// recompute it after cut-over however the rows come back, and lets chunk
// digests add up to a table digest.
//
// Everything derived from plaintext that colcrypt stores is keyed: an
// unkeyed hash of an SSN can be reversed by hashing the 10^9 candidates,
// so the job tables would leak what the ciphertexts protect. The key comes
// from a data key in the keystore (digestKeyFor), never from the database.
type digest struct {
	key []byte // the HMAC key; zero digests (sums only) may have none
	sum big.Int
	// row and one are the HMAC states appendRow reuses, made on first use:
	// building two HMACs per row was up to 44% of verify's CPU.
	row, one hash.Hash
	buf      [sha256.Size]byte
	x        big.Int
	rowKey   []byte // the key of the row being added, framed
	n        [8]byte
}

func newDigest(key []byte) *digest { return &digest{key: key} }

var digestModulus = new(big.Int).Lsh(big.NewInt(1), 256)

// digestKeyLabel separates the digest key from every other use of the
// data key it is derived from.
const digestKeyLabel = "colcrypt plaintext digest key v1"

// keyFingerprintLabel separates the hashes that stand for encrypted key
// values in messages from the digests' own.
const keyFingerprintLabel = "colcrypt key fingerprint v1\x00"

// keyFingerprint stands for the value of an encrypted key column in a
// message: a keyed hash under the job's digest key, which tells rows apart
// and gives nothing away to whoever lacks the keystore (an SSN's few
// billion values could be tried against an unkeyed hash).
func (e *Engine) keyFingerprint(v any) string {
	if e.digestKey == nil {
		return "(withheld: an encrypted column)"
	}
	m := hmac.New(sha256.New, e.digestKey)
	m.Write([]byte(keyFingerprintLabel))
	if b, ok := v.([]byte); ok {
		m.Write(b)
	} else {
		fmt.Fprint(m, v)
	}
	return "(withheld: an encrypted column; keyed hash " + hex.EncodeToString(m.Sum(nil)[:6]) + ")"
}

// digestKeyFor derives the digest key from a data key.
func digestKeyFor(dek []byte) []byte {
	m := hmac.New(sha256.New, dek)
	m.Write([]byte(digestKeyLabel))
	return m.Sum(nil)
}

// valueHashLen is how much of each value's own MAC a chunk checkpoint
// keeps, per row and column in key order, so that verify after cut-over can
// name the row and the column that differ. A false match is a 2^-32 event
// per value; the chunk's 256-bit digest still covers every byte.
const valueHashLen = 4

// appendRow adds one row: the plaintext of each planned column, NULL
// distinct from empty. It appends to dst valueHashLen bytes per value, each
// a MAC over the row's key (rowKey, appendRowKey's framing), the column's
// position and the value, so equal values in two rows do not show as equal
// hashes. It allocates nothing once its buffers have grown: it runs for
// every row of every copy and verify.
func (d *digest) appendRow(dst []byte, rowKey []any, values [][]byte) []byte {
	if d.row == nil {
		d.row, d.one = hmac.New(sha256.New, d.key), hmac.New(sha256.New, d.key)
	}
	row, one := d.row, d.one
	row.Reset()
	d.rowKey = appendRowKey(d.rowKey[:0], rowKey)
	for i, v := range values {
		d.frame(row, v)
		one.Reset()
		d.writeLen(one, len(d.rowKey))
		one.Write(d.rowKey)
		d.writeLen(one, i)
		d.frame(one, v)
		dst = append(dst, one.Sum(d.buf[:0])[:valueHashLen]...)
	}
	d.x.SetBytes(row.Sum(d.buf[:0]))
	d.sum.Add(&d.sum, &d.x)
	// Both terms are below 2^256, so one subtraction reduces the sum.
	if d.sum.Cmp(digestModulus) >= 0 {
		d.sum.Sub(&d.sum, digestModulus)
	}
	return dst
}

// frame writes a value as the digests hash it: a NULL marker, or a
// present marker, the length and the bytes.
func (d *digest) frame(w io.Writer, v []byte) {
	if v == nil {
		w.Write(nullMark)
		return
	}
	w.Write(presentMark)
	d.writeLen(w, len(v))
	w.Write(v)
}

func (d *digest) writeLen(w io.Writer, n int) {
	binary.BigEndian.PutUint64(d.n[:], uint64(n))
	w.Write(d.n[:])
}

// nullMark and presentMark start a framed value; package variables, so
// that writing them to a hash does not allocate.
var nullMark, presentMark = []byte{0}, []byte{1}

func (d *digest) add(o *digest) {
	d.sum.Add(&d.sum, &o.sum)
	d.sum.Mod(&d.sum, digestModulus)
}

func (d *digest) String() string {
	b := make([]byte, 32)
	d.sum.FillBytes(b)
	return hex.EncodeToString(b)
}

func parseDigest(s string) (*digest, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("bad digest %q", s)
	}
	var d digest
	d.sum.SetBytes(b)
	return &d, nil
}

// ivGroups reads the foreign keys of the job's tables once and gives the
// group of a column for its column IV (cipher.ColumnIV): the columns
// joined to it by foreign keys, followed
// in both directions and through every key a column takes part in (one
// column referencing two tables, a cycle), named by its least member, so
// that every column of the group derives the same IV and no other column
// does. tables are the job's; a referenced table is in the plan, or the
// planner refused it.
func (e *Engine) ivGroups(tables []*tableJob) func(t *tableJob, col string) string {
	parent := map[string]string{}
	find := func(x string) string {
		for {
			p, ok := parent[x]
			if !ok || p == x {
				return x
			}
			x = p
		}
	}
	// union keeps each group's least member as its root.
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		if rb < ra {
			ra, rb = rb, ra
		}
		parent[rb] = ra
	}
	for _, o := range tables {
		if o.model == nil {
			continue
		}
		for _, fk := range append(append([]*schema.ForeignKey{}, o.model.ForeignKeys...), o.model.ReferencedBy...) {
			from, to := fk.Table, fk.RefTable
			if from.Name == "" {
				from = o.tn
			}
			if to.Name == "" {
				to = o.tn
			}
			for i := range min(len(fk.Columns), len(fk.RefColumns)) {
				union(e.columnID(from, fk.Columns[i]), e.columnID(to, fk.RefColumns[i]))
			}
		}
	}
	return func(t *tableJob, col string) string { return find(e.columnID(t.tn, col)) }
}

// columnID is a column's name as ivGroup compares it: its table's as names
// compare across plans (dialect.TableKey), lower case, since the catalog
// and the plan may spell a name differently.
func (e *Engine) columnID(tn schema.TableName, col string) string {
	return dialect.TableKey(e.d, tn) + "\x00" + strings.ToLower(col)
}
