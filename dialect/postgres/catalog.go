package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// ReadTable implements dialect.Dialect from pg_catalog. Names are matched
// exactly first; a name that matches one table only when case is ignored
// (a plan that says Customers for customers) resolves to it.
func (d Dialect) ReadTable(ctx context.Context, db *sql.DB, name schema.TableName) (*schema.Table, error) {
	if name.Schema == "" {
		name.Schema = d.DefaultSchema()
	}
	// One snapshot for all the queries, so that DDL running meanwhile
	// cannot give a table whose parts disagree.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read catalog of %s: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo
	r := &catalogReader{tx: tx, d: d}
	t, err := r.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read catalog of %s: %w", name, err)
	}
	return t, nil
}

type catalogReader struct {
	tx  *sql.Tx
	d   Dialect
	oid uint32
	t   *schema.Table
	// byNum maps attnum to column name; attnums have gaps where columns
	// were dropped.
	byNum map[int]string
}

func (r *catalogReader) read(ctx context.Context, name schema.TableName) (*schema.Table, error) {
	var reltuples float64
	if err := r.find(ctx, name, &reltuples); err != nil {
		return nil, err
	}
	steps := []struct {
		what string
		f    func(context.Context) error
	}{
		{"columns", r.columns},
		{"constraints", r.constraints},
		{"indexes", r.indexes},
		{"triggers", r.triggers},
		{"views", r.views},
		{"computed columns", r.computedColumns},
		{"functions and policies", r.otherDependents},
		{"extended statistics", r.statistics},
		{"objects bound to the table", r.unmovable},
	}
	for _, s := range steps {
		if err := s.f(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		}
	}
	if reltuples >= 0 {
		r.t.RowCount = int64(reltuples)
	} else {
		// Never vacuumed or analyzed (PostgreSQL 14+ says -1): count.
		q := "SELECT count(*) FROM " + r.d.QuoteTable(r.t.Name)
		if err := r.tx.QueryRowContext(ctx, q).Scan(&r.t.RowCount); err != nil {
			return nil, fmt.Errorf("count rows: %w", err)
		}
	}
	return r.t, nil
}

