package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// The catalog queries. Each takes one parameter, @p1, the table's quoted
// two-part name: OBJECT_ID resolves it exactly as T-SQL resolves the name
// in a statement, whatever characters it holds, and N'U' restricts it to
// user tables. Column names and meanings are those of Microsoft's
// documentation of each sys catalog view. NULLs are mapped in SQL (ISNULL)
// so that the rows scan into plain Go values.
const (
	// sys.tables.temporal_type is 1 for a history table and 2 for a
	// system-versioned temporal table, whose history_table_id names its
	// history table; a history table belongs to one such table, found by
	// its history_table_id.
	tableQuery = `SELECT o.object_id, SCHEMA_NAME(o.schema_id), o.name,
	ISNULL((SELECT SUM(p.rows) FROM sys.partitions AS p
	        WHERE p.object_id = o.object_id AND p.index_id IN (0, 1)), 0),
	ISNULL(t.temporal_type, 0),
	ISNULL(SCHEMA_NAME(h.schema_id), N''), ISNULL(h.name, N''),
	ISNULL(SCHEMA_NAME(cur.schema_id), N''), ISNULL(cur.name, N'')
FROM sys.objects AS o
LEFT JOIN sys.tables AS t ON t.object_id = o.object_id
LEFT JOIN sys.tables AS h ON h.object_id = t.history_table_id
LEFT JOIN sys.tables AS cur ON cur.history_table_id = o.object_id
WHERE o.object_id = OBJECT_ID(@p1, N'U')`

	// sys.types joined on user_type_id names the declared type (an alias
	// type's own name); joined on system_type_id it names the base type an
	// alias stands for. CLR types share one system_type_id, so for them the
	// declared name is the type.
	//
	// default_object_id names a default constraint or a default bound
	// with sp_bindefault (CREATE DEFAULT), which sys.default_constraints
	// does not hold; rule_object_id a rule bound with sp_bindrule. Either
	// may come from an alias type the column has. OBJECT_NAME(0) is NULL.
	//
	// xml_collection_id (0 for untyped xml) names the XML schema collection
	// a typed xml column is validated by, and is_xml_document whether it
	// holds documents or content: the column's type, which a revert
	// restores.
	columnsQuery = `SELECT c.column_id, c.name, t.name, ISNULL(bt.name, N''), t.is_assembly_type,
	c.max_length, c.precision, c.scale, ISNULL(c.collation_name, N''),
	c.is_nullable, c.is_identity, c.is_computed, ISNULL(cc.definition, N''),
	ISNULL(dc.name, N''), ISNULL(dc.definition, N''), ISNULL(c.encryption_type, 0),
	CASE WHEN dc.object_id IS NULL THEN ISNULL(OBJECT_SCHEMA_NAME(c.default_object_id), N'') ELSE N'' END,
	CASE WHEN dc.object_id IS NULL THEN ISNULL(OBJECT_NAME(c.default_object_id), N'') ELSE N'' END,
	ISNULL(OBJECT_SCHEMA_NAME(c.rule_object_id), N''), ISNULL(OBJECT_NAME(c.rule_object_id), N''),
	c.is_xml_document, ISNULL(SCHEMA_NAME(xc.schema_id), N''), ISNULL(xc.name, N'')
FROM sys.columns AS c
JOIN sys.types AS t ON t.user_type_id = c.user_type_id
LEFT JOIN sys.types AS bt ON bt.user_type_id = c.system_type_id
LEFT JOIN sys.computed_columns AS cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id
LEFT JOIN sys.default_constraints AS dc ON dc.object_id = c.default_object_id
LEFT JOIN sys.xml_schema_collections AS xc ON xc.xml_collection_id = c.xml_collection_id AND c.xml_collection_id <> 0
WHERE c.object_id = OBJECT_ID(@p1, N'U')
ORDER BY c.column_id`

	// One row per index column; index_id 0 is the heap, which has none.
	indexesQuery = `SELECT i.index_id, i.name, i.type, i.type_desc, i.is_unique,
	i.is_primary_key, i.is_unique_constraint, ISNULL(i.filter_definition, N''),
	i.ignore_dup_key, i.fill_factor,
	ic.index_column_id, ic.key_ordinal, ic.is_descending_key, ic.is_included_column, c.name
FROM sys.indexes AS i
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.object_id = OBJECT_ID(@p1, N'U') AND i.index_id > 0 AND i.is_hypothetical = 0
ORDER BY i.index_id, ic.key_ordinal, ic.index_column_id`

	// Foreign keys in both directions, one row per column pair, in
	// constraint_column_id order.
	foreignKeysQuery = `SELECT fk.object_id, fk.name,
	fk.parent_object_id, SCHEMA_NAME(pt.schema_id), pt.name, pc.name,
	fk.referenced_object_id, SCHEMA_NAME(rt.schema_id), rt.name, rc.name,
	fk.delete_referential_action_desc, fk.update_referential_action_desc,
	fk.is_disabled, fk.is_not_trusted, fk.is_not_for_replication
FROM sys.foreign_keys AS fk
JOIN sys.foreign_key_columns AS fkc ON fkc.constraint_object_id = fk.object_id
JOIN sys.objects AS pt ON pt.object_id = fkc.parent_object_id
JOIN sys.columns AS pc ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id
JOIN sys.objects AS rt ON rt.object_id = fkc.referenced_object_id
JOIN sys.columns AS rc ON rc.object_id = fkc.referenced_object_id AND rc.column_id = fkc.referenced_column_id
WHERE fk.parent_object_id = OBJECT_ID(@p1, N'U') OR fk.referenced_object_id = OBJECT_ID(@p1, N'U')
ORDER BY fk.name, fk.object_id, fkc.constraint_column_id`

	// parent_column_id is 0 for a table-level check, which matches no column.
	checksQuery = `SELECT cc.name, cc.definition, ISNULL(c.name, N''),
	cc.is_disabled, cc.is_not_trusted, cc.is_not_for_replication
FROM sys.check_constraints AS cc
LEFT JOIN sys.columns AS c ON c.object_id = cc.parent_object_id AND c.column_id = cc.parent_column_id
WHERE cc.parent_object_id = OBJECT_ID(@p1, N'U')
ORDER BY cc.name`

	// The definition is NULL for a trigger created WITH ENCRYPTION. A
	// WriteGuard's trigger is colcrypt's own, for the job running.
	triggersQuery = `SELECT tr.object_id, tr.name, ISNULL(m.definition, N''), tr.is_disabled
FROM sys.triggers AS tr
LEFT JOIN sys.sql_modules AS m ON m.object_id = tr.object_id
WHERE tr.parent_id = OBJECT_ID(@p1, N'U') AND tr.is_ms_shipped = 0
  AND CHARINDEX(N'` + dialect.GuardPrefix + `', tr.name) <> 1
ORDER BY tr.name`

	// Objects that reference the table by name. referenced_minor_id names
	// the column for schema-bound references only; for the others (plain
	// views, triggers) it is 0 and the module's text tells the columns.
	dependenciesQuery = `SELECT d.referencing_id, SCHEMA_NAME(o.schema_id), o.name, o.type,
	ISNULL(c.name, N''), d.is_schema_bound_reference, ISNULL(m.definition, N'')
FROM sys.sql_expression_dependencies AS d
JOIN sys.objects AS o ON o.object_id = d.referencing_id
LEFT JOIN sys.columns AS c ON c.object_id = d.referenced_id AND c.column_id = d.referenced_minor_id
LEFT JOIN sys.sql_modules AS m ON m.object_id = d.referencing_id
WHERE d.referenced_id = OBJECT_ID(@p1, N'U') AND d.referenced_class = 1 AND d.referencing_class = 1
ORDER BY o.name, d.referencing_id, d.referenced_minor_id`

	// Statistics created with CREATE STATISTICS, one row per column.
	// ALTER TABLE ... DROP COLUMN refuses a column that one of them covers
	// (error 5074); the ones the server created (auto_created) or that
	// come with an index go with the column or index.
	statisticsQuery = `SELECT s.name, c.name
FROM sys.stats AS s
JOIN sys.stats_columns AS sc ON sc.object_id = s.object_id AND sc.stats_id = s.stats_id
JOIN sys.columns AS c ON c.object_id = sc.object_id AND c.column_id = sc.column_id
WHERE s.object_id = OBJECT_ID(@p1, N'U') AND s.user_created = 1
ORDER BY s.name, sc.stats_column_id`
)

