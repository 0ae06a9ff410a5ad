package planner

import (
	"testing"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/schema"
)

// TestSystemVersionedRule: a system-versioned table and its history table
// are blockers that name the other table and the statement that turns
// versioning off.
func TestSystemVersionedRule(t *testing.T) {
	d := sqlServer(t)
	v := &schema.Versioning{
		Current: schema.TableName{Schema: "dbo", Name: "customers"},
		History: schema.TableName{Schema: "hist", Name: "customers_history"},
		Off:     "ALTER TABLE [dbo].[customers] SET (SYSTEM_VERSIONING = OFF)",
	}
	tbl := customers()
	tbl.Versioning = v
	fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
	requireFinding(t, fs, want{SeverityBlocker, RuleSystemVersioned, "dbo.customers", "",
		"history table hist.customers_history, where neither the cut-over nor the purge reaches"})
	requireFinding(t, fs, want{msg: "run ALTER TABLE [dbo].[customers] SET (SYSTEM_VERSIONING = OFF) before the job"})

	hist := customers()
	hist.Name = v.History
	hist.Versioning = v
	fs = check(t, d, nil, Options{}, fixture{hist, []ColumnPlan{planCol("email")}})[0]
	requireFinding(t, fs, want{SeverityBlocker, RuleSystemVersioned, "hist.customers_history", "",
		"the history table of system-versioned dbo.customers"})

	fs = check(t, d, nil, Options{}, fixture{customers(), []ColumnPlan{planCol("email")}})[0]
	requireNoRule(t, fs, RuleSystemVersioned)
}

// TestBoundObjectRule: a default or rule bound to the column blocks it,
// naming the object and the statement that unbinds it; one bound to
// another column does not.
func TestBoundObjectRule(t *testing.T) {
	d := sqlServer(t)
	tbl := customers()
	tbl.Column("ssn").Bound = []schema.Binding{
		{Kind: "default", Name: "dbo.df_ssn", Unbind: "EXEC sp_unbindefault N'[dbo].[customers].[ssn]'"},
		{Kind: "rule", Name: "dbo.r_ssn", Unbind: "EXEC sp_unbindrule N'[dbo].[customers].[ssn]'"},
	}
	fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("ssn")}})[0]
	requireFinding(t, fs, want{SeverityBlocker, RuleBoundObject, "dbo.df_ssn", "ssn",
		"default dbo.df_ssn is bound to dbo.customers.ssn, and the cut-over cannot drop a column that a default is bound to: run EXEC sp_unbindefault N'[dbo].[customers].[ssn]' before the job"})
	requireFinding(t, fs, want{SeverityBlocker, RuleBoundObject, "dbo.r_ssn", "ssn", "run EXEC sp_unbindrule N'[dbo].[customers].[ssn]'"})

	fs = check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
	requireNoRule(t, fs, RuleBoundObject)
}

// TestIndexKeyRule: SQL Server cannot key an index on VARBINARY(MAX), the
// ciphertext type of a column whose ciphertext can pass 8000 bytes, so
// such an index blocks; a ciphertext key over 900 bytes (clustered) or
// 1700 (nonclustered) warns, naming the index.
func TestIndexKeyRule(t *testing.T) {
	d := sqlServer(t)
	withIndex := func(declared string, clustered, unique bool) *schema.Table {
		tbl := customers()
		tbl.Columns = append(tbl.Columns, mssqlCol("code", declared))
		tbl.Indexes = []*schema.Index{{Name: "ix_code", Columns: []string{"code", "id"}, Clustered: clustered, Unique: unique}}
		return tbl
	}
	tests := []struct {
		name  string
		cp    ColumnPlan
		table *schema.Table
		want  *want
	}{
		{"varchar(8000): VARBINARY(MAX) ciphertext", planCol("code"), withIndex("varchar(8000)", false, false),
			&want{SeverityBlocker, RuleIndexKey, "ix_code", "code", "index ix_code covers dbo.customers.code, whose ciphertext needs type VARBINARY(MAX), which the engine cannot use as an index key"}},
		{"nvarchar(4000) in the primary key", planCol("code", ivColumn), func() *schema.Table {
			tbl := withIndex("nvarchar(4000)", false, false)
			tbl.Indexes = nil
			tbl.PrimaryKey = &schema.Index{Name: "pk_code", Columns: []string{"code"}, Unique: true, Primary: true, Constraint: true, Clustered: true}
			return tbl
		}(), &want{SeverityBlocker, RuleIndexKey, "pk_code", "code", "VARBINARY(MAX)"}},
		// varchar(850), AEAD: 3 + 1 + 32 + 16 + 864 = 916 bytes of
		// ciphertext, plus id's 4.
		{"clustered key over 900", planCol("code"), withIndex("varchar(850)", true, false),
			&want{SeverityWarning, RuleIndexKey, "ix_code", "code", "a key of up to 920 bytes, over the engine's 900-byte limit for a clustered index"}},
		{"nonclustered key under 1700", planCol("code"), withIndex("varchar(850)", false, false), nil},
		// varchar(1690), AES-256-CBC: 3 + 1696, plus 4.
		{"nonclustered key over 1700", planCol("code", withSuite(cipher.AES256CBC)), withIndex("varchar(1690)", false, true),
			&want{SeverityWarning, RuleIndexKey, "ix_code", "code", "a key of up to 1,703 bytes, over the engine's 1,700-byte limit for a nonclustered index"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := check(t, d, nil, Options{}, fixture{tc.table, []ColumnPlan{tc.cp}})[0]
			if tc.want == nil {
				requireNoRule(t, fs, RuleIndexKey)
				return
			}
			requireFinding(t, fs, *tc.want)
		})
	}
}
