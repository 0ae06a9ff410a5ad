// Package dialecttest is the one conformance suite every database engine
// passes (as golang-migrate's database/testing is for its drivers). An
// engine's own test opens a throwaway database, describes the engine in an
// Engine and calls Run.
//
// The conformance schema, which each engine writes in its own DDL as
// Engine.Fixture, in this order:
//
//   - table cc_customers, columns in this order:
//     id integer identity primary key (SQLite: INTEGER PRIMARY KEY AUTOINCREMENT);
//     ssn char(11) NOT NULL with a UNIQUE constraint named cc_customers_ssn_key;
//     email varchar(64) NULL;
//     status varchar(10) NOT NULL DEFAULT 'new' with a CHECK constraint
//     named cc_customers_status_check: status IN ('new','vip');
//     notes text NULL (SQL Server nvarchar(max));
//     region varchar(8) NULL;
//     full_name, a computed/generated column from ssn and email.
//   - index cc_customers_email_idx on cc_customers (email), not unique.
//   - table cc_orders: id int NOT NULL PRIMARY KEY (not identity);
//     customer_id int NOT NULL with foreign key cc_orders_customer_fk
//     referencing cc_customers (id); customer_ssn char(11) NULL with foreign
//     key cc_orders_ssn_fk referencing cc_customers (ssn); amount numeric(10,2).
//   - table cc_audit: email varchar(64) NULL, changed_at varchar(30) NULL,
//     no key at all.
//   - trigger cc_customers_audit on cc_customers, AFTER UPDATE, inserting
//     the new email into cc_audit (and referencing no other column of
//     cc_customers; notes in particular).
//   - view cc_customer_notes AS SELECT id, notes FROM cc_customers.
//
// Run itself creates, with the dialect's Quote, the table
// `cc odd "name" [x]-y` (primary key `the "key"` int, column `we]ird col`
// varchar(20)) unless the fixture did, and every other table it needs
// (cc_codec_N, cc_unsupported_N, cc_ciphertext_N, the quoting table). It
// drops all of these, with DROP ... IF EXISTS, before it starts and when it
// ends, so it can run again on the same database; objects the fixture
// creates besides them (a PostgreSQL trigger function) should be created
// with CREATE OR REPLACE.
package dialecttest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Engine describes one engine under test.
type Engine struct {
	Dialect dialect.Dialect
	// DB is an open connection to a database the suite may change freely.
	DB *sql.DB
	// Fixture is the engine's DDL creating the conformance schema (see the
	// package comment), run in order, one statement per element.
	Fixture []string
	// Types are the supported declared types, each with SQL literals that
	// are awkward for it: NULL, empty, trailing spaces, Unicode, extremes.
	// A literal NULL (any case) must read back as NULL.
	Types []TypeCase
	// Unsupported are declared types whose codec must fail with
	// dialect.ErrUnsupportedType. An engine that refuses no declared type
	// leaves it empty and sets NoUnsupportedTypes instead.
	Unsupported []string
	// NoUnsupportedTypes says the engine's codec refuses no declared type
	// (SQLite: every declared type has an affinity). The suite then checks
	// that types other engines refuse (refusedElsewhere) get a codec here.
	// An engine must either list Unsupported or set this.
	NoUnsupportedTypes bool
	// Same returns an SQL boolean expression that holds when the two SQL
	// expressions hold the identical value, type or storage class
	// included, and when both are NULL.
	Same func(a, b string) string
	// Placeholder returns the engine's n-th (1-based) query parameter
	// marker: "?", "$1", "@p1". Nil means "?".
	Placeholder func(n int) string
}

// TypeCase is a declared type and literals to round-trip through its codec.
type TypeCase struct {
	Declared string
	Literals []string
}

