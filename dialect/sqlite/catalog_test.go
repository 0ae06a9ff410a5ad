package sqlite

import (
	"reflect"
	"testing"

	"github.com/colcrypt/colcrypt/schema"
)

// TestReadTableExpressionAndPartialIndexes: an index whose key is an
// expression or that has a WHERE clause says so, and ExprColumns lists
// the columns those use, apart from its plain key columns: email in
// pu_email is both a key and in the WHERE clause.
func TestReadTableExpressionAndPartialIndexes(t *testing.T) {
	db := openTemp(t)
	for _, stmt := range []string{
		`CREATE TABLE pu (id INTEGER PRIMARY KEY, email TEXT, active INT, name TEXT)`,
		`CREATE UNIQUE INDEX pu_email ON pu (email) WHERE email <> ''`,
		`CREATE INDEX pu_lower ON pu (lower(email))`,
		`CREATE UNIQUE INDEX pu_active_email ON pu (email) WHERE active = 1`,
		`CREATE INDEX pu_mixed ON pu (name, lower(email))`,
		`CREATE INDEX pu_plain ON pu (email COLLATE NOCASE)`,
		`CREATE UNIQUE INDEX pu_notnull ON pu (email) WHERE email IS NOT NULL AND (name ISNULL OR NOT "active" NOT NULL)`,
		`CREATE INDEX pu_concat_null ON pu (name) WHERE email || 'x' IS NULL AND active = email IS NULL`,
		`CREATE INDEX pu_between ON pu (name) WHERE id BETWEEN 1 AND email IS NULL`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	tb, err := Dialect{}.ReadTable(t.Context(), db, schema.TableName{Name: "pu"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		expression, partial bool
		columns, expr       []string
	}{
		{"pu_email", false, true, []string{"email"}, []string{"email"}},
		{"pu_lower", true, false, []string{"email"}, []string{"email"}},
		{"pu_active_email", false, true, []string{"email", "active"}, []string{"active"}},
		{"pu_mixed", true, false, []string{"name", "email"}, []string{"email"}},
		{"pu_plain", false, false, []string{"email"}, nil},
		// NULL stays NULL: a test of the bare column for NULL holds on
		// the ciphertext; one of an expression of it does not.
		{"pu_notnull", false, true, []string{"email", "active", "name"}, nil},
		{"pu_concat_null", false, true, []string{"name", "email", "active"}, []string{"email", "active"}},
		{"pu_between", false, true, []string{"name", "id", "email"}, []string{"id", "email"}},
	}
	byName := map[string]*schema.Index{}
	for _, ix := range tb.Indexes {
		byName[ix.Name] = ix
	}
	for _, tc := range tests {
		ix := byName[tc.name]
		if ix == nil {
			t.Errorf("no index %s among %v", tc.name, indexNames(tb))
			continue
		}
		if ix.Expression != tc.expression || ix.Partial != tc.partial ||
			!reflect.DeepEqual(ix.Columns, tc.columns) || !reflect.DeepEqual(ix.ExprColumns, tc.expr) {
			t.Errorf("%s: Expression %v, Partial %v, Columns %v, ExprColumns %v; want %v, %v, %v, %v",
				tc.name, ix.Expression, ix.Partial, ix.Columns, ix.ExprColumns, tc.expression, tc.partial, tc.columns, tc.expr)
		}
	}
}
