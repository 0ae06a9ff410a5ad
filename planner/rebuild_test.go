package planner

import (
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/sqlite" // an engine that rebuilds tables
	"github.com/colcrypt/colcrypt/schema"
)

// TestReadOnlyRule: the plan tells a DBA beforehand which tables an
// offline job keeps read-only (SQLite builds their replacement during the
// copy), and no other.
func TestReadOnlyRule(t *testing.T) {
	lite, err := dialect.Get("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	offline := func(*Job) {}
	online := func(j *Job) { j.Online = true }
	withFK := func() *schema.Table {
		cust, _ := ordersReferencingSSN() // orders.customer_ssn → customers.ssn
		cust.PrimaryKey.Columns = []string{"id"}
		return cust
	}
	tests := []struct {
		name   string
		engine Engine
		job    func(*Job)
		table  *schema.Table
		col    string
		want   bool
	}{
		{"SQLite, offline", lite, offline, customers(), "email", true},
		{"SQLite, online", lite, online, customers(), "email", false},
		{"SQLite, the key is planned", lite, offline, customers(), "id", false},
		{"SQLite, a foreign key references the planned column", lite, offline, withFK(), "ssn", false},
		{"SQLite, a foreign key references another column", lite, offline, withFK(), "email", true},
		{"SQL Server, offline", sqlServer(t), offline, customers(), "email", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := check(t, tc.engine, tc.job, Options{}, fixture{tc.table, []ColumnPlan{planCol(tc.col)}})[0]
			if tc.want {
				requireFinding(t, fs, want{SeverityAction, RuleReadOnly, "dbo.customers", "", "read-only from prepare"})
			} else {
				requireNoRule(t, fs, RuleReadOnly)
			}
		})
	}
}
