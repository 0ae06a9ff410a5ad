package sqlite

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// The canonical plaintext of a SQLite value (SPEC §2) is one tag byte
// naming its storage class, then the value. SQLite columns are dynamically
// typed: a column declared INTEGER may hold the text '1' next to the
// integer 1, and restoring either as the other would change the data.
const (
	tagInteger = 'i' // + int64, big-endian (8 bytes)
	tagReal    = 'r' // + IEEE 754 float64 bits, big-endian (8 bytes)
	tagText    = 't' // + the UTF-8 bytes
	tagBlob    = 'b' // + the bytes
)

// numberLen is the canonical length of an integer or a real: tag + 8 bytes.
const numberLen = 9

// Codec implements dialect.Dialect. Every declared type has a codec: SQLite
// has affinities, not types, and the codec works on storage classes.
// Generated columns are refused: their values are computed, not stored.
func (Dialect) Codec(col *schema.Column) (dialect.Codec, error) {
	if col == nil {
		return nil, fmt.Errorf("sqlite codec: no column")
	}
	if col.Computed {
		return nil, fmt.Errorf("column %s: generated column of type %q cannot be encrypted: %w",
			col.Name, col.Declared, dialect.ErrUnsupportedType)
	}
	return codec{}, nil
}

type codec struct{}

// SelectExpr reads the value through a unary plus, a no-op in SQLite that
// strips the column's declared type from the result. Without it, the
// driver turns text in a column declared DATE, DATETIME or TIMESTAMP into a
// time.Time, losing the exact text ('2024-01-02 03:04:05' would come back
// reformatted).
func (codec) SelectExpr(quotedCol string) string { return "+" + quotedCol }

// RestoreExpr keeps the bound value as is: the restored column is declared
// with the original type, so SQLite applies the original affinity, and
// applying an affinity to a value that already went through it changes
// nothing.
func (codec) RestoreExpr(expr string) string { return expr }

// FrameBytes implements dialect.FramedCodec: the tag byte.
func (codec) FrameBytes() int64 { return 1 }

// MaxPlainBytes is 0: SQLite does not enforce declared lengths, so a
// VARCHAR(10) may hold a gigabyte.
func (codec) MaxPlainBytes() int64 { return 0 }

// PlainLenExpr mirrors Encode. length() of a blob counts bytes, of text
// characters; the cast makes it count the text's bytes (in the database
// encoding, which is UTF-8 unless the database was created otherwise).
func (codec) PlainLenExpr(c string) string {
	return fmt.Sprintf("CASE typeof(%[1]s) WHEN 'integer' THEN %[2]d WHEN 'real' THEN %[2]d "+
		"WHEN 'text' THEN 1 + length(CAST(%[1]s AS BLOB)) ELSE 1 + length(%[1]s) END", c, numberLen)
}

func (codec) Encode(v any) ([]byte, error) {
	switch x := v.(type) {
	case int64:
		b := make([]byte, numberLen)
		b[0] = tagInteger
		binary.BigEndian.PutUint64(b[1:], uint64(x))
		return b, nil
	case float64:
		b := make([]byte, numberLen)
		b[0] = tagReal
		binary.BigEndian.PutUint64(b[1:], math.Float64bits(x))
		return b, nil
	case string:
		b := make([]byte, 1+len(x))
		b[0] = tagText
		copy(b[1:], x)
		return b, nil
	case []byte:
		b := make([]byte, 1+len(x))
		b[0] = tagBlob
		copy(b[1:], x)
		return b, nil
	case nil:
		return nil, fmt.Errorf("encode sqlite value: NULL is never encoded")
	case time.Time:
		return nil, fmt.Errorf("encode sqlite value: got a time.Time, so the driver converted the stored value; select it with SelectExpr and open the database with Dialect.Open")
	}
	return nil, fmt.Errorf("encode sqlite value: unexpected Go type %T", v)
}

func (codec) Decode(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode sqlite value: empty canonical bytes (no storage-class tag)")
	}
	body := b[1:]
	switch b[0] {
	case tagInteger, tagReal:
		if len(body) != 8 {
			return nil, fmt.Errorf("decode sqlite value: %c needs 8 bytes, got %d", b[0], len(body))
		}
		u := binary.BigEndian.Uint64(body)
		if b[0] == tagInteger {
			return int64(u), nil
		}
		return math.Float64frombits(u), nil
	case tagText:
		return string(body), nil
	case tagBlob:
		// Never nil: the driver binds a nil []byte as NULL, and x'' is not NULL.
		out := make([]byte, len(body))
		copy(out, body)
		return out, nil
	}
	return nil, fmt.Errorf("decode sqlite value: unknown storage-class tag 0x%02x", b[0])
}