// Names of the conformance schema.
const (
	customers    = "cc_customers"
	orders       = "cc_orders"
	audit        = "cc_audit"
	customerView = "cc_customer_notes"
	oddTable     = `cc odd "name" [x]-y`
	oddKey       = `the "key"`
	oddColumn    = `we]ird col`
	quotingTable = `cc q "t" [b] 'x'-y`
	quotingKey   = `k [e] "y"`
	quotingCol   = `c "q" ]b[ 'x'-y`
)

// ciphertextSizes are the ciphertext lengths the Ciphertext subtest stores
// in a CiphertextType column: tiny, one block, SQL Server's in-row maximum
// and one more, and 0 for unbounded.
var ciphertextSizes = []int64{1, 16, 8000, 8001, 0}

// unboundedSample is the length stored in the unbounded ciphertext column.
const unboundedSample = 100_000

// refusedElsewhere are declared types another engine's codec refuses
// (SQL Server: REAL and FLOAT(n≤24), SPEC §2, and types outside its list;
// PostgreSQL: types outside its list), which an engine with
// NoUnsupportedTypes must encrypt.
var refusedElsewhere = []string{
	"REAL", "FLOAT(24)", "UNIQUEIDENTIFIER", "DATETIMEOFFSET", "SQL_VARIANT", "ROWVERSION", "HIERARCHYID",
	"MONEY", "INTERVAL", "INET", "POINT", "TSVECTOR", "BIT(3)",
}

// Run creates the fixture and runs the conformance subtests.
func Run(t *testing.T, e Engine) {
	t.Helper()
	if e.Dialect == nil || e.DB == nil || e.Same == nil {
		t.Fatal("dialecttest: Engine needs Dialect, DB and Same")
	}
	if e.Placeholder == nil {
		e.Placeholder = func(int) string { return "?" }
	}
	s := &suite{e: e}
	// t.Context is canceled before cleanups run: dropping needs its own.
	s.dropAll(t, context.Background())
	t.Cleanup(func() { s.dropAll(t, context.Background()) })

	ctx := t.Context()
	for _, stmt := range e.Fixture {
		if _, err := e.DB.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("fixture statement failed: %v\n%s", err, stmt)
		}
	}
	if _, err := e.Dialect.ReadTable(ctx, e.DB, schema.TableName{Name: oddTable}); errors.Is(err, dialect.ErrTableNotFound) {
		s.exec(t, fmt.Sprintf("CREATE TABLE %s (%s int NOT NULL PRIMARY KEY, %s varchar(20) NULL)",
			s.table(oddTable), s.q(oddKey), s.q(oddColumn)))
	}

	t.Run("Catalog", s.catalog)
	t.Run("Codecs", s.codecs)
	t.Run("Unsupported", s.unsupported)
	t.Run("Quoting", s.quoting)
	t.Run("Ciphertext", s.ciphertext)
}

type suite struct {
	e Engine
}

func (s *suite) q(ident string) string { return s.e.Dialect.Quote(ident) }

func (s *suite) table(name string) string {
	return s.e.Dialect.QuoteTable(schema.TableName{Name: name})
}

func (s *suite) ph(n int) string { return s.e.Placeholder(n) }

func (s *suite) exec(t *testing.T, stmt string, args ...any) {
	t.Helper()
	if _, err := s.e.DB.ExecContext(t.Context(), stmt, args...); err != nil {
		t.Fatalf("%v\n%s", err, stmt)
	}
}

func (s *suite) read(t *testing.T, name string) *schema.Table {
	t.Helper()
	tab, err := s.e.Dialect.ReadTable(t.Context(), s.e.DB, schema.TableName{Name: name})
	if err != nil {
		t.Fatalf("ReadTable(%s): %v", name, err)
	}
	return tab
}

