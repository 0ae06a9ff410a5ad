package sqlserver

import (
	"fmt"
	"regexp"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// The canonical plaintext of every supported type is the value's bytes as
// CAST(col AS VARBINARY(MAX)) returns them, and CAST(bytes AS <type>) gives
// the value back: character data in the column's code page (or UTF-16LE for
// the n-types) with CHAR's trailing spaces, numbers and dates in SQL
// Server's own binary layout with their precision and scale. Nothing is
// parsed or formatted in Go, so nothing can be lost in between. "binary
// and varbinary (Transact-SQL)" guarantees the round trip (a type to
// binary and back) only when both conversions run on the same version of
// SQL Server: "The binary representation of a value might change from
// version to version". Character and binary types are their own bytes
// whatever the version; the layouts of numbers, money and dates are the
// server's, so a revert or verify should run on the major version that
// encrypted (see the package's known limits).
//
// The lengths below are the longest such casts, which are not always the
// storage sizes ("datetime2 (Transact-SQL)": "When a datetime2 value is
// cast to a varbinary value, an additional byte is added to the varbinary
// value to store precision"):
//
//   - decimal(p,s)/numeric(p,s): precision, scale, a reserved byte, a sign
//     byte (1 positive, 0 negative), then the magnitude as a little-endian
//     integer of at most 4, 8, 12 or 16 bytes for p in 1-9, 10-19, 20-28,
//     29-38 ("decimal and numeric (Transact-SQL)": 5, 9, 13 and 17 storage
//     bytes, sign byte included). Microsoft does not document this layout;
//     it is the one published casts show, e.g. decimal(19,6) 1 as
//     0x1306000140420F00, where zero high-order 4-byte words are left out.
//     The longest casts are 8, 12, 16 or 20 bytes.
//   - time(n): the precision byte, then 3, 4 or 5 bytes for n in 0-2, 3-4,
//     5-7 ("time (Transact-SQL)", column lengths): 4, 5 or 6 bytes. The
//     precision byte is documented for datetime2, whose time part this is.
//   - datetime2(n): the precision byte, time(n), then a 3-byte date
//     ("datetime2 (Transact-SQL)"; MS-TDS, date and time types): 7, 8 or
//     9 bytes.
var fixedPlainBytes = map[string]int64{
	"bigint":        8,
	"int":           4,
	"smallint":      2,
	"tinyint":       1,
	"bit":           1,
	"money":         8,
	"smallmoney":    4,
	"float":         8, // float(25..53); float(1..24) is stored as real
	"date":          3,
	"datetime":      8,
	"smalldatetime": 4,
}

// supportedTypes is SPEC §2's list for SQL Server, by sys.types name.
// VARBINARY is supported only as VARBINARY(MAX), as the list says.
var supportedTypes = map[string]bool{
	"bigint": true, "bit": true, "char": true, "date": true, "datetime": true,
	"datetime2": true, "decimal": true, "float": true, "image": true, "int": true,
	"money": true, "nchar": true, "ntext": true, "numeric": true, "nvarchar": true,
	"smalldatetime": true, "smallint": true, "smallmoney": true, "text": true,
	"time": true, "tinyint": true, "varbinary": true, "varchar": true, "xml": true,
}

// collationName matches every SQL Server collation name (letters, digits,
// underscores), which is what lets RestoreExpr write it unquoted.
var collationName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// Codec gives the canonical encoding of col's type, or an error wrapping
// dialect.ErrUnsupportedType that names the type.
func (sqlServer) Codec(col *schema.Column) (dialect.Codec, error) {
	return newCodec(col)
}

func newCodec(col *schema.Column) (*codec, error) {
	unsupported := func(why string) error {
		return fmt.Errorf("column %s: %s%s: %w", col.Name, col.Declared, why, dialect.ErrUnsupportedType)
	}
	if !supportedTypes[col.Type] {
		if col.Type == "real" {
			return nil, unsupported(" (REAL and FLOAT(n≤24) are stored as 4-byte real)")
		}
		return nil, unsupported("")
	}
	if col.Type == "varbinary" && col.Length != -1 {
		return nil, unsupported(" (only VARBINARY(MAX) is supported)")
	}
	if col.Declared == "" {
		return nil, fmt.Errorf("column %s: no declared type", col.Name)
	}
	if col.Collation != "" && !collationName.MatchString(col.Collation) {
		return nil, fmt.Errorf("column %s: unexpected collation name %q", col.Name, col.Collation)
	}
	return &codec{col: *col}, nil
}

// codec implements dialect.Codec for one column of a supported type.
type codec struct {
	col schema.Column
}

// SelectExpr casts to VARBINARY(MAX). The deprecated LOB types have no
// direct cast, so they go through their MAX counterparts first; xml has no
// byte form of its own and goes through its nvarchar text (UTF-16LE).
func (c *codec) SelectExpr(quotedCol string) string {
	switch c.col.Type {
	case "text":
		return "CAST(CAST(" + quotedCol + " AS VARCHAR(MAX)) AS VARBINARY(MAX))"
	case "ntext", "xml":
		return "CAST(CAST(" + quotedCol + " AS NVARCHAR(MAX)) AS VARBINARY(MAX))"
	default:
		return "CAST(" + quotedCol + " AS VARBINARY(MAX))"
	}
}

// Encode passes the driver's []byte through: the bytes already are the
// canonical encoding.
func (c *codec) Encode(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("column %s: expected []byte from %s, got %T", c.col.Name, c.SelectExpr(quoteIdent(c.col.Name)), v)
	}
	return b, nil
}

