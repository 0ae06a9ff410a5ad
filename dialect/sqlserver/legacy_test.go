package sqlserver

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/schema"
)

// legacyRows is a table with what older databases hold and the
// conformance schema lacks: it is system-versioned (history table
// audit.legacy_history), its code column has a default bound with
// sp_bindefault (no default constraint) and a rule bound with sp_bindrule,
// its flag column a default constraint, and its indexes IGNORE_DUP_KEY and
// FILLFACTOR.
var legacyRows = catalogRows{
	Table: tableRow{ObjectID: 501, Schema: "dbo", Name: "leg'acy", RowCount: 2,
		TemporalType: 2, HistorySchema: "audit", HistoryName: "legacy_history"},
	Columns: []columnRow{
		{ColumnID: 1, Name: "id", TypeName: "int", BaseTypeName: "int", MaxLength: 4, Precision: 10},
		{ColumnID: 2, Name: "code", TypeName: "code_t", BaseTypeName: "varchar", MaxLength: 10, Collation: latin1, Nullable: true,
			BoundDefaultSchema: "dbo", BoundDefault: "df_code", RuleSchema: "dbo", Rule: "r_code"},
		{ColumnID: 3, Name: "flag", TypeName: "bit", BaseTypeName: "bit", MaxLength: 1, Precision: 1,
			DefaultName: "df_flag", DefaultDef: "((0))"},
	},
	Indexes: []indexColumnRow{
		{IndexID: 1, Name: "pk_legacy", Type: 1, TypeDesc: "CLUSTERED", IsUnique: true, IsPrimaryKey: true, FillFactor: 90,
			IndexColumnID: 1, KeyOrdinal: 1, Column: "id"},
		{IndexID: 2, Name: "ux_code", Type: 2, TypeDesc: "NONCLUSTERED", IsUnique: true, IsUniqueConstraint: true, IgnoreDupKey: true,
			IndexColumnID: 1, KeyOrdinal: 1, Column: "code"},
		{IndexID: 3, Name: "ix_code", Type: 2, TypeDesc: "NONCLUSTERED", IsUnique: true, IgnoreDupKey: true, FillFactor: 70,
			Filter: "([code] IS NOT NULL)", IndexColumnID: 1, KeyOrdinal: 1, Column: "code"},
		{IndexID: 3, Name: "ix_code", Type: 2, TypeDesc: "NONCLUSTERED", IsUnique: true, IgnoreDupKey: true, FillFactor: 70,
			Filter: "([code] IS NOT NULL)", IndexColumnID: 2, IsIncluded: true, Column: "flag"},
	},
}

// TestBuildTableTemporal: sys.tables.temporal_type 2 names the history
// table, 1 the table whose history it is; both get the statement that
// turns versioning off, which the planner's blocker quotes.
func TestBuildTableTemporal(t *testing.T) {
	current := schema.TableName{Schema: "dbo", Name: "leg'acy"}
	history := schema.TableName{Schema: "audit", Name: "legacy_history"}
	off := "ALTER TABLE [dbo].[leg'acy] SET (SYSTEM_VERSIONING = OFF)"

	tb := buildTable(legacyRows)
	want := &schema.Versioning{Current: current, History: history, Off: off}
	if !reflect.DeepEqual(tb.Versioning, want) {
		t.Errorf("system-versioned table: versioning = %+v, want %+v", tb.Versioning, want)
	}
	// The grammar's ALTER TABLE ... SET knows only LOCK_ESCALATION, not
	// Microsoft's SET ( SYSTEM_VERSIONING = OFF ) (ALTER TABLE, "Syntax
	// for disk-based tables"): the statement is checked with that option
	// in its place, which proves the rest of it.
	requireTSQL(t, "versioning off", strings.Replace(off, "SYSTEM_VERSIONING = OFF", "LOCK_ESCALATION = TABLE", 1))

	hist := catalogRows{Table: tableRow{ObjectID: 502, Schema: "audit", Name: "legacy_history",
		TemporalType: 1, CurrentSchema: "dbo", CurrentName: "leg'acy"}}
	if got := buildTable(hist).Versioning; !reflect.DeepEqual(got, want) {
		t.Errorf("history table: versioning = %+v, want %+v", got, want)
	}
	if got := buildTable(customersRows).Versioning; got != nil {
		t.Errorf("a plain table has no versioning, got %+v", got)
	}
}