// dropAll removes every object the suite or the fixture creates.
func (s *suite) dropAll(t *testing.T, ctx context.Context) {
	t.Helper()
	stmts := []string{"DROP VIEW IF EXISTS " + s.table(customerView)}
	tables := []string{orders, audit, customers, oddTable, quotingTable}
	for i := range s.e.Types {
		tables = append(tables, codecTable(i))
	}
	for i := range max(len(s.e.Unsupported), len(refusedElsewhere)) {
		tables = append(tables, unsupportedTable(i))
	}
	for i := range ciphertextSizes {
		tables = append(tables, ciphertextTable(i))
	}
	for _, name := range tables {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+s.table(name))
	}
	for _, stmt := range stmts {
		if _, err := s.e.DB.ExecContext(ctx, stmt); err != nil {
			t.Logf("dialecttest cleanup: %v (%s)", err, stmt)
		}
	}
}

func codecTable(i int) string       { return fmt.Sprintf("cc_codec_%d", i+1) }
func unsupportedTable(i int) string { return fmt.Sprintf("cc_unsupported_%d", i+1) }
func ciphertextTable(i int) string  { return fmt.Sprintf("cc_ciphertext_%d", i+1) }

// catalog checks that ReadTable reports what the planner's rules (SPEC §1)
// depend on.
func (s *suite) catalog(t *testing.T) {
	cust := s.read(t, customers)
	ord := s.read(t, orders)
	aud := s.read(t, audit)

	column := func(tab *schema.Table, name string) *schema.Column {
		t.Helper()
		c := tab.Column(name)
		if c == nil {
			t.Fatalf("%s: no column %s among %v", tab.Name, name, names(tab))
		}
		return c
	}

	// Columns, in table order.
	want := []string{"id", "ssn", "email", "status", "notes", "region", "full_name"}
	if got := names(cust); !equalFold(got, want) {
		t.Errorf("%s columns = %v, want %v in this order", customers, got, want)
	}
	for i, c := range cust.Columns {
		if c.Ordinal != i+1 {
			t.Errorf("%s.%s: Ordinal = %d, want %d", customers, c.Name, c.Ordinal, i+1)
		}
	}

	if id := column(cust, "id"); !id.Identity {
		t.Errorf("%s.id is an identity column (the planner must block it), got Identity=false", customers)
	}
	if id := column(ord, "id"); id.Identity {
		t.Errorf("%s.id is a plain int primary key, got Identity=true", orders)
	}
	ssn := column(cust, "ssn")
	if ssn.Nullable {
		t.Errorf("%s.ssn is NOT NULL, got Nullable=true", customers)
	}
	if !strings.Contains(strings.ToLower(ssn.Type), "char") || ssn.Length != 11 {
		t.Errorf("%s.ssn is char(11), got Type=%q Length=%d (Declared %q)", customers, ssn.Type, ssn.Length, ssn.Declared)
	}
	email := column(cust, "email")
	if !email.Nullable || email.Length != 64 {
		t.Errorf("%s.email is varchar(64) NULL, got Length=%d Nullable=%v (Declared %q)", customers, email.Length, email.Nullable, email.Declared)
	}
	if status := column(cust, "status"); status.Default == "" || status.Nullable {
		t.Errorf("%s.status is NOT NULL DEFAULT 'new', got Default=%q Nullable=%v", customers, status.Default, status.Nullable)
	}
	if notes := column(cust, "notes"); !notes.Nullable || notes.Computed {
		t.Errorf("%s.notes is a plain NULL column, got Nullable=%v Computed=%v", customers, notes.Nullable, notes.Computed)
	}
	if fullName := column(cust, "full_name"); !fullName.Computed {
		t.Errorf("%s.full_name is a computed column, got Computed=false", customers)
	}

	// Keys and indexes.
	if pk := cust.PrimaryKey; pk == nil || !pk.Primary || !equalFold(pk.Columns, []string{"id"}) {
		t.Errorf("%s primary key = %+v, want a primary key on [id]", customers, pk)
	}
	if pk := ord.PrimaryKey; pk == nil || !equalFold(pk.Columns, []string{"id"}) {
		t.Errorf("%s primary key = %+v, want a primary key on [id]", orders, pk)
	}
	for _, ix := range cust.Indexes {
		if ix.Primary {
			t.Errorf("%s: Indexes holds the primary key %s; it belongs in PrimaryKey only", customers, ix.Name)
		}
	}
	if ix := findIndex(cust, "cc_customers_ssn_key"); ix == nil {
		t.Errorf("%s: no index cc_customers_ssn_key (the UNIQUE constraint on ssn) among %v", customers, indexNames(cust))
	} else if !ix.Unique || !ix.Constraint || !equalFold(ix.Columns, []string{"ssn"}) {
		t.Errorf("cc_customers_ssn_key is a UNIQUE constraint on [ssn], got Unique=%v Constraint=%v Columns=%v",
			ix.Unique, ix.Constraint, ix.Columns)
	}
	if ix := findIndex(cust, "cc_customers_email_idx"); ix == nil {
		t.Errorf("%s: no index cc_customers_email_idx among %v", customers, indexNames(cust))
	} else {
		if ix.Unique || ix.Constraint || !equalFold(ix.Columns, []string{"email"}) {
			t.Errorf("cc_customers_email_idx is a plain CREATE INDEX on [email], got Unique=%v Constraint=%v Columns=%v",
				ix.Unique, ix.Constraint, ix.Columns)
		}
		if ix.Definition == "" {
			t.Errorf("cc_customers_email_idx: empty Definition; the engine must be able to recreate it")
		}
	}
	if got := cust.UsableKey(); !equalFold(got, []string{"id"}) {
		t.Errorf("%s UsableKey = %v, want [id]", customers, got)
	}
	if got := aud.UsableKey(); got != nil {
		t.Errorf("%s has no key at all, UsableKey = %v, want nil (colcrypt adds a row-id column)", audit, got)
	}

	// Checks.
	if ck := findCheck(cust, "cc_customers_status_check"); ck == nil {
		t.Errorf("%s: no check constraint cc_customers_status_check among %+v", customers, cust.Checks)
	} else if !schema.ContainsFold(ck.Columns, "status") || schema.ContainsFold(ck.Columns, "email") || ck.Expr == "" {
		t.Errorf("cc_customers_status_check references status only, got Columns=%v Expr=%q", ck.Columns, ck.Expr)
	}

	// Foreign keys, from both sides.
	wantFKs := []struct{ name, column, refColumn string }{
		{"cc_orders_customer_fk", "customer_id", "id"},
		{"cc_orders_ssn_fk", "customer_ssn", "ssn"},
	}
	for _, w := range wantFKs {
		for _, side := range []struct {
			what string
			fks  []*schema.ForeignKey
		}{{customers + ".ReferencedBy", cust.ReferencedBy}, {orders + ".ForeignKeys", ord.ForeignKeys}} {
			fk := findFK(side.fks, w.name)
			switch {
			case fk == nil:
				t.Errorf("%s: no foreign key %s among %v", side.what, w.name, fkNames(side.fks))
			case !strings.EqualFold(fk.Table.Name, orders) || !strings.EqualFold(fk.RefTable.Name, customers) ||
				!equalFold(fk.Columns, []string{w.column}) || !equalFold(fk.RefColumns, []string{w.refColumn}):
				t.Errorf("%s: %s links %s(%s) to %s(%s), got %s%v -> %s%v", side.what, w.name,
					orders, w.column, customers, w.refColumn, fk.Table.Name, fk.Columns, fk.RefTable.Name, fk.RefColumns)
			}
		}
	}
	if len(aud.ForeignKeys) != 0 || len(aud.ReferencedBy) != 0 {
		t.Errorf("%s has no foreign keys, got ForeignKeys=%v ReferencedBy=%v", audit, fkNames(aud.ForeignKeys), fkNames(aud.ReferencedBy))
	}

	// Triggers and dependents.
	if tr := findTrigger(cust.Triggers, "cc_customers_audit"); tr == nil {
		t.Errorf("%s: no trigger cc_customers_audit among %+v", customers, cust.Triggers)
	} else if !schema.ContainsFold(tr.Columns, "email") || schema.ContainsFold(tr.Columns, "notes") {
		t.Errorf("trigger cc_customers_audit references email and not notes, got Columns=%v", tr.Columns)
	}
	if tr := findTrigger(aud.Triggers, "cc_customers_audit"); tr != nil {
		t.Errorf("%s: trigger cc_customers_audit is defined on %s, not on %s", audit, customers, audit)
	}
	if dep := findDependent(cust, "view", customerView); dep == nil {
		t.Errorf("%s: no view %s among Dependents %+v", customers, customerView, dependents(cust))
	} else if !schema.ContainsFold(dep.Columns, "notes") || schema.ContainsFold(dep.Columns, "email") {
		t.Errorf("view %s selects id and notes, got Columns=%v", customerView, dep.Columns)
	}
	if dep := findDependent(cust, "computed column", "full_name"); dep == nil {
		t.Errorf("%s: no computed column full_name among Dependents %+v", customers, dependents(cust))
	} else if !schema.ContainsFold(dep.Columns, "ssn") || !schema.ContainsFold(dep.Columns, "email") ||
		schema.ContainsFold(dep.Columns, "notes") {
		t.Errorf("computed column full_name depends on ssn and email, got Columns=%v", dep.Columns)
	}

	// Identifiers that need quoting.
	odd := s.read(t, oddTable)
	if odd.Name.Name != oddTable {
		t.Errorf("odd table read back as %q, want %q", odd.Name.Name, oddTable)
	}
	for _, name := range []string{oddKey, oddColumn} {
		if c := odd.Column(name); c == nil || c.Name != name {
			t.Errorf("odd table: column %q not read back exactly; columns: %q", name, names(odd))
		}
	}
	if pk := odd.PrimaryKey; pk == nil || !equalFold(pk.Columns, []string{oddKey}) {
		t.Errorf("odd table primary key = %+v, want [%s]", pk, oddKey)
	}

	// A missing table.
	const missing = "cc_no_such_table"
	_, err := s.e.Dialect.ReadTable(t.Context(), s.e.DB, schema.TableName{Name: missing})
	if !errors.Is(err, dialect.ErrTableNotFound) {
		t.Errorf("ReadTable(%s) = %v, want an error wrapping dialect.ErrTableNotFound", missing, err)
	} else if !strings.Contains(err.Error(), missing) {
		t.Errorf("ReadTable(%s): the error %q does not name the table", missing, err)
	}
}

