// Package dialect is the one small contract every database engine meets.
// Everything specific to SQL Server, PostgreSQL or SQLite lives in that
// engine's folder below this one; the planner and the migration engine talk
// only to these interfaces, so adding an engine is adding a folder.
package dialect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/colcrypt/colcrypt/schema"
)

// Dialect is one database engine.
type Dialect interface {
	// Name is the engine name used in plans: "sqlserver", "postgres", "sqlite".
	Name() string
	// ResolveDSN makes a relative file path inside the DSN (a SQLite file)
	// relative to planDir, the folder of the plan file; other DSNs are
	// returned unchanged.
	ResolveDSN(dsn, planDir string) string
	// Open connects with the DSN from the plan and checks the connection.
	// Its errors never contain the DSN's password.
	Open(ctx context.Context, dsn string) (*sql.DB, error)

	// Quote quotes one identifier for this engine, whatever characters it
	// holds (spaces, quotes, brackets, dashes).
	Quote(ident string) string
	// QuoteTable quotes a possibly schema-qualified table name.
	QuoteTable(name schema.TableName) string
	// DefaultSchema is the schema an unqualified name resolves to
	// ("dbo", "public"; "" on SQLite).
	DefaultSchema() string

	// ReadTable reads one table and everything that depends on it from the
	// live catalog. It returns an error wrapping ErrTableNotFound when the
	// table does not exist.
	ReadTable(ctx context.Context, db *sql.DB, name schema.TableName) (*schema.Table, error)

	// Codec gives the canonical plaintext encoding of a column's type, or an
	// error wrapping ErrUnsupportedType naming the type.
	Codec(col *schema.Column) (Codec, error)
	// StoredLenExpr is an SQL expression giving the bytes a non-NULL value
	// of the quoted column occupies today (DATALENGTH, octet_length, length).
	StoredLenExpr(col *schema.Column, quotedCol string) string
	// CiphertextType is the column type that holds ciphertexts of at most
	// maxBytes bytes (0: unbounded): VARBINARY(n) or VARBINARY(MAX), bytea, BLOB.
	CiphertextType(maxBytes int64) string
	// Limits are the engine's hard limits that sizing checks against.
	Limits() Limits
}

// Limits are an engine's limits on rows and values.
type Limits struct {
	// RowBytes is the most bytes a row may hold in-row (8060 on SQL
	// Server); 0 where the engine has no such limit.
	RowBytes int64
	// ValueBytes is the largest single value (1 GB on PostgreSQL; SQLite's
	// default SQLITE_MAX_LENGTH); 0 when the engine has no smaller limit
	// than the plan's large-object limit.
	ValueBytes int64
	// Columns is the most columns a table may have.
	Columns int
	// IndexKeyBytes is the most bytes the key columns of an index may
	// hold (1700 for a nonclustered index on SQL Server), and
	// ClusteredKeyBytes the most for the index that orders the table's
	// rows (900: a clustered index, which SQL Server's primary key is by
	// default); 0 where the engine sets no smaller limit than a value's.
	// An engine with such a limit cannot make its unbounded ciphertext
	// type (CiphertextType(0), VARBINARY(MAX)) a key column.
	IndexKeyBytes     int64
	ClusteredKeyBytes int64
	// CutoverRebuilds says an in-place cut-over writes the whole table
	// again (SQLite cannot change a column's type), so that for a while
	// the table exists twice.
	CutoverRebuilds bool
	// DropFreesStorage says a dropped table's storage goes back to the
	// file system rather than to free pages of the database (PostgreSQL
	// keeps each table in files of its own): a table swapped in by a
	// rebuild leaves no plaintext behind for a purge to rewrite.
	DropFreesStorage bool
}

// InRowSizer is implemented by engines with a row limit (Limits.RowBytes)
// that a value does not always count against in full: SQL Server keeps a
// large value of a MAX or LOB type off-row, behind a pointer of a few
// bytes. Without it, the planner counts a value's stored length
// (StoredLenExpr) against the limit.
type InRowSizer interface {
	// InRowLenExpr is an SQL expression giving the bytes a non-NULL value
	// of the declared type (a column's schema.Column.Declared, or a
	// CiphertextType) counts against Limits.RowBytes, from lenExpr, an
	// SQL expression of its full length in bytes.
	InRowLenExpr(declared, lenExpr string) string
}

