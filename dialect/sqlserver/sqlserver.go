// Package sqlserver is colcrypt's Microsoft SQL Server engine: connecting
// through github.com/microsoft/go-mssqldb, quoting T-SQL identifiers,
// reading a table and everything that depends on it from the sys catalog
// views, the canonical plaintext encoding of each supported type, which
// is the value's own bytes as CAST(col AS VARBINARY(MAX)) returns them, and
// the write side the migration engine drives (dialect.Mover): chunk writes
// through a staging table loaded with TDS bulk copy, and the column swap
// at cut-over and its reverse, each in one transaction.
//
// The package registers itself as "sqlserver" in init; import it for its
// side effect.
//
// Known limits: it needs SQL Server 2016 SP1 or later (CREATE OR ALTER
// TRIGGER, for the write guard and change capture, came with SP1;
// sys.columns.encryption_type and sys.tables.temporal_type with 2016);
// decimal, numeric, money, float and date/time values are encrypted in
// the server's own binary layout, which Microsoft guarantees to read back
// only on the same version, so revert on the major version that encrypted;
// char, varchar and text columns whose collation uses another code page
// than the database's default collation may not be restored byte for byte
// (see codec.RestoreExpr); a reverted column comes back last in the table,
// and a reverted text, ntext or image column keeps NULL and the database's
// default collation (see Unswap).
package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/tcplive"
	"github.com/colcrypt/colcrypt/schema"
)

// SQL Server's hard limits, from "Maximum capacity specifications for SQL
// Server".
const (
	// maxInRowBytes is the most a row may hold in-row; variable-length
	// columns may be pushed off-row, but the planner sizes against it.
	maxInRowBytes = 8060
	// maxValueBytes is the largest (MAX) value: 2^31-1 bytes.
	maxValueBytes = 1<<31 - 1
	// maxColumns is the most columns a non-wide table may have.
	maxColumns = 1024
	// maxVarbinaryN is the largest n of VARBINARY(n); longer values need
	// VARBINARY(MAX).
	maxVarbinaryN = 8000
	// maxKeyBytes and maxClusteredKeyBytes are the most bytes of an index
	// key, nonclustered and clustered (SQL Server 2016 and later).
	maxKeyBytes          = 1700
	maxClusteredKeyBytes = 900
)

// Off-row storage. "Row-Overflow Data Exceeding 8 KB": the 8060-byte limit
// "does not apply to varchar(max), nvarchar(max), varbinary(max), text,
// image, or xml columns", and a value moved off-row leaves a 24-byte
// pointer in the row; at most 8000 bytes of a value stay in-row. A text,
// ntext or image column keeps a 16-byte text pointer in the row
// (sys.columns.max_length is 16 for them unless 'text in row' is set).
const (
	maxInRowValueBytes = 8000
	maxPointerBytes    = 24
	textPointerBytes   = 16
)

func init() { dialect.Register(sqlServer{}) }

// sqlServer implements dialect.Dialect. It holds no state: everything it
// knows about a database comes from the *sql.DB it is handed.
type sqlServer struct{}

var _ dialect.Dialect = sqlServer{}

func (sqlServer) Name() string { return "sqlserver" }

// CostlyConnections implements dialect.CostlyConnections: each connection
// is a new login on the server.
func (sqlServer) CostlyConnections() bool { return true }

// ResolveDSN returns the DSN unchanged: a SQL Server DSN names a server,
// never a file relative to the plan.
func (sqlServer) ResolveDSN(dsn, planDir string) string { return dsn }

func (sqlServer) DefaultSchema() string { return "dbo" }

// Open connects and pings. The driver's messages can echo parts of the DSN,
// so every error is scrubbed of the DSN's passwords before it is returned.
func (sqlServer) Open(ctx context.Context, dsn string) (*sql.DB, error) {
	c, err := newConnector(dsn)
	if err != nil {
		return nil, openError(dsn, err)
	}
	db := sql.OpenDB(c)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, openError(dsn, err)
	}
	return db, nil
}

// Quote brackets an identifier, doubling any closing bracket, which is the
// only character T-SQL escapes inside [...].
func (sqlServer) Quote(ident string) string { return quoteIdent(ident) }

// QuoteTable gives [schema].[name]; an empty schema is the default schema,
// as in ReadTable, so both always name the same table.
func (d sqlServer) QuoteTable(name schema.TableName) string {
	return quoteTable(d.withSchema(name))
}

