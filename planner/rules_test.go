package planner

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"

	_ "github.com/colcrypt/colcrypt/dialect/sqlserver"
)

// The rules are pure functions of the plan and the catalog model, so they
// are tested here on SQL Server schema fixtures: schema.Table values shaped
// as the SQL Server catalog reader fills them, checked with the SQL Server
// dialect's own codecs and limits. The same rules run against real SQLite
// and PostgreSQL schemas in cmd/colcrypt's tests.

func sqlServer(t *testing.T) dialect.Dialect {
	t.Helper()
	d, err := dialect.Get("sqlserver")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mssqlCol is a SQL Server column as the catalog reader describes it.
func mssqlCol(name, declared string) *schema.Column {
	c := &schema.Column{Name: name, Declared: declared, Nullable: true}
	base, args, _ := strings.Cut(strings.TrimSuffix(declared, ")"), "(")
	c.Type = strings.ToLower(base)
	switch {
	case strings.EqualFold(args, "max"):
		c.Length = -1
	case args != "":
		var p, s int
		if n, _ := fmt.Sscanf(args, "%d,%d", &p, &s); n == 2 {
			c.Precision, c.Scale = p, s
		} else if c.Type == "time" || c.Type == "datetime2" {
			c.Scale = p
		} else {
			c.Length = p
		}
	}
	return c
}

// customers is dbo.customers(id int PK, ssn char(11), email nvarchar(64)),
// with no constraint on ssn or email.
func customers() *schema.Table {
	id := mssqlCol("id", "int")
	id.Nullable = false
	return &schema.Table{
		Name:       schema.TableName{Schema: "dbo", Name: "customers"},
		Columns:    []*schema.Column{id, mssqlCol("ssn", "char(11)"), mssqlCol("email", "nvarchar(64)")},
		PrimaryKey: &schema.Index{Name: "pk_customers", Columns: []string{"id"}, Unique: true, Primary: true, Constraint: true},
	}
}

func planCol(name string, mods ...func(*ColumnPlan)) ColumnPlan {
	c := ColumnPlan{Name: name, ColumnSettings: ColumnSettings{Suite: DefaultSuite, IV: DefaultIV, Key: DefaultKey, Versioned: true}, Line: 10, Col: 9}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func ivColumn(c *ColumnPlan)             { c.IV = cipher.IVColumn }
func withKey(k string) func(*ColumnPlan) { return func(c *ColumnPlan) { c.Key = k } }
func withSuite(s cipher.Suite) func(*ColumnPlan) {
	return func(c *ColumnPlan) { c.Suite = s }
}

// fixture is one planned table and its catalog entry.
type fixture struct {
	table *schema.Table
	cols  []ColumnPlan
}

func targetsOf(fx ...fixture) (*Plan, []Target) {
	p := &Plan{Path: "/plans/p.yaml", Job: Job{Workers: 1, LargeObjectLimit: DefaultLargeObjectLimit}}
	for _, f := range fx {
		p.Tables = append(p.Tables, TablePlan{Name: f.table.Name.String(), Columns: f.cols, Line: 8, Col: 11})
	}
	targets := make([]Target, len(fx))
	for i, f := range fx {
		targets[i] = Target{Plan: &p.Tables[i], Table: f.table}
	}
	return p, targets
}

func check(t *testing.T, e Engine, job func(*Job), opt Options, fx ...fixture) [][]Finding {
	t.Helper()
	p, targets := targetsOf(fx...)
	if job != nil {
		job(&p.Job)
	}
	return CheckSchema(p, targets, e, opt)
}

// want is a finding a test expects; empty fields match anything.
type want struct {
	sev    Severity
	rule   string
	object string
	column string
	msg    string // a substring of the message
}

func (w want) matches(f Finding) bool {
	return (w.sev == "" || f.Severity == w.sev) && (w.rule == "" || f.Rule == w.rule) &&
		(w.object == "" || f.Object == w.object) && (w.column == "" || f.Column == w.column) &&
		strings.Contains(f.Message, w.msg)
}

func requireFinding(t *testing.T, fs []Finding, w want) {
	t.Helper()
	for _, f := range fs {
		if w.matches(f) {
			return
		}
	}
	t.Errorf("no finding %+v among:\n%s", w, dump(fs))
}

func requireNoRule(t *testing.T, fs []Finding, rule string) {
	t.Helper()
	for _, f := range fs {
		if f.Rule == rule {
			t.Errorf("unexpected %s finding: %+v", rule, f)
		}
	}
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s %s: %s\n", f.Severity, f.Rule, f.Object, f.Column, f.Message)
	}
	return b.String()
}

// TestCleanColumnHasNoFinding: a plain column of a keyed table has no
// finding but the guard every offline job in place has on SQL Server.
func TestCleanColumnHasNoFinding(t *testing.T) {
	fs := check(t, sqlServer(t), nil, Options{}, fixture{customers(), []ColumnPlan{planCol("email")}})
	if len(fs[0]) != 1 || fs[0][0].Rule != RuleGuarded {
		t.Fatalf("a plain column of a keyed table should have only the guarded action, got:\n%s", dump(fs[0]))
	}
}

func TestColumnRules(t *testing.T) {
	d := sqlServer(t)
	tests := []struct {
		name  string
		table func(*schema.Table)
		col   ColumnPlan
		job   func(*Job)
		opt   Options
		want  []want
		none  []string // rules that must not fire
	}{
		{
			name:  "identity",
			table: func(t *schema.Table) { t.Column("ssn").Identity = true },
			col:   planCol("ssn"),
			want:  []want{{SeverityBlocker, RuleIdentity, "dbo.customers.ssn", "ssn", "cannot be encrypted"}},
		},
		{
			name:  "unsupported type names the type",
			table: func(t *schema.Table) { t.Columns = append(t.Columns, mssqlCol("score", "real")) },
			col:   planCol("score"),
			want:  []want{{SeverityBlocker, RuleUnsupportedType, "dbo.customers.score", "score", "real"}},
		},
		{
			name:  "varbinary(n) is not supported",
			table: func(t *schema.Table) { t.Columns = append(t.Columns, mssqlCol("photo", "varbinary(100)")) },
			col:   planCol("photo"),
			want:  []want{{SeverityBlocker, RuleUnsupportedType, "", "photo", "varbinary(100)"}},
		},
		{
			name:  "already encrypted by the engine",
			table: func(t *schema.Table) { t.Column("ssn").Encrypted = true },
			col:   planCol("ssn"),
			want:  []want{{SeverityBlocker, RuleAlreadyEncrypted, "dbo.customers.ssn", "ssn", "already encrypted"}},
		},
		{
			name: "already encrypted by colcrypt (job state)",
			col:  planCol("ssn"),
			opt: Options{AlreadyEncrypted: func(table, column string) bool {
				return table == "dbo.customers" && column == "ssn"
			}},
			want: []want{{SeverityBlocker, RuleAlreadyEncrypted, "", "ssn", ""}},
		},
		{
			name: "already a ciphertext column with its IV column",
			table: func(t *schema.Table) {
				t.Columns = append(t.Columns, mssqlCol("card", "varbinary(max)"), mssqlCol("card_iv", "varbinary(16)"))
			},
			col:  planCol("card"),
			want: []want{{SeverityBlocker, RuleAlreadyEncrypted, "", "card", ""}},
			none: []string{RuleNameConflict},
		},
		{
			name:  "a binary column without IV column is plaintext",
			table: func(t *schema.Table) { t.Columns = append(t.Columns, mssqlCol("card", "varbinary(max)")) },
			col:   planCol("card"),
			none:  []string{RuleAlreadyEncrypted},
		},
		{
			name:  "the IV column name is taken",
			table: func(t *schema.Table) { t.Columns = append(t.Columns, mssqlCol("ssn_iv", "int")) },
			col:   planCol("ssn", withSuite(cipher.AES256CBC)),
			want:  []want{{SeverityBlocker, RuleNameConflict, "dbo.customers.ssn_iv", "ssn", "rename"}},
			none:  []string{RuleAlreadyEncrypted},
		},
		{
			name:  "primary key with iv: column is an action",
			table: func(t *schema.Table) { t.PrimaryKey.Columns = []string{"ssn"} },
			col:   planCol("ssn", ivColumn),
			want:  []want{{SeverityAction, RulePrimaryKey, "pk_customers", "ssn", "recreated on the ciphertext column"}},
		},
		{
			name:  "primary key with iv: field is a blocker",
			table: func(t *schema.Table) { t.PrimaryKey.Columns = []string{"ssn"} },
			col:   planCol("ssn"),
			want:  []want{{SeverityBlocker, RulePrimaryKey, "pk_customers", "ssn", "set iv: column for ssn"}},
		},
		{
			name: "unique constraint with iv: field is a blocker",
			table: func(t *schema.Table) {
				t.Indexes = append(t.Indexes, &schema.Index{Name: "uq_ssn", Columns: []string{"ssn"}, Unique: true, Constraint: true})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleUnique, "uq_ssn", "ssn", "field-level IVs cannot keep a unique constraint"}},
		},
		{
			name: "unique index with iv: column is an action",
			table: func(t *schema.Table) {
				t.Indexes = append(t.Indexes, &schema.Index{Name: "ux_ssn", Columns: []string{"ssn", "id"}, Unique: true})
			},
			col:  planCol("ssn", ivColumn),
			want: []want{{SeverityAction, RuleUnique, "ux_ssn", "ssn", "recreated"}},
			none: []string{RuleIndex},
		},
		{
			name: "plain index: rebuilt, and a warning",
			table: func(t *schema.Table) {
				t.Indexes = append(t.Indexes, &schema.Index{Name: "ix_email", Columns: []string{"email"}})
			},
			col: planCol("email", ivColumn),
			want: []want{
				{SeverityAction, RuleIndex, "ix_email", "email", "rebuilt"},
				{SeverityWarning, RuleIndex, "ix_email", "email", "range queries"},
			},
		},
		{
			name: "check constraint is a blocker",
			table: func(t *schema.Table) {
				t.Checks = append(t.Checks, &schema.Check{Name: "ck_ssn", Expr: "([ssn] like '[0-9][0-9][0-9]-%')", Columns: []string{"ssn"}})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleCheckConstraint, "ck_ssn", "ssn", "drop_check_constraints: true"}},
		},
		{
			name: "check constraint with drop_check_constraints is an action",
			table: func(t *schema.Table) {
				t.Checks = append(t.Checks, &schema.Check{Name: "ck_ssn", Expr: "(len([ssn])=11)", Columns: []string{"ssn"}})
			},
			col:  planCol("ssn"),
			job:  func(j *Job) { j.DropCheckConstraints = true },
			want: []want{{SeverityAction, RuleCheckConstraint, "ck_ssn", "ssn", "restored on revert"}},
		},
		{
			name: "check constraint on another column does not matter",
			table: func(t *schema.Table) {
				t.Checks = append(t.Checks, &schema.Check{Name: "ck_id", Expr: "([id]>(0))", Columns: []string{"id"}})
			},
			col:  planCol("ssn"),
			none: []string{RuleCheckConstraint},
		},
		{
			name: "check constraint found in its text when the reader gave no columns",
			table: func(t *schema.Table) {
				t.Checks = append(t.Checks, &schema.Check{Name: "ck_x", Expr: "([SSN]<>'' AND [ssn_old] IS NULL)"})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleCheckConstraint, "ck_x", "ssn", ""}},
		},
		{
			name:  "default is a blocker",
			table: func(t *schema.Table) { t.Column("email").Default = "('unknown')" },
			col:   planCol("email"),
			want:  []want{{SeverityBlocker, RuleDefault, "dbo.customers.email", "email", "a default writes plaintext into the ciphertext column"}},
		},
		{
			name:  "default with drop_defaults is an action",
			table: func(t *schema.Table) { t.Column("email").Default = "('unknown')" },
			col:   planCol("email"),
			job:   func(j *Job) { j.DropDefaults = true },
			want:  []want{{SeverityAction, RuleDefault, "", "email", "restored on revert"}},
		},
		{
			name: "trigger referencing the column",
			table: func(t *schema.Table) {
				t.Triggers = append(t.Triggers,
					&schema.Trigger{Name: "trg_audit", Columns: []string{"ssn", "id"}},
					&schema.Trigger{Name: "trg_other", Columns: []string{"email"}},
					&schema.Trigger{Name: "colcrypt_catchup_customers", Columns: []string{"ssn"}})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleTrigger, "trg_audit", "ssn", "before executing this operation, you must drop trigger trg_audit defined on dbo.customers"}},
		},
		{
			name: "view depending on the column",
			table: func(t *schema.Table) {
				t.Dependents = append(t.Dependents, &schema.Dependent{Kind: "view", Name: "dbo.v_customers", Columns: []string{"ssn"}})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleDependent, "dbo.v_customers", "ssn", "view dbo.v_customers depends on dbo.customers.ssn"}},
		},
		{
			name: "statistics object covering the column",
			table: func(t *schema.Table) {
				t.Dependents = append(t.Dependents, &schema.Dependent{Kind: schema.KindStatistics, Name: "customers_ssn_stats", Columns: []string{"id", "ssn"}})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleDependent, "customers_ssn_stats", "ssn", "statistics object customers_ssn_stats covers dbo.customers.ssn, and the cut-over cannot drop a column such an object covers: drop it before the job (DROP STATISTICS)"}},
		},
		{
			name: "computed column depending on the column",
			table: func(t *schema.Table) {
				t.Dependents = append(t.Dependents, &schema.Dependent{Kind: "computed column", Name: "ssn_last4", Columns: []string{"ssn"}})
			},
			col:  planCol("ssn"),
			want: []want{{SeverityBlocker, RuleComputed, "ssn_last4", "ssn", "computed column ssn_last4"}},
		},
		{
			name: "planned column is computed",
			table: func(t *schema.Table) {
				c := mssqlCol("ssn_last4", "char(4)")
				c.Computed, c.ComputedExpr = true, "(right([ssn],(4)))"
				t.Columns = append(t.Columns, c)
			},
			col:  planCol("ssn_last4"),
			want: []want{{SeverityBlocker, RuleComputed, "dbo.customers.ssn_last4", "ssn_last4", "right([ssn],(4))"}},
		},
		{
			name: "3des is legacy",
			col:  planCol("ssn", withSuite(cipher.TripleDESCBC)),
			want: []want{{SeverityWarning, RuleLegacySuite, "dbo.customers.ssn", "ssn", "legacy"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := customers()
			if tc.table != nil {
				tc.table(tbl)
			}
			fs := check(t, d, tc.job, tc.opt, fixture{tbl, []ColumnPlan{tc.col}})[0]
			for _, w := range tc.want {
				requireFinding(t, fs, w)
			}
			for _, r := range tc.none {
				requireNoRule(t, fs, r)
			}
			for _, f := range fs {
				if f.Message == "" || f.Object == "" || f.Rule == "" {
					t.Errorf("finding without rule, object or message: %+v", f)
				}
			}
		})
	}
}

