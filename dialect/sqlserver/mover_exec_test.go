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

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// A recording database/sql driver: it logs every statement the mover sends
// (and BEGIN, COMMIT, ROLLBACK, the bulk rows), answers the existence
// checks from a set of columns, and fails the statement containing a given
// fragment. It shows how the mover drives a connection, which the pure
// statement tests cannot: the session setting around the transaction, the
// transaction around the steps, the bulk load inside it, what happens on a
// lock timeout.

type recorder struct {
	mu       sync.Mutex
	log      []string
	columns  map[string]bool // quoted table + "\x00" + column, lower case
	identity string          // the identity column identityColumnQuery finds, "" for none
	disabled map[string]bool // quoted triggers triggerDisabledSQL finds disabled
	failOn   string
	failErr  error
}

func (r *recorder) record(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = nil
}

func (r *recorder) statements() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.log...)
}

func (r *recorder) fail(query string) error {
	if r.failOn != "" && strings.Contains(query, r.failOn) {
		return r.failErr
	}
	return nil
}

var (
	recordersMu sync.Mutex
	recorders   = map[string]*recorder{}
	registerRec sync.Once
)

type recDriver struct{}

func (recDriver) Open(name string) (driver.Conn, error) {
	recordersMu.Lock()
	defer recordersMu.Unlock()
	r, ok := recorders[name]
	if !ok {
		return nil, fmt.Errorf("no recorder %q", name)
	}
	return &recConn{r: r}, nil
}

type recConn struct{ r *recorder }

func (c *recConn) Prepare(query string) (driver.Stmt, error) {
	return &recStmt{r: c.r, query: query}, nil
}
func (c *recConn) Close() error { return nil }
func (c *recConn) Begin() (driver.Tx, error) {
	c.r.record("BEGIN")
	return recTx{c.r}, nil
}

type recTx struct{ r *recorder }

func (t recTx) Commit() error   { t.r.record("COMMIT"); return nil }
func (t recTx) Rollback() error { t.r.record("ROLLBACK"); return nil }

type recStmt struct {
	r     *recorder
	query string
}

func (s *recStmt) Close() error  { return nil }
func (s *recStmt) NumInput() int { return -1 }

func (s *recStmt) Exec(args []driver.Value) (driver.Result, error) {
	if err := s.r.fail(s.query); err != nil {
		return nil, err
	}
	if strings.HasPrefix(s.query, "INSERTBULK ") {
		if len(args) == 0 {
			s.r.record("bulk load done")
		} else {
			s.r.record(fmt.Sprintf("bulk row %#v", args))
		}
		return driver.RowsAffected(0), nil
	}
	s.r.record(s.query)
	return driver.RowsAffected(0), nil
}

func (s *recStmt) Query(args []driver.Value) (driver.Rows, error) {
	if err := s.r.fail(s.query); err != nil {
		return nil, err
	}
	s.r.record(s.query)
	switch {
	case strings.HasPrefix(s.query, "SELECT COL_LENGTH("):
		key := strings.ToLower(args[0].(string) + "\x00" + args[1].(string))
		if s.r.columns[key] {
			return &recRows{cols: []string{""}, rows: [][]driver.Value{{int64(8)}}}, nil
		}
		return &recRows{cols: []string{""}, rows: [][]driver.Value{{nil}}}, nil
	case s.query == triggerDisabledSQL:
		n := int64(0)
		if s.r.disabled[args[0].(string)] {
			n = 1
		}
		return &recRows{cols: []string{""}, rows: [][]driver.Value{{n}}}, nil
	case s.query == identityColumnQuery:
		if s.r.identity == "" {
			return &recRows{cols: []string{"name"}}, nil
		}
		return &recRows{cols: []string{"name"}, rows: [][]driver.Value{{s.r.identity}}}, nil
	}
	return nil, fmt.Errorf("recorder: unexpected query %s", s.query)
}

type recRows struct {
	cols []string
	rows [][]driver.Value
}

func (r *recRows) Columns() []string { return r.cols }
func (r *recRows) Close() error      { return nil }
func (r *recRows) Next(dest []driver.Value) error {
	if len(r.rows) == 0 {
		return io.EOF
	}
	copy(dest, r.rows[0])
	r.rows = r.rows[1:]
	return nil
}

