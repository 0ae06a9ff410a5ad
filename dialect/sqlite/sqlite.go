// Package sqlite is colcrypt's SQLite engine, through the pure-Go driver
// modernc.org/sqlite: DSN handling, identifier quoting, the catalog reader
// (which recovers from the stored CREATE statements what SQLite's pragmas do
// not report) and the canonical plaintext codec, which keeps each value's
// storage class because SQLite columns are dynamically typed.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DriverName is the database/sql driver name modernc.org/sqlite registers.
const DriverName = "sqlite"

const (
	// busyTimeoutMillis lets a statement wait for a lock held by another
	// connection (a worker, the catch-up reader) instead of failing at once
	// with SQLITE_BUSY; ten seconds outlasts any single colcrypt chunk.
	busyTimeoutMillis = 10000
	// maxValueBytes is SQLite's default SQLITE_MAX_LENGTH.
	maxValueBytes = 1_000_000_000
	// maxColumns is SQLite's default SQLITE_MAX_COLUMN.
	maxColumns = 2000
)

// Dialect is the SQLite engine. Its zero value is ready to use.
type Dialect struct{}

func init() { dialect.Register(Dialect{}) }

var _ dialect.Dialect = Dialect{}

// Name implements dialect.Dialect.
func (Dialect) Name() string { return "sqlite" }

// DefaultSchema implements dialect.Dialect: SQLite has no schemas, only
// attached databases, and an unqualified name needs no prefix.
func (Dialect) DefaultSchema() string { return "" }

// Quote implements dialect.Dialect: SQL-standard double quotes, with an
// embedded double quote doubled.
func (Dialect) Quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// QuoteTable implements dialect.Dialect. The schema is an attached
// database name; "main" is the default and is left out.
func (d Dialect) QuoteTable(name schema.TableName) string {
	if isMainSchema(name.Schema) {
		return d.Quote(name.Name)
	}
	return d.Quote(name.Schema) + "." + d.Quote(name.Name)
}

func isMainSchema(s string) bool { return s == "" || strings.EqualFold(s, "main") }

// FoldSchema implements dialect.SchemaFolder: main is recorded as no
// schema, as an unqualified name is.
func (Dialect) FoldSchema(s string) string {
	if isMainSchema(s) {
		return ""
	}
	return s
}

// StoredLenExpr implements dialect.Dialect: SQLite stores integers and
// reals in at most 8 bytes, text and blobs in their byte length.
func (Dialect) StoredLenExpr(_ *schema.Column, quotedCol string) string {
	return fmt.Sprintf("CASE typeof(%[1]s) WHEN 'integer' THEN 8 WHEN 'real' THEN 8 ELSE length(CAST(%[1]s AS BLOB)) END", quotedCol)
}

// CiphertextType implements dialect.Dialect: a BLOB holds any length.
func (Dialect) CiphertextType(int64) string { return "BLOB" }

// Limits implements dialect.Dialect with SQLite's compiled-in defaults.
func (Dialect) Limits() dialect.Limits {
	return dialect.Limits{RowBytes: 0, ValueBytes: maxValueBytes, Columns: maxColumns, CutoverRebuilds: true}
}

// splitDSN splits a DSN into its path part, whether it is a file: URI, and
// the "?query" suffix (with its "?", empty when there is none).
func splitDSN(dsn string) (path string, uri bool, query string) {
	path = dsn
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		path, query = dsn[:i], dsn[i:]
	}
	if rest, ok := strings.CutPrefix(path, "file:"); ok {
		return rest, true, query
	}
	return path, false, query
}

// inMemory reports whether the DSN names no file at all.
func inMemory(path string, query string) bool {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, ":memory:") {
		return true
	}
	q, _ := url.ParseQuery(strings.TrimPrefix(query, "?"))
	return q.Get("mode") == "memory"
}

// ResolveDSN implements dialect.Dialect: a relative database path, plain
// or in a file: URI, is taken relative to the plan's folder.
func (Dialect) ResolveDSN(dsn, planDir string) string {
	path, uri, query := splitDSN(dsn)
	if planDir == "" || inMemory(path, query) {
		return dsn
	}
	if !uri {
		if filepath.IsAbs(path) {
			return dsn
		}
		return filepath.Join(planDir, path) + query
	}
	// file:/abs, file:///abs and file://host/abs are absolute already.
	if strings.HasPrefix(path, "/") {
		return dsn
	}
	dir, err := filepath.Abs(planDir)
	if err != nil {
		dir = planDir
	}
	return "file:" + escapeURIPath(filepath.ToSlash(dir)) + "/" + path + query
}

