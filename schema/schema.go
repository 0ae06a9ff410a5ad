// Package schema is the engine-neutral model of the tables colcrypt touches:
// columns with their exact types, keys in both directions, checks, defaults,
// indexes, triggers and the objects that depend on a column. Each dialect's
// catalog reader fills it; the planner's rules and the migration engine read
// it and never look at a catalog themselves.
package schema

import (
	"fmt"
	"strings"
)

// TableName is a possibly schema-qualified table name. Schema is empty on
// engines without schemas (SQLite) and when the plan did not name one.
type TableName struct {
	Schema string
	Name   string
}

// String gives the name as a user writes it in a plan: "dbo.customers".
func (n TableName) String() string {
	if n.Schema == "" {
		return n.Name
	}
	return n.Schema + "." + n.Name
}

// ParseTableName splits "schema.table" at the first dot. A name without a
// dot has an empty Schema, which the dialect replaces with its default
// (dbo, public, main).
func ParseTableName(s string) TableName {
	if i := strings.IndexByte(s, '.'); i > 0 {
		return TableName{Schema: s[:i], Name: s[i+1:]}
	}
	return TableName{Name: s}
}

// Table is one table as read from the live catalog.
type Table struct {
	Name    TableName
	Columns []*Column

	// PrimaryKey is nil when the table has none.
	PrimaryKey *Index
	// Indexes holds every index and unique constraint other than the
	// primary key, unique or not.
	Indexes []*Index
	// ForeignKeys are the keys of this table that reference other tables.
	ForeignKeys []*ForeignKey
	// ReferencedBy are the foreign keys of other tables (or this one) that
	// reference this table.
	ReferencedBy []*ForeignKey
	Checks       []*Check
	Triggers     []*Trigger
	// Dependents are views, computed columns and schema-bound objects that
	// depend on columns of this table.
	Dependents []*Dependent
	// Unmovable lists what binds to this very table rather than to its
	// name, or what a new table built beside it could not take over, so
	// that only an in-place job keeps it (PostgreSQL: a view, a trigger, a
	// policy, a publication, inheritance, its row type used elsewhere).
	// Empty where the engine binds such objects by name (SQLite).
	Unmovable []string

	// Versioning is set when the engine keeps the past versions of the
	// table's rows in another table (SQL Server's system-versioned
	// temporal tables), on both of the two tables; nil elsewhere.
	Versioning *Versioning

	// RowCount is the catalog's estimate, 0 where the engine keeps none
	// (SQLite); sizing counts exactly.
	RowCount int64
	// CreateSQL is the engine's own definition of the table where it keeps
	// one (SQLite's sqlite_master.sql); empty elsewhere.
	CreateSQL string
}

// Column is one column with everything needed to restore it exactly.
type Column struct {
	Name    string
	Ordinal int // 1-based position in the table
	// Type is the engine's base type name in lower case, without length or
	// precision: "varchar", "nvarchar", "numeric", "timestamptz", "integer".
	Type string
	// Declared is the full type as the engine would write it in DDL:
	// "varchar(64)", "numeric(10,2)", "nvarchar(max)", "timestamp(3) with time zone".
	Declared string
	// Length is the declared length: characters for character types, bytes
	// for binary types; -1 for MAX or unbounded; 0 when the type has none.
	Length    int
	Precision int
	Scale     int
	Collation string
	Nullable  bool

	Identity     bool // identity, serial/bigserial, or SQLite's INTEGER PRIMARY KEY AUTOINCREMENT / rowid alias
	Computed     bool
	ComputedExpr string

	// Default is the default expression as SQL, empty when there is none.
	Default string
	// DefaultName is the name of the default constraint (SQL Server), empty elsewhere.
	DefaultName string

	// Encrypted is true when the engine itself marks the column encrypted
	// (SQL Server Always Encrypted: sys.columns.encryption_type).
	Encrypted bool

	// Bound lists the stand-alone objects bound to the column rather than
	// declared with it (SQL Server's CREATE DEFAULT and CREATE RULE objects
	// bound with sp_bindefault and sp_bindrule): the column cannot be
	// dropped while one is bound.
	Bound []Binding
}

// Binding is a stand-alone object bound to a column.
type Binding struct {
	Kind string // "default", "rule"
	Name string // schema-qualified
	// Unbind is the statement that unbinds it from the column.
	Unbind string
}