// openRecorder opens a database on a fresh recorder whose tables have the
// given columns ("[dbo].[t]", "column" pairs).
func openRecorder(t *testing.T, columns ...[2]string) (*sql.DB, *recorder) {
	t.Helper()
	registerRec.Do(func() { sql.Register("colcrypt-recorder", recDriver{}) })
	r := &recorder{columns: map[string]bool{}}
	for _, c := range columns {
		r.columns[strings.ToLower(c[0]+"\x00"+c[1])] = true
	}
	recordersMu.Lock()
	recorders[t.Name()] = r
	recordersMu.Unlock()
	db, err := sql.Open("colcrypt-recorder", t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, r
}

// liveColumns are the columns of the customers group's tables just before
// cut-over: the plaintext and the added ciphertext and IV columns.
func liveColumns(group []dialect.TableSwap, temp bool) [][2]string {
	var out [][2]string
	for _, ts := range group {
		qt := quoteTable(withDefaultSchema(ts.Table.Name))
		for _, sc := range ts.Columns {
			out = append(out, [2]string{qt, sc.Name})
			if temp {
				out = append(out, [2]string{qt, sc.Temp})
			}
		}
	}
	return out
}

func TestSwapRunsInOneTransactionWithLockTimeout(t *testing.T) {
	group := customersGroup(true)
	db, r := openRecorder(t, liveColumns(group, true)...)
	if err := (sqlServer{}).Swap(context.Background(), db, group); err != nil {
		t.Fatal(err)
	}
	steps, err := swapSteps(group, allPending(group))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SET LOCK_TIMEOUT 5000", "BEGIN"}
	for _, ts := range group { // one existence check per swapped column
		for range ts.Columns {
			want = append(want, "SELECT COL_LENGTH(@p1, @p2)")
		}
	}
	for range group { // and one look at each table's guard
		want = append(want, triggerDisabledSQL)
	}
	want = append(want, sqlOf(steps)...)
	want = append(want, "COMMIT", "SET LOCK_TIMEOUT -1")
	if got := r.statements(); !reflect.DeepEqual(got, want) {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSwapIsIdempotent: once the ciphertext columns are gone (an earlier
// run committed), Swap changes nothing.
func TestSwapIsIdempotent(t *testing.T) {
	group := customersGroup(true)
	db, r := openRecorder(t, liveColumns(group, false)...)
	if err := (sqlServer{}).Swap(context.Background(), db, group); err != nil {
		t.Fatal(err)
	}
	for _, s := range r.statements() {
		if strings.HasPrefix(s, "ALTER") || strings.HasPrefix(s, "IF") || strings.HasPrefix(s, "EXEC") {
			t.Errorf("Swap of a swapped group sent %s", s)
		}
	}
}

// TestSwapLockTimeoutRollsBack: a lock timeout ends the transaction, the
// session setting is restored, and the error keeps the server's error so
// that the engine's retry helper can tell it is transient.
func TestSwapLockTimeoutRollsBack(t *testing.T) {
	group := customersGroup(true)
	db, r := openRecorder(t, liveColumns(group, true)...)
	r.failOn = "DROP COLUMN [email]"
	r.failErr = mssql.Error{Number: 1222, Class: 16, Message: "Lock request time out period exceeded."}
	err := (sqlServer{}).Swap(context.Background(), db, group)
	var se mssql.Error
	if !errors.As(err, &se) || se.Number != 1222 {
		t.Fatalf("got %v, want the server's error 1222 wrapped", err)
	}
	for _, frag := range []string{"cut-over of dbo.cc_customers, dbo.cc_orders", "drop plaintext column email", "Lock request time out"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
	got := r.statements()
	if n := len(got); n < 2 || got[n-2] != "ROLLBACK" || got[n-1] != "SET LOCK_TIMEOUT -1" {
		t.Errorf("after the failure: %v", got[max(0, len(got)-3):])
	}
	for _, s := range got {
		if s == "COMMIT" || strings.Contains(s, "email__colcrypt]', N'email'") {
			t.Errorf("went on after the failure: %s", s)
		}
	}
}

func TestUnswapRunsItsSteps(t *testing.T) {
	group := accountsGroup(false)
	db, r := openRecorder(t, liveColumns(group, true)...)
	if err := (sqlServer{}).Unswap(context.Background(), db, group); err != nil {
		t.Fatal(err)
	}
	steps, err := unswapSteps(group, allPending(group))
	if err != nil {
		t.Fatal(err)
	}
	got := r.statements()
	if len(got) != 2+3+1+len(steps)+2 || !reflect.DeepEqual(got[6:6+len(steps)], sqlOf(steps)) {
		t.Errorf("sent:\n%s", strings.Join(got, "\n"))
	}
}

// TestBulkUpdateLoadsThroughCopyIn: in the caller's transaction, the
// staging table is created, every row bulk-loaded (with an empty plaintext
// as an empty value, not NULL), the load ended, and the table updated.
func TestBulkUpdateLoadsThroughCopyIn(t *testing.T) {
	db, r := openRecorder(t)
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := bulkFixtures()["revert"]
	if err := (sqlServer{}).BulkUpdate(context.Background(), tx, u); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := planBulk(u)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"BEGIN", b.create,
		fmt.Sprintf("bulk row %#v", []driver.Value{int64(1), []byte("x")}),
		fmt.Sprintf("bulk row %#v", []driver.Value{int64(2), []byte{}}),
		fmt.Sprintf("bulk row %#v", []driver.Value{int64(3), nil}),
		"bulk load done", b.update, "COMMIT"}
	if got := r.statements(); !reflect.DeepEqual(got, want) {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing to write, nothing sent.
	r.reset()
	tx, _ = db.BeginTx(context.Background(), nil)
	if err := (sqlServer{}).BulkUpdate(context.Background(), tx, dialect.Update{Table: u.Table, Key: u.Key, Set: u.Set}); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	if got := r.statements(); len(got) != 2 {
		t.Errorf("an empty update sent %v", got)
	}
}

func TestColumnChanges(t *testing.T) {
	ctx := context.Background()
	d := sqlServer{}
	tn := schema.TableName{Name: "cc_audit"} // the default schema is implied
	db, r := openRecorder(t)
	if err := d.AddColumn(ctx, db, tn, "email__colcrypt", "VARBINARY(115)"); err != nil {
		t.Fatal(err)
	}
	if err := d.AddRowID(ctx, db, tn); err != nil {
		t.Fatal(err)
	}
	if err := d.DropColumn(ctx, db, tn, rowIDColumn); err != nil {
		t.Fatal(err)
	}
	if err := d.DropColumn(ctx, db, tn, "email_iv"); err != nil {
		t.Fatal(err)
	}
	if err := d.Purge(ctx, db, tn); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"IF COL_LENGTH(N'[dbo].[cc_audit]', N'email__colcrypt') IS NULL ALTER TABLE [dbo].[cc_audit] ADD [email__colcrypt] VARBINARY(115) NULL",
		identityColumnQuery,
		"IF COL_LENGTH(N'[dbo].[cc_audit]', N'colcrypt_row_id') IS NULL ALTER TABLE [dbo].[cc_audit] ADD [colcrypt_row_id] BIGINT IDENTITY(1,1) NOT NULL",
		"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'[dbo].[cc_audit]', N'U') AND name = N'colcrypt_row_id_ux') " +
			"CREATE UNIQUE NONCLUSTERED INDEX [colcrypt_row_id_ux] ON [dbo].[cc_audit] ([colcrypt_row_id])",
		"IF EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'[dbo].[cc_audit]', N'U') AND name = N'colcrypt_row_id_ux') " +
			"DROP INDEX [colcrypt_row_id_ux] ON [dbo].[cc_audit]",
		"IF COL_LENGTH(N'[dbo].[cc_audit]', N'colcrypt_row_id') IS NOT NULL ALTER TABLE [dbo].[cc_audit] DROP COLUMN [colcrypt_row_id]",
		"IF COL_LENGTH(N'[dbo].[cc_audit]', N'email_iv') IS NOT NULL ALTER TABLE [dbo].[cc_audit] DROP COLUMN [email_iv]",
		"ALTER TABLE [dbo].[cc_audit] REBUILD",
	}
	if got := r.statements(); !reflect.DeepEqual(got, want) {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAddRowIDRefusesASecondIdentity: a table has at most one identity
// column, so the error says what to do instead of SQL Server's 2744.
func TestAddRowIDRefusesASecondIdentity(t *testing.T) {
	db, r := openRecorder(t)
	r.identity = "legacy_id"
	err := (sqlServer{}).AddRowID(context.Background(), db, schema.TableName{Schema: "dbo", Name: "t"})
	if err == nil || !strings.Contains(err.Error(), "legacy_id") || !strings.Contains(err.Error(), "CREATE UNIQUE INDEX") {
		t.Fatalf("got %v", err)
	}
	for _, s := range r.statements() {
		if strings.Contains(s, "ALTER TABLE") {
			t.Errorf("changed the table: %s", s)
		}
	}
}

// TestSwapRefusesADisabledTrigger: with the guard (or an online job's
// change capture) disabled, the cut-over and the revert's stop before
// their first change, say which trigger and how to go on, and roll back.
func TestSwapRefusesADisabledTrigger(t *testing.T) {
	cases := []struct {
		name    string
		group   []dialect.TableSwap
		forward bool
		trigger schema.TableName
		want    string
	}{
		{"guard at cut-over", customersGroup(true), true, guardTrigger(customersTable.Name), "revert the job, then run apply again"},
		{"guard at the revert's cut-over", customersGroup(false), false, guardTrigger(customersTable.Name), "the table still holds its ciphertext"},
		{"capture at an online cut-over", func() []dialect.TableSwap {
			g := customersGroup(true)
			g[0].Online = true
			return g
		}(), true, captureTrigger(customersTable.Name), "marks the rows other sessions change"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, r := openRecorder(t, liveColumns(tc.group, true)...)
			r.disabled = map[string]bool{quoteTable(tc.trigger): true}
			var err error
			if tc.forward {
				err = (sqlServer{}).Swap(context.Background(), db, tc.group)
			} else {
				err = (sqlServer{}).Unswap(context.Background(), db, tc.group)
			}
			want := "enable it again (ENABLE TRIGGER " + quoteTable(tc.trigger) + " ON [dbo].[cc_customers])"
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("got %v, want the refusal with %q and %q", err, want, tc.want)
			}
			for _, s := range r.statements() {
				if strings.HasPrefix(s, "ALTER") || strings.HasPrefix(s, "IF") || strings.HasPrefix(s, "EXEC") || s == "COMMIT" {
					t.Errorf("changed something before refusing: %s", s)
				}
			}
		})
	}
}