// orders references customers.ssn through fk_orders_customer.
func ordersReferencingSSN() (*schema.Table, *schema.Table) {
	cust := customers()
	cust.PrimaryKey.Columns = []string{"ssn"}
	id := mssqlCol("id", "int")
	id.Nullable = false
	orders := &schema.Table{
		Name:       schema.TableName{Schema: "dbo", Name: "orders"},
		Columns:    []*schema.Column{id, mssqlCol("customer_ssn", "char(11)")},
		PrimaryKey: &schema.Index{Name: "pk_orders", Columns: []string{"id"}, Unique: true, Primary: true, Constraint: true},
	}
	fk := &schema.ForeignKey{Name: "fk_orders_customer", Table: orders.Name, Columns: []string{"customer_ssn"},
		RefTable: cust.Name, RefColumns: []string{"ssn"}}
	orders.ForeignKeys = []*schema.ForeignKey{fk}
	cust.ReferencedBy = []*schema.ForeignKey{fk}
	return cust, orders
}

func TestForeignKeyRules(t *testing.T) {
	d := sqlServer(t)
	tests := []struct {
		name         string
		custCol      ColumnPlan
		ordersCols   []ColumnPlan // nil: orders is not in the plan
		wantCust     want
		wantOrders   *want
		wantNoOrders bool
		notInMsg     string // text no foreign-key finding may hold
	}{
		{
			name:     "referencing column not in the plan",
			custCol:  planCol("ssn", ivColumn),
			wantCust: want{SeverityBlocker, RuleReferencedByFK, "fk_orders_customer", "ssn", "dbo.orders.customer_ssn is not in the plan"},
		},
		{
			name:       "both planned alike with iv: column",
			custCol:    planCol("ssn", ivColumn),
			ordersCols: []ColumnPlan{planCol("customer_ssn", ivColumn)},
			wantCust:   want{SeverityAction, RuleReferencedByFK, "fk_orders_customer", "ssn", "recreated once both are swapped"},
			wantOrders: &want{SeverityAction, RuleForeignKey, "fk_orders_customer", "customer_ssn", "recreated once both are swapped"},
		},
		{
			name:       "different keys",
			custCol:    planCol("ssn", ivColumn),
			ordersCols: []ColumnPlan{planCol("customer_ssn", ivColumn, withKey("other"))},
			wantCust:   want{SeverityBlocker, RuleReferencedByFK, "", "ssn", "uses key pii and dbo.orders.customer_ssn key other"},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "", "customer_ssn", "references dbo.customers.ssn"},
		},
		{
			name:       "different suites",
			custCol:    planCol("ssn", ivColumn),
			ordersCols: []ColumnPlan{planCol("customer_ssn", ivColumn, withSuite(cipher.AES128CBC))},
			wantCust:   want{SeverityBlocker, RuleReferencedByFK, "", "ssn", "suite"},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "", "customer_ssn", "suite"},
		},
		{
			name:       "field-level IVs on the referencing side",
			custCol:    planCol("ssn", ivColumn),
			ordersCols: []ColumnPlan{planCol("customer_ssn")},
			wantCust:   want{SeverityBlocker, RuleReferencedByFK, "", "ssn", "dbo.orders.customer_ssn uses iv: field"},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "", "customer_ssn", "customer_ssn uses iv: field"},
		},
		{
			// Both sides are planned: the remedy is the IV mode of the side
			// that has iv: field, not adding a column already in the plan.
			name:       "field-level IVs on the referencing side, remedy",
			custCol:    planCol("ssn", ivColumn),
			ordersCols: []ColumnPlan{planCol("customer_ssn")},
			wantCust:   want{SeverityBlocker, RuleReferencedByFK, "", "ssn", "set iv: column for dbo.orders.customer_ssn in the plan"},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "", "customer_ssn", "set iv: column for dbo.orders.customer_ssn in the plan"},
			notInMsg:   "to the plan",
		},
		{
			name:       "field-level IVs on both sides, remedy",
			custCol:    planCol("ssn"),
			ordersCols: []ColumnPlan{planCol("customer_ssn")},
			wantCust:   want{SeverityBlocker, RuleReferencedByFK, "", "ssn", "set iv: column for both dbo.customers.ssn and dbo.orders.customer_ssn"},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "", "customer_ssn", "set iv: column for both dbo.orders.customer_ssn and dbo.customers.ssn"},
			notInMsg:   "to the plan",
		},
		{
			name:       "different keys, remedy",
			custCol:    planCol("ssn", ivColumn),
			ordersCols: []ColumnPlan{planCol("customer_ssn", ivColumn, withKey("other"))},
			wantCust:   want{SeverityBlocker, RuleReferencedByFK, "", "ssn", "give dbo.customers.ssn and dbo.orders.customer_ssn the same key"},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "", "customer_ssn", "give dbo.orders.customer_ssn and dbo.customers.ssn the same key"},
			notInMsg:   "to the plan",
		},
		{
			name:       "foreign key side: referenced column not in the plan",
			custCol:    planCol("email"),
			ordersCols: []ColumnPlan{planCol("customer_ssn", ivColumn)},
			wantCust:   want{},
			wantOrders: &want{SeverityBlocker, RuleForeignKey, "fk_orders_customer", "customer_ssn", "dbo.customers.ssn is not in the plan"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cust, orders := ordersReferencingSSN()
			fx := []fixture{{cust, []ColumnPlan{tc.custCol}}}
			if tc.ordersCols != nil {
				fx = append(fx, fixture{orders, tc.ordersCols})
			}
			fs := check(t, d, nil, Options{}, fx...)
			if tc.wantCust != (want{}) {
				requireFinding(t, fs[0], tc.wantCust)
			}
			if tc.wantOrders != nil {
				requireFinding(t, fs[1], *tc.wantOrders)
			}
			if tc.notInMsg != "" {
				for _, tfs := range fs {
					for _, f := range tfs {
						if (f.Rule == RuleForeignKey || f.Rule == RuleReferencedByFK) && strings.Contains(f.Message, tc.notInMsg) {
							t.Errorf("%s finding says %q: %s", f.Rule, tc.notInMsg, f.Message)
						}
					}
				}
			}
		})
	}
}