// catalogQueries lists every catalog query, for the syntax tests.
var catalogQueries = []string{tableQuery, columnsQuery, indexesQuery, foreignKeysQuery, checksQuery, triggersQuery, dependenciesQuery, statisticsQuery}

// Rows as the catalog queries return them, one struct per query.
type (
	tableRow struct {
		ObjectID      int64
		Schema        string
		Name          string
		RowCount      int64
		TemporalType  int    // 0 not temporal, 1 history table, 2 system-versioned
		HistorySchema string // of a system-versioned table's history table
		HistoryName   string
		CurrentSchema string // of the table whose history this table holds
		CurrentName   string
	}
	columnRow struct {
		ColumnID       int
		Name           string
		TypeName       string // sys.types on user_type_id
		BaseTypeName   string // sys.types on system_type_id
		IsAssemblyType bool
		MaxLength      int // bytes; -1 for MAX and xml; 16 for text, ntext, image
		Precision      int
		Scale          int
		Collation      string
		Nullable       bool
		Identity       bool
		Computed       bool
		ComputedDef    string
		DefaultName    string
		DefaultDef     string
		EncryptionType int // 0 when NULL: not Always Encrypted
		// A default bound with sp_bindefault ("" for none or a default
		// constraint) and a rule bound with sp_bindrule.
		BoundDefaultSchema string
		BoundDefault       string
		RuleSchema         string
		Rule               string
		// A typed xml column's schema collection ("" untyped), and
		// whether it holds documents (else content).
		XMLDocument         bool
		XMLCollectionSchema string
		XMLCollection       string
	}
	indexColumnRow struct {
		IndexID            int
		Name               string
		Type               int // 1 clustered, 2 nonclustered, 3 xml, 4 spatial, 5/6 columnstore, 7 hash
		TypeDesc           string
		IsUnique           bool
		IsPrimaryKey       bool
		IsUniqueConstraint bool
		Filter             string
		IgnoreDupKey       bool
		FillFactor         int // 0: the server's default
		IndexColumnID      int
		KeyOrdinal         int // 0 for included (and partitioning) columns
		IsDescending       bool
		IsIncluded         bool
		Column             string
	}
	foreignKeyColumnRow struct {
		ObjectID          int64
		Name              string
		ParentID          int64
		ParentSchema      string
		ParentTable       string
		ParentColumn      string
		RefID             int64
		RefSchema         string
		RefTable          string
		RefColumn         string
		OnDelete          string // NO_ACTION, CASCADE, SET_NULL, SET_DEFAULT
		OnUpdate          string
		IsDisabled        bool
		IsNotTrusted      bool
		NotForReplication bool
	}
	checkRow struct {
		Name              string
		Definition        string
		Column            string // "" for a table-level check
		IsDisabled        bool
		IsNotTrusted      bool
		NotForReplication bool
	}
	triggerRow struct {
		ObjectID   int64
		Name       string
		Definition string
		IsDisabled bool
	}
	dependencyRow struct {
		ReferencingID int64
		Schema        string
		Name          string
		Type          string // sys.objects.type: V, FN, IF, TF, TR, P...
		Column        string // "" when referenced_minor_id is 0
		SchemaBound   bool
		Definition    string
	}
	statisticsRow struct {
		Name   string
		Column string
	}
)