// find resolves the name to a table (plain or partitioned).
func (r *catalogReader) find(ctx context.Context, name schema.TableName, reltuples *float64) error {
	rows, err := r.tx.QueryContext(ctx, `
SELECT c.oid, n.nspname, c.relname, c.reltuples
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2)`, name.Schema, name.Name)
	if err != nil {
		return err
	}
	defer rows.Close()
	type match struct {
		oid    uint32
		name   schema.TableName
		tuples float64
	}
	var all []match
	for rows.Next() {
		var m match
		if err := rows.Scan(&m.oid, &m.name.Schema, &m.name.Name, &m.tuples); err != nil {
			return err
		}
		all = append(all, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var pick *match
	for i := range all {
		if all[i].name == name {
			pick = &all[i]
		}
	}
	if pick == nil {
		switch len(all) {
		case 0:
			// ReadTable's wrapping names the table.
			return dialect.ErrTableNotFound
		case 1:
			pick = &all[0]
		default:
			var names []string
			for _, m := range all {
				names = append(names, r.d.QuoteTable(m.name))
			}
			sort.Strings(names)
			return fmt.Errorf("%w: %s matches %s; write the name with its exact case", errAmbiguous, name, strings.Join(names, ", "))
		}
	}
	r.oid = pick.oid
	r.t = &schema.Table{Name: pick.name}
	*reltuples = pick.tuples
	return nil
}

// query runs q with the table's oid as $1 and calls scan for every row.
func (r *catalogReader) query(ctx context.Context, q string, scan func(*sql.Rows) error) error {
	return dialect.EachRow(ctx, r.tx, q, []any{r.oid}, scan)
}

func (r *catalogReader) columns(ctx context.Context) error {
	r.byNum = map[int]string{}
	return r.query(ctx, `
SELECT a.attnum, a.attname,
       t.typname, tn.nspname, t.typtype::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypmod,
       CASE WHEN a.attcollation IN (0, 100) THEN ''
            WHEN cn.nspname = 'pg_catalog' THEN co.collname::text
            ELSE cn.nspname || '.' || co.collname END,
       a.attnotnull, a.attidentity::text, a.attgenerated::text,
       coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), ''),
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               WHERE d.classid = 'pg_catalog.pg_class'::regclass
                 AND d.refclassid = 'pg_catalog.pg_class'::regclass
                 AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
                 AND d.deptype = 'a')
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, func(rows *sql.Rows) error {
		var (
			num                        int
			typname, typnsp, typtype   string
			typmod                     int
			notNull, ownsSequence      bool
			identity, generated, adsrc string
			c                          schema.Column
		)
		if err := rows.Scan(&num, &c.Name, &typname, &typnsp, &typtype, &c.Declared, &typmod,
			&c.Collation, &notNull, &identity, &generated, &adsrc, &ownsSequence); err != nil {
			return err
		}
		c.Ordinal = len(r.t.Columns) + 1
		c.Nullable = !notNull
		c.Type = typname
		if typnsp != "pg_catalog" || (typtype != "b" && typtype != "p") {
			// Enums, domains, composites and ranges, and anything outside
			// pg_catalog, keep a name that can never be taken for a
			// built-in type of the same name.
			c.Type = typnsp + "." + typname
		} else {
			c.Length, c.Precision, c.Scale = typmodParts(typname, typmod)
		}
		switch {
		case generated != "":
			c.Computed = true
			c.ComputedExpr = adsrc
		default:
			c.Default = adsrc
		}
		// identity columns (ALWAYS or BY DEFAULT), and serial columns: a
		// nextval default on a sequence the column owns.
		c.Identity = identity == "a" || identity == "d" ||
			(ownsSequence && strings.HasPrefix(adsrc, "nextval("))
		r.byNum[num] = c.Name
		r.t.Columns = append(r.t.Columns, &c)
		return nil
	})
}

// typmodParts decodes atttypmod into schema.Column's Length, Precision and
// Scale the way format_type does.
func typmodParts(typname string, typmod int) (length, precision, scale int) {
	switch typname {
	case "varchar", "bpchar":
		if typmod >= 4 {
			return typmod - 4, 0, 0
		}
		return -1, 0, 0
	case "bit", "varbit":
		if typmod >= 0 {
			return typmod, 0, 0
		}
		return -1, 0, 0
	case "text", "bytea", "json", "jsonb", "xml":
		return -1, 0, 0
	case "numeric":
		if typmod >= 4 {
			m := typmod - 4
			// PostgreSQL 15 allows negative scales, stored as 11-bit
			// two's complement.
			return 0, (m >> 16) & 0xffff, ((m & 0x7ff) ^ 1024) - 1024
		}
		return 0, 0, 0
	case "time", "timetz", "timestamp", "timestamptz":
		if typmod >= 0 {
			return 0, typmod, 0
		}
		return 0, defaultTimePrecision, 0
	}
	return 0, 0, 0
}

// defaultTimePrecision is the fractional-second digits of time and
// timestamp types declared without a precision.
const defaultTimePrecision = 6

// fkActions decodes confdeltype and confupdtype.
var fkActions = map[string]string{
	"a": "NO ACTION",
	"r": "RESTRICT",
	"c": "CASCADE",
	"n": "SET NULL",
	"d": "SET DEFAULT",
}

func (r *catalogReader) constraints(ctx context.Context) error {
	return r.query(ctx, `
SELECT c.conname, c.contype::text, pg_catalog.pg_get_constraintdef(c.oid),
       coalesce(pg_catalog.pg_get_expr(c.conbin, c.conrelid), ''),
       c.conrelid = $1, c.confrelid = $1,
       rn.nspname, r.relname,
       coalesce((SELECT json_agg(a.attname ORDER BY k.i)
                 FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), '[]')::text,
       coalesce(fn.nspname, ''), coalesce(f.relname, ''),
       coalesce((SELECT json_agg(a.attname ORDER BY k.i)
                 FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n), '[]')::text,
       c.confdeltype::text, c.confupdtype::text
FROM pg_catalog.pg_constraint c
JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
LEFT JOIN pg_catalog.pg_class f ON f.oid = c.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace
WHERE c.conrelid = $1 OR (c.contype = 'f' AND c.confrelid = $1)
ORDER BY rn.nspname, r.relname, c.conname`, func(rows *sql.Rows) error {
		var (
			name, typ, def, expr string
			mine, referenced     bool
			tab, ref             schema.TableName
			cols, refCols        jsonNames
			onDelete, onUpdate   string
		)
		if err := rows.Scan(&name, &typ, &def, &expr, &mine, &referenced,
			&tab.Schema, &tab.Name, &cols, &ref.Schema, &ref.Name, &refCols,
			&onDelete, &onUpdate); err != nil {
			return err
		}
		switch typ {
		case "p":
			r.t.PrimaryKey = &schema.Index{Name: name, Columns: cols, Unique: true,
				Primary: true, Constraint: true, Definition: def}
		case "u":
			r.t.Indexes = append(r.t.Indexes, &schema.Index{Name: name, Columns: cols,
				Unique: true, Constraint: true, Definition: def})
		case "x":
			// An exclusion constraint is backed by an index and must be
			// rebuilt like one, but it is no uniqueness guarantee.
			r.t.Indexes = append(r.t.Indexes, &schema.Index{Name: name, Columns: cols,
				Constraint: true, Definition: def})
		case "c":
			r.t.Checks = append(r.t.Checks, &schema.Check{Name: name, Expr: expr,
				Columns: cols, Definition: def})
		case "f":
			fk := &schema.ForeignKey{Name: name, Table: tab, Columns: cols,
				RefTable: ref, RefColumns: refCols,
				OnDelete: fkActions[onDelete], OnUpdate: fkActions[onUpdate], Definition: def}
			if mine {
				r.t.ForeignKeys = append(r.t.ForeignKeys, fk)
			}
			if referenced {
				r.t.ReferencedBy = append(r.t.ReferencedBy, fk)
			}
		}
		return nil
	})
}

// indexes reads the indexes that back no constraint. Their columns are the
// key and INCLUDE columns in order, then the columns that only appear in
// index expressions or the predicate of a partial index, which pg_depend
// records.
//
// ExprColumns are the columns the expressions and the predicate use, read
// from their node trees: pg_depend cannot tell them, since it records a
// column once however many times the index uses it (ON t (email) WHERE
// email IS NOT NULL has one entry for email). A column the predicate only
// tests for NULL (a NullTest of the bare column) is not among them: NULL
// stays NULL under encryption, so that test selects the same rows on the
// ciphertext, and a unique index WHERE email IS NOT NULL is rebuilt as it
// is.
func (r *catalogReader) indexes(ctx context.Context) error {
	return r.query(ctx, `
SELECT ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid), i.indisunique,
       i.indexprs IS NOT NULL, i.indpred IS NOT NULL,
       to_json(i.indkey::int2[])::text,
       coalesce((SELECT json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)
                 FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indrelid
                   AND d.refobjsubid > 0), '[]')::text,
       `+varAttnumsSQL(`coalesce(i.indexprs::text, '') || ' ' || `+
		`regexp_replace(coalesce(i.indpred::text, ''), '\{NULLTEST :arg \{VAR [^{}]*\}', '', 'g')`)+`
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                  WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                    AND c.contype IN ('p', 'u', 'x'))
ORDER BY ic.relname`, func(rows *sql.Rows) error {
		var (
			ix               schema.Index
			key, extra, expr jsonNums
		)
		if err := rows.Scan(&ix.Name, &ix.Definition, &ix.Unique, &ix.Expression, &ix.Partial,
			&key, &extra, &expr); err != nil {
			return err
		}
		ix.Columns = r.names(append(key, extra...))
		ix.ExprColumns = r.varColumns(expr)
		for _, c := range ix.ExprColumns {
			// A whole-row reference, which pg_depend records as the table.
			if !slices.Contains(ix.Columns, c) {
				ix.Columns = append(ix.Columns, c)
			}
		}
		r.t.Indexes = append(r.t.Indexes, &ix)
		return nil
	})
}

// varAttnumsSQL is an SQL expression giving the JSON array of the attnums
// of the Vars in tree, the text of pg_node_tree values of the table (index
// expressions and predicates, rule actions): "{VAR :varno 1 :varattno 2
// ...}". 0 is a whole-row reference. The text form is stable across
// releases; constants in it are printed as bytes, so no value can pass
// for a Var.
func varAttnumsSQL(tree string) string {
	return `coalesce((SELECT json_agg(DISTINCT m[1]::int ORDER BY m[1]::int)
                 FROM regexp_matches(` + tree + `, ':varattno (-?[0-9]+)', 'g') AS m), '[]')::text`
}

// varColumns turns the attnums of varAttnumsSQL into column names; a
// whole-row reference (0) uses every column.
func (r *catalogReader) varColumns(nums []int) []string {
	for _, n := range nums {
		if n == 0 {
			return r.allColumns()
		}
	}
	return r.names(nums)
}

// allColumns lists every column of the table in order.
func (r *catalogReader) allColumns() []string {
	out := make([]string, 0, len(r.t.Columns))
	for _, c := range r.t.Columns {
		out = append(out, c.Name)
	}
	return out
}

// guardLike matches the names of WriteGuard triggers in LIKE, which are
// colcrypt's own, not the user's.
var guardLike = strings.ReplaceAll(dialect.GuardPrefix, "_", `\_`) + "%"

// triggers reads the user's triggers. A trigger references a column when it
// fires on UPDATE OF it or mentions it in its WHEN clause (both recorded in
// pg_depend), or when its function's source names it outside strings and
// comments: plpgsql is only parsed when it runs, so the catalog records no
// such dependency and the source is all there is.
func (r *catalogReader) triggers(ctx context.Context) error {
	return r.query(ctx, `
SELECT t.tgname, pg_catalog.pg_get_triggerdef(t.oid),
       to_json(t.tgattr::int2[])::text,
       coalesce((SELECT json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)
                 FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_trigger'::regclass AND d.objid = t.oid
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = t.tgrelid
                   AND d.refobjsubid > 0), '[]')::text,
       l.lanname, coalesce(p.prosrc, '')
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE t.tgrelid = $1 AND NOT t.tgisinternal AND t.tgname NOT LIKE '`+guardLike+`'
ORDER BY t.tgname`, func(rows *sql.Rows) error {
		var (
			tg               schema.Trigger
			attr, deps       jsonNums
			language, source string
		)
		if err := rows.Scan(&tg.Name, &tg.Definition, &attr, &deps, &language, &source); err != nil {
			return err
		}
		nums := append(attr, deps...)
		// For C and internal functions prosrc is a symbol name, not code.
		if language != "c" && language != "internal" {
			mentioned := map[string]bool{}
			for _, id := range identifiers(source) {
				mentioned[id] = true
			}
			for num, col := range r.byNum {
				if mentioned[col] {
					nums = append(nums, num)
				}
			}
		}
		sort.Ints(nums)
		tg.Columns = r.names(nums)
		r.t.Triggers = append(r.t.Triggers, &tg)
		return nil
	})
}

// viewKinds names the relkinds of the relations whose rewrite rules
// depend on columns.
var viewKinds = map[string]string{
	"v": "view",
	"m": "materialized view",
}

// viewRule is the name of the rewrite rule that is a view's query.
const viewRule = "_RETURN"

// views reads the views, materialized views and rules (CREATE RULE, on
// this table or another relation) that use columns of the table. Each
// rewrite rule depends in pg_depend on the columns it reads or writes,
// which is what stops DROP COLUMN and ALTER COLUMN TYPE.
//
// A whole-row reference (SELECT t FROM t, row_to_json(t), NEW in a rule)
// stops neither, yet sees the table's new columns after the cut-over:
// ciphertext and the IV column. pg_depend cannot show it: it records the
// whole table once for every table a query reads (SELECT count(*) FROM t
// too), and drops that entry when a column of the same table is recorded
// (SELECT id, row_to_json(c) FROM t c has only id). The rule's node tree
// can: a whole-row Var of the table has varattno 0 and the table's row
// type, and then every column counts as used.
func (r *catalogReader) views(ctx context.Context) error {
	return r.query(ctx, `
