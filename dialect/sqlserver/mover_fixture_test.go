package sqlserver

import (
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// The swap fixtures, built from catalog rows as ReadTable builds them.
//
// Group "customers": the conformance fixture's customers and orders, with
// ssn (unique, NOT NULL, referenced by orders.customer_ssn), email
// (plain index), status (NOT NULL, default, column check) and
// orders.customer_ssn (foreign key) encrypted.
//
// Group "accounts": a table with odd names in another schema, a clustered
// composite primary key holding an encrypted column, an index over two
// encrypted columns, a table check over two of them, a non-default
// collation, a NOT NULL text column with a default, an IV column, and
// plaintext: null.
//
// Group "heap": a table without a key, paged by the added row id.

const accountsID = 1077578877

var accountsName = schema.TableName{Schema: "sales", Name: "acc'ounts [x]"}

var accountsRows = catalogRows{
	Table: tableRow{ObjectID: accountsID, Schema: accountsName.Schema, Name: accountsName.Name, RowCount: 2},
	Columns: []columnRow{
		{ColumnID: 1, Name: "region", TypeName: "char", BaseTypeName: "char", MaxLength: 2, Collation: latin1},
		{ColumnID: 2, Name: "iban", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 34, Collation: "Latin1_General_BIN2"},
		{ColumnID: 3, Name: "we]ird 'col", TypeName: "nvarchar", BaseTypeName: "nvarchar", MaxLength: 200, Collation: latin1, Nullable: true},
		{ColumnID: 4, Name: "memo", TypeName: "text", BaseTypeName: "text", MaxLength: 16, Collation: latin1,
			DefaultName: "DF__acc'ounts__memo", DefaultDef: "('')"},
		{ColumnID: 5, Name: "score", TypeName: "decimal", BaseTypeName: "decimal", MaxLength: 5, Precision: 5, Scale: 2, Nullable: true},
	},
	Indexes: []indexColumnRow{
		{IndexID: 1, Name: "pk acc]ounts", Type: 1, TypeDesc: "CLUSTERED", IsUnique: true, IsPrimaryKey: true,
			IndexColumnID: 1, KeyOrdinal: 1, Column: "region"},
		{IndexID: 1, Name: "pk acc]ounts", Type: 1, TypeDesc: "CLUSTERED", IsUnique: true, IsPrimaryKey: true,
			IndexColumnID: 2, KeyOrdinal: 2, Column: "iban"},
		{IndexID: 2, Name: "ix two", Type: 2, TypeDesc: "NONCLUSTERED",
			IndexColumnID: 1, KeyOrdinal: 1, Column: "iban"},
		{IndexID: 2, Name: "ix two", Type: 2, TypeDesc: "NONCLUSTERED",
			IndexColumnID: 2, KeyOrdinal: 2, IsDescending: true, Column: "we]ird 'col"},
		{IndexID: 3, Name: "ix score", Type: 2, TypeDesc: "NONCLUSTERED",
			IndexColumnID: 1, KeyOrdinal: 1, Column: "score"},
	},
	Checks: []checkRow{
		{Name: "ck two", Definition: "([iban]<>'' AND len([we]]ird 'col])>(0))", NotForReplication: true},
		{Name: "ck score", Definition: "([score]>=(0))", Column: "score"},
	},
}

var (
	customersTable = buildTable(customersRows)
	ordersTable    = buildTable(ordersRows)
	accountsTable  = buildTable(accountsRows)
	auditTable     = buildTable(auditRows)
)

// customersGroup is the cut-over of customers and orders; on reverse it is
// their revert.
func customersGroup(forward bool) []dialect.TableSwap {
	col := func(name, ctType string) dialect.SwapColumn {
		if forward {
			return dialect.SwapColumn{Name: name, Temp: name + "__colcrypt", TempType: ctType}
		}
		return dialect.SwapColumn{Name: name, Temp: name + "__colcrypt_plain", TempType: "restored"}
	}
	email := col("email", "VARBINARY(115)")
	email.IV = "email_iv"
	return []dialect.TableSwap{
		{Table: customersTable, DropChecks: true, DropDefaults: true, Columns: []dialect.SwapColumn{
			col("ssn", "VARBINARY(48)"), email, col("status", "VARBINARY(48)"),
		}},
		{Table: ordersTable, DropChecks: true, DropDefaults: true, Columns: []dialect.SwapColumn{
			col("customer_ssn", "VARBINARY(48)"),
		}},
	}
}

// accountsGroup keeps the plaintext (plaintext: null).
func accountsGroup(forward bool) []dialect.TableSwap {
	ts := dialect.TableSwap{Table: accountsTable, KeepPlaintext: true, DropChecks: true, DropDefaults: true}
	for _, c := range []struct{ name, ctType, iv string }{
		{"iban", "VARBINARY(64)", ""},
		{"we]ird 'col", "VARBINARY(MAX)", "we]ird 'col_iv"},
		{"memo", "VARBINARY(MAX)", ""},
	} {
		sc := dialect.SwapColumn{Name: c.name, IV: c.iv}
		if forward {
			sc.Temp, sc.TempType, sc.Plaintext = c.name+"__colcrypt", c.ctType, c.name+"_plaintext"
		} else {
			col := accountsTable.Column(c.name)
			sc.Temp, sc.TempType = c.name+"__colcrypt_plain", col.Declared
		}
		ts.Columns = append(ts.Columns, sc)
	}
	return []dialect.TableSwap{ts}
}

// heapGroup is a table without a key, paged by colcrypt_row_id.
func heapGroup(forward bool) []dialect.TableSwap {
	sc := dialect.SwapColumn{Name: "email", Temp: "email__colcrypt", TempType: "VARBINARY(115)", IV: "email_iv"}
	if !forward {
		sc.Temp, sc.TempType = "email__colcrypt_plain", "varchar(64)"
	}
	return []dialect.TableSwap{{Table: auditTable, RowID: rowIDColumn, Columns: []dialect.SwapColumn{sc}}}
}

// allPending says every column of the group is still to swap.
func allPending(group []dialect.TableSwap) [][]dialect.SwapColumn {
	out := make([][]dialect.SwapColumn, len(group))
	for i, ts := range group {
		out[i] = ts.Columns
	}
	return out
}

// swapFixtures are every group in both directions.
func swapFixtures() map[string][]dialect.TableSwap {
	return map[string][]dialect.TableSwap{
		"customers swap": customersGroup(true), "customers unswap": customersGroup(false),
		"accounts swap": accountsGroup(true), "accounts unswap": accountsGroup(false),
		"heap swap": heapGroup(true), "heap unswap": heapGroup(false),
	}
}
