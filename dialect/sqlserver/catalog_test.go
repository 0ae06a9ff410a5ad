package sqlserver

import (
	"reflect"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/schema"
)

func TestBuildTableCustomers(t *testing.T) {
	tb := buildTable(customersRows)

	if tb.Name != (schema.TableName{Schema: "dbo", Name: "cc_customers"}) || tb.RowCount != 3 {
		t.Fatalf("table = %v with %d rows, want dbo.cc_customers with 3", tb.Name, tb.RowCount)
	}
	wantCols := []struct {
		name, typ, declared string
		length              int
		nullable            bool
	}{
		{"id", "int", "int", 0, false},
		{"ssn", "char", "char(11)", 11, false},
		{"email", "varchar", "varchar(64)", 64, true},
		{"status", "varchar", "varchar(10)", 10, false},
		{"notes", "nvarchar", "nvarchar(max)", -1, true},
		{"region", "varchar", "varchar(8)", 8, true},
		{"full_name", "varchar", "varchar(75)", 75, true},
	}
	if len(tb.Columns) != len(wantCols) {
		t.Fatalf("got %d columns, want %d", len(tb.Columns), len(wantCols))
	}
	for i, w := range wantCols {
		c := tb.Columns[i]
		if c.Name != w.name || c.Type != w.typ || c.Declared != w.declared || c.Length != w.length || c.Nullable != w.nullable || c.Ordinal != i+1 {
			t.Errorf("column %d = %+v, want %+v", i+1, *c, w)
		}
	}

	if id := tb.Column("id"); !id.Identity {
		t.Error("id is not reported as an identity column")
	}
	if ssn := tb.Column("ssn"); ssn.Collation != latin1 || ssn.Identity || ssn.Encrypted {
		t.Errorf("ssn = %+v", *ssn)
	}
	if st := tb.Column("status"); st.Default != "('new')" || st.DefaultName != "df" {
		t.Errorf("status default = %q named %q, want ('new') named df", st.Default, st.DefaultName)
	}
	if fn := tb.Column("full_name"); !fn.Computed || fn.ComputedExpr != "([ssn]+isnull([email],''))" {
		t.Errorf("full_name computed = %v %q", fn.Computed, fn.ComputedExpr)
	}

	pk := tb.PrimaryKey
	if pk == nil || !pk.Primary || !pk.Constraint || !pk.Unique || !reflect.DeepEqual(pk.Columns, []string{"id"}) {
		t.Fatalf("primary key = %+v", pk)
	}
	wantPK := "ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [cc_customers_pkey] PRIMARY KEY CLUSTERED ([id])"
	if pk.Definition != wantPK {
		t.Errorf("primary key definition\n got %s\nwant %s", pk.Definition, wantPK)
	}

	ssnKey := findIndex(tb, "cc_customers_ssn_key")
	if ssnKey == nil || !ssnKey.Unique || !ssnKey.Constraint || ssnKey.Primary || !reflect.DeepEqual(ssnKey.Columns, []string{"ssn"}) {
		t.Errorf("unique constraint on ssn = %+v", ssnKey)
	} else if want := "ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [cc_customers_ssn_key] UNIQUE NONCLUSTERED ([ssn])"; ssnKey.Definition != want {
		t.Errorf("unique definition\n got %s\nwant %s", ssnKey.Definition, want)
	}
	emailIdx := findIndex(tb, "cc_customers_email_idx")
	if emailIdx == nil || emailIdx.Unique || emailIdx.Constraint || !emailIdx.HasColumn("email") {
		t.Errorf("email index = %+v", emailIdx)
	} else if want := "CREATE NONCLUSTERED INDEX [cc_customers_email_idx] ON [dbo].[cc_customers] ([email])"; emailIdx.Definition != want {
		t.Errorf("index definition\n got %s\nwant %s", emailIdx.Definition, want)
	}
	if len(tb.Indexes) != 2 {
		t.Errorf("got %d indexes besides the primary key, want 2", len(tb.Indexes))
	}

	if len(tb.Checks) != 1 || !reflect.DeepEqual(tb.Checks[0].Columns, []string{"status"}) {
		t.Errorf("checks = %+v", tb.Checks)
	} else if want := "ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [cc_customers_status_check] CHECK (([status]='new' OR [status]='vip'))"; tb.Checks[0].Definition != want {
		t.Errorf("check definition\n got %s\nwant %s", tb.Checks[0].Definition, want)
	}

	if len(tb.ForeignKeys) != 0 {
		t.Errorf("cc_customers holds no foreign key, got %+v", tb.ForeignKeys)
	}
	if len(tb.ReferencedBy) != 2 {
		t.Fatalf("referenced by %d foreign keys, want 2", len(tb.ReferencedBy))
	}
	byName := map[string]*schema.ForeignKey{}
	for _, fk := range tb.ReferencedBy {
		byName[fk.Name] = fk
	}
	orders := schema.TableName{Schema: "dbo", Name: "cc_orders"}
	if fk := byName["cc_orders_customer_fk"]; fk == nil || fk.Table != orders || !reflect.DeepEqual(fk.Columns, []string{"customer_id"}) ||
		fk.RefTable != tb.Name || !reflect.DeepEqual(fk.RefColumns, []string{"id"}) || fk.OnDelete != "NO ACTION" {
		t.Errorf("cc_orders_customer_fk = %+v", fk)
	}
	if fk := byName["cc_orders_ssn_fk"]; fk == nil || !reflect.DeepEqual(fk.Columns, []string{"customer_ssn"}) || !reflect.DeepEqual(fk.RefColumns, []string{"ssn"}) {
		t.Errorf("cc_orders_ssn_fk = %+v", fk)
	}

	if len(tb.Triggers) != 1 || tb.Triggers[0].Name != "cc_customers_audit" || !schema.ContainsFold(tb.Triggers[0].Columns, "email") {
		t.Errorf("triggers = %+v", tb.Triggers)
	} else if schema.ContainsFold(tb.Triggers[0].Columns, "ssn") || schema.ContainsFold(tb.Triggers[0].Columns, "notes") {
		t.Errorf("trigger columns %v name columns the trigger does not use", tb.Triggers[0].Columns)
	}

	view := findDependent(tb, "view", "cc_customer_notes")
	if view == nil || !reflect.DeepEqual(view.Columns, []string{"id", "notes"}) {
		t.Errorf("view dependent = %+v (all: %s)", view, dependents(tb))
	}
	computed := findDependent(tb, "computed column", "full_name")
	if computed == nil || !reflect.DeepEqual(computed.Columns, []string{"ssn", "email"}) {
		t.Errorf("computed column dependent = %+v (all: %s)", computed, dependents(tb))
	}
	stats := findDependent(tb, "statistics object", "cc_customers_region_stats")
	if stats == nil || !reflect.DeepEqual(stats.Columns, []string{"region", "id"}) {
		t.Errorf("statistics dependent = %+v (all: %s)", stats, dependents(tb))
	}
	if len(tb.Dependents) != 3 {
		t.Errorf("dependents = %s, want the view, the computed column and the statistics", dependents(tb))
	}

	if key := tb.UsableKey(); !reflect.DeepEqual(key, []string{"id"}) {
		t.Errorf("usable key = %v, want [id]", key)
	}
}

