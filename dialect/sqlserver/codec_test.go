package sqlserver

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

func TestCodecMaxPlainBytes(t *testing.T) {
	for _, tc := range typeCases {
		col := buildColumn(1, tc.row)
		c, err := sqlServer{}.Codec(col)
		if err != nil {
			t.Errorf("%s: %v", tc.ddl, err)
			continue
		}
		if got := c.MaxPlainBytes(); got != tc.maxPlain {
			t.Errorf("%s (declared %s): MaxPlainBytes = %d, want %d", tc.ddl, col.Declared, got, tc.maxPlain)
		}
	}
}

// TestDecimalCastLengths pins the longest CAST(decimal(p,s) AS VARBINARY)
// at every precision boundary.
func TestDecimalCastLengths(t *testing.T) {
	want := map[int]int64{1: 8, 9: 8, 10: 12, 19: 12, 20: 16, 28: 16, 29: 20, 38: 20}
	for p, n := range want {
		c, err := newCodec(buildColumn(1, typeRow("decimal", 0, p, 0, "")))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.MaxPlainBytes(); got != n {
			t.Errorf("decimal(%d): %d bytes, want %d", p, got, n)
		}
	}
	for scale, n := range map[int]int64{0: 7, 1: 7, 2: 7, 3: 8, 4: 8, 5: 9, 6: 9, 7: 9} {
		c, _ := newCodec(buildColumn(1, typeRow("datetime2", 0, 0, scale, "")))
		if got := c.MaxPlainBytes(); got != n {
			t.Errorf("datetime2(%d): %d bytes, want %d", scale, got, n)
		}
		c, _ = newCodec(buildColumn(1, typeRow("time", 0, 0, scale, "")))
		if got := c.MaxPlainBytes(); got != n-3 {
			t.Errorf("time(%d): %d bytes, want %d", scale, got, n-3)
		}
	}
}

func TestCodecUnsupported(t *testing.T) {
	for _, tc := range unsupportedCases {
		col := buildColumn(1, tc.row)
		_, err := sqlServer{}.Codec(col)
		if !errors.Is(err, dialect.ErrUnsupportedType) {
			t.Errorf("%s: err = %v, want ErrUnsupportedType", tc.ddl, err)
			continue
		}
		if !strings.Contains(err.Error(), col.Declared) {
			t.Errorf("%s: error %q does not name the type %s", tc.ddl, err, col.Declared)
		}
	}
}

// TestCodecAliasTypes: an alias type is encoded as its base type, and
// restored through it.
func TestCodecAliasTypes(t *testing.T) {
	col := buildColumn(1, columnRow{Name: "ssn", TypeName: "ssn_t", BaseTypeName: "char", MaxLength: 11, Collation: latin1})
	c, err := sqlServer{}.Codec(col)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.RestoreExpr("@p1"), "CAST(@p1 AS char(11)) COLLATE "+latin1; got != want {
		t.Errorf("RestoreExpr = %s, want %s", got, want)
	}
	if c.MaxPlainBytes() != 11 {
		t.Errorf("MaxPlainBytes = %d", c.MaxPlainBytes())
	}
}

