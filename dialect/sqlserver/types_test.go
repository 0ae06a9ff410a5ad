package sqlserver

// typeCase is one supported declared type: the catalog row SQL Server
// returns for a column of it, the longest CAST(... AS VARBINARY) of a value,
// and T-SQL literals that exercise its edge cases (trailing spaces,
// collation-sensitive and non-ASCII characters, precision limits, the
// smallest and largest values).
type typeCase struct {
	ddl      string // as written in CREATE TABLE
	row      columnRow
	maxPlain int64
	literals []string
}

func typeRow(typ string, maxLength, precision, scale int, collation string) columnRow {
	return columnRow{Name: "v", TypeName: typ, BaseTypeName: typ, MaxLength: maxLength,
		Precision: precision, Scale: scale, Collation: collation, Nullable: true}
}

const unicodeCI = "Latin1_General_100_CI_AS_SC"

var typeCases = []typeCase{
	{"bigint", typeRow("bigint", 8, 19, 0, ""), 8, []string{"0", "-9223372036854775808", "9223372036854775807"}},
	{"int", typeRow("int", 4, 10, 0, ""), 4, []string{"0", "-2147483648", "2147483647"}},
	{"smallint", typeRow("smallint", 2, 5, 0, ""), 2, []string{"-32768", "32767"}},
	{"tinyint", typeRow("tinyint", 1, 3, 0, ""), 1, []string{"0", "255"}},
	{"bit", typeRow("bit", 1, 1, 0, ""), 1, []string{"0", "1"}},
	{"money", typeRow("money", 8, 19, 4, ""), 8, []string{"-922337203685477.5808", "922337203685477.5807", "0.0001"}},
	{"smallmoney", typeRow("smallmoney", 4, 10, 4, ""), 4, []string{"-214748.3648", "214748.3647"}},
	{"float", typeRow("float", 8, 53, 0, ""), 8, []string{"0", "-1.79E+308", "2.2250738585072014E-308", "0.1"}},
	{"decimal(10,2)", typeRow("decimal", 9, 10, 2, ""), 12, []string{"0", "-99999999.99", "12345678.90", "0.01"}},
	{"numeric(5,0)", typeRow("numeric", 5, 5, 0, ""), 8, []string{"-99999", "99999"}},
	{"decimal(19,4)", typeRow("decimal", 9, 19, 4, ""), 12, []string{"-999999999999999.9999", "1"}},
	{"decimal(28,10)", typeRow("decimal", 13, 28, 10, ""), 16, []string{"-999999999999999999.9999999999"}},
	{"numeric(38,6)", typeRow("numeric", 17, 38, 6, ""), 20, []string{"-99999999999999999999999999999999.999999", "0.000001"}},
	{"date", typeRow("date", 3, 10, 0, ""), 3, []string{"'0001-01-01'", "'9999-12-31'"}},
	{"datetime", typeRow("datetime", 8, 23, 3, ""), 8, []string{"'1753-01-01T00:00:00'", "'9999-12-31T23:59:59.997'"}},
	{"smalldatetime", typeRow("smalldatetime", 4, 16, 0, ""), 4, []string{"'1900-01-01T00:00:00'", "'2079-06-06T23:59:00'"}},
	{"datetime2(0)", typeRow("datetime2", 6, 19, 0, ""), 7, []string{"'0001-01-01T00:00:00'", "'9999-12-31T23:59:59'"}},
	{"datetime2(3)", typeRow("datetime2", 7, 23, 3, ""), 8, []string{"'2024-02-29T12:34:56.789'"}},
	{"datetime2", typeRow("datetime2", 8, 27, 7, ""), 9, []string{"'9999-12-31T23:59:59.9999999'", "'0001-01-01T00:00:00.0000001'"}},
	{"time(0)", typeRow("time", 3, 8, 0, ""), 4, []string{"'00:00:00'", "'23:59:59'"}},
	{"time(4)", typeRow("time", 4, 13, 4, ""), 5, []string{"'12:34:56.7891'"}},
	{"time", typeRow("time", 5, 16, 7, ""), 6, []string{"'23:59:59.9999999'"}},
	{"char(11)", typeRow("char", 11, 0, 0, latin1), 11, []string{"'123-45-6789'", "'ab'", "''", "'  x  '"}},
	{"varchar(64)", typeRow("varchar", 64, 0, 0, latin1), 64, []string{"''", "'trailing  '", "'Café'", "' '"}},
	{"varchar(max)", typeRow("varchar", -1, 0, 0, latin1), 0, []string{"REPLICATE(CAST('x' AS varchar(max)), 9000)", "''"}},
	{"text", typeRow("text", 16, 0, 0, latin1), 0, []string{"'long text '", "''"}},
	{"nchar(10)", typeRow("nchar", 20, 0, 0, latin1), 20, []string{"N'ü'", "N'𝄞'"}},
	{"nvarchar(50)", typeRow("nvarchar", 100, 0, 0, unicodeCI), 100, []string{"N'Zoë 𝄞 '", "N''"}},
	{"nvarchar(max)", typeRow("nvarchar", -1, 0, 0, latin1), 0, []string{"REPLICATE(CAST(N'ж' AS nvarchar(max)), 5000)", "N'x'"}},
	{"ntext", typeRow("ntext", 16, 0, 0, latin1), 0, []string{"N'ntext ж'", "N''"}},
	{"varbinary(max)", typeRow("varbinary", -1, 0, 0, ""), 0, []string{"0x", "0x00FF00", "CAST(REPLICATE(CAST('y' AS varchar(max)), 9000) AS varbinary(max))"}},
	{"image", typeRow("image", 16, 0, 0, ""), 0, []string{"0x00", "0xDEADBEEF"}},
	{"xml", typeRow("xml", -1, 0, 0, ""), 0, []string{"N'<a b=\"1\">ж</a>'", "N''"}},
}

// unsupportedCases are declared types colcrypt refuses, with their rows.
var unsupportedCases = []typeCase{
	{ddl: "real", row: typeRow("real", 4, 24, 0, "")},
	{ddl: "float(24)", row: typeRow("real", 4, 24, 0, "")},
	{ddl: "varbinary(16)", row: typeRow("varbinary", 16, 0, 0, "")},
	{ddl: "binary(16)", row: typeRow("binary", 16, 0, 0, "")},
	{ddl: "uniqueidentifier", row: typeRow("uniqueidentifier", 16, 0, 0, "")},
	{ddl: "datetimeoffset", row: typeRow("datetimeoffset", 10, 34, 7, "")},
	{ddl: "sql_variant", row: typeRow("sql_variant", 8016, 0, 0, "")},
	{ddl: "rowversion", row: typeRow("timestamp", 8, 0, 0, "")},
	{ddl: "hierarchyid", row: columnRow{Name: "v", TypeName: "hierarchyid", IsAssemblyType: true, MaxLength: 892, Nullable: true}},
}