// Decode binds the bytes as VARBINARY; RestoreExpr turns them back.
func (c *codec) Decode(b []byte) (any, error) { return b, nil }

// RestoreExpr casts the bytes back to the declared type. Character types
// get the column's collation, so the value compares and assigns as the
// column's own values do. The n-types are UTF-16LE under every collation,
// so their bytes always come back exactly. A binary-to-varchar cast labels
// the bytes with the database's default collation without converting them;
// COLLATE then converts between code pages if the column's code page
// differs from the database default's. So char, varchar and text round-trip
// byte for byte when the column's code page is the database default's (the
// usual case); for the other columns see the package's known limits.
func (c *codec) RestoreExpr(expr string) string {
	collate := ""
	if c.col.Collation != "" {
		collate = " COLLATE " + c.col.Collation
	}
	switch c.col.Type {
	case "char", "varchar", "nchar", "nvarchar":
		return "CAST(" + expr + " AS " + c.col.Declared + ")" + collate
	case "text":
		return "CAST(CAST(" + expr + " AS VARCHAR(MAX))" + collate + " AS TEXT)"
	case "ntext":
		return "CAST(CAST(" + expr + " AS NVARCHAR(MAX))" + collate + " AS NTEXT)"
	case "xml":
		// Style 1 keeps insignificant white space: the text came from the
		// stored value, which kept it only if it was stored that way, and
		// style 0 (CAST) would drop it.
		return "CONVERT(XML, CAST(" + expr + " AS NVARCHAR(MAX)), 1)"
	default:
		return "CAST(" + expr + " AS " + c.col.Declared + ")"
	}
}

// MaxPlainBytes is the longest cast a value of the declared type can give;
// 0 for the unbounded types.
func (c *codec) MaxPlainBytes() int64 {
	col := c.col
	if n, ok := fixedPlainBytes[col.Type]; ok {
		return n
	}
	switch col.Type {
	case "char", "varchar", "binary", "varbinary":
		if col.Length > 0 {
			return int64(col.Length)
		}
		return 0
	case "nchar", "nvarchar":
		if col.Length > 0 {
			return 2 * int64(col.Length)
		}
		return 0
	case "decimal", "numeric":
		return decimalCastBytes(col.Precision)
	case "time":
		return 1 + timeBytes(col.Scale)
	case "datetime2":
		return 1 + timeBytes(col.Scale) + 3
	default: // text, ntext, image, xml
		return 0
	}
}

// PlainLenExpr measures the canonical encoding in the database.
func (c *codec) PlainLenExpr(quotedCol string) string {
	return "DATALENGTH(" + c.SelectExpr(quotedCol) + ")"
}

// decimalCastBytes is the longest CAST(decimal(p,s) AS VARBINARY): four
// header bytes (precision, scale, reserved, sign) and the magnitude.
func decimalCastBytes(precision int) int64 {
	switch {
	case precision <= 9:
		return 4 + 4
	case precision <= 19:
		return 4 + 8
	case precision <= 28:
		return 4 + 12
	default:
		return 4 + 16
	}
}

// timeBytes is the storage of time(n), also the time part of datetime2(n).
func timeBytes(scale int) int64 {
	switch {
	case scale <= 2:
		return 3
	case scale <= 4:
		return 4
	default:
		return 5
	}
}