func TestBuildTableOrders(t *testing.T) {
	tb := buildTable(ordersRows)
	if amount := tb.Column("amount"); amount.Declared != "decimal(10,2)" || amount.Precision != 10 || amount.Scale != 2 {
		t.Errorf("amount = %+v", *amount)
	}
	if len(tb.ForeignKeys) != 2 || len(tb.ReferencedBy) != 0 {
		t.Fatalf("foreign keys = %+v, referenced by %+v", tb.ForeignKeys, tb.ReferencedBy)
	}
	want := map[string]string{
		"cc_orders_customer_fk": "ALTER TABLE [dbo].[cc_orders] ADD CONSTRAINT [cc_orders_customer_fk] FOREIGN KEY ([customer_id]) REFERENCES [dbo].[cc_customers] ([id])",
		"cc_orders_ssn_fk":      "ALTER TABLE [dbo].[cc_orders] ADD CONSTRAINT [cc_orders_ssn_fk] FOREIGN KEY ([customer_ssn]) REFERENCES [dbo].[cc_customers] ([ssn])",
	}
	for _, fk := range tb.ForeignKeys {
		if fk.Definition != want[fk.Name] {
			t.Errorf("%s definition\n got %s\nwant %s", fk.Name, fk.Definition, want[fk.Name])
		}
		if fk.Table != tb.Name {
			t.Errorf("%s is held by %v, want %v", fk.Name, fk.Table, tb.Name)
		}
	}
	if key := tb.UsableKey(); !reflect.DeepEqual(key, []string{"id"}) {
		t.Errorf("usable key = %v", key)
	}
}

