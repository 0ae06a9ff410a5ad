package sqlserver

import (
	"context"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/dialecttest"
)

// dsnEnv names the variable holding the DSN of a SQL Server database the
// integration tests may change freely.
const dsnEnv = "COLCRYPT_SQLSERVER_DSN"

// sameExpr holds when a and b are both NULL or hold the same bytes: a
// VARBINARY comparison ignores trailing zero bytes, so the lengths are
// compared too. Every supported type, text, ntext, image and xml included,
// converts to VARBINARY ("binary and varbinary (Transact-SQL)", "CAST and
// CONVERT": xml data type).
func sameExpr(a, b string) string {
	ba := "CAST(" + a + " AS VARBINARY(MAX))"
	bb := "CAST(" + b + " AS VARBINARY(MAX))"
	return "(" + a + " IS NULL AND " + b + " IS NULL OR " +
		ba + " = " + bb + " AND DATALENGTH(" + ba + ") = DATALENGTH(" + bb + "))"
}

func placeholder(n int) string { return "@p" + strconv.Itoa(n) }

// conformanceTypes are the supported types with their awkward literals and
// NULL.
func conformanceTypes() []dialecttest.TypeCase {
	var out []dialecttest.TypeCase
	for _, tc := range typeCases {
		out = append(out, dialecttest.TypeCase{Declared: tc.ddl, Literals: append(append([]string{}, tc.literals...), "NULL")})
	}
	return out
}

func unsupportedDeclared() []string {
	var out []string
	for _, tc := range unsupportedCases {
		out = append(out, tc.ddl)
	}
	return out
}

func openTestDB(t *testing.T) dialect.Dialect {
	t.Helper()
	if os.Getenv(dsnEnv) == "" {
		t.Skip(dsnEnv + " is not set: SQL Server conformance suite not run")
	}
	d, err := dialect.Get("sqlserver")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	d := openTestDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := d.Open(ctx, os.Getenv(dsnEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dialecttest.Run(t, dialecttest.Engine{
		Dialect:     d,
		DB:          db,
		Fixture:     fixtureDDL,
		Types:       conformanceTypes(),
		Unsupported: unsupportedDeclared(),
		Same:        sameExpr,
		Placeholder: placeholder,
	})
}

// TestCatalogFixturesMatchServer checks the catalog rows the unit tests
// feed buildTable against what SQL Server really returns for the same DDL,
// so that the pure tests stay honest.
func TestCatalogFixturesMatchServer(t *testing.T) {
	d := openTestDB(t)
	ctx := t.Context()
	db, err := d.Open(ctx, os.Getenv(dsnEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	drop := func() {
		for _, stmt := range fixtureDrop {
			if _, err := db.ExecContext(context.Background(), stmt); err != nil {
				t.Logf("cleanup: %v (%s)", err, stmt)
			}
		}
	}
	drop()
	t.Cleanup(drop)
	for _, stmt := range fixtureDDL {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	for _, want := range []catalogRows{customersRows, ordersRows, auditRows, oddRows} {
		got, err := readCatalog(ctx, db, quoteTable(schemaName(want.Table)))
		if err != nil {
			t.Fatalf("%s: %v", want.Table.Name, err)
		}
		got, want := withoutIDs(got), withoutIDs(want)
		for _, part := range []struct {
			name      string
			got, want any
		}{
			{"columns", got.Columns, want.Columns},
			{"indexes", got.Indexes, want.Indexes},
			{"foreign keys", got.ForeignKeys, want.ForeignKeys},
			{"checks", got.Checks, want.Checks},
			{"triggers", got.Triggers, want.Triggers},
			{"dependencies", got.Dependencies, want.Dependencies},
			{"statistics", got.Statistics, want.Statistics},
		} {
			if !reflect.DeepEqual(part.got, part.want) {
				t.Errorf("%s %s: server returned\n%+v\nfixture has\n%+v", want.Table.Name, part.name, part.got, part.want)
			}
		}
	}
}

// withoutIDs zeroes what the server assigns (object IDs, row counts) and
// empties nil slices, leaving what the fixture asserts.
func withoutIDs(r catalogRows) catalogRows {
	r.Table.ObjectID, r.Table.RowCount = 0, 0
	fks := []foreignKeyColumnRow{}
	for _, f := range r.ForeignKeys {
		f.ObjectID, f.ParentID, f.RefID = 0, 0, 0
		fks = append(fks, f)
	}
	r.ForeignKeys = fks
	trs := []triggerRow{}
	for _, tr := range r.Triggers {
		tr.ObjectID = 0
		trs = append(trs, tr)
	}
	r.Triggers = trs
	deps := []dependencyRow{}
	for _, d := range r.Dependencies {
		d.ReferencingID = 0
		deps = append(deps, d)
	}
	r.Dependencies = deps
	r.Columns = append([]columnRow{}, r.Columns...)
	r.Indexes = append([]indexColumnRow{}, r.Indexes...)
	r.Checks = append([]checkRow{}, r.Checks...)
	return r
}

// TestInRowLenExpr: MAX and LOB values over 8000 bytes count against the
// row limit as their pointer (24 bytes; 16 for text, ntext and image),
// every other value in full, in T-SQL that parses.
func TestInRowLenExpr(t *testing.T) {
	d := sqlServer{}
	for declared, want := range map[string]string{
		"nvarchar(max)":  "CASE WHEN DATALENGTH([c]) > 8000 THEN 24 ELSE DATALENGTH([c]) END",
		"varchar(max)":   "CASE WHEN DATALENGTH([c]) > 8000 THEN 24 ELSE DATALENGTH([c]) END",
		"VARBINARY(MAX)": "CASE WHEN DATALENGTH([c]) > 8000 THEN 24 ELSE DATALENGTH([c]) END",
		"xml":            "CASE WHEN DATALENGTH([c]) > 8000 THEN 24 ELSE DATALENGTH([c]) END",
		"text":           "CASE WHEN DATALENGTH([c]) > 8000 THEN 16 ELSE DATALENGTH([c]) END",
		"ntext":          "CASE WHEN DATALENGTH([c]) > 8000 THEN 16 ELSE DATALENGTH([c]) END",
		"image":          "CASE WHEN DATALENGTH([c]) > 8000 THEN 16 ELSE DATALENGTH([c]) END",
		"nvarchar(4000)": "DATALENGTH([c])",
		"VARBINARY(48)":  "DATALENGTH([c])",
		"char(8000)":     "DATALENGTH([c])",
	} {
		got := d.InRowLenExpr(declared, "DATALENGTH([c])")
		if got != want {
			t.Errorf("%s: %s, want %s", declared, got, want)
		}
		requireTSQL(t, declared, "SELECT MAX(CAST("+got+" AS BIGINT)) FROM [dbo].[t]")
	}
}