// codecs round-trips every literal of every supported type through the
// codec and the database, as apply and revert do.
func (s *suite) codecs(t *testing.T) {
	if len(s.e.Types) == 0 {
		t.Fatal("Engine.Types is empty: list the supported types")
	}
	for i, tc := range s.e.Types {
		name := tc.Declared
		if strings.TrimSpace(name) == "" {
			name = "no declared type"
		}
		t.Run(name, func(t *testing.T) { s.codecCase(t, codecTable(i), tc) })
	}
}

func (s *suite) codecCase(t *testing.T, tableName string, tc TypeCase) {
	ctx := t.Context()
	db := s.e.DB
	tbl, qid, qv, qr := s.table(tableName), s.q("id"), s.q("v"), s.q("r")
	s.exec(t, fmt.Sprintf("CREATE TABLE %s (%s int NOT NULL PRIMARY KEY, %s %s NULL, %s %s NULL)",
		tbl, qid, qv, tc.Declared, qr, tc.Declared))
	tab := s.read(t, tableName)
	col := tab.Column("v")
	if col == nil {
		t.Fatalf("%s: column v not read back; columns: %v", tableName, names(tab))
	}
	codec, err := s.e.Dialect.Codec(col)
	if err != nil {
		t.Fatalf("Codec(%s): %v", tc.Declared, err)
	}
	for i, lit := range tc.Literals {
		s.exec(t, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%d, %s)", tbl, qid, qv, i+1, lit))
	}
	where := " FROM " + tbl + " WHERE " + qid + " = " + s.ph(1)
	for i, lit := range tc.Literals {
		id := int64(i + 1)
		var v any
		if err := db.QueryRowContext(ctx, "SELECT "+codec.SelectExpr(qv)+where, id).Scan(&v); err != nil {
			t.Fatalf("literal %s: read with SelectExpr: %v", lit, err)
		}
		if isNullLiteral(lit) {
			if v != nil {
				t.Errorf("literal NULL: SelectExpr gave %#v, want NULL", v)
			}
			continue
		}
		if v == nil {
			t.Errorf("literal %s: SelectExpr gave NULL", lit)
			continue
		}
		plain, err := codec.Encode(v)
		if err != nil {
			t.Errorf("literal %s: Encode(%T): %v", lit, v, err)
			continue
		}
		var dbLen sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT "+codec.PlainLenExpr(qv)+where, id).Scan(&dbLen); err != nil {
			t.Fatalf("literal %s: PlainLenExpr: %v", lit, err)
		}
		if !dbLen.Valid || dbLen.Int64 != int64(len(plain)) {
			t.Errorf("literal %s: PlainLenExpr = %v in the database, Encode gave %d bytes; sizing would be wrong", lit, dbLen, len(plain))
		}
		if m := codec.MaxPlainBytes(); m > 0 && int64(len(plain)) > m {
			t.Errorf("literal %s: %d canonical bytes exceed MaxPlainBytes %d", lit, len(plain), m)
		}
		var stored sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT "+s.e.Dialect.StoredLenExpr(col, qv)+where, id).Scan(&stored); err != nil {
			t.Fatalf("literal %s: StoredLenExpr: %v", lit, err)
		}
		if !stored.Valid || stored.Int64 < 0 {
			t.Errorf("literal %s: StoredLenExpr = %v, want a byte count", lit, stored)
		}
		back, err := codec.Decode(plain)
		if err != nil {
			t.Errorf("literal %s: Decode: %v", lit, err)
			continue
		}
		update := "UPDATE " + tbl + " SET " + qr + " = " + codec.RestoreExpr(s.ph(1)) + " WHERE " + qid + " = " + s.ph(2)
		if _, err := db.ExecContext(ctx, update, back, id); err != nil {
			t.Errorf("literal %s: restore with RestoreExpr: %v\n%s", lit, err, update)
			continue
		}
		var restored any
		if err := db.QueryRowContext(ctx, "SELECT "+codec.SelectExpr(qr)+where, id).Scan(&restored); err != nil {
			t.Fatalf("literal %s: read the restored value: %v", lit, err)
		}
		if restored == nil {
			t.Errorf("literal %s: restored as NULL", lit)
			continue
		}
		again, err := codec.Encode(restored)
		if err != nil {
			t.Errorf("literal %s: Encode the restored value (%T): %v", lit, restored, err)
		} else if !bytes.Equal(plain, again) {
			t.Errorf("literal %s: canonical bytes changed by the round trip:\n before %x\n after  %x", lit, plain, again)
		}
	}
	// Every row, NULLs included, holds in r exactly what v holds.
	for i, lit := range tc.Literals {
		var n int
		q := "SELECT count(*)" + where + " AND (" + s.e.Same(qv, qr) + ")"
		if err := db.QueryRowContext(ctx, q, int64(i+1)).Scan(&n); err != nil {
			t.Fatalf("compare with Same: %v\n%s", err, q)
		}
		if n != 1 {
			t.Errorf("literal %s: the restored value is not the same as the original in the database", lit)
		}
	}
}