// catalogRows is everything the catalog queries return for one table.
type catalogRows struct {
	Table        tableRow
	Columns      []columnRow
	Indexes      []indexColumnRow
	ForeignKeys  []foreignKeyColumnRow
	Checks       []checkRow
	Triggers     []triggerRow
	Dependencies []dependencyRow
	Statistics   []statisticsRow
}

// ReadTable reads the table from the catalog and builds the model from the
// rows with buildTable.
func (d sqlServer) ReadTable(ctx context.Context, db *sql.DB, name schema.TableName) (*schema.Table, error) {
	name = d.withSchema(name)
	rows, err := readCatalog(ctx, db, quoteTable(name))
	if err != nil {
		return nil, fmt.Errorf("read catalog of %s: %w", name, err)
	}
	return buildTable(rows), nil
}

func readCatalog(ctx context.Context, db *sql.DB, quotedName string) (catalogRows, error) {
	var r catalogRows
	tables, err := query(ctx, db, tableQuery, quotedName, func(s scanner) (t tableRow, err error) {
		err = s.Scan(&t.ObjectID, &t.Schema, &t.Name, &t.RowCount,
			&t.TemporalType, &t.HistorySchema, &t.HistoryName, &t.CurrentSchema, &t.CurrentName)
		return t, err
	})
	if err != nil {
		return r, err
	}
	if len(tables) == 0 {
		return r, dialect.ErrTableNotFound
	}
	r.Table = tables[0]
	if r.Columns, err = query(ctx, db, columnsQuery, quotedName, func(s scanner) (c columnRow, err error) {
		err = s.Scan(&c.ColumnID, &c.Name, &c.TypeName, &c.BaseTypeName, &c.IsAssemblyType,
			&c.MaxLength, &c.Precision, &c.Scale, &c.Collation,
			&c.Nullable, &c.Identity, &c.Computed, &c.ComputedDef,
			&c.DefaultName, &c.DefaultDef, &c.EncryptionType,
			&c.BoundDefaultSchema, &c.BoundDefault, &c.RuleSchema, &c.Rule,
			&c.XMLDocument, &c.XMLCollectionSchema, &c.XMLCollection)
		return c, err
	}); err != nil {
		return r, err
	}
	if r.Indexes, err = query(ctx, db, indexesQuery, quotedName, func(s scanner) (i indexColumnRow, err error) {
		err = s.Scan(&i.IndexID, &i.Name, &i.Type, &i.TypeDesc, &i.IsUnique,
			&i.IsPrimaryKey, &i.IsUniqueConstraint, &i.Filter, &i.IgnoreDupKey, &i.FillFactor,
			&i.IndexColumnID, &i.KeyOrdinal, &i.IsDescending, &i.IsIncluded, &i.Column)
		return i, err
	}); err != nil {
		return r, err
	}
	if r.ForeignKeys, err = query(ctx, db, foreignKeysQuery, quotedName, func(s scanner) (f foreignKeyColumnRow, err error) {
		err = s.Scan(&f.ObjectID, &f.Name,
			&f.ParentID, &f.ParentSchema, &f.ParentTable, &f.ParentColumn,
			&f.RefID, &f.RefSchema, &f.RefTable, &f.RefColumn,
			&f.OnDelete, &f.OnUpdate, &f.IsDisabled, &f.IsNotTrusted, &f.NotForReplication)
		return f, err
	}); err != nil {
		return r, err
	}
	if r.Checks, err = query(ctx, db, checksQuery, quotedName, func(s scanner) (c checkRow, err error) {
		err = s.Scan(&c.Name, &c.Definition, &c.Column, &c.IsDisabled, &c.IsNotTrusted, &c.NotForReplication)
		return c, err
	}); err != nil {
		return r, err
	}
	if r.Triggers, err = query(ctx, db, triggersQuery, quotedName, func(s scanner) (t triggerRow, err error) {
		err = s.Scan(&t.ObjectID, &t.Name, &t.Definition, &t.IsDisabled)
		return t, err
	}); err != nil {
		return r, err
	}
	if r.Dependencies, err = query(ctx, db, dependenciesQuery, quotedName, func(s scanner) (d dependencyRow, err error) {
		err = s.Scan(&d.ReferencingID, &d.Schema, &d.Name, &d.Type, &d.Column, &d.SchemaBound, &d.Definition)
		d.Type = strings.TrimSpace(d.Type) // sys.objects.type is char(2): "V "
		return d, err
	}); err != nil {
		return r, err
	}
	if r.Statistics, err = query(ctx, db, statisticsQuery, quotedName, func(s scanner) (st statisticsRow, err error) {
		err = s.Scan(&st.Name, &st.Column)
		return st, err
	}); err != nil {
		return r, err
	}
	return r, nil
}

