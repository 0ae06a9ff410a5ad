// Package postgres is colcrypt's PostgreSQL engine: connecting with a pinned
// session, quoting, reading a table and everything that depends on it from
// pg_catalog, and the canonical plaintext encoding of each supported type.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

func init() { dialect.Register(Dialect{}) }

// Dialect is the PostgreSQL engine. Its zero value is ready to use.
type Dialect struct{}

var _ dialect.Dialect = Dialect{}

// sessionSettings pin every connection's text output, because the canonical
// plaintext of all types but bytea is `col::text` (SPEC §2): the same value
// must give the same bytes in every session, and those bytes must restore
// the value exactly. extra_float_digits=3 makes float8 output the shortest
// exact representation (PostgreSQL 12+) or 17 digits (older), both exact;
// TimeZone=UTC fixes the rendering of timestamptz (the instant is the value).
var sessionSettings = map[string]string{
	"datestyle":          "ISO, MDY",
	"intervalstyle":      "postgres",
	"timezone":           "UTC",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
	// text -> xml parses under xmloption; CONTENT accepts both documents
	// and fragments, so every stored xml value parses back.
	"xmloption": "content",
}

// Name implements dialect.Dialect.
func (Dialect) Name() string { return "postgres" }

// CostlyConnections implements dialect.CostlyConnections: each connection
// is a new server process.
func (Dialect) CostlyConnections() bool { return true }

// ResolveDSN implements dialect.Dialect: PostgreSQL DSNs hold no file paths.
func (Dialect) ResolveDSN(dsn, planDir string) string { return dsn }

// Open implements dialect.Dialect. Every connection of the pool starts with
// sessionSettings as its session defaults, and dials with TCP keepalive and
// a user timeout (tcplive), libpq's keywords for them honoured
// (takeTCPSettings).
func (Dialect) Open(ctx context.Context, dsn string) (*sql.DB, error) {
	dsn = normalizeDSN(dsn)
	redacted := RedactDSN(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redacted, scrub(parseError(err), dsnSecrets(dsn, nil)))
	}
	tcp, err := takeTCPSettings(cfg.RuntimeParams)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redacted, scrub(err, dsnSecrets(dsn, cfg)))
	}
	// One DialFunc serves the first host and every fallback (pgx's
	// FallbackConfig has none of its own), and the cancel requests.
	cfg.DialFunc = tcp.Dialer(cfg.ConnectTimeout).DialContext
	for k, v := range sessionSettings {
		cfg.RuntimeParams[k] = v
	}
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(afterConnect), stdlib.OptionResetSession(forgetStatementsAfterSwap))
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", redacted, scrub(err, dsnSecrets(dsn, cfg)))
	}
	return db, nil
}

// afterConnect prepares each new connection of the pool.
func afterConnect(ctx context.Context, c *pgx.Conn) error {
	registerArrays(c.TypeMap())
	return markSchemaSeen(ctx, c)
}

// Quote implements dialect.Dialect: a double-quoted identifier with every
// double quote doubled, which PostgreSQL takes verbatim and case-sensitive.
func (Dialect) Quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// QuoteTable implements dialect.Dialect. An unqualified name is qualified
// with the default schema, the schema ReadTable resolves it to, so that a
// search_path never makes the two disagree.
func (d Dialect) QuoteTable(name schema.TableName) string {
	s := name.Schema
	if s == "" {
		s = d.DefaultSchema()
	}
	return d.Quote(s) + "." + d.Quote(name.Name)
}

// DefaultSchema implements dialect.Dialect.
func (Dialect) DefaultSchema() string { return "public" }

// StoredLenExpr implements dialect.Dialect: the bytes of the value, as
// DATALENGTH and SQLite's length() count them and as the ciphertext's are
// counted (SPEC §2: a 50-byte column of 10,000 rows is 500,000 bytes now).
// pg_column_size would add the 1- or 4-byte varlena header of every
// string and bytea value; octet_length counts the value itself (char(n)
// with its pad spaces). Other types count their datum: the fixed-size
// ones have no header.
func (Dialect) StoredLenExpr(col *schema.Column, quotedCol string) string {
	switch typ := strings.ToLower(col.Type); {
	case typ == "text" || typ == "varchar" || typ == "bpchar" || typ == "bytea":
		return "octet_length(" + quotedCol + ")"
	case typ == "json" || typ == "xml":
		// Stored as their text.
		return "octet_length((" + quotedCol + ")::text)"
	}
	return "pg_column_size(" + quotedCol + ")"
}

// CiphertextType implements dialect.Dialect: bytea holds any length up to
// the 1 GB value limit.
func (Dialect) CiphertextType(maxBytes int64) string { return "bytea" }

// Limits of PostgreSQL: no in-row limit (long values are TOASTed), 1 GB per
// value, 1600 columns per table.
const (
	maxValueBytes = 1 << 30
	maxColumns    = 1600
)

// Limits implements dialect.Dialect.
func (Dialect) Limits() dialect.Limits {
	return dialect.Limits{RowBytes: 0, ValueBytes: maxValueBytes, Columns: maxColumns, DropFreesStorage: true}
}

// scrubbedError is an error whose message had secrets cut out. It still
// unwraps to the original so that errors.Is/As keep working.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub makes sure no secret appears in err's message: drivers are careful,
// but the promise is ours.
func scrub(err error, secrets []string) error {
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if len(s) >= 1 && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

// errAmbiguous is returned when a name matches several tables only when
// case is ignored.
var errAmbiguous = errors.New("ambiguous table name")