func isNullLiteral(lit string) bool { return strings.EqualFold(strings.TrimSpace(lit), "NULL") }

// unsupported checks that the codec refuses types colcrypt cannot encrypt,
// naming them, so the planner can report a blocker; or, for an engine
// that refuses none, that it gives a codec for types other engines refuse.
func (s *suite) unsupported(t *testing.T) {
	switch {
	case s.e.NoUnsupportedTypes && len(s.e.Unsupported) > 0:
		t.Fatalf("the engine says it refuses no declared type (NoUnsupportedTypes) but lists %v as unsupported", s.e.Unsupported)
	case s.e.NoUnsupportedTypes:
		s.noneUnsupported(t)
		return
	case len(s.e.Unsupported) == 0:
		t.Fatal("the engine lists no unsupported types: list them in Engine.Unsupported, or set Engine.NoUnsupportedTypes if its codec refuses none")
	}
	for i, declared := range s.e.Unsupported {
		t.Run(declared, func(t *testing.T) {
			name := unsupportedTable(i)
			s.exec(t, fmt.Sprintf("CREATE TABLE %s (%s int NOT NULL PRIMARY KEY, %s %s NULL)",
				s.table(name), s.q("id"), s.q("v"), declared))
			col := s.read(t, name).Column("v")
			if col == nil {
				t.Fatalf("%s: column v not read back", name)
			}
			_, err := s.e.Dialect.Codec(col)
			if !errors.Is(err, dialect.ErrUnsupportedType) {
				t.Fatalf("Codec(%s) = %v, want an error wrapping dialect.ErrUnsupportedType", declared, err)
			}
			msg := strings.ToLower(err.Error())
			namesType := strings.Contains(msg, strings.ToLower(declared)) ||
				(col.Type != "" && strings.Contains(msg, strings.ToLower(col.Type)))
			if !namesType {
				t.Errorf("Codec(%s): the error %q names neither %q nor %q", declared, err, col.Type, declared)
			}
		})
	}
}