func TestCodecExpressions(t *testing.T) {
	tests := []struct {
		row                      columnRow
		selectExpr, restore, len string
	}{
		{typeRow("varchar", 64, 0, 0, latin1),
			"CAST([c] AS VARBINARY(MAX))", "CAST(@p1 AS varchar(64)) COLLATE " + latin1, "DATALENGTH(CAST([c] AS VARBINARY(MAX)))"},
		{typeRow("nvarchar", -1, 0, 0, unicodeCI),
			"CAST([c] AS VARBINARY(MAX))", "CAST(@p1 AS nvarchar(max)) COLLATE " + unicodeCI, "DATALENGTH(CAST([c] AS VARBINARY(MAX)))"},
		{typeRow("text", 16, 0, 0, latin1),
			"CAST(CAST([c] AS VARCHAR(MAX)) AS VARBINARY(MAX))", "CAST(CAST(@p1 AS VARCHAR(MAX)) COLLATE " + latin1 + " AS TEXT)", "DATALENGTH(CAST(CAST([c] AS VARCHAR(MAX)) AS VARBINARY(MAX)))"},
		{typeRow("ntext", 16, 0, 0, latin1),
			"CAST(CAST([c] AS NVARCHAR(MAX)) AS VARBINARY(MAX))", "CAST(CAST(@p1 AS NVARCHAR(MAX)) COLLATE " + latin1 + " AS NTEXT)", "DATALENGTH(CAST(CAST([c] AS NVARCHAR(MAX)) AS VARBINARY(MAX)))"},
		{typeRow("image", 16, 0, 0, ""),
			"CAST([c] AS VARBINARY(MAX))", "CAST(@p1 AS image)", "DATALENGTH(CAST([c] AS VARBINARY(MAX)))"},
		{typeRow("xml", -1, 0, 0, ""),
			"CAST(CAST([c] AS NVARCHAR(MAX)) AS VARBINARY(MAX))", "CONVERT(XML, CAST(@p1 AS NVARCHAR(MAX)), 1)", "DATALENGTH(CAST(CAST([c] AS NVARCHAR(MAX)) AS VARBINARY(MAX)))"},
		{typeRow("decimal", 9, 10, 2, ""),
			"CAST([c] AS VARBINARY(MAX))", "CAST(@p1 AS decimal(10,2))", "DATALENGTH(CAST([c] AS VARBINARY(MAX)))"},
		{typeRow("datetime2", 8, 27, 7, ""),
			"CAST([c] AS VARBINARY(MAX))", "CAST(@p1 AS datetime2(7))", "DATALENGTH(CAST([c] AS VARBINARY(MAX)))"},
		{typeRow("float", 8, 53, 0, ""),
			"CAST([c] AS VARBINARY(MAX))", "CAST(@p1 AS float(53))", "DATALENGTH(CAST([c] AS VARBINARY(MAX)))"},
	}
	for _, tt := range tests {
		c, err := newCodec(buildColumn(1, tt.row))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SelectExpr("[c]"); got != tt.selectExpr {
			t.Errorf("%s SelectExpr = %s, want %s", c.col.Declared, got, tt.selectExpr)
		}
		if got := c.RestoreExpr("@p1"); got != tt.restore {
			t.Errorf("%s RestoreExpr = %s, want %s", c.col.Declared, got, tt.restore)
		}
		if got := c.PlainLenExpr("[c]"); got != tt.len {
			t.Errorf("%s PlainLenExpr = %s, want %s", c.col.Declared, got, tt.len)
		}
	}
}

func TestCodecEncodeDecode(t *testing.T) {
	c, err := newCodec(buildColumn(1, typeRow("char", 11, 0, 0, latin1)))
	if err != nil {
		t.Fatal(err)
	}
	in := []byte("ab         ") // CHAR's trailing spaces are part of the value
	b, err := c.Encode(in)
	if err != nil || !bytes.Equal(b, in) {
		t.Fatalf("Encode = %q, %v", b, err)
	}
	v, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := v.([]byte); !ok || !bytes.Equal(out, in) {
		t.Errorf("Decode = %#v, want the same bytes", v)
	}
	empty, err := c.Encode([]byte{})
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("an empty value must stay empty, not NULL: %#v, %v", empty, err)
	}
	if _, err := c.Encode("ab"); err == nil {
		t.Error("Encode accepted a string: the select expression always yields []byte")
	}
}

func TestCodecRejectsOddCollation(t *testing.T) {
	_, err := newCodec(&schema.Column{Name: "c", Type: "varchar", Declared: "varchar(5)", Length: 5, Collation: "x; DROP TABLE t"})
	if err == nil {
		t.Error("a collation name that is not an identifier must be refused, it is written into SQL unquoted")
	}
}
