package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// ReadTable implements dialect.Dialect. Pragmas give columns, indexes and
// foreign keys; the stored CREATE statements give what they omit:
// constraint names, CHECK expressions, generated-column expressions, and
// the columns that triggers and views reference. All of it is read in one
// transaction, so it describes one moment of the schema.
func (d Dialect) ReadTable(ctx context.Context, db *sql.DB, name schema.TableName) (*schema.Table, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep or lose

	r := &catalogReader{d: d, tx: tx, schemaArg: "main", tables: map[string]*refTable{}}
	if !isMainSchema(name.Schema) {
		r.schemaArg = name.Schema
	}
	r.master = d.Quote(r.schemaArg) + ".sqlite_master"
	t, err := r.readTable(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", name, err)
	}
	return t, nil
}

type catalogReader struct {
	d         Dialect
	tx        *sql.Tx
	schemaArg string // the attached database the pragmas read: "main" by default
	master    string // its quoted sqlite_master
	tables    map[string]*refTable
}

// refTable is what foreign keys need of a table they reference.
type refTable struct {
	name       string // as stored in sqlite_master
	primaryKey []string
}

// query runs a catalog query and calls scan for each row.
func (r *catalogReader) query(ctx context.Context, q string, args []any, scan func(*sql.Rows) error) error {
	return dialect.EachRow(ctx, r.tx, q, args, scan)
}

func (r *catalogReader) readTable(ctx context.Context, name schema.TableName) (*schema.Table, error) {
	t := &schema.Table{Name: schema.TableName{Name: name.Name}}
	if !isMainSchema(name.Schema) {
		t.Name.Schema = name.Schema
	}
	err := r.tx.QueryRowContext(ctx,
		`SELECT name, COALESCE(sql, '') FROM `+r.master+` WHERE type = 'table' AND name = ? COLLATE NOCASE`,
		name.Name).Scan(&t.Name.Name, &t.CreateSQL)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, dialect.ErrTableNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up the table: %w", err)
	}
	def := parseCreateTable(t.CreateSQL)

	if err := r.readColumns(ctx, t, def); err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	if err := r.readIndexes(ctx, t, def); err != nil {
		return nil, fmt.Errorf("read indexes: %w", err)
	}
	if err := r.readForeignKeys(ctx, t, def); err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	if err := r.readReferencedBy(ctx, t); err != nil {
		return nil, fmt.Errorf("read foreign keys referencing the table: %w", err)
	}
	names := columnNames(t)
	for _, c := range def.constraints {
		if c.kind == conCheck {
			t.Checks = append(t.Checks, &schema.Check{
				Name: c.name, Expr: c.expr, Columns: columnRefs(tokenize(c.expr), names), Definition: c.text,
			})
		}
	}
	for _, col := range t.Columns {
		if col.Computed {
			refs := columnRefs(tokenize(col.ComputedExpr), names)
			if col.ComputedExpr == "" {
				// The expression could not be recovered from the CREATE
				// TABLE text: assume it may depend on every column.
				refs = names
			}
			var others []string
			for _, ref := range refs {
				if !strings.EqualFold(ref, col.Name) {
					others = append(others, ref)
				}
			}
			t.Dependents = append(t.Dependents, &schema.Dependent{Kind: "computed column", Name: col.Name, Columns: others})
		}
	}
	if err := r.readTriggers(ctx, t); err != nil {
		return nil, fmt.Errorf("read triggers: %w", err)
	}
	if err := r.readViews(ctx, t); err != nil {
		return nil, fmt.Errorf("read views: %w", err)
	}
	// t.RowCount stays 0: SQLite keeps no estimate, and counting would
	// read the whole table, which the sizing scan does anyway (on 1M rows
	// of SPEC §8's table, 0.42 s of apply's start-up).
	return t, nil
}

func columnNames(t *schema.Table) []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// Hidden values of pragma_table_xinfo.
const (
	generatedVirtual = 2
	generatedStored  = 3
)