SELECT v.relkind::text, rw.rulename, vn.nspname, v.relname, deps.nums,
       rw.ev_action::text ~ w.pattern OR coalesce(rw.ev_qual::text, '') ~ w.pattern
FROM pg_catalog.pg_rewrite rw
JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class
JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
CROSS JOIN (SELECT '\{VAR :varno [0-9]+ :varattno 0 :vartype ' || t.reltype || ' ' AS pattern
            FROM pg_catalog.pg_class t WHERE t.oid = $1) w
CROSS JOIN LATERAL (
       SELECT coalesce(json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)
                       FILTER (WHERE d.refobjsubid > 0), '[]')::text AS nums
       FROM pg_catalog.pg_depend d
       WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
         AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1) deps
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
              WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
                AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1)
ORDER BY vn.nspname, v.relname, rw.rulename`, func(rows *sql.Rows) error {
		var (
			kind, rule string
			rel        schema.TableName
			nums       jsonNums
			wholeRow   bool
		)
		if err := rows.Scan(&kind, &rule, &rel.Schema, &rel.Name, &nums, &wholeRow); err != nil {
			return err
		}
		cols := r.names(nums)
		if wholeRow {
			cols = r.allColumns()
		}
		if len(cols) == 0 {
			return nil // SELECT count(*) FROM t; a rule that uses no column
		}
		dep := &schema.Dependent{Kind: viewKinds[kind], Name: r.relativeName(rel), Columns: cols}
		if rule != viewRule || dep.Kind == "" {
			// DROP RULE takes the rule's name and its relation's.
			dep.Kind, dep.Name = "rule", rule+" on "+r.relativeName(rel)
		}
		r.t.Dependents = append(r.t.Dependents, dep)
		return nil
	})
}

// computedColumns reads the generated columns and the columns their
// expressions use. PostgreSQL records that as a dependency of the column's
// pg_attrdef entry (PostgreSQL 15), or of the column itself (some other
// releases); both are read.
func (r *catalogReader) computedColumns(ctx context.Context) error {
	return r.query(ctx, `