func TestTableRules(t *testing.T) {
	d := sqlServer(t)
	t.Run("no usable key", func(t *testing.T) {
		tbl := customers()
		tbl.PrimaryKey = nil
		fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
		requireFinding(t, fs, want{SeverityAction, RuleNoKey, "dbo.customers", "", "colcrypt_row_id"})
	})
	t.Run("unique NOT NULL key is usable", func(t *testing.T) {
		tbl := customers()
		tbl.PrimaryKey = nil
		tbl.Indexes = []*schema.Index{{Name: "ux_id", Columns: []string{"id"}, Unique: true}}
		fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
		requireNoRule(t, fs, RuleNoKey)
	})
	t.Run("unique NULLable key is not usable", func(t *testing.T) {
		tbl := customers()
		tbl.PrimaryKey = nil
		tbl.Indexes = []*schema.Index{{Name: "ux_ssn", Columns: []string{"ssn"}, Unique: true}}
		fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
		requireFinding(t, fs, want{SeverityAction, RuleNoKey, "", "", ""})
	})
	t.Run("primary key allowing NULL", func(t *testing.T) {
		// SQLite lets a primary key's columns hold NULL unless declared
		// NOT NULL: the message must not say there is no primary key.
		tbl := customers()
		tbl.PrimaryKey = &schema.Index{Name: "pk", Columns: []string{"id", "ssn"}, Unique: true}
		tbl.Indexes = nil
		tbl.Column("ssn").Nullable = true
		fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
		requireFinding(t, fs, want{SeverityAction, RuleNoKey, "dbo.customers", "",
			"the primary key of dbo.customers (id, ssn) has a column that allows NULL, and dbo.customers has no unique NOT NULL key"})
	})
	t.Run("column count", func(t *testing.T) {
		tbl := customers()
		for i := len(tbl.Columns); i < d.Limits().Columns; i++ {
			tbl.Columns = append(tbl.Columns, mssqlCol(fmt.Sprintf("c%d", i), "int"))
		}
		// 1,024 columns plus a ciphertext column and an IV column.
		fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("ssn", withSuite(cipher.AES256CBC))}})[0]
		requireFinding(t, fs, want{SeverityBlocker, RuleColumnCount, "dbo.customers", "", "1024 columns and the job adds 2"})

		tbl.Columns = tbl.Columns[:d.Limits().Columns-2]
		fs = check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("ssn", withSuite(cipher.AES256CBC))}})[0]
		requireNoRule(t, fs, RuleColumnCount)
	})
	t.Run("declared row size", func(t *testing.T) {
		tbl := customers()
		tbl.Columns = append(tbl.Columns, mssqlCol("notes", "nvarchar(3000)")) // 6,000 bytes
		// notes: 6,000 bytes of plaintext + 6,000/16+1 blocks of ciphertext
		// with the AEAD overhead: over 8,060 during the migration.
		fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("notes")}})[0]
		requireFinding(t, fs, want{SeverityWarning, RuleDeclaredRowSize, "dbo.customers", "", "8,060-byte"})

		fs = check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{planCol("email")}})[0]
		requireNoRule(t, fs, RuleDeclaredRowSize)
	})
}