// noneUnsupported checks that an engine with NoUnsupportedTypes gives a
// codec for each type of refusedElsewhere, so the planner lets a plan
// encrypt it.
func (s *suite) noneUnsupported(t *testing.T) {
	for i, declared := range refusedElsewhere {
		t.Run(declared, func(t *testing.T) {
			name := unsupportedTable(i)
			s.exec(t, fmt.Sprintf("CREATE TABLE %s (%s int NOT NULL PRIMARY KEY, %s %s NULL)",
				s.table(name), s.q("id"), s.q("v"), declared))
			col := s.read(t, name).Column("v")
			if col == nil {
				t.Fatalf("%s: column v not read back", name)
			}
			if c, err := s.e.Dialect.Codec(col); err != nil || c == nil {
				t.Errorf("Codec(%s) = %v, %v; the engine says it refuses no declared type", declared, c, err)
			}
		})
	}
}

// quoting checks SPEC §7: names with spaces, quotes, brackets and dashes
// work everywhere colcrypt writes SQL.
func (s *suite) quoting(t *testing.T) {
	ctx := t.Context()
	d := s.e.Dialect
	tbl := s.table(quotingTable)
	s.exec(t, fmt.Sprintf("CREATE TABLE %s (%s int NOT NULL PRIMARY KEY, %s varchar(40) NULL)", tbl, s.q(quotingKey), s.q(quotingCol)))
	const value = `it's "odd" [x]`
	s.exec(t, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", tbl, s.q(quotingKey), s.q(quotingCol), s.ph(1), s.ph(2)), 1, value)
	s.exec(t, fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s", tbl, s.q(quotingCol), s.q(quotingCol), s.q(quotingKey), s.ph(1)), 1)
	var got string
	if err := s.e.DB.QueryRowContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s",
		s.q(quotingCol), tbl, s.q(quotingKey), s.ph(1)), 1).Scan(&got); err != nil {
		t.Fatalf("read back through quoted names: %v", err)
	}
	if got != value {
		t.Errorf("read back %q, want %q", got, value)
	}

	// Unqualified, and qualified with the default schema as a plan may write it.
	lookups := []schema.TableName{{Name: quotingTable}}
	if def := d.DefaultSchema(); def != "" {
		lookups = append(lookups, schema.TableName{Schema: def, Name: quotingTable})
	}
	for _, name := range lookups {
		tab, err := d.ReadTable(ctx, s.e.DB, name)
		if err != nil {
			t.Errorf("ReadTable(%s): %v", name, err)
			continue
		}
		if tab.Name.Name != quotingTable {
			t.Errorf("ReadTable(%s): Name = %q", name, tab.Name.Name)
		}
		for _, c := range []string{quotingKey, quotingCol} {
			if col := tab.Column(c); col == nil || col.Name != c {
				t.Errorf("ReadTable(%s): column %q not read back exactly; columns %q", name, c, names(tab))
			}
		}
		if pk := tab.PrimaryKey; pk == nil || !equalFold(pk.Columns, []string{quotingKey}) {
			t.Errorf("ReadTable(%s): primary key %+v, want [%s]", name, pk, quotingKey)
		}
		var n int
		if err := s.e.DB.QueryRowContext(ctx, "SELECT count(*) FROM "+d.QuoteTable(name)).Scan(&n); err != nil || n != 1 {
			t.Errorf("SELECT count(*) FROM %s = %d, %v; want 1", d.QuoteTable(name), n, err)
		}
	}
}