SELECT a.attnum, json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)::text
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
JOIN pg_catalog.pg_depend d
  ON (d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid)
  OR (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = a.attrelid AND d.objsubid = a.attnum)
WHERE a.attrelid = $1 AND a.attgenerated <> '' AND NOT a.attisdropped
  AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1
  AND d.refobjsubid > 0 AND d.refobjsubid <> a.attnum
GROUP BY a.attnum
ORDER BY a.attnum`, func(rows *sql.Rows) error {
		var (
			num  int
			nums jsonNums
		)
		if err := rows.Scan(&num, &nums); err != nil {
			return err
		}
		r.t.Dependents = append(r.t.Dependents, &schema.Dependent{
			Kind: "computed column", Name: r.byNum[num], Columns: r.names(nums)})
		return nil
	})
}

// otherDependents reads SQL-standard function bodies (BEGIN ATOMIC, which
// PostgreSQL parses at creation and records dependencies for) and
// row-level security policies: both make ALTER COLUMN TYPE and DROP COLUMN
// fail.
func (r *catalogReader) otherDependents(ctx context.Context) error {
	return r.query(ctx, `
SELECT 'function', pn.nspname, p.proname,
       json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)::text
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_proc p ON p.oid = d.objid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE d.classid = 'pg_catalog.pg_proc'::regclass
  AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.refobjid = $1 AND d.refobjsubid > 0