type scanner interface{ Scan(dest ...any) error }

// query runs one catalog query and scans every row.
func query[T any](ctx context.Context, db *sql.DB, q, quotedName string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, quotedName)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// buildTable turns the catalog rows into the model. It is pure, so the
// tests can feed it the rows SQL Server returns for a known schema.
func buildTable(r catalogRows) *schema.Table {
	t := &schema.Table{
		Name:       schema.TableName{Schema: r.Table.Schema, Name: r.Table.Name},
		RowCount:   r.Table.RowCount,
		Versioning: buildVersioning(r.Table),
	}
	for i, c := range r.Columns {
		col := buildColumn(i+1, c)
		col.Bound = buildBindings(t.Name, c)
		t.Columns = append(t.Columns, col)
	}
	for _, c := range r.Columns {
		if c.Computed {
			t.Dependents = append(t.Dependents, &schema.Dependent{
				Kind:    "computed column",
				Name:    c.Name,
				Columns: without(referencedColumns(t, c.ComputedDef), c.Name),
			})
		}
	}
	buildIndexes(t, r.Indexes)
	buildForeignKeys(t, r.Table.ObjectID, r.ForeignKeys)
	for _, c := range r.Checks {
		t.Checks = append(t.Checks, buildCheck(t, c))
	}
	buildTriggers(t, r.Triggers, r.Dependencies)
	buildDependents(t, r.Dependencies)
	buildStatistics(t, r.Statistics)
	return t
}