// Codec turns the values of one column into canonical plaintext bytes
// (SPEC §2) and back, exactly: trailing spaces, precision, time zone,
// storage class and NULL versus empty all survive the round trip.
//
// Reading: the engine selects SelectExpr(col), scans it into an `any`, and
// Encode turns that into the canonical bytes. NULL is never passed to Encode:
// NULL stays NULL and is never encrypted.
//
// Writing back: Decode turns canonical bytes into a value to bind as a
// query argument, and RestoreExpr wraps the SQL expression holding that
// argument (a placeholder or a staging-table column) so that the engine
// stores it with the column's original type.
type Codec interface {
	SelectExpr(quotedCol string) string
	Encode(v any) ([]byte, error)
	Decode(b []byte) (any, error)
	RestoreExpr(expr string) string
	// MaxPlainBytes is the longest canonical encoding a value of the
	// declared type can have; 0 when the type is unbounded (MAX, text,
	// blob), in which case the plan's large-object limit applies.
	MaxPlainBytes() int64
	// PlainLenExpr is an SQL expression giving the length of the canonical
	// encoding of a non-NULL value, so sizing can run in the database.
	PlainLenExpr(quotedCol string) string
}

// FramedCodec is implemented by codecs whose canonical encoding adds bytes
// of its own to every value (SQLite's storage-class byte). The plan's
// large-object limit is on the value, so it allows them on top.
type FramedCodec interface {
	FrameBytes() int64
}

// FrameBytes is the bytes c adds to every value; 0 for most codecs.
func FrameBytes(c Codec) int64 {
	if f, ok := c.(FramedCodec); ok {
		return f.FrameBytes()
	}
	return 0
}

// ErrTableNotFound is returned by ReadTable for a missing table.
var ErrTableNotFound = errors.New("table not found")

// ErrUnsupportedType is wrapped by Codec for a type colcrypt cannot encrypt.
var ErrUnsupportedType = errors.New("unsupported data type")

var (
	mu       sync.RWMutex
	registry = map[string]Dialect{}
)

// Register makes an engine available under d.Name(). Engine packages call
// it from init.
func Register(d Dialect) {
	mu.Lock()
	defer mu.Unlock()
	registry[d.Name()] = d
}

// Get returns the engine registered under name.
func Get(name string) (Dialect, error) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown database engine %q (known: %v)", name, namesLocked())
	}
	return d, nil
}

// Names lists the registered engines, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// EachRow runs a query and calls scan for every row it returns.
func EachRow(ctx context.Context, q Querier, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SchemaFolder is implemented by engines where one schema goes by several
// names: SQLite's main is also the schema of a name without one.
type SchemaFolder interface {
	// FoldSchema gives one name for all the names of schema s.
	FoldSchema(s string) string
}

// ResolveTableName parses a plan's table name ("schema.table" or "table")
// into the name colcrypt records its job under: an unqualified name gets
// the engine's default schema. The plan's spelling is kept otherwise, so a
// job's records stay found by the plan that began them.
func ResolveTableName(d Dialect, s string) schema.TableName {
	tn := schema.ParseTableName(s)
	if tn.Schema == "" {
		tn.Schema = d.DefaultSchema()
	}
	return tn
}

// TableKey is the name of table tn (a plan's, a job record's or the
// catalog's) as names are compared across plans: the default schema for
// none, one name for a schema with several, lower case. Two plans
// spelling one table differently must find each other's work: SQLite's
// "main.customers" and "customers" would otherwise each encrypt it, the
// second time over the first's ciphertext.
func TableKey(d Dialect, tn schema.TableName) string {
	if tn.Schema == "" {
		tn.Schema = d.DefaultSchema()
	}
	if f, ok := d.(SchemaFolder); ok {
		tn.Schema = f.FoldSchema(tn.Schema)
	}
	return strings.ToLower(tn.Schema + "\x00" + tn.Name)
}
