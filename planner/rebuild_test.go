package planner

import (
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/postgres" // engines that rebuild tables
	_ "github.com/colcrypt/colcrypt/dialect/sqlite"
	"github.com/colcrypt/colcrypt/schema"
)

// TestReadOnlyRule: the plan tells a DBA beforehand which tables an
// offline job keeps read-only (SQLite and PostgreSQL build their
// replacement during the copy), and which it guards instead (encrypted in
// place: no new rows, no new values of planned columns), and no other.
func TestReadOnlyRule(t *testing.T) {
	lite, err := dialect.Get("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := dialect.Get("postgres")
	if err != nil {
		t.Fatal(err)
	}
	offline := func(*Job) {}
	withView := func() *schema.Table {
		c := customers()
		c.Unmovable = []string{"rule _RETURN on view customer_ids"}
		return c
	}
	withoutKey := func() *schema.Table {
		c := customers()
		c.PrimaryKey = nil
		c.Indexes = nil
		return c
	}
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
		// guarded: encrypted in place offline on an engine with a
		// dialect.WriteGuard.
		guarded bool
	}{
		{"SQLite, offline", lite, offline, customers(), "email", true, false},
		{"SQLite, online", lite, online, customers(), "email", false, false},
		{"SQLite, the key is planned", lite, offline, customers(), "id", false, true},
		{"SQLite, a foreign key references the planned column", lite, offline, withFK(), "ssn", false, true},
		{"SQLite, a foreign key references another column", lite, offline, withFK(), "email", true, false},
		{"PostgreSQL, offline", pg, offline, customers(), "email", true, false},
		{"PostgreSQL, online", pg, online, customers(), "email", false, false},
		{"PostgreSQL, a view bound to the table", pg, offline, withView(), "email", false, true},
		{"PostgreSQL, no key: a row-id column is added in place", pg, offline, withoutKey(), "email", false, true},
		{"SQLite, no key: paged by rowid", lite, offline, withoutKey(), "email", true, false},
		{"SQL Server, offline: always in place", sqlServer(t), offline, customers(), "email", false, true},
		{"SQL Server, online", sqlServer(t), online, customers(), "email", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := check(t, tc.engine, tc.job, Options{}, fixture{tc.table, []ColumnPlan{planCol(tc.col)}})[0]
			if tc.want {
				requireFinding(t, fs, want{SeverityAction, RuleReadOnly, "dbo.customers", "", "read-only from prepare"})
			} else {
				requireNoRule(t, fs, RuleReadOnly)
			}
			if tc.guarded {
				requireFinding(t, fs, want{SeverityAction, RuleGuarded, "dbo.customers", "", "a new row or a new value of a planned column fails"})
			} else {
				requireNoRule(t, fs, RuleGuarded)
			}
		})
	}
}