func TestBuildTableWithoutKey(t *testing.T) {
	tb := buildTable(auditRows)
	if tb.PrimaryKey != nil || len(tb.Indexes) != 0 || tb.UsableKey() != nil {
		t.Errorf("cc_audit has no key, got primary %+v, indexes %+v, usable %v", tb.PrimaryKey, tb.Indexes, tb.UsableKey())
	}
}

func TestBuildTableOddNames(t *testing.T) {
	tb := buildTable(oddRows)
	if tb.Name != oddName {
		t.Fatalf("name = %v", tb.Name)
	}
	want := `ALTER TABLE [dbo].[cc odd "name" [x]]-y] ADD CONSTRAINT [cc odd pk] PRIMARY KEY CLUSTERED ([the "key"])`
	if tb.PrimaryKey == nil || tb.PrimaryKey.Definition != want {
		t.Errorf("primary key = %+v\nwant definition %s", tb.PrimaryKey, want)
	}
	if key := tb.UsableKey(); !reflect.DeepEqual(key, []string{`the "key"`}) {
		t.Errorf("usable key = %v", key)
	}
	if tb.Column("we]ird col") == nil {
		t.Error(`column "we]ird col" missing`)
	}
}

// TestBuildTableSchemaBoundAndSpecialIndexes covers the catalog shapes the
// conformance schema lacks: a schema-bound function with column-level
// dependencies, an untrusted cascading self-reference, a filtered unique
// index with included columns, a descending key, an XML index, a trigger
// and a view whose text is hidden, and alias and CLR types.
func TestBuildTableSchemaBoundAndSpecialIndexes(t *testing.T) {
	const id = 42
	rows := catalogRows{
		Table: tableRow{ObjectID: id, Schema: "sales", Name: "people", RowCount: 10},
		Columns: []columnRow{
			{ColumnID: 1, Name: "id", TypeName: "bigint", BaseTypeName: "bigint", MaxLength: 8, Precision: 19},
			{ColumnID: 3, Name: "tax_id", TypeName: "tax_id_t", BaseTypeName: "char", MaxLength: 9, Collation: latin1},
			{ColumnID: 4, Name: "parent", TypeName: "bigint", BaseTypeName: "bigint", MaxLength: 8, Precision: 19, Nullable: true},
			{ColumnID: 5, Name: "doc", TypeName: "xml", BaseTypeName: "xml", MaxLength: -1, Nullable: true},
			{ColumnID: 6, Name: "node", TypeName: "hierarchyid", IsAssemblyType: true, MaxLength: 892, Nullable: true},
			{ColumnID: 7, Name: "label", TypeName: "sysname", BaseTypeName: "nvarchar", MaxLength: 256, Collation: latin1},
			{ColumnID: 8, Name: "Secret", TypeName: "varbinary", BaseTypeName: "varbinary", MaxLength: 256, EncryptionType: 1},
		},
		Indexes: []indexColumnRow{
			{IndexID: 4, Name: "people_tax", Type: 2, TypeDesc: "NONCLUSTERED", IsUnique: true, Filter: "([parent] IS NOT NULL)",
				IndexColumnID: 2, KeyOrdinal: 0, IsIncluded: true, Column: "label"},
			{IndexID: 4, Name: "people_tax", Type: 2, TypeDesc: "NONCLUSTERED", IsUnique: true, Filter: "([parent] IS NOT NULL)",
				IndexColumnID: 1, KeyOrdinal: 1, IsDescending: true, Column: "tax_id"},
			{IndexID: 5, Name: "people_doc", Type: 3, TypeDesc: "XML", IndexColumnID: 1, Column: "doc"},
		},
		ForeignKeys: []foreignKeyColumnRow{{ObjectID: 77, Name: "people_parent",
			ParentID: id, ParentSchema: "sales", ParentTable: "people", ParentColumn: "parent",
			RefID: id, RefSchema: "sales", RefTable: "people", RefColumn: "id",
			OnDelete: "SET_NULL", OnUpdate: "CASCADE", IsNotTrusted: true, IsDisabled: true}},
		Checks: []checkRow{{Name: "people_tax_digits", Definition: "(NOT [tax_id] like '%[^0-9]%')", IsNotTrusted: true, NotForReplication: true}},
		Triggers: []triggerRow{
			{ObjectID: 90, Name: "people_hidden"},
			{ObjectID: 91, Name: "people_touch", Definition: "CREATE TRIGGER sales.people_touch ON sales.people AFTER INSERT AS UPDATE sales.people SET label = N'x' /* not [tax_id] */ -- nor parent\nFROM inserted"},
			{ObjectID: 92, Name: "people_history", Definition: "CREATE TRIGGER sales.people_history ON sales.people AFTER UPDATE AS INSERT INTO sales.people_log SELECT * FROM inserted"},
			{ObjectID: 93, Name: "people_count", Definition: "CREATE TRIGGER sales.people_count ON sales.people AFTER INSERT AS UPDATE sales.stats SET n = (SELECT COUNT(*) FROM inserted) WHERE [label] = 'x'"},
		},
		Dependencies: []dependencyRow{
			{ReferencingID: 91, Schema: "sales", Name: "people_touch", Type: "TR", Column: "label", Definition: "..."},
			{ReferencingID: 80, Schema: "sales", Name: "tax_of", Type: "FN", Column: "tax_id", SchemaBound: true, Definition: "CREATE FUNCTION ..."},
			{ReferencingID: 80, Schema: "sales", Name: "tax_of", Type: "FN", Column: "id", SchemaBound: true, Definition: "CREATE FUNCTION ..."},
			{ReferencingID: 81, Schema: "sales", Name: "all_people", Type: "V", Definition: "CREATE VIEW sales.all_people AS SELECT p.* FROM sales.people AS p"},
			{ReferencingID: 82, Schema: "report", Name: "hidden", Type: "V"},
			{ReferencingID: 83, Schema: "sales", Name: "count_people", Type: "P", Definition: "CREATE PROCEDURE sales.count_people AS SELECT COUNT(*) FROM sales.people"},
			{ReferencingID: 84, Schema: "sales", Name: "counts", Type: "V", Definition: "CREATE VIEW sales.counts AS SELECT COUNT(*) AS n, 2 * MAX(id) AS m FROM sales.people"},
		},
		Statistics: []statisticsRow{{Name: "people_label_parent", Column: "label"}, {Name: "people_label_parent", Column: "parent"}, {Name: "people_tax", Column: "tax_id"}},
	}
	tb := buildTable(rows)

	wantDeclared := map[string]string{"tax_id": "char(9)", "doc": "xml", "node": "hierarchyid", "label": "nvarchar(128)", "Secret": "varbinary(256)"}
	for name, want := range wantDeclared {
		if got := tb.Column(name).Declared; got != want {
			t.Errorf("%s declared %q, want %q", name, got, want)
		}
	}
	if tb.Column("tax_id").Ordinal != 2 {
		t.Errorf("ordinal follows the column order, not column_id: %d", tb.Column("tax_id").Ordinal)
	}
	if !tb.Column("secret").Encrypted || tb.Column("label").Encrypted {
		t.Error("encryption_type not mapped to Encrypted")
	}

	ix := findIndex(tb, "people_tax")
	wantIx := "CREATE UNIQUE NONCLUSTERED INDEX [people_tax] ON [sales].[people] ([tax_id] DESC) INCLUDE ([label]) WHERE ([parent] IS NOT NULL)"
	if ix == nil || !reflect.DeepEqual(ix.Columns, []string{"tax_id"}) || !ix.Unique || ix.Constraint || ix.Definition != wantIx {
		t.Errorf("filtered index = %+v\nwant definition %s", ix, wantIx)
	}
	if findIndex(tb, "people_doc") != nil {
		t.Error("an XML index cannot be rebuilt from the model and must not be listed as an Index")
	}

	if len(tb.ForeignKeys) != 1 || len(tb.ReferencedBy) != 1 {
		t.Fatalf("self-reference must be in both lists: %+v / %+v", tb.ForeignKeys, tb.ReferencedBy)
	}
	fk := tb.ForeignKeys[0]
	wantFK := "ALTER TABLE [sales].[people] WITH NOCHECK ADD CONSTRAINT [people_parent] FOREIGN KEY ([parent]) REFERENCES [sales].[people] ([id]) ON DELETE SET NULL ON UPDATE CASCADE;\n" +
		"ALTER TABLE [sales].[people] NOCHECK CONSTRAINT [people_parent]"
	if fk.OnDelete != "SET NULL" || fk.OnUpdate != "CASCADE" || fk.Definition != wantFK {
		t.Errorf("foreign key = %+v\nwant definition %s", fk, wantFK)
	}

	chk := tb.Checks[0]
	wantChk := "ALTER TABLE [sales].[people] WITH NOCHECK ADD CONSTRAINT [people_tax_digits] CHECK NOT FOR REPLICATION ((NOT [tax_id] like '%[^0-9]%'))"
	if !reflect.DeepEqual(chk.Columns, []string{"tax_id"}) || chk.Definition != wantChk {
		t.Errorf("check = %+v\nwant definition %s", chk, wantChk)
	}

	trig := map[string][]string{}
	for _, tr := range tb.Triggers {
		trig[tr.Name] = tr.Columns
	}
	if got := trig["people_hidden"]; len(got) != len(tb.Columns) {
		t.Errorf("a trigger with hidden text must count as using every column, got %v", got)
	}
	if got := trig["people_history"]; len(got) != len(tb.Columns) {
		t.Errorf("a trigger that selects * from inserted copies every column (and fails once prepare adds one), got %v", got)
	}
	if got := trig["people_count"]; !reflect.DeepEqual(got, []string{"label"}) {
		t.Errorf("people_count columns = %v, want [label] (COUNT(*) selects no column)", got)
	}
	if got := trig["people_touch"]; !reflect.DeepEqual(got, []string{"label"}) {
		t.Errorf("people_touch columns = %v, want [label] (comments and strings are not references)", got)
	}

	wantDeps := map[string]string{
		"schema-bound function|tax_of":          "tax_id,id",
		"view|all_people":                       "id,tax_id,parent,doc,node,label,Secret",
		"view|report.hidden":                    "id,tax_id,parent,doc,node,label,Secret",
		"view|counts":                           "id",
		"index included column|people_tax":      "label",
		"filtered index|people_tax":             "parent",
		"xml index|people_doc":                  "doc",
		"statistics object|people_label_parent": "label,parent",
		"statistics object|people_tax":          "tax_id",
	}
	got := map[string]string{}
	for _, d := range tb.Dependents {
		got[d.Kind+"|"+d.Name] = strings.Join(d.Columns, ",")
	}
	if !reflect.DeepEqual(got, wantDeps) {
		t.Errorf("dependents\n got %v\nwant %v", got, wantDeps)
	}
}