func TestCheckSizing(t *testing.T) {
	limits := dialect.Limits{RowBytes: 8060, ValueBytes: 1 << 31, Columns: 1024}
	tr := &TableReport{Name: "dbo.docs", MaxRowBytesDuring: 9000, OffendingRows: 3, Columns: []*ColumnReport{
		{Name: "body", LargeObjects: 2, MaxPlainBytes: 600 << 20},
		{Name: "small"},
		{Name: "huge", ValueLimitRows: 1, MaxCiphertextBytes: 1<<31 + 16},
	}}
	fs := CheckSizing(tr, limits, DefaultLargeObjectLimit)
	requireFinding(t, fs, want{SeverityBlocker, RuleRowSize, "dbo.docs", "", "3 rows of dbo.docs would exceed the engine's 8,060-byte row limit"})
	requireFinding(t, fs, want{SeverityBlocker, RuleLargeObject, "dbo.docs.body", "body", "2 rows of dbo.docs.body hold values over the large-object limit of 524,288,000 bytes"})
	requireFinding(t, fs, want{SeverityBlocker, RuleValueLimit, "dbo.docs.huge", "huge", "1 row of dbo.docs.huge"})
	if len(fs) != 3 {
		t.Errorf("want 3 findings, got:\n%s", dump(fs))
	}

	// No in-row limit (PostgreSQL, SQLite): long rows are not a finding.
	if fs := CheckSizing(tr, dialect.Limits{}, DefaultLargeObjectLimit); len(fs) != 2 {
		t.Errorf("without a row limit want 2 findings, got:\n%s", dump(fs))
	}
}

