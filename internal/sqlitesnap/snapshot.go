// Package sqlitesnap takes and compares snapshots of SQLite databases for
// tests: every schema entry and every stored value outside colcrypt's own
// tables, exactly enough to tell whether a user could see a difference.
package sqlitesnap

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Snapshot is every schema entry (type, name, table and SQL text) and
// every row of every table, rendered with each column's storage class and
// exact value.
type Snapshot struct {
	Schema []string
	Rows   map[string][]string // table → rows, in rowid (or key) order
}

// Options choose what a snapshot leaves out.
type Options struct {
	// DataOnly leaves out the CREATE TABLE texts and what a job adds
	// (ciphertext, IV, restored plaintext and row-id columns; the table's
	// replacement built during the copy, with its indexes): what must not
	// change before a cut-over.
	DataOnly bool
	// NoSequence leaves out sqlite_sequence.
	NoSequence bool
}

// userObjects are the schema entries outside colcrypt's own tables.
const userObjects = `FROM sqlite_master WHERE name NOT LIKE 'colcrypt\_%' ESCAPE '\'
	AND name NOT LIKE 'sqlite\_autoindex\_colcrypt\_%' ESCAPE '\'`

// Take reads the snapshot of the database db.
func Take(db *sql.DB, opt Options) (Snapshot, error) {
	s := Snapshot{Rows: map[string][]string{}}
	query := `SELECT type, name, tbl_name, COALESCE(sql, '<auto>') ` + userObjects
	if opt.NoSequence {
		query += ` AND name <> 'sqlite_sequence'`
	}
	rows, err := db.Query(query + ` ORDER BY type, name`)
	if err != nil {
		return s, fmt.Errorf("read schema: %w", err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, tbl, text string
		if err := rows.Scan(&typ, &name, &tbl, &text); err != nil {
			rows.Close()
			return s, fmt.Errorf("read schema: %w", err)
		}
		if opt.DataOnly && addedTable(tbl) {
			continue
		}
		if typ == "table" {
			tables = append(tables, name)
			if opt.DataOnly {
				continue
			}
		}
		s.Schema = append(s.Schema, fmt.Sprintf("%s %s on %s: %s", typ, name, tbl, text))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read schema: %w", err)
	}
	for _, t := range tables {
		r, err := tableRows(db, t, opt.DataOnly)
		if err != nil {
			return s, fmt.Errorf("snapshot of %s: %w", t, err)
		}
		s.Rows[t] = r
	}
	return s, nil
}

// addedColumn reports whether a column is one a job adds.
func addedColumn(name string) bool {
	for _, suffix := range []string{"__colcrypt", "__colcrypt_plain", "_iv"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return name == "colcrypt_row_id"
}

// addedTable reports whether a table is the replacement a job builds.
func addedTable(name string) bool { return strings.HasSuffix(name, "__colcrypt_new") }

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// tableRows renders every row of a table: rowid when it has one, then each
// column's storage class and value. Values are read through a unary plus,
// which strips the declared type so the driver returns them as stored.
func tableRows(db *sql.DB, table string, dataOnly bool) ([]string, error) {
	all, err := columnNames(db, table)
	if err != nil {
		return nil, err
	}
	var cols []string
	for _, c := range all {
		if !dataOnly || !addedColumn(c) {
			cols = append(cols, c)
		}
	}
	var sel []string
	for _, c := range cols {
		sel = append(sel, "typeof("+quote(c)+")", "+"+quote(c))
	}
	withRowid := true
	var probe any
	if err := db.QueryRow("SELECT rowid FROM " + quote(table) + " LIMIT 1").Scan(&probe); err != nil && !errors.Is(err, sql.ErrNoRows) {
		withRowid = false
	}
	query := "SELECT " + strings.Join(sel, ", ") + " FROM " + quote(table)
	if withRowid {
		query = "SELECT rowid, " + strings.Join(sel, ", ") + " FROM " + quote(table) + " ORDER BY rowid"
	}
	rows, err := db.Query(query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := 2 * len(cols)
	if withRowid {
		n++
	}
	var out []string
	for rows.Next() {
		vals := make([]any, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var parts []string
		for i, v := range vals {
			label, j := "rowid", i
			if withRowid {
				j--
			}
			if j >= 0 {
				label = cols[j/2]
				if j%2 == 0 {
					label += ".type"
				}
			}
			parts = append(parts, label+"="+Render(v))
		}
		out = append(out, strings.Join(parts, " "))
	}
	if !withRowid {
		sort.Strings(out)
	}
	return out, rows.Err()
}

func columnNames(db *sql.DB, table string) ([]string, error) {
	rows, err := db.Query("SELECT name FROM pragma_table_xinfo(?) ORDER BY cid", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// Render shows a scanned value exactly: Go type, and float bits, so that
// -0.0 and 0.0 differ.
func Render(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case float64:
		return fmt.Sprintf("real(%v|%016x)", x, math.Float64bits(x))
	case []byte:
		return fmt.Sprintf("blob(%x)", x)
	case string:
		return fmt.Sprintf("text(%q)", x)
	case int64:
		return fmt.Sprintf("int(%d)", x)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// Diff describes the first differences between two snapshots, "" if none.
func (a Snapshot) Diff(b Snapshot) string {
	var out []string
	if strings.Join(a.Schema, "\n") != strings.Join(b.Schema, "\n") {
		out = append(out, "schema differs:\n  before: "+strings.Join(a.Schema, "\n          ")+"\n  after:  "+strings.Join(b.Schema, "\n          "))
	}
	var names []string
	for t := range a.Rows {
		names = append(names, t)
	}
	for t := range b.Rows {
		if _, ok := a.Rows[t]; !ok {
			names = append(names, t)
		}
	}
	sort.Strings(names)
	for _, t := range names {
		ra, rb := a.Rows[t], b.Rows[t]
		if len(ra) != len(rb) {
			out = append(out, fmt.Sprintf("table %s: %d rows before, %d after", t, len(ra), len(rb)))
			continue
		}
		differ := 0
		for i := range ra {
			if ra[i] != rb[i] {
				if differ < 3 {
					out = append(out, fmt.Sprintf("table %s row %d:\n  before: %s\n  after:  %s", t, i, ra[i], rb[i]))
				}
				differ++
			}
		}
		if differ > 3 {
			out = append(out, fmt.Sprintf("table %s: %d rows differ in all", t, differ))
		}
	}
	return strings.Join(out, "\n")
}