func (r *catalogReader) readColumns(ctx context.Context, t *schema.Table, def *tableDef) error {
	type pkCol struct {
		col *schema.Column
		pos int
	}
	var pk []pkCol
	err := r.query(ctx,
		`SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?, ?) ORDER BY cid`,
		[]any{t.Name.Name, r.schemaArg}, func(rows *sql.Rows) error {
			c := &schema.Column{Ordinal: len(t.Columns) + 1}
			var notNull bool
			var dflt sql.NullString
			var pkPos, hidden int
			if err := rows.Scan(&c.Name, &c.Declared, &notNull, &dflt, &pkPos, &hidden); err != nil {
				return err
			}
			c.Type, c.Length, c.Precision, c.Scale = parseDeclaredType(c.Declared)
			c.Nullable = !notNull
			c.Default = defaultSQL(dflt.String)
			c.Computed = hidden == generatedVirtual || hidden == generatedStored
			if cd := def.column(c.Name); cd != nil {
				c.Collation = cd.collation
				c.ComputedExpr = cd.generated
			}
			if pkPos > 0 {
				pk = append(pk, pkCol{c, pkPos})
				// A WITHOUT ROWID table enforces NOT NULL on its key.
				if def.withoutRowid {
					c.Nullable = false
				}
			}
			t.Columns = append(t.Columns, c)
			return nil
		})
	if err != nil {
		return err
	}
	if len(t.Columns) == 0 {
		return fmt.Errorf("no columns reported for %s", t.Name)
	}
	if len(pk) == 0 {
		return nil
	}
	t.PrimaryKey = &schema.Index{Unique: true, Primary: true, Constraint: true}
	for pos := 1; pos <= len(pk); pos++ {
		for _, p := range pk {
			if p.pos == pos {
				t.PrimaryKey.Columns = append(t.PrimaryKey.Columns, p.col.Name)
			}
		}
	}
	for _, c := range def.constraints {
		if c.kind == conPrimaryKey {
			t.PrimaryKey.Name = c.name
			break
		}
	}
	// A rowid alias (INTEGER PRIMARY KEY, with or without AUTOINCREMENT) is
	// the row's rowid: SQLite assigns it, it is never NULL, and colcrypt
	// must treat it as an identity. "INT PRIMARY KEY" and, by a quirk kept
	// for compatibility, "INTEGER PRIMARY KEY DESC" are ordinary columns.
	if len(pk) == 1 && !def.withoutRowid && strings.EqualFold(strings.TrimSpace(pk[0].col.Declared), "INTEGER") {
		if cd := def.column(pk[0].col.Name); cd == nil || !cd.pkDesc {
			pk[0].col.Identity = true
			pk[0].col.Nullable = false
		}
	}
	return nil
}

// defaultSQL makes pragma_table_info's dflt_value usable after DEFAULT:
// SQLite reports "DEFAULT (1 + 2)" as "1 + 2", which needs its parentheses
// back; a single literal ('new', -1, x'00', NULL, CURRENT_TIMESTAMP) does not.
func defaultSQL(v string) string {
	toks := tokenize(v)
	if len(toks) == 2 && (toks[0].punct("-") || toks[0].punct("+")) && toks[1].kind == tokNumber {
		return v
	}
	if len(toks) <= 1 {
		return v
	}
	return "(" + v + ")"
}

// parseDeclaredType splits "VARCHAR(64)" into ("varchar", 64, 0, 0) and
// "numeric(10, 2)" into ("numeric", 0, 10, 2). Character and binary types
// without a length are unbounded (-1): SQLite enforces no declared length.
func parseDeclaredType(declared string) (base string, length, precision, scale int) {
	base, args, _ := strings.Cut(declared, "(")
	base = strings.ToLower(strings.Join(strings.Fields(base), " "))
	var nums []int
	if args != "" {
		args, _, _ = strings.Cut(args, ")")
		for _, a := range strings.Split(args, ",") {
			n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(a), "+"))
			if err != nil {
				break
			}
			nums = append(nums, n)
		}
	}
	aff := affinity(base)
	if aff == "TEXT" || aff == "BLOB" || strings.Contains(base, "binary") {
		if len(nums) > 0 {
			return base, nums[0], 0, 0
		}
		return base, -1, 0, 0
	}
	if len(nums) > 0 {
		precision = nums[0]
	}
	if len(nums) > 1 {
		scale = nums[1]
	}
	return base, 0, precision, scale
}