func TestGroups(t *testing.T) {
	cust, orders := ordersReferencingSSN()
	// lines references orders(id); orders.id is not planned, and neither is
	// lines.order_id, so the key is not dropped and does not link them.
	lines := &schema.Table{
		Name:    schema.TableName{Schema: "dbo", Name: "lines"},
		Columns: []*schema.Column{mssqlCol("order_id", "int"), mssqlCol("note", "nvarchar(100)")},
		ForeignKeys: []*schema.ForeignKey{{Name: "fk_lines_order", Table: schema.TableName{Schema: "dbo", Name: "lines"},
			Columns: []string{"order_id"}, RefTable: orders.Name, RefColumns: []string{"id"}}},
	}
	other := customers()
	other.Name.Name = "suppliers"
	// Plan order: lines, suppliers, orders, customers.
	_, targets := targetsOf(
		fixture{lines, []ColumnPlan{planCol("note")}},
		fixture{other, []ColumnPlan{planCol("email")}},
		fixture{orders, []ColumnPlan{planCol("customer_ssn", ivColumn)}},
		fixture{cust, []ColumnPlan{planCol("ssn", ivColumn)}},
	)
	got := Groups(targets)
	wantGroups := [][]string{{"dbo.lines"}, {"dbo.suppliers"}, {"dbo.orders", "dbo.customers"}}
	if !reflect.DeepEqual(got, wantGroups) {
		t.Fatalf("Groups = %v, want %v", got, wantGroups)
	}

	// Once lines.order_id is planned, fk_lines_order is dropped too, and
	// lines joins the group of orders (whose first table is lines).
	targets[0].Plan.Columns = append(targets[0].Plan.Columns, planCol("order_id", ivColumn))
	got = Groups(targets)
	wantGroups = [][]string{{"dbo.lines", "dbo.orders", "dbo.customers"}, {"dbo.suppliers"}}
	if !reflect.DeepEqual(got, wantGroups) {
		t.Fatalf("Groups = %v, want %v", got, wantGroups)
	}
}