// TestBuildTableBoundDefaultAndRule: a default bound with sp_bindefault is
// not in sys.default_constraints, so it is no Default (drop_defaults could
// not drop it as a constraint); it and a bound rule are Bound, with the
// statement that unbinds each.
func TestBuildTableBoundDefaultAndRule(t *testing.T) {
	tb := buildTable(legacyRows)
	code := tb.Column("code")
	want := []schema.Binding{
		{Kind: "default", Name: "dbo.df_code", Unbind: "EXEC sp_unbindefault N'[dbo].[leg''acy].[code]'"},
		{Kind: "rule", Name: "dbo.r_code", Unbind: "EXEC sp_unbindrule N'[dbo].[leg''acy].[code]'"},
	}
	if code.Default != "" || !reflect.DeepEqual(code.Bound, want) {
		t.Errorf("code: default %q, bound %+v; want no default, bound %+v", code.Default, code.Bound, want)
	}
	for _, b := range want {
		requireTSQL(t, "unbind "+b.Kind, b.Unbind)
	}
	if flag := tb.Column("flag"); flag.Default != "((0))" || flag.Bound != nil {
		t.Errorf("flag: a default constraint is a Default, not Bound: %+v", *flag)
	}
}

// TestIndexDefinitionKeepsOptions: IGNORE_DUP_KEY (which changes what a
// duplicate insert does) and FILLFACTOR survive the rebuild at cut-over.
func TestIndexDefinitionKeepsOptions(t *testing.T) {
	tb := buildTable(legacyRows)
	want := map[string]string{
		"pk_legacy": "ALTER TABLE [dbo].[leg'acy] ADD CONSTRAINT [pk_legacy] PRIMARY KEY CLUSTERED ([id]) WITH (FILLFACTOR = 90)",
		"ux_code":   "ALTER TABLE [dbo].[leg'acy] ADD CONSTRAINT [ux_code] UNIQUE NONCLUSTERED ([code]) WITH (IGNORE_DUP_KEY = ON)",
		"ix_code":   "CREATE UNIQUE NONCLUSTERED INDEX [ix_code] ON [dbo].[leg'acy] ([code]) INCLUDE ([flag]) WHERE ([code] IS NOT NULL) WITH (IGNORE_DUP_KEY = ON, FILLFACTOR = 70)",
	}
	got := map[string]string{tb.PrimaryKey.Name: tb.PrimaryKey.Definition}
	for _, ix := range tb.Indexes {
		got[ix.Name] = ix.Definition
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("definitions\n got %q\nwant %q", got, want)
	}
	for name, def := range got {
		requireTSQL(t, name, def)
	}
	if !tb.PrimaryKey.Clustered || findIndex(tb, "ux_code").Clustered {
		t.Error("Clustered is the index type: pk_legacy is clustered, ux_code is not")
	}
}

// TestReadTableLegacyThroughDriver: the new catalog columns scan in order.
func TestReadTableLegacyThroughDriver(t *testing.T) {
	db := openFakeCatalog(t, "[dbo].[leg'acy]", legacyRows)
	got, err := sqlServer{}.ReadTable(context.Background(), db, schema.TableName{Name: "leg'acy"})
	if err != nil {
		t.Fatal(err)
	}
	if want := buildTable(legacyRows); !reflect.DeepEqual(got, want) || got.Versioning == nil || got.Column("code").Bound == nil {
		t.Errorf("ReadTable:\n got %+v\nwant %+v", got, want)
	}
}