// affinity applies SQLite's rules (https://sqlite.org/datatype3.html §3.1)
// to a declared type.
func affinity(declared string) string {
	d := strings.ToUpper(declared)
	switch {
	case strings.Contains(d, "INT"):
		return "INTEGER"
	case strings.Contains(d, "CHAR"), strings.Contains(d, "CLOB"), strings.Contains(d, "TEXT"):
		return "TEXT"
	case d == "", strings.Contains(d, "BLOB"):
		return "BLOB"
	case strings.Contains(d, "REAL"), strings.Contains(d, "FLOA"), strings.Contains(d, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

func (r *catalogReader) readIndexes(ctx context.Context, t *schema.Table, def *tableDef) error {
	type indexRow struct {
		name, origin string
		unique       bool
	}
	var list []indexRow
	err := r.query(ctx, `SELECT name, "unique", origin FROM pragma_index_list(?, ?) ORDER BY seq DESC`,
		[]any{t.Name.Name, r.schemaArg}, func(rows *sql.Rows) error {
			var ix indexRow
			if err := rows.Scan(&ix.name, &ix.unique, &ix.origin); err != nil {
				return err
			}
			list = append(list, ix)
			return nil
		})
	if err != nil {
		return err
	}
	names := columnNames(t)
	usedUnique := make([]bool, len(def.constraints))
	for _, ix := range list {
		if ix.origin == "pk" {
			// The primary key came from the column list; only its index
			// name is news, for an unnamed key.
			if t.PrimaryKey != nil && t.PrimaryKey.Name == "" {
				t.PrimaryKey.Name = ix.name
			}
			continue
		}
		var createSQL sql.NullString
		if err := r.tx.QueryRowContext(ctx, `SELECT sql FROM `+r.master+` WHERE type = 'index' AND name = ?`,
			ix.name).Scan(&createSQL); err != nil {
			return fmt.Errorf("index %s: %w", ix.name, err)
		}
		out := &schema.Index{Name: ix.name, Unique: ix.unique, Definition: createSQL.String}
		if err := r.indexColumns(ctx, out, createSQL.String, names); err != nil {
			return fmt.Errorf("index %s: %w", ix.name, err)
		}
		cols := out.Columns
		if ix.origin == "u" {
			// A UNIQUE constraint: SQLite names its index sqlite_autoindex_*
			// and forgets the constraint's name, so find it in the CREATE
			// TABLE statement by its columns.
			out.Constraint = true
			for i, c := range def.constraints {
				if c.kind == conUnique && !usedUnique[i] && equalFold(c.columns, cols) {
					usedUnique[i] = true
					if c.name != "" {
						out.Name = c.name
					}
					break
				}
			}
		}
		t.Indexes = append(t.Indexes, out)
	}
	return nil
}

// indexColumns fills the columns of an index: its key columns in order;
// a key that is an expression contributes the columns it references, and
// a partial index the columns of its WHERE clause, since the index depends
// on them too. Those are its ExprColumns as well (a column may be both a
// key and in the WHERE clause), but for a column the clause only tests for
// NULL (withoutNullTests), and they make it an Expression or Partial
// index.
func (r *catalogReader) indexColumns(ctx context.Context, ix *schema.Index, createSQL string, names []string) error {
	keys, where := indexParts(createSQL)
	add := func(list *[]string, c string) {
		if !schema.ContainsFold(*list, c) {
			*list = append(*list, c)
		}
	}
	err := r.query(ctx, `SELECT seqno, cid, name FROM pragma_index_xinfo(?, ?) WHERE key = 1 ORDER BY seqno`,
		[]any{ix.Name, r.schemaArg}, func(rows *sql.Rows) error {
			var seq, cid int
			var name sql.NullString
			if err := rows.Scan(&seq, &cid, &name); err != nil {
				return err
			}
			switch {
			case name.Valid:
				add(&ix.Columns, name.String)
			case cid == -2: // an expression
				ix.Expression = true
				if seq >= len(keys) {
					// Its text could not be recovered: assume it may use
					// every column.
					for _, c := range names {
						add(&ix.Columns, c)
						add(&ix.ExprColumns, c)
					}
					return nil
				}
				for _, c := range columnRefs(keys[seq], names) {
					add(&ix.Columns, c)
					add(&ix.ExprColumns, c)
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	ix.Partial = len(where) > 0
	for _, c := range columnRefs(where, names) {
		add(&ix.Columns, c)
	}
	for _, c := range columnRefs(withoutNullTests(where), names) {
		add(&ix.ExprColumns, c)
	}
	return nil
}

// fkRow is one row of pragma_foreign_key_list: one column pair of a key.
type fkRow struct {
	id                 int
	refTable, from     string
	to                 sql.NullString
	onUpdate, onDelete string
}

func (r *catalogReader) readForeignKeys(ctx context.Context, t *schema.Table, def *tableDef) error {
	var rows []fkRow
	err := r.query(ctx, `SELECT id, "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list(?, ?) ORDER BY id, seq`,
		[]any{t.Name.Name, r.schemaArg}, func(rs *sql.Rows) error {
			var f fkRow
			if err := rs.Scan(&f.id, &f.refTable, &f.from, &f.to, &f.onUpdate, &f.onDelete); err != nil {
				return err
			}
			rows = append(rows, f)
			return nil
		})
	if err != nil {
		return err
	}
	t.ForeignKeys, err = r.buildForeignKeys(ctx, t.Name, rows, def)
	return err
}

// readReferencedBy finds the foreign keys of every table in the database
// that reference t: SQLite keeps no reverse index of them.
func (r *catalogReader) readReferencedBy(ctx context.Context, t *schema.Table) error {
	type referencing struct {
		name, sql string
		rows      []fkRow
	}
	var tables []*referencing
	err := r.query(ctx, `SELECT m.name, COALESCE(m.sql, ''), f.id, f."table", f."from", f."to", f.on_update, f.on_delete
		FROM `+r.master+` AS m, pragma_foreign_key_list(m.name, ?) AS f
		WHERE m.type = 'table' AND f."table" = ? COLLATE NOCASE
		ORDER BY m.name, f.id, f.seq`,
		[]any{r.schemaArg, t.Name.Name}, func(rs *sql.Rows) error {
			var name, createSQL string
			var f fkRow
			if err := rs.Scan(&name, &createSQL, &f.id, &f.refTable, &f.from, &f.to, &f.onUpdate, &f.onDelete); err != nil {
				return err
			}
			if len(tables) == 0 || tables[len(tables)-1].name != name {
				tables = append(tables, &referencing{name: name, sql: createSQL})
			}
			last := tables[len(tables)-1]
			last.rows = append(last.rows, f)
			return nil
		})
	if err != nil {
		return err
	}
	for _, ref := range tables {
		name := schema.TableName{Schema: t.Name.Schema, Name: ref.name}
		fks, err := r.buildForeignKeys(ctx, name, ref.rows, parseCreateTable(ref.sql))
		if err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
		t.ReferencedBy = append(t.ReferencedBy, fks...)
	}
	return nil
}

// buildForeignKeys groups the pragma rows of one table into keys and names
// them from its CREATE TABLE statement (SQLite keeps no constraint names).
func (r *catalogReader) buildForeignKeys(ctx context.Context, table schema.TableName, rows []fkRow, def *tableDef) ([]*schema.ForeignKey, error) {
	var fks []*schema.ForeignKey
	used := make([]bool, len(def.constraints))
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].id == rows[i].id {
			j++
		}
		group := rows[i:j]
		i = j

		ref, err := r.refTable(ctx, group[0].refTable)
		if err != nil {
			return nil, err
		}
		fk := &schema.ForeignKey{
			Table:    table,
			RefTable: schema.TableName{Schema: table.Schema, Name: ref.name},
			OnUpdate: group[0].onUpdate,
			OnDelete: group[0].onDelete,
		}
		for _, f := range group {
			fk.Columns = append(fk.Columns, f.from)
			if f.to.Valid {
				fk.RefColumns = append(fk.RefColumns, f.to.String)
			}
		}
		if len(fk.RefColumns) == 0 {
			// REFERENCES t without columns means t's primary key.
			fk.RefColumns = ref.primaryKey
		}
		for k, c := range def.constraints {
			if c.kind == conForeignKey && !used[k] && equalFold(c.columns, fk.Columns) &&
				strings.EqualFold(c.refTable, group[0].refTable) {
				used[k] = true
				fk.Name = c.name
				break
			}
		}
		fk.Definition = r.foreignKeyDefinition(fk)
		fks = append(fks, fk)
	}
	return fks, nil
}

// refTable returns the stored name and primary key of a referenced table;
// a dangling reference (SQLite allows one) keeps the name as written.
func (r *catalogReader) refTable(ctx context.Context, name string) (*refTable, error) {
	key := strings.ToLower(name)
	if rt, ok := r.tables[key]; ok {
		return rt, nil
	}
	rt := &refTable{name: name}
	err := r.tx.QueryRowContext(ctx, `SELECT name FROM `+r.master+` WHERE type = 'table' AND name = ? COLLATE NOCASE`,
		name).Scan(&rt.name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("referenced table %s: %w", name, err)
	default:
		err = r.query(ctx, `SELECT name FROM pragma_table_info(?, ?) WHERE pk > 0 ORDER BY pk`,
			[]any{rt.name, r.schemaArg}, func(rows *sql.Rows) error {
				var c string
				if err := rows.Scan(&c); err != nil {
					return err
				}
				rt.primaryKey = append(rt.primaryKey, c)
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("primary key of referenced table %s: %w", name, err)
		}
	}
	r.tables[key] = rt
	return rt, nil
}

func (r *catalogReader) foreignKeyDefinition(fk *schema.ForeignKey) string {
	var b strings.Builder
	if fk.Name != "" {
		b.WriteString("CONSTRAINT " + r.d.Quote(fk.Name) + " ")
	}
	b.WriteString("FOREIGN KEY (" + r.quoteList(fk.Columns) + ") REFERENCES " + r.d.Quote(fk.RefTable.Name))
	if len(fk.RefColumns) > 0 {
		b.WriteString(" (" + r.quoteList(fk.RefColumns) + ")")
	}
	if fk.OnUpdate != "" && !strings.EqualFold(fk.OnUpdate, "NO ACTION") {
		b.WriteString(" ON UPDATE " + fk.OnUpdate)
	}
	if fk.OnDelete != "" && !strings.EqualFold(fk.OnDelete, "NO ACTION") {
		b.WriteString(" ON DELETE " + fk.OnDelete)
	}
	return b.String()
}

func (r *catalogReader) quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = r.d.Quote(n)
	}
	return strings.Join(q, ", ")
}

// readTriggers reads the triggers on t, with the columns of t each one
// references, and records as dependents the triggers on other tables or
// views whose bodies reference t's columns: they would write plaintext
// into a ciphertext column.
func (r *catalogReader) readTriggers(ctx context.Context, t *schema.Table) error {
	names := columnNames(t)
	return r.query(ctx, `SELECT name, tbl_name, COALESCE(sql, '') FROM `+r.master+` WHERE type = 'trigger' ORDER BY name`,
		nil, func(rows *sql.Rows) error {
			var name, on, createSQL string
			if err := rows.Scan(&name, &on, &createSQL); err != nil {
				return err
			}
			if strings.HasPrefix(name, dialect.GuardPrefix) {
				return nil // colcrypt's own, for the job running
			}
			updateOf, _, body := triggerParts(createSQL)
			if strings.EqualFold(on, t.Name.Name) {
				refs := columnRefs(append(append([]token(nil), updateOf...), body...), names)
				t.Triggers = append(t.Triggers, &schema.Trigger{Name: name, Columns: refs, Definition: createSQL})
				return nil
			}
			if mentions(body, t.Name.Name) {
				if refs := columnRefs(body, names); len(refs) > 0 {
					t.Dependents = append(t.Dependents, &schema.Dependent{Kind: "trigger", Name: name, Columns: refs})
				}
			}
			return nil
		})
}

// readViews records the views that select columns of t, directly or
// through another such view.
func (r *catalogReader) readViews(ctx context.Context, t *schema.Table) error {
	type view struct {
		name string
		body []token
	}
	var views []view
	err := r.query(ctx, `SELECT name, COALESCE(sql, '') FROM `+r.master+` WHERE type = 'view' ORDER BY name`,
		nil, func(rows *sql.Rows) error {
			var v view
			var createSQL string
			if err := rows.Scan(&v.name, &createSQL); err != nil {
				return err
			}
			v.body = viewBody(createSQL)
			views = append(views, v)
			return nil
		})
	if err != nil {
		return err
	}
	names := columnNames(t)
	sources := []string{t.Name.Name}
	dependent := make([]bool, len(views))
	for changed := true; changed; {
		changed = false
		for i, v := range views {
			if dependent[i] || !mentionsAny(v.body, sources) {
				continue
			}
			refs := columnRefs(v.body, names)
			if len(refs) == 0 {
				continue
			}
			dependent[i], changed = true, true
			sources = append(sources, v.name)
			t.Dependents = append(t.Dependents, &schema.Dependent{Kind: "view", Name: v.name, Columns: refs})
		}
	}
	return nil
}

func mentionsAny(toks []token, objects []string) bool {
	for _, o := range objects {
		if mentions(toks, o) {
			return true
		}
	}
	return false
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