func TestScanIdentifiers(t *testing.T) {
	tests := []struct {
		text   string
		idents []string
		star   bool
	}{
		{"([ssn]+isnull([email],''))", []string{"ssn", "isnull", "email"}, false},
		{"([we]]ird col]>N'it''s [x]' AND \"the \"\"key\"\"\"=1)", []string{"we]ird col", "AND", `the "key"`}, false},
		{"SELECT a /* b /* nested */ c */ , d -- e\nFROM t", []string{"SELECT", "a", "d", "FROM", "t"}, false},
		{"SELECT * FROM t", []string{"SELECT", "FROM", "t"}, true},
		{"SELECT TOP (5) * FROM t", []string{"SELECT", "TOP", "FROM", "t"}, true},
		{"SELECT x.* FROM t AS x", []string{"SELECT", "x", "FROM", "t", "AS", "x"}, true},
		{"SELECT COUNT(*), a*2, (a+1) * 3, @v * 1.5e3 FROM t", []string{"SELECT", "COUNT", "a", "a", "FROM", "t"}, false},
	}
	for _, tt := range tests {
		idents, star := scanIdentifiers(tt.text)
		if !reflect.DeepEqual(idents, tt.idents) || star != tt.star {
			t.Errorf("scanIdentifiers(%q) = %q, %v; want %q, %v", tt.text, idents, star, tt.idents, tt.star)
		}
	}
}