GROUP BY pn.nspname, p.proname
UNION ALL
SELECT 'policy', '', pol.polname,
       json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)::text
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_policy pol ON pol.oid = d.objid
WHERE d.classid = 'pg_catalog.pg_policy'::regclass
  AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.refobjid = $1 AND d.refobjsubid > 0
GROUP BY pol.polname
ORDER BY 1, 2, 3`, func(rows *sql.Rows) error {
		var (
			dep  schema.Dependent
			name schema.TableName
			nums jsonNums
		)
		if err := rows.Scan(&dep.Kind, &name.Schema, &name.Name, &nums); err != nil {
			return err
		}
		dep.Name = r.relativeName(name)
		dep.Columns = r.names(nums)
		r.t.Dependents = append(r.t.Dependents, &dep)
		return nil
	})
}

// statistics reads the extended statistics objects (CREATE STATISTICS) on
// columns of the table, with their definitions: dropping a column drops
// every such object on it (PostgreSQL 15 drops even one left with two
// columns), so the cut-over's DROP COLUMN loses them.
func (r *catalogReader) statistics(ctx context.Context) error {
	return r.query(ctx, `
SELECT sn.nspname, s.stxname, pg_catalog.pg_get_statisticsobjdef(s.oid),
       json_agg(DISTINCT d.refobjsubid ORDER BY d.refobjsubid)::text
FROM pg_catalog.pg_statistic_ext s
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.stxnamespace
JOIN pg_catalog.pg_depend d
  ON d.classid = 'pg_catalog.pg_statistic_ext'::regclass AND d.objid = s.oid
 AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1 AND d.refobjsubid > 0