func (d sqlServer) withSchema(name schema.TableName) schema.TableName {
	if name.Schema == "" {
		name.Schema = d.DefaultSchema()
	}
	return name
}

func quoteIdent(ident string) string {
	return "[" + strings.ReplaceAll(ident, "]", "]]") + "]"
}

func quoteTable(name schema.TableName) string {
	return quoteIdent(name.Schema) + "." + quoteIdent(name.Name)
}

// StoredLenExpr is DATALENGTH, the bytes SQL Server stores for the value
// (for text, ntext, image and xml too).
func (sqlServer) StoredLenExpr(col *schema.Column, quotedCol string) string {
	return "DATALENGTH(" + quotedCol + ")"
}

// CiphertextType is VARBINARY(n) up to SQL Server's 8000-byte limit for n,
// VARBINARY(MAX) beyond it or when the size is unbounded (0).
func (sqlServer) CiphertextType(maxBytes int64) string {
	if maxBytes > 0 && maxBytes <= maxVarbinaryN {
		return fmt.Sprintf("VARBINARY(%d)", maxBytes)
	}
	return "VARBINARY(MAX)"
}

func (sqlServer) Limits() dialect.Limits {
	return dialect.Limits{RowBytes: maxInRowBytes, ValueBytes: maxValueBytes, Columns: maxColumns,
		IndexKeyBytes: maxKeyBytes, ClusteredKeyBytes: maxClusteredKeyBytes}
}

var _ dialect.InRowSizer = sqlServer{}

// InRowLenExpr implements dialect.InRowSizer: a value of a MAX type, xml,
// text, ntext or image over 8000 bytes counts as its pointer. A shorter
// one may stay in-row, so it counts in full, which may overstate a row
// (text, ntext and image are off-row at any length unless the table sets
// 'text in row') but never understates it.
func (sqlServer) InRowLenExpr(declared, lenExpr string) string {
	var pointer int
	switch t := strings.ToLower(strings.ReplaceAll(declared, " ", "")); {
	case strings.HasSuffix(t, "(max)") || t == "xml":
		pointer = maxPointerBytes
	case t == "text" || t == "ntext" || t == "image":
		pointer = textPointerBytes
	default:
		return lenExpr
	}
	return fmt.Sprintf("CASE WHEN %s > %d THEN %d ELSE %s END", lenExpr, maxInRowValueBytes, pointer, lenExpr)
}

// openError wraps a connection failure. When the driver's message holds a
// password from the DSN the original error is not wrapped, only its
// scrubbed text is kept, so that no errors.Unwrap can reach the secret;
// context cancellation stays detectable with errors.Is.
func openError(dsn string, err error) error {
	where := describeDSN(dsn)
	msg := err.Error()
	clean := redact(msg, dsnSecrets(dsn))
	if clean == msg {
		return fmt.Errorf("connect to SQL Server%s: %w", where, err)
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("connect to SQL Server%s: %s: %w", where, clean, ctxErr)
		}
	}
	return fmt.Errorf("connect to SQL Server%s: %s", where, clean)
}

// driverKeepAlive is the keepAlive go-mssqldb gives a DSN without one.
const driverKeepAlive = 30 * time.Second

// newConnector is the driver's connector for dsn ("sqlserver" driver
// semantics), dialing with tcplive's settings, so that a server that
// vanished without a reset fails the connection in about 30 s and the
// job retries. The DSN's keepAlive, when it sets one other than the
// driver's default, is the keepalive idle time (0: no probes); the driver's own dialer
// would probe every keepAlive seconds, 9 times, and leave unacknowledged
// data to the kernel's retransmissions (about 15 minutes on Linux).
func newConnector(dsn string) (*mssql.Connector, error) {
	// The connector of go-mssqldb's "sqlserver" driver, for DSNs in the
	// sqlserver:// URL, ADO (key=value;...) and odbc: forms.
	c, err := mssql.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	p, err := msdsn.Parse(dsn)
	if err != nil {
		return nil, err
	}
	s := tcplive.Defaults()
	switch {
	case p.KeepAlive == 0: // keepAlive=0: no probes, as the DSN asks
		s.Keepalive.Enable = false
	case p.KeepAlive != driverKeepAlive:
		s.Keepalive.Idle = p.KeepAlive
	}
	// The driver bounds the dial with its dial timeout itself.
	c.Dialer = s.Dialer(0)
	return c, nil
}