// buildVersioning links a system-versioned table and its history table,
// read from either: the engine would copy plaintext into the history
// table, and refuses to change a history table's columns.
func buildVersioning(r tableRow) *schema.Versioning {
	this := schema.TableName{Schema: r.Schema, Name: r.Name}
	var v schema.Versioning
	// history_table_id is set "when temporal_type IN (2, 4)" (sys.tables),
	// so the names decide rather than the type.
	switch {
	case r.HistoryName != "":
		v = schema.Versioning{Current: this, History: schema.TableName{Schema: r.HistorySchema, Name: r.HistoryName}}
	case r.CurrentName != "":
		v = schema.Versioning{Current: schema.TableName{Schema: r.CurrentSchema, Name: r.CurrentName}, History: this}
	default:
		return nil
	}
	v.Off = "ALTER TABLE " + quoteTable(v.Current) + " SET (SYSTEM_VERSIONING = OFF)"
	return &v
}

// buildBindings lists the default and the rule bound to the column with
// sp_bindefault and sp_bindrule: ALTER TABLE ... DROP COLUMN refuses a
// column bound to either, and the engine would apply them to ciphertext.
// sp_unbindefault and sp_unbindrule take the column as a quoted
// 'table.column', schema-qualified here.
func buildBindings(table schema.TableName, c columnRow) []schema.Binding {
	object := nstr(quoteTable(table) + "." + quoteIdent(c.Name))
	var out []schema.Binding
	if c.BoundDefault != "" {
		out = append(out, schema.Binding{Kind: "default", Name: c.BoundDefaultSchema + "." + c.BoundDefault,
			Unbind: "EXEC sp_unbindefault " + object})
	}
	if c.Rule != "" {
		out = append(out, schema.Binding{Kind: "rule", Name: c.RuleSchema + "." + c.Rule,
			Unbind: "EXEC sp_unbindrule " + object})
	}
	return out
}

// buildStatistics reports each statistics object created with CREATE
// STATISTICS as a dependent of its columns: the cut-over could not drop
// an encrypted column it covers, so the planner asks for it to be dropped
// first.
func buildStatistics(t *schema.Table, rows []statisticsRow) {
	var last *schema.Dependent
	for _, r := range rows {
		if last == nil || last.Name != r.Name {
			last = &schema.Dependent{Kind: schema.KindStatistics, Name: r.Name}
			t.Dependents = append(t.Dependents, last)
		}
		last.Columns = append(last.Columns, r.Column)
	}
}

func buildColumn(ordinal int, c columnRow) *schema.Column {
	typ := c.BaseTypeName
	if c.IsAssemblyType || typ == "" {
		typ = c.TypeName
	}
	typ = strings.ToLower(typ)
	length := 0
	switch typ {
	case "char", "varchar", "binary", "varbinary":
		length = c.MaxLength
	case "nchar", "nvarchar":
		length = c.MaxLength
		if length > 0 {
			length /= 2 // max_length counts bytes, two per UTF-16 code unit
		}
	case "text", "ntext", "image", "xml":
		length = -1 // max_length is the in-row pointer size, not a limit
	}
	declared := declaredType(typ, length, c.Precision, c.Scale)
	if typ == "xml" && c.XMLCollection != "" {
		kind := "CONTENT"
		if c.XMLDocument {
			kind = "DOCUMENT"
		}
		declared = "xml(" + kind + " " + quoteIdent(c.XMLCollectionSchema) + "." + quoteIdent(c.XMLCollection) + ")"
	}
	return &schema.Column{
		Name:         c.Name,
		Ordinal:      ordinal,
		Type:         typ,
		Declared:     declared,
		Length:       length,
		Precision:    c.Precision,
		Scale:        c.Scale,
		Collation:    c.Collation,
		Nullable:     c.Nullable,
		Identity:     c.Identity,
		Computed:     c.Computed,
		ComputedExpr: c.ComputedDef,
		Default:      c.DefaultDef,
		DefaultName:  c.DefaultName,
		Encrypted:    c.EncryptionType != 0,
	}
}

// declaredType writes the type as DDL and CAST take it.
func declaredType(typ string, length, precision, scale int) string {
	switch typ {
	case "char", "varchar", "binary", "varbinary", "nchar", "nvarchar":
		if length == -1 {
			return typ + "(max)"
		}
		return fmt.Sprintf("%s(%d)", typ, length)
	case "decimal", "numeric":
		return fmt.Sprintf("%s(%d,%d)", typ, precision, scale)
	case "datetime2", "time", "datetimeoffset":
		return fmt.Sprintf("%s(%d)", typ, scale)
	case "float":
		return fmt.Sprintf("float(%d)", precision)
	default:
		return typ
	}
}