func findIndex(t *schema.Table, name string) *schema.Index {
	for _, ix := range t.Indexes {
		if ix.Name == name {
			return ix
		}
	}
	return nil
}

func findDependent(t *schema.Table, kind, name string) *schema.Dependent {
	for _, d := range t.Dependents {
		if d.Kind == kind && d.Name == name {
			return d
		}
	}
	return nil
}

func dependents(t *schema.Table) string {
	var s []string
	for _, d := range t.Dependents {
		s = append(s, d.Kind+" "+d.Name+" "+strings.Join(d.Columns, ","))
	}
	return strings.Join(s, "; ")
}

// TestFilterColumns: a filtered index's WHERE clause uses a column unless it
// only tests it for NULL, which holds on the ciphertext.
func TestFilterColumns(t *testing.T) {
	tb := &schema.Table{Columns: []*schema.Column{{Name: "ssn"}, {Name: "email"}, {Name: "a]b"}, {Name: "status"}}}
	cases := map[string][]string{
		"":                    nil,
		"([ssn] IS NOT NULL)": nil,
		"([ssn] IS NULL AND [email] IS NOT NULL)":     nil,
		"([a]]b] IS NOT NULL OR [ssn] IS NULL)":       nil,
		"([email]<>'')":                               {"email"},
		"([ssn] IS NOT NULL AND [status]='active')":   {"status"},
		"([status]='a' AND [ssn] IS NOT NULL)":        {"status"},
		"(([email]+'x') IS NULL)":                     {"email"},
		"([ssn] IS NOT NULL AND [ssn]>'100-00-0000')": {"ssn"},
	}
	for filter, want := range cases {
		if got := filterColumns(tb, filter); !reflect.DeepEqual(got, want) {
			t.Errorf("filterColumns(%q) = %v, want %v", filter, got, want)
		}
	}
}