func TestMentions(t *testing.T) {
	tests := []struct {
		text, name string
		want       bool
	}{
		{"new.ssn <> old.ssn", "ssn", true},
		{"NEW.SSN", "ssn", true},
		{"[ssn]", "ssn", true},
		{`"ssn"`, "ssn", true},
		{"ssn_old = 1", "ssn", false},
		{"old_ssn = 1", "ssn", false},
		{"x.ssn2", "ssn", false},
		{"", "ssn", false},
	}
	for _, tc := range tests {
		if got := mentions(tc.text, tc.name); got != tc.want {
			t.Errorf("mentions(%q, %q) = %v, want %v", tc.text, tc.name, got, tc.want)
		}
	}
}

// TestIndexExpressionRules: an index recreated from its definition
// evaluates its key expressions and its WHERE clause on whatever the
// columns hold: when they use a planned column, on ciphertext. Such an
// index is a blocker naming it; a partial index whose WHERE clause uses
// no planned column is rebuilt like any other, its clause unchanged.
func TestIndexExpressionRules(t *testing.T) {
	d := sqlServer(t)
	lower := &schema.Index{Name: "ix_lower", Columns: []string{"email"}, Expression: true, ExprColumns: []string{"email"},
		Definition: "CREATE INDEX ix_lower ON customers (lower(email))"}
	nonEmpty := &schema.Index{Name: "ux_email", Columns: []string{"email"}, Unique: true, Partial: true, ExprColumns: []string{"email"},
		Definition: "CREATE UNIQUE INDEX ux_email ON customers (email) WHERE email <> ''"}
	active := &schema.Index{Name: "ux_active_email", Columns: []string{"email", "active"}, Unique: true, Partial: true, ExprColumns: []string{"active"},
		Definition: "CREATE UNIQUE INDEX ux_active_email ON customers (email) WHERE active = 1"}
	activeIx := &schema.Index{Name: "ix_active_email", Columns: []string{"email", "active"}, Partial: true, ExprColumns: []string{"active"}}
	mixed := &schema.Index{Name: "ix_mixed", Columns: []string{"ssn", "email"}, Expression: true, ExprColumns: []string{"email"}}
	both := &schema.Index{Name: "ix_both", Columns: []string{"email", "ssn"}, Expression: true, Partial: true, ExprColumns: []string{"email", "ssn"}}
	tests := []struct {
		name string
		ix   *schema.Index
		col  ColumnPlan
		want []want
		none []Severity // severities no finding on the index may have
	}{
		{
			name: "expression key on the column",
			ix:   lower, col: planCol("email", ivColumn),
			want: []want{{SeverityBlocker, RuleIndex, "ix_lower", "email", "index ix_lower uses dbo.customers.email in a key expression (CREATE INDEX ix_lower ON customers (lower(email)))"}},
			none: []Severity{SeverityAction, SeverityWarning},
		},
		{
			name: "the message says what to do",
			ix:   lower, col: planCol("email"),
			want: []want{{SeverityBlocker, RuleIndex, "ix_lower", "email", "drop the index before apply and, after it, create what the application needs on the ciphertext column"}},
		},
		{
			name: "WHERE clause on the column, which is also the key",
			ix:   nonEmpty, col: planCol("email", ivColumn),
			want: []want{{SeverityBlocker, RuleIndex, "ux_email", "email", "uses dbo.customers.email in its WHERE clause"}},
			none: []Severity{SeverityAction},
		},
		{
			name: "WHERE clause on another column, unique, iv: column",
			ix:   active, col: planCol("email", ivColumn),
			want: []want{{SeverityAction, RuleUnique, "ux_active_email", "email", "recreated on the ciphertext column, with its WHERE clause unchanged"}},
			none: []Severity{SeverityBlocker},
		},
		{
			name: "WHERE clause on another column, unique, iv: field",
			ix:   active, col: planCol("email"),
			want: []want{{SeverityBlocker, RuleUnique, "ux_active_email", "email", "field-level IVs cannot keep a unique constraint"}},
		},
		{
			name: "WHERE clause on another column, not unique",
			ix:   activeIx, col: planCol("email", ivColumn),
			want: []want{
				{SeverityAction, RuleIndex, "ix_active_email", "email", "rebuilt on the ciphertext column, with its WHERE clause unchanged"},
				{SeverityWarning, RuleIndex, "ix_active_email", "email", "equality lookups only"},
			},
			none: []Severity{SeverityBlocker},
		},
		{
			name: "the column the WHERE clause uses",
			ix:   active, col: planCol("active", ivColumn),
			want: []want{{SeverityBlocker, RuleIndex, "ux_active_email", "active", "uses dbo.customers.active in its WHERE clause"}},
			none: []Severity{SeverityAction},
		},
		{
			name: "a plain key column of an index with an expression on another",
			ix:   mixed, col: planCol("ssn", ivColumn),
			want: []want{{SeverityAction, RuleIndex, "ix_mixed", "ssn", "rebuilt"}},
			none: []Severity{SeverityBlocker},
		},
		{
			name: "expression and WHERE clause",
			ix:   both, col: planCol("ssn"),
			want: []want{{SeverityBlocker, RuleIndex, "ix_both", "ssn", "in a key expression or its WHERE clause"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := customers()
			tbl.Columns = append(tbl.Columns, mssqlCol("active", "int"))
			ix := *tc.ix
			tbl.Indexes = []*schema.Index{&ix}
			fs := check(t, d, nil, Options{}, fixture{tbl, []ColumnPlan{tc.col}})[0]
			for _, w := range tc.want {
				requireFinding(t, fs, w)
			}
			for _, f := range fs {
				for _, sev := range tc.none {
					if f.Object == ix.Name && f.Severity == sev {
						t.Errorf("unexpected %s on %s: %s", sev, ix.Name, f.Message)
					}
				}
			}
		})
	}
}

// TestExtendedStatisticsRule: PostgreSQL drops an extended statistics
// object with a column it covers, where SQL Server refuses to drop the
// column: a warning that gives the definition to create it again, not a
// blocker and not an action (revert does not bring it back).
func TestExtendedStatisticsRule(t *testing.T) {
	tbl := customers()
	tbl.Dependents = []*schema.Dependent{{Kind: schema.KindExtendedStatistics, Name: "customers_st", Columns: []string{"ssn", "email"},
		Definition: "CREATE STATISTICS public.customers_st (dependencies) ON ssn, email FROM customers"}}
	fs := check(t, sqlServer(t), nil, Options{}, fixture{tbl, []ColumnPlan{planCol("ssn")}})[0]
	requireFinding(t, fs, want{SeverityWarning, RuleDependent, "customers_st", "ssn",
		"the cut-over drops it with the plaintext column, and colcrypt recreates it neither after the job nor on revert"})
	requireFinding(t, fs, want{SeverityWarning, RuleDependent, "customers_st", "ssn", "CREATE STATISTICS public.customers_st (dependencies) ON ssn, email FROM customers"})
	for _, f := range fs {
		if f.Object == "customers_st" && f.Severity != SeverityWarning {
			t.Errorf("unexpected %s: %s", f.Severity, f.Message)
		}
	}
}

// blockersOn lists the objects of a report's blockers for one column.
func blockersOn(r *Report, column string) []string {
	var out []string
	for _, tr := range r.Tables {
		for _, f := range tr.Findings {
			if f.Severity == SeverityBlocker && f.Column == column {
				out = append(out, f.Object)
			}
		}
	}
	return out
}

// TestAnalyzeIndexOnExpressionOrPredicate runs the index rules on the
// catalogs of real engines: the audit's indexes that failed apply
// (PostgreSQL: lower(bytea) does not exist, bytea <> text; SQLite: the
// cut-over's UNIQUE constraint failed, as every empty string encrypts
// alike and passes the WHERE clause) are blockers naming them, and a
// unique partial index whose WHERE clause uses another column is rebuilt.
func TestAnalyzeIndexOnExpressionOrPredicate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testDB) {
		e.exec(t, "CREATE TABLE pu (id int PRIMARY KEY, email varchar(64), active int)",
			"INSERT INTO pu (id, email, active) VALUES (1, 'a@x', 1), (2, '', 0), (3, '', 0), (4, NULL, 0)",
			"CREATE UNIQUE INDEX pu_email ON pu (email) WHERE email <> ''",
			"CREATE INDEX ei_lower ON pu (lower(email))",
			"CREATE UNIQUE INDEX pu_active ON pu (email) WHERE active = 1")
		r := e.analyze(t, `tables:
  - name: pu
    columns:
      - name: email
        iv: column
`)
		got := blockersOn(r, "email")
		sort.Strings(got)
		if !reflect.DeepEqual(got, []string{"ei_lower", "pu_email"}) {
			t.Errorf("blockers on email: %v, want ei_lower and pu_email:\n%s", got, dump(r.Tables[0].Findings))
		}
		requireFinding(t, r.Tables[0].Findings, want{SeverityAction, RuleUnique, "pu_active", "email", "WHERE clause unchanged"})
	})
}