WHERE s.stxrelid = $1
GROUP BY s.oid, sn.nspname, s.stxname
ORDER BY sn.nspname, s.stxname`, func(rows *sql.Rows) error {
		var (
			dep  = schema.Dependent{Kind: schema.KindExtendedStatistics}
			name schema.TableName
			nums jsonNums
		)
		if err := rows.Scan(&name.Schema, &name.Name, &dep.Definition, &nums); err != nil {
			return err
		}
		dep.Name = r.relativeName(name)
		dep.Columns = r.names(nums)
		r.t.Dependents = append(r.t.Dependents, &dep)
		return nil
	})
}

// relativeName names a dependent object as a query in the table's schema
// would: qualified only when it lives in another schema. (A policy belongs
// to the table and has no schema.)
func (r *catalogReader) relativeName(n schema.TableName) string {
	if n.Schema == r.t.Name.Schema {
		n.Schema = ""
	}
	return n.String()
}

// names turns attnums into column names: first occurrence order, no
// duplicates, expression slots (0) skipped.
func (r *catalogReader) names(nums []int) []string {
	seen := map[int]bool{}
	var out []string
	for _, n := range nums {
		name, ok := r.byNum[n]
		if !ok || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, name)
	}
	return out
}

// jsonNames scans a JSON array of strings.
type jsonNames []string

func (j *jsonNames) Scan(src any) error { return scanJSON(src, (*[]string)(j)) }

// jsonNums scans a JSON array of integers.
type jsonNums []int

func (j *jsonNums) Scan(src any) error { return scanJSON(src, (*[]int)(j)) }

func scanJSON(src any, dst any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("scan JSON array: unexpected %T", src)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("scan JSON array: %w", err)
	}
	return nil
}

// unmovable reads what a table built beside this one and renamed in its
// place (dialect.Rebuilder) could not take over, one description each:
// objects bound to the table's OID (views and rules, triggers, policies,
// publications, extended statistics), objects using its row type, and
// properties the rebuild does not copy. Its own indexes, constraints,
// defaults and sequences, foreign keys from other tables, owner, grants,
// comment and storage parameters are carried over; colcrypt's read-only
// triggers are its own.
func (r *catalogReader) unmovable(ctx context.Context) error {
	return r.query(ctx, unmovableSQL, func(rows *sql.Rows) error {
		var what string
		if err := rows.Scan(&what); err != nil {
			return err
		}
		r.t.Unmovable = append(r.t.Unmovable, what)
		return nil
	})
}

// unmovableSQL lists what unmovable describes, for the table of OID $1.
var unmovableSQL = `
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0)
FROM pg_catalog.pg_depend d
WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1
  AND d.classid NOT IN ('pg_catalog.pg_type'::regclass, 'pg_catalog.pg_constraint'::regclass, 'pg_catalog.pg_attrdef'::regclass)
  AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_class o WHERE o.oid = d.objid AND o.relkind IN ('i', 'I', 'S', 't')))
  AND NOT (d.classid = 'pg_catalog.pg_trigger'::regclass AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.oid = d.objid AND (g.tgname LIKE '` + readonlyPrefix + `%' OR g.tgname LIKE '` + guardLike + `')))
UNION
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) || ' (uses its row type)'
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class c ON c.oid = $1
WHERE d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid = c.reltype AND d.deptype <> 'i'
UNION
SELECT 'inheritance (' || i.inhrelid::regclass::text || ' inherits from ' || i.inhparent::regclass::text || ')'
FROM pg_catalog.pg_inherits i WHERE i.inhrelid = $1 OR i.inhparent = $1
UNION
SELECT p.what FROM pg_catalog.pg_class c, LATERAL (VALUES
  (c.relkind <> 'r', 'partitioned table'),
  (c.relpersistence <> 'p', 'unlogged or temporary table'),
  (c.reltablespace <> 0, 'tablespace other than the database default'),
  (c.relrowsecurity, 'row-level security'),
  (c.relreplident <> 'd', 'replica identity other than the default'),
  (c.relam IS DISTINCT FROM (SELECT a.oid FROM pg_catalog.pg_am a WHERE a.amname = pg_catalog.current_setting('default_table_access_method')),
   'table access method other than the default')) AS p(on_, what)
WHERE c.oid = $1 AND p.on_
UNION
SELECT 'security label' || CASE WHEN s.objsubid = 0 THEN '' ELSE ' on a column' END
FROM pg_catalog.pg_seclabel s WHERE s.classoid = 'pg_catalog.pg_class'::regclass AND s.objoid = $1
UNION
SELECT 'privileges on column ' || a.attname
FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attacl IS NOT NULL AND NOT a.attisdropped
ORDER BY 1`