// ciphertext checks that a CiphertextType column keeps ciphertexts of the
// length it was sized for, byte for byte.
func (s *suite) ciphertext(t *testing.T) {
	ctx := t.Context()
	for i, size := range ciphertextSizes {
		typ := s.e.Dialect.CiphertextType(size)
		t.Run(fmt.Sprintf("%d bytes %s", size, typ), func(t *testing.T) {
			tbl := s.table(ciphertextTable(i))
			s.exec(t, fmt.Sprintf("CREATE TABLE %s (%s int NOT NULL PRIMARY KEY, %s %s NULL)", tbl, s.q("id"), s.q("c"), typ))
			n := size
			if n == 0 {
				n = unboundedSample
			}
			want := make([]byte, n)
			for j := range want {
				want[j] = byte(255 - j) // 0xff first; every byte value in the longer ones
			}
			s.exec(t, fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", tbl, s.q("id"), s.q("c"), s.ph(1), s.ph(2)), 1, want)
			var got []byte
			if err := s.e.DB.QueryRowContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s",
				s.q("c"), tbl, s.q("id"), s.ph(1)), 1).Scan(&got); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("CiphertextType(%d) = %s: stored %d bytes, read back %d different bytes", size, typ, len(want), len(got))
			}
		})
	}
}