// buildIndexes turns rowstore indexes and the keys they back into Index
// values; the other kinds (xml, spatial, columnstore, hash) cannot be
// rebuilt from the model and are reported as dependents, as are included
// and filter columns, which a key-column list does not show.
func buildIndexes(t *schema.Table, rows []indexColumnRow) {
	for _, group := range groupBy(rows, func(r indexColumnRow) int { return r.IndexID }) {
		first := group[0]
		if first.Type != 1 && first.Type != 2 {
			var cols []string
			for _, r := range group {
				cols = appendUnique(cols, r.Column)
			}
			t.Dependents = append(t.Dependents, &schema.Dependent{
				Kind: strings.ToLower(first.TypeDesc) + " index", Name: first.Name, Columns: cols,
			})
			continue
		}
		var keys, included []string
		var desc []bool
		sort.SliceStable(group, func(i, j int) bool { return group[i].KeyOrdinal < group[j].KeyOrdinal })
		for _, r := range group {
			switch {
			case r.IsIncluded:
				included = append(included, r.Column)
			case r.KeyOrdinal > 0:
				keys = append(keys, r.Column)
				desc = append(desc, r.IsDescending)
			}
		}
		ix := &schema.Index{
			Name:       first.Name,
			Columns:    keys,
			Unique:     first.IsUnique,
			Primary:    first.IsPrimaryKey,
			Constraint: first.IsPrimaryKey || first.IsUniqueConstraint,
			// A filtered index is unique only over its filter: it cannot
			// identify every row for batching (schema.Table.UsableKey).
			Partial:     first.Filter != "",
			ExprColumns: filterColumns(t, first.Filter),
			Clustered:   first.Type == 1,
			Definition:  indexDefinition(t.Name, first, keys, desc, included),
		}
		if ix.Primary {
			t.PrimaryKey = ix
		} else {
			t.Indexes = append(t.Indexes, ix)
		}
		if len(included) > 0 {
			t.Dependents = append(t.Dependents, &schema.Dependent{
				Kind: "index included column", Name: first.Name, Columns: included,
			})
		}
		if first.Filter != "" {
			var filtered []string
			for _, c := range referencedColumns(t, first.Filter) {
				if !schema.ContainsFold(keys, c) {
					filtered = append(filtered, c)
				}
			}
			if len(filtered) > 0 {
				t.Dependents = append(t.Dependents, &schema.Dependent{
					Kind: "filtered index", Name: first.Name, Columns: filtered,
				})
			}
		}
	}
}

// indexDefinition recreates a key constraint with ALTER TABLE ... ADD
// CONSTRAINT, any other index with CREATE INDEX, with the options that
// change what the index does or how full its pages are: IGNORE_DUP_KEY
// (a duplicate insert is dropped with a warning instead of failing the
// statement) and FILLFACTOR.
func indexDefinition(table schema.TableName, ix indexColumnRow, keys []string, desc []bool, included []string) string {
	var options []string
	if ix.IgnoreDupKey {
		options = append(options, "IGNORE_DUP_KEY = ON")
	}
	if ix.FillFactor > 0 {
		options = append(options, fmt.Sprintf("FILLFACTOR = %d", ix.FillFactor))
	}
	with := ""
	if len(options) > 0 {
		with = " WITH (" + strings.Join(options, ", ") + ")"
	}
	kind := "NONCLUSTERED"
	if ix.Type == 1 {
		kind = "CLUSTERED"
	}
	var cols []string
	for i, k := range keys {
		c := quoteIdent(k)
		if desc[i] {
			c += " DESC"
		}
		cols = append(cols, c)
	}
	keyList := "(" + strings.Join(cols, ", ") + ")"
	switch {
	case ix.IsPrimaryKey:
		return "ALTER TABLE " + quoteTable(table) + " ADD CONSTRAINT " + quoteIdent(ix.Name) + " PRIMARY KEY " + kind + " " + keyList + with
	case ix.IsUniqueConstraint:
		return "ALTER TABLE " + quoteTable(table) + " ADD CONSTRAINT " + quoteIdent(ix.Name) + " UNIQUE " + kind + " " + keyList + with
	}
	var b strings.Builder
	b.WriteString("CREATE ")
	if ix.IsUnique {
		b.WriteString("UNIQUE ")
	}
	b.WriteString(kind + " INDEX " + quoteIdent(ix.Name) + " ON " + quoteTable(table) + " " + keyList)
	if len(included) > 0 {
		b.WriteString(" INCLUDE (" + quoteList(included) + ")")
	}
	if ix.Filter != "" {
		b.WriteString(" WHERE " + ix.Filter)
	}
	b.WriteString(with)
	return b.String()
}