// TestAnalyzePostgresDependents runs the dependent rules on PostgreSQL's
// catalog with the objects an audit found apply breaking on: a rule using
// the column (the cut-over's DROP COLUMN failed), and views of the whole
// row (they showed ciphertext and the IV column after it); and a view that
// reads the table without using the column, which must not block. An
// extended statistics object, which the cut-over drops, is a warning.
func TestAnalyzePostgresDependents(t *testing.T) {
	e := openPostgres(t)
	e.exec(t, "CREATE SCHEMA aud", "CREATE TABLE aud.log (tbl text, col text, val text)",
		"CREATE TABLE tr4 (id int PRIMARY KEY, card text, a int, b int)",
		"INSERT INTO tr4 VALUES (1, '4111', 1, 1), (2, NULL, 2, 2)",
		"CREATE RULE tr4_rule AS ON INSERT TO tr4 DO ALSO INSERT INTO aud.log VALUES ('tr4', 'card', NEW.card)",
		"CREATE VIEW tr4_api AS SELECT id, row_to_json(c) AS doc FROM tr4 c",
		"CREATE VIEW tr4_rows AS SELECT t FROM tr4 t",
		"CREATE VIEW tr4_count AS SELECT count(*) FROM tr4",
		"CREATE VIEW tr4_ids AS SELECT id, a FROM tr4",
		"CREATE STATISTICS tr4_st (dependencies) ON a, b FROM tr4")
	r := e.analyze(t, `tables:
  - name: tr4
    columns:
      - name: card
      - name: b
`)
	if got := blockersOn(r, "card"); !reflect.DeepEqual(got, []string{"tr4_rule on tr4", "tr4_api", "tr4_rows"}) {
		t.Errorf("blockers on card: %v, want the rule and the two whole-row views:\n%s", got, dump(r.Tables[0].Findings))
	}
	if got := blockersOn(r, "b"); !reflect.DeepEqual(got, []string{"tr4_api", "tr4_rows"}) {
		t.Errorf("blockers on b: %v, want the two whole-row views:\n%s", got, dump(r.Tables[0].Findings))
	}
	requireFinding(t, r.Tables[0].Findings, want{SeverityBlocker, RuleDependent, "tr4_rule on tr4", "card", "rule tr4_rule on tr4 depends on tr4.card"})
	requireFinding(t, r.Tables[0].Findings, want{SeverityWarning, RuleDependent, "tr4_st", "b", "CREATE STATISTICS public.tr4_st (dependencies) ON a, b FROM tr4"})
}