// escapeURIPath escapes the characters that end or change the path of a
// SQLite URI, so a folder named "a?b" or "50%" stays one path.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(p)
}

// filePath returns the file a DSN opens, decoded from URI form.
func filePath(path string, uri bool) (string, error) {
	if !uri {
		return path, nil
	}
	if rest, ok := strings.CutPrefix(path, "//"); ok {
		// file://host/path: SQLite accepts only an empty host or localhost.
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return "", fmt.Errorf("sqlite URI %q has no path", "file:"+path)
		}
		path = rest[i:]
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	return url.PathUnescape(path)
}

// Open implements dialect.Dialect. It refuses a file that does not exist:
// SQLite would silently create an empty database for a mistyped path, and
// colcrypt would then report "table not found" instead of the real mistake.
func (Dialect) Open(ctx context.Context, dsn string) (*sql.DB, error) {
	path, uri, query := splitDSN(dsn)
	file := path
	if !inMemory(path, query) {
		var err error
		if file, err = filePath(path, uri); err != nil {
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		st, err := os.Stat(file)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("open sqlite database %s: the file does not exist: %w", file, err)
		case err != nil:
			return nil, fmt.Errorf("open sqlite database %s: %w", file, err)
		case st.IsDir():
			return nil, fmt.Errorf("open sqlite database %s: is a directory, not a database file", file)
		}
	}
	full := path + connectionQuery(query)
	if uri {
		full = "file:" + full
	}
	db, err := sql.Open(DriverName, full)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", file, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", file, err)
	}
	return db, nil
}

// connectionPragmas are set on every pooled connection unless the DSN sets
// the same pragma itself. foreign_keys makes SQLite enforce the keys
// colcrypt reads and rebuilds. (The write-ahead log, which lets the copy
// workers read while one writes, is a setting of the file, not of a
// connection: a job switches to it and back, SwitchJournal, and a dry run
// leaves the file as it was.)
// cache_size gives each connection 8 MiB of page cache instead of SQLite's
// 2 MiB: past about 3M rows of a 300-byte row the table's interior b-tree
// pages no longer fit in 2 MiB, and every row the copy writes then reads
// them from the file again (measured on 4M rows: copy 48 s → 32 s; peak
// RSS +14 MB). wal_autocheckpoint lets the write-ahead log grow to 64 MiB
// (16384 pages of 4 KiB) instead of 4 MiB before a commit copies it into
// the database file: each checkpoint ends with an fsync, and a copy that
// commits a chunk every few milliseconds paid for one every 1000 pages
// (measured on 1M rows: copy 5.5 s → 5.0 s).
var connectionPragmas = []struct {
	name      string   // as in PRAGMA name
	value     string   // as in _pragma=name(value)
	shorthand []string // the driver's DSN keys for the same pragma
}{
	{"busy_timeout", fmt.Sprint(busyTimeoutMillis), []string{"_busy_timeout", "_timeout"}},
	{"foreign_keys", "ON", []string{"_foreign_keys", "_fk"}},
	{"cache_size", "-8192", nil},
	{"wal_autocheckpoint", "16384", nil},
}

// valueConvertingKeys make the driver turn date-shaped values into
// time.Time. The codec must see the stored value itself (SPEC §2: the round
// trip gives back exactly the original), so they are dropped from the DSN.
var valueConvertingKeys = []string{"_texttotime", "_inttotime"}

// connectionQuery returns the DSN query ("?..." or "") with the
// connection pragmas added and the value-converting keys removed. It works
// on the raw text so that every other parameter reaches the driver as the
// user wrote it.
func connectionQuery(query string) string {
	raw := strings.TrimPrefix(query, "?")
	parsed, _ := url.ParseQuery(raw)
	var parts []string
	for _, p := range strings.Split(raw, "&") {
		key, _, _ := strings.Cut(p, "=")
		if p == "" || containsKey(valueConvertingKeys, key) {
			continue
		}
		parts = append(parts, p)
	}
	for _, p := range connectionPragmas {
		if userSetsPragma(parsed, p.name, p.shorthand) {
			continue
		}
		parts = append(parts, "_pragma="+p.name+"("+p.value+")")
	}
	if len(parts) == 0 {
		return ""
	}
	return "?" + strings.Join(parts, "&")
}

func userSetsPragma(q url.Values, name string, shorthand []string) bool {
	for _, k := range shorthand {
		if _, ok := q[k]; ok {
			return true
		}
	}
	for _, v := range q["_pragma"] {
		v = strings.ToLower(strings.TrimSpace(v))
		if strings.HasPrefix(v, name) {
			return true
		}
	}
	return false
}

func containsKey(keys []string, key string) bool {
	for _, k := range keys {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}