// buildForeignKeys files each key under ForeignKeys when the table holds
// it, under ReferencedBy when the table is its target; a self-reference is
// both.
func buildForeignKeys(t *schema.Table, tableID int64, rows []foreignKeyColumnRow) {
	for _, group := range groupBy(rows, func(r foreignKeyColumnRow) int64 { return r.ObjectID }) {
		first := group[0]
		fk := &schema.ForeignKey{
			Name:     first.Name,
			Table:    schema.TableName{Schema: first.ParentSchema, Name: first.ParentTable},
			RefTable: schema.TableName{Schema: first.RefSchema, Name: first.RefTable},
			OnDelete: referentialAction(first.OnDelete),
			OnUpdate: referentialAction(first.OnUpdate),
		}
		for _, r := range group {
			fk.Columns = append(fk.Columns, r.ParentColumn)
			fk.RefColumns = append(fk.RefColumns, r.RefColumn)
		}
		fk.Definition = foreignKeyDefinition(fk, first)
		if first.ParentID == tableID {
			t.ForeignKeys = append(t.ForeignKeys, fk)
		}
		if first.RefID == tableID {
			t.ReferencedBy = append(t.ReferencedBy, fk)
		}
	}
}

// referentialAction turns NO_ACTION into the DDL's NO ACTION.
func referentialAction(desc string) string { return strings.ReplaceAll(desc, "_", " ") }

// foreignKeyDefinition recreates the key as it was: untrusted keys are
// added WITH NOCHECK, disabled ones disabled again.
func foreignKeyDefinition(fk *schema.ForeignKey, r foreignKeyColumnRow) string {
	table := quoteTable(fk.Table)
	var b strings.Builder
	b.WriteString("ALTER TABLE " + table)
	if r.IsNotTrusted {
		b.WriteString(" WITH NOCHECK")
	}
	b.WriteString(" ADD CONSTRAINT " + quoteIdent(fk.Name) + " FOREIGN KEY (" + quoteList(fk.Columns) + ")")
	b.WriteString(" REFERENCES " + quoteTable(fk.RefTable) + " (" + quoteList(fk.RefColumns) + ")")
	if fk.OnDelete != "" && fk.OnDelete != "NO ACTION" {
		b.WriteString(" ON DELETE " + fk.OnDelete)
	}
	if fk.OnUpdate != "" && fk.OnUpdate != "NO ACTION" {
		b.WriteString(" ON UPDATE " + fk.OnUpdate)
	}
	if r.NotForReplication {
		b.WriteString(" NOT FOR REPLICATION")
	}
	if r.IsDisabled {
		b.WriteString(";\nALTER TABLE " + table + " NOCHECK CONSTRAINT " + quoteIdent(fk.Name))
	}
	return b.String()
}

// buildCheck finds the columns a check references in its definition:
// sys.sql_expression_dependencies does not track a check that references
// only columns of its own table.
func buildCheck(t *schema.Table, r checkRow) *schema.Check {
	var cols []string
	if r.Column != "" {
		cols = append(cols, r.Column)
	}
	for _, c := range referencedColumns(t, r.Definition) {
		cols = appendUnique(cols, c)
	}
	table := quoteTable(t.Name)
	var b strings.Builder
	b.WriteString("ALTER TABLE " + table)
	if r.IsNotTrusted {
		b.WriteString(" WITH NOCHECK")
	}
	b.WriteString(" ADD CONSTRAINT " + quoteIdent(r.Name) + " CHECK ")
	if r.NotForReplication {
		b.WriteString("NOT FOR REPLICATION ")
	}
	b.WriteString("(" + r.Definition + ")")
	if r.IsDisabled {
		b.WriteString(";\nALTER TABLE " + table + " NOCHECK CONSTRAINT " + quoteIdent(r.Name))
	}
	return &schema.Check{Name: r.Name, Expr: r.Definition, Columns: cols, Definition: b.String()}
}

// buildTriggers takes the columns a trigger references from the catalog's
// column-level dependencies and from its text. A DML trigger reads its
// table through inserted and deleted, which the catalog does not relate to
// the table, so the text is the main source; a trigger whose text is
// hidden (WITH ENCRYPTION) or selects * is taken to reference every column.
func buildTriggers(t *schema.Table, triggers []triggerRow, deps []dependencyRow) {
	for _, tr := range triggers {
		var cols []string
		for _, d := range deps {
			if d.ReferencingID == tr.ObjectID && d.Column != "" {
				cols = appendUnique(cols, d.Column)
			}
		}
		// SELECT * FROM inserted copies every column, the ciphertext and
		// IV columns prepare adds too, so such a trigger (an audit copy
		// into a history table) fails on every write once they exist, and
		// copies the plaintext meanwhile.
		idents, star := scanIdentifiers(tr.Definition)
		if tr.Definition == "" || star {
			cols = allColumns(t)
		}
		for _, c := range matchColumns(t, idents) {
			cols = appendUnique(cols, c)
		}
		t.Triggers = append(t.Triggers, &schema.Trigger{Name: tr.Name, Columns: cols, Definition: tr.Definition})
	}
}

