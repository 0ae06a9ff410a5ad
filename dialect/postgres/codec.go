package postgres

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// The canonical plaintext (SPEC §2) of a bytea value is its bytes. Of every
// other supported type it is the UTF-8 text of `col::text` in a session
// pinned by Open (sessionSettings): PostgreSQL's text output of these types
// is exact, so CAST(text AS <declared type>) stores the very same value.
// One subtlety: char(n)::text drops the trailing pad spaces, and the cast
// back to char(n) pads again, which is the same stored value.

// typeAliases maps SQL-standard spellings to the pg_type names ReadTable
// puts in Column.Type, so a hand-built column works too.
var typeAliases = map[string]string{
	"boolean":                     "bool",
	"smallint":                    "int2",
	"integer":                     "int4",
	"int":                         "int4",
	"bigint":                      "int8",
	"decimal":                     "numeric",
	"double precision":            "float8",
	"real":                        "float4",
	"character varying":           "varchar",
	"character":                   "bpchar",
	"time without time zone":      "time",
	"time with time zone":         "timetz",
	"timestamp without time zone": "timestamp",
	"timestamp with time zone":    "timestamptz",
}

// maxTextBytes are the longest `::text` renderings of the fixed-size
// supported types under the pinned session settings. The extremes that
// reach them are in codec_test.go, which checks each against the server.
var maxTextBytes = map[string]int64{
	"bool": 5,  // "false": the bool -> text cast spells the word out
	"int2": 6,  // -32768
	"int4": 11, // -2147483648
	"int8": 20, // -9223372036854775808
	// -2.2250738585072014e-308: sign, 17 significant digits, point, e-308
	"float8": 24,
	"date":   13, // 5874897-12-31, 4714-11-24 BC
	"time":   15, // 23:59:59.999999
	// 23:59:59.999999-15:59:59: offsets may carry seconds
	"timetz": 24,
	// 4714-11-24 23:59:59.999999 BC is 29 bytes; 32 leaves room.
	"timestamp": 32,
	// 4714-11-24 23:59:59.999999+00 BC is 32 bytes with TimeZone=UTC. In
	// a zone with local-mean-time offsets such as +05:53:28 the same value
	// takes 38, one more reason the session is pinned to UTC.
	"timestamptz": 35,
	"uuid":        36,
}

// unboundedTypes are supported types whose values have no declared bound.
var unboundedTypes = map[string]bool{
	"text": true, "bytea": true, "json": true, "jsonb": true, "xml": true,
}

// utf8MaxBytes is the most bytes one character takes in UTF-8.
const utf8MaxBytes = 4

// Codec implements dialect.Dialect.
func (Dialect) Codec(col *schema.Column) (dialect.Codec, error) {
	typ := strings.ToLower(col.Type)
	if a, ok := typeAliases[typ]; ok {
		typ = a
	}
	declared := col.Declared
	if declared == "" {
		declared = col.Type
	}
	c := &codec{declared: declared}
	switch {
	case typ == "bytea":
		c.binary = true
	case unboundedTypes[typ]:
	case typ == "varchar" || typ == "bpchar":
		if col.Length > 0 {
			c.maxPlain = utf8MaxBytes * int64(col.Length)
		}
	case typ == "numeric":
		if col.Precision > 0 {
			c.maxPlain = numericMaxBytes(col.Precision, col.Scale)
		}
	case maxTextBytes[typ] > 0:
		c.maxPlain = maxTextBytes[typ]
	default:
		return nil, fmt.Errorf("column %s: %w %s%s", col.Name, dialect.ErrUnsupportedType, declared, unsupportedHint(typ))
	}
	return c, nil
}

// unsupportedHint says why a type that looks supportable is not.
func unsupportedHint(typ string) string {
	switch typ {
	case "float4":
		return " (single precision is not supported, as SQL Server's REAL is not)"
	case "money":
		return " (its text form depends on lc_monetary)"
	}
	return ""
}

// numericMaxBytes is the longest text of a numeric(p,s) value: a minus
// sign, the digits, a point when s > 0, and a leading 0 when s >= p
// (numeric(2,5) holds -0.00099; numeric(3,-2) holds -99900). NaN (3 bytes)
// fits every precision; infinities are refused by constrained numerics.
func numericMaxBytes(p, s int) int64 {
	var n int
	switch {
	case s <= 0:
		n = 1 + p - s
	case s < p:
		n = 1 + p + 1
	default:
		n = 1 + 1 + 1 + s
	}
	return int64(max(n, len("NaN")))
}

type codec struct {
	declared string
	binary   bool
	maxPlain int64
}

func (c *codec) SelectExpr(quotedCol string) string {
	if c.binary {
		return quotedCol
	}
	return "(" + quotedCol + ")::text"
}

func (c *codec) Encode(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	}
	return nil, fmt.Errorf("encode %s value: unexpected %T", c.declared, v)
}

func (c *codec) Decode(b []byte) (any, error) {
	if c.binary {
		return b, nil
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("decode %s value: plaintext is not UTF-8 text", c.declared)
	}
	return string(b), nil
}

func (c *codec) RestoreExpr(expr string) string {
	if c.binary {
		return expr
	}
	return "CAST((" + expr + ") AS " + c.declared + ")"
}

func (c *codec) MaxPlainBytes() int64 { return c.maxPlain }

func (c *codec) PlainLenExpr(quotedCol string) string {
	if c.binary {
		return "octet_length(" + quotedCol + ")"
	}
	return "octet_length((" + quotedCol + ")::text)"
}