func names(t *schema.Table) []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

func equalFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func findIndex(t *schema.Table, name string) *schema.Index {
	for _, ix := range t.Indexes {
		if strings.EqualFold(ix.Name, name) {
			return ix
		}
	}
	return nil
}

func indexNames(t *schema.Table) []string {
	var out []string
	for _, ix := range t.Indexes {
		out = append(out, ix.Name)
	}
	return out
}

func findCheck(t *schema.Table, name string) *schema.Check {
	for _, c := range t.Checks {
		if strings.EqualFold(c.Name, name) {
			return c
		}
	}
	return nil
}

func findFK(fks []*schema.ForeignKey, name string) *schema.ForeignKey {
	for _, fk := range fks {
		if strings.EqualFold(fk.Name, name) {
			return fk
		}
	}
	return nil
}

func fkNames(fks []*schema.ForeignKey) []string {
	var out []string
	for _, fk := range fks {
		out = append(out, fk.Name)
	}
	return out
}

func findTrigger(trs []*schema.Trigger, name string) *schema.Trigger {
	for _, tr := range trs {
		if strings.EqualFold(tr.Name, name) {
			return tr
		}
	}
	return nil
}

func findDependent(t *schema.Table, kind, name string) *schema.Dependent {
	for _, d := range t.Dependents {
		if strings.EqualFold(d.Kind, kind) && strings.EqualFold(d.Name, name) {
			return d
		}
	}
	return nil
}

func dependents(t *schema.Table) []schema.Dependent {
	var out []schema.Dependent
	for _, d := range t.Dependents {
		out = append(out, *d)
	}
	return out
}