// Versioning links a system-versioned table and the history table that
// holds the past versions of its rows. The engine copies every version a
// statement replaces into History, and applies column changes of Current
// to History too.
type Versioning struct {
	Current TableName
	History TableName
	// Off is the statement that stops the versioning, after which both are
	// plain tables.
	Off string
}

// Index is an index or a key constraint (primary key, unique constraint).
type Index struct {
	Name    string
	Columns []string
	Unique  bool
	Primary bool
	// Constraint is true when the index backs a PRIMARY KEY or UNIQUE
	// constraint rather than being a CREATE INDEX.
	Constraint bool
	// Partial is true for an index with a WHERE clause, Expression for one
	// with an expression key; Columns then also lists the columns they
	// reference. Neither can identify rows for batching.
	Partial    bool
	Expression bool
	// ExprColumns are the columns of Columns that an expression key or the
	// WHERE clause uses, where the catalog reader can tell (PostgreSQL,
	// SQLite; SQL Server reports a filter's columns as a Dependent). An
	// index recreated from Definition evaluates them on whatever the
	// column holds then: encrypted, on ciphertext.
	ExprColumns []string
	// Clustered is true for the index that orders the table's rows (SQL
	// Server's clustered index), whose key the engine may limit more.
	Clustered bool
	// Definition is the DDL that recreates it, as the engine reports it
	// (pg_get_indexdef / pg_get_constraintdef, sqlite_master.sql, or built
	// from the SQL Server catalog).
	Definition string
}

// HasColumn reports whether the index covers the column.
func (ix *Index) HasColumn(col string) bool { return containsFold(ix.Columns, col) }

// ForeignKey links Columns of Table to RefColumns of RefTable, in order.
type ForeignKey struct {
	Name       string
	Table      TableName
	Columns    []string
	RefTable   TableName
	RefColumns []string
	OnDelete   string
	OnUpdate   string
	Definition string
}

// Label names the key in messages: its name, or, for a key without one
// (SQLite's are often unnamed), its columns and what they reference.
func (fk *ForeignKey) Label() string {
	if fk.Name != "" {
		return fk.Name
	}
	return fmt.Sprintf("%s (%s) REFERENCES %s (%s)", fk.Table, strings.Join(fk.Columns, ", "), fk.RefTable, strings.Join(fk.RefColumns, ", "))
}

// Check is a check constraint with the columns its expression references.
type Check struct {
	Name       string
	Expr       string
	Columns    []string
	Definition string
}

// Trigger is a trigger on the table with the columns its body references.
type Trigger struct {
	Name       string
	Columns    []string
	Definition string
}

// Dependent is an object that depends on columns of the table.
type Dependent struct {
	Kind    string // "view", "computed column", "materialized view", "schema-bound function", KindStatistics, ...
	Name    string
	Columns []string
	// Definition is the DDL that creates it again, where the reader keeps
	// it (KindExtendedStatistics); empty elsewhere.
	Definition string
}

// KindStatistics is the Dependent kind of a statistics object created by
// hand (SQL Server's CREATE STATISTICS), which stops its columns from
// being dropped.
const KindStatistics = "statistics object"

// KindExtendedStatistics is the Dependent kind of PostgreSQL's extended
// statistics (CREATE STATISTICS), which dropping one of its columns drops
// with it rather than being stopped by it.
const KindExtendedStatistics = "extended statistics"

// Column returns the column with the given name, matched case-insensitively
// as every supported engine does for unquoted names, or nil.
func (t *Table) Column(name string) *Column {
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return c
		}
	}
	return nil
}

// UsableKey returns the columns of the primary key, or else of the first
// unique index, whose columns are all NOT NULL; nil when there is neither,
// in which case the engine adds a row-id column for batching (or uses its
// own). A key column that can hold NULL cannot page the table: no range
// condition selects a NULL key (SQLite lets the primary key of a rowid
// table hold NULL unless it is declared NOT NULL).
func (t *Table) UsableKey() []string {
	notNull := func(cols []string) bool {
		for _, name := range cols {
			if c := t.Column(name); c == nil || c.Nullable {
				return false
			}
		}
		return true
	}
	if t.PrimaryKey != nil && notNull(t.PrimaryKey.Columns) {
		return t.PrimaryKey.Columns
	}
	for _, ix := range t.Indexes {
		if !ix.Unique || ix.Partial || ix.Expression {
			continue
		}
		if notNull(ix.Columns) {
			return ix.Columns
		}
	}
	return nil
}

// ContainsFold reports whether names holds name, ignoring case.
func ContainsFold(names []string, name string) bool { return containsFold(names, name) }

func containsFold(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