// TestTypedXMLColumn: a typed xml column is declared with its schema
// collection and DOCUMENT or CONTENT, which a revert recreates it with (it
// came back untyped); untyped xml stays xml.
func TestTypedXMLColumn(t *testing.T) {
	for _, tc := range []struct {
		row  columnRow
		want string
	}{
		{columnRow{Name: "doc", TypeName: "xml", BaseTypeName: "xml"}, "xml"},
		{columnRow{Name: "doc", TypeName: "xml", BaseTypeName: "xml", XMLDocument: true, XMLCollectionSchema: "dbo", XMLCollection: "order schema"},
			"xml(DOCUMENT [dbo].[order schema])"},
		{columnRow{Name: "doc", TypeName: "xml", BaseTypeName: "xml", XMLCollectionSchema: "sales", XMLCollection: "notes"},
			"xml(CONTENT [sales].[notes])"},
	} {
		col := buildColumn(1, tc.row)
		if col.Declared != tc.want || col.Type != "xml" {
			t.Errorf("%+v: type %s declared %s, want xml declared %s", tc.row, col.Type, col.Declared, tc.want)
		}
		// The grammar knows no typed xml (CREATE TABLE's data_type
		// xml ( [ CONTENT | DOCUMENT ] xml_schema_collection )): the
		// statement is checked with the bare type in its place.
		ddl := "ALTER TABLE [dbo].[t] ADD [doc] " + col.Declared + " NULL"
		requireTSQL(t, "typed xml column", strings.Replace(ddl, col.Declared, "xml", 1))
	}
}
