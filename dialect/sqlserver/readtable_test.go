package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// catalogDriver is a database/sql driver that answers the catalog queries
// with fixture rows, typed as go-mssqldb returns them (int64 for every
// integer type, bool for bit, string for the char types), for one table
// name passed as @p1. It proves ReadTable's plumbing: the parameter, the
// scan of every column in order, and the not-found path.
type catalogDriver struct {
	mu   sync.Mutex
	name string // the @p1 that has rows
	rows catalogRows
}

func (d *catalogDriver) Open(string) (driver.Conn, error) { return catalogConn{d}, nil }

type catalogConn struct{ d *catalogDriver }

func (c catalogConn) Prepare(q string) (driver.Stmt, error) { return catalogStmt{c.d, q}, nil }
func (catalogConn) Close() error                            { return nil }
func (catalogConn) Begin() (driver.Tx, error)               { return nil, errors.New("no transactions") }

type catalogStmt struct {
	d *catalogDriver
	q string
}

func (catalogStmt) Close() error  { return nil }
func (catalogStmt) NumInput() int { return 1 }
func (catalogStmt) Exec([]driver.Value) (driver.Result, error) {
	return nil, errors.New("catalog reads never write")
}

func (s catalogStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if len(args) != 1 {
		return nil, fmt.Errorf("want one argument, got %d", len(args))
	}
	if args[0] != s.d.name {
		return &catalogResult{}, nil // OBJECT_ID gives NULL: no rows
	}
	var rows any
	switch s.q {
	case tableQuery:
		rows = []tableRow{s.d.rows.Table}
	case columnsQuery:
		rows = s.d.rows.Columns
	case indexesQuery:
		rows = s.d.rows.Indexes
	case foreignKeysQuery:
		rows = s.d.rows.ForeignKeys
	case checksQuery:
		rows = s.d.rows.Checks
	case triggersQuery:
		rows = s.d.rows.Triggers
	case dependenciesQuery:
		var deps []dependencyRow
		for _, d := range s.d.rows.Dependencies {
			d.Type = fmt.Sprintf("%-2s", d.Type) // char(2), blank-padded
			deps = append(deps, d)
		}
		rows = deps
	case statisticsQuery:
		rows = s.d.rows.Statistics
	default:
		return nil, fmt.Errorf("unexpected query %q", s.q)
	}
	return newCatalogResult(rows), nil
}

type catalogResult struct {
	cols []string
	rows [][]driver.Value
}

// newCatalogResult turns a slice of row structs into driver rows, one
// column per field in field order, which is the select-list order.
func newCatalogResult(slice any) *catalogResult {
	v := reflect.ValueOf(slice)
	r := &catalogResult{}
	typ := v.Type().Elem()
	for i := 0; i < typ.NumField(); i++ {
		r.cols = append(r.cols, typ.Field(i).Name)
	}
	for i := 0; i < v.Len(); i++ {
		var row []driver.Value
		for j := 0; j < typ.NumField(); j++ {
			f := v.Index(i).Field(j)
			switch f.Kind() {
			case reflect.Int, reflect.Int64:
				row = append(row, f.Int())
			default:
				row = append(row, f.Interface())
			}
		}
		r.rows = append(r.rows, row)
	}
	return r
}

func (r *catalogResult) Columns() []string { return r.cols }
func (r *catalogResult) Close() error      { return nil }
func (r *catalogResult) Next(dest []driver.Value) error {
	if len(r.rows) == 0 {
		return io.EOF
	}
	copy(dest, r.rows[0])
	r.rows = r.rows[1:]
	return nil
}

var registerCatalogDriver sync.Once

var fakeCatalog = &catalogDriver{}

func openFakeCatalog(t *testing.T, quotedName string, rows catalogRows) *sql.DB {
	t.Helper()
	registerCatalogDriver.Do(func() { sql.Register("sqlserver-catalog-fixture", fakeCatalog) })
	fakeCatalog.mu.Lock()
	fakeCatalog.name, fakeCatalog.rows = quotedName, rows
	fakeCatalog.mu.Unlock()
	db, err := sql.Open("sqlserver-catalog-fixture", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestReadTableThroughDriver(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   schema.TableName
		quoted string
		rows   catalogRows
	}{
		{schema.TableName{Name: "cc_customers"}, "[dbo].[cc_customers]", customersRows},
		{schema.TableName{Schema: "dbo", Name: "cc_orders"}, "[dbo].[cc_orders]", ordersRows},
		{schema.TableName{Name: oddName.Name}, `[dbo].[cc odd "name" [x]]-y]`, oddRows},
	} {
		db := openFakeCatalog(t, tc.quoted, tc.rows)
		got, err := sqlServer{}.ReadTable(ctx, db, tc.name)
		if err != nil {
			t.Fatalf("ReadTable(%v): %v", tc.name, err)
		}
		if want := buildTable(tc.rows); !reflect.DeepEqual(got, want) {
			t.Errorf("ReadTable(%v) differs from buildTable of the same rows:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}
}

func TestReadTableNotFound(t *testing.T) {
	db := openFakeCatalog(t, "[dbo].[cc_customers]", customersRows)
	_, err := sqlServer{}.ReadTable(context.Background(), db, schema.TableName{Schema: "sales", Name: "cc_customers"})
	if !errors.Is(err, dialect.ErrTableNotFound) {
		t.Fatalf("err = %v, want ErrTableNotFound", err)
	}
	if !strings.Contains(err.Error(), "sales.cc_customers") {
		t.Errorf("error %q does not name the table", err)
	}
}

// TestSelectListsMatchRows keeps each catalog query's select list and its
// row struct in step: ReadTable scans the columns into the fields in order.
func TestSelectListsMatchRows(t *testing.T) {
	for q, row := range map[string]any{
		tableQuery: tableRow{}, columnsQuery: columnRow{}, indexesQuery: indexColumnRow{},
		foreignKeysQuery: foreignKeyColumnRow{}, checksQuery: checkRow{}, triggersQuery: triggerRow{},
		dependenciesQuery: dependencyRow{}, statisticsQuery: statisticsRow{},
	} {
		if got, want := selectListLen(q), reflect.TypeOf(row).NumField(); got != want {
			t.Errorf("%T has %d fields, its query selects %d columns:\n%s", row, want, got, q)
		}
	}
}

// selectListLen counts the top-level items between the first SELECT and
// its FROM.
func selectListLen(q string) int {
	upper := strings.ToUpper(q)
	start := strings.Index(upper, "SELECT") + len("SELECT")
	depth, items := 0, 1
	for i := start; i < len(q); i++ {
		switch q[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				items++
			}
		}
		if depth == 0 && strings.HasPrefix(upper[i:], "\nFROM ") {
			return items
		}
	}
	return -1
}