// buildDependents reports views (schema-bound or not) and schema-bound
// objects that reference the table. Schema-bound references name their
// columns; for the others the columns come from the module's text, and a
// text that selects * or is hidden counts as referencing every column.
func buildDependents(t *schema.Table, deps []dependencyRow) {
	for _, group := range groupBy(deps, func(d dependencyRow) int64 { return d.ReferencingID }) {
		first := group[0]
		kind := dependentKind(first)
		if kind == "" {
			continue
		}
		var cols []string
		for _, d := range group {
			if d.Column != "" {
				cols = appendUnique(cols, d.Column)
			}
		}
		if len(cols) == 0 {
			idents, star := scanIdentifiers(first.Definition)
			if first.Definition == "" || star {
				cols = allColumns(t)
			} else {
				cols = matchColumns(t, idents)
			}
		}
		if len(cols) == 0 {
			continue
		}
		name := first.Name
		if first.Schema != t.Name.Schema {
			name = first.Schema + "." + first.Name
		}
		t.Dependents = append(t.Dependents, &schema.Dependent{Kind: kind, Name: name, Columns: cols})
	}
}

// dependentKind classifies a referencing object; "" for the ones that do
// not stop a column from changing type (plain procedures and functions,
// and triggers, which are reported as Triggers when they are on the table).
func dependentKind(d dependencyRow) string {
	switch {
	case d.Type == "V":
		return "view"
	case d.Type == "TR":
		return ""
	case !d.SchemaBound:
		return ""
	case d.Type == "FN" || d.Type == "IF" || d.Type == "TF":
		return "schema-bound function"
	default:
		return "schema-bound object"
	}
}

// referencedColumns lists the table's columns named in a T-SQL fragment,
// in order of first mention.
func referencedColumns(t *schema.Table, sqlText string) []string {
	idents, _ := scanIdentifiers(sqlText)
	return matchColumns(t, idents)
}

func matchColumns(t *schema.Table, idents []string) []string {
	var cols []string
	for _, id := range idents {
		if c := t.Column(id); c != nil {
			cols = appendUnique(cols, c.Name)
		}
	}
	return cols
}

func allColumns(t *schema.Table) []string {
	cols := make([]string, 0, len(t.Columns))
	for _, c := range t.Columns {
		cols = append(cols, c.Name)
	}
	return cols
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return strings.Join(q, ", ")
}

func appendUnique(list []string, s string) []string {
	if schema.ContainsFold(list, s) {
		return list
	}
	return append(list, s)
}

func without(list []string, s string) []string {
	var out []string
	for _, v := range list {
		if !strings.EqualFold(v, s) {
			out = append(out, v)
		}
	}
	return out
}

// groupBy splits rows into runs of equal keys, keeping the first
// appearance order of each key even if the runs are not contiguous.
func groupBy[T any, K comparable](rows []T, key func(T) K) [][]T {
	index := map[K]int{}
	var groups [][]T
	for _, r := range rows {
		k := key(r)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

// filterColumns are the columns a filtered index's WHERE clause uses (as
// sys.indexes.filter_definition writes it: "([email]<>”)"), but for a
// column it only tests for NULL ("([ssn] IS NOT NULL)", the usual filter of
// a unique index that allows several NULLs): NULL stays NULL under
// encryption, so such a test selects the same rows on the ciphertext, and
// any other comparison would compare ciphertext with a plaintext literal.
func filterColumns(t *schema.Table, filter string) []string {
	for {
		stripped := nullTest.ReplaceAllString(filter, "$1$2")
		if stripped == filter {
			break
		}
		filter = stripped
	}
	return referencedColumns(t, filter)
}

// nullTest is a test of a bare column for NULL that is a whole operand, in
// filter_definition's normalized form; matched with the delimiters around
// it, which the replacement keeps.
var nullTest = regexp.MustCompile(`(?i)(\(|\bAND |\bOR )\[(?:[^\]]|\]\])+\] IS (?:NOT )?NULL(\)| AND\b| OR\b)`)
