package sqlite

import (
	"strings"
)

// tableDef is what the catalog reader needs from a CREATE TABLE statement
// that SQLite's pragmas do not report: constraint names, CHECK
// expressions, generated-column expressions, collations, and the
// "INTEGER PRIMARY KEY DESC" quirk.
type tableDef struct {
	columns      []columnDef
	constraints  []constraintDef // column and table constraints, in source order
	withoutRowid bool
	virtual      bool
}

type columnDef struct {
	name      string
	collation string
	// generated is the expression of GENERATED ALWAYS AS (expr), without
	// the parentheses; empty for ordinary columns.
	generated string
	// pkDesc marks "PRIMARY KEY DESC" written on the column: by a
	// documented SQLite quirk such an INTEGER column is not a rowid alias.
	pkDesc bool
}

type constraintKind int

const (
	conPrimaryKey constraintKind = iota
	conUnique
	conCheck
	conForeignKey
)

type constraintDef struct {
	kind    constraintKind
	name    string // from CONSTRAINT name; empty when unnamed
	columns []string
	expr    string // CHECK expression, without the parentheses
	// refTable and refColumns are the REFERENCES target of a foreign key;
	// refColumns is empty when the key references the primary key.
	refTable   string
	refColumns []string
	text       string // the clause as written
}

func (d *tableDef) column(name string) *columnDef {
	for i := range d.columns {
		if strings.EqualFold(d.columns[i].name, name) {
			return &d.columns[i]
		}
	}
	return nil
}

// parseCreateTable reads a CREATE TABLE statement as stored in
// sqlite_master.sql. It is lenient: what it cannot recognise it skips.
func parseCreateTable(sql string) *tableDef {
	def := &tableDef{}
	toks := tokenize(sql)
	open := -1
	for i, t := range toks {
		if t.is("VIRTUAL") {
			def.virtual = true
			return def
		}
		if t.punct("(") {
			open = i
			break
		}
	}
	if open < 0 {
		return def
	}
	closing := matchParen(toks, open)
	for _, item := range splitTopLevel(toks[open+1 : min(closing, len(toks))]) {
		if len(item) == 0 {
			continue
		}
		if isAnyKeyword(item[0], []string{"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}) {
			if c, ok := parseTableConstraint(sql, item); ok {
				def.constraints = append(def.constraints, c)
			}
			continue
		}
		parseColumnDef(sql, item, def)
	}
	for i := closing + 1; i+1 < len(toks); i++ {
		if toks[i].is("WITHOUT") && toks[i+1].is("ROWID") {
			def.withoutRowid = true
		}
	}
	return def
}

// identName reads an identifier where SQLite also accepts a string literal
// ('name') for one.
func identName(t token) string {
	if name, ok := t.name(); ok {
		return name
	}
	if t.kind == tokString {
		return unquoteIdent(t.text)
	}
	return t.text
}

// columnStarters begin a column constraint; whatever precedes the first of
// them (after the name) is the declared type.
var columnStarters = []string{"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK",
	"DEFAULT", "COLLATE", "REFERENCES", "GENERATED", "AS"}

func parseColumnDef(sql string, item []token, def *tableDef) {
	col := columnDef{name: identName(item[0])}
	var pendingName string
	clauseStart := -1 // index of the CONSTRAINT keyword or the constraint's first keyword
	beginClause := func(i int) int {
		if clauseStart >= 0 {
			return clauseStart
		}
		return i
	}
	for i := 1; i < len(item); i++ {
		t := item[i]
		switch {
		case t.punct("("):
			i = matchParen(item, i)
			continue
		case t.is("CONSTRAINT") && i+1 < len(item):
			pendingName = identName(item[i+1])
			clauseStart = i
			i++
			continue
		case t.is("PRIMARY"):
			start := beginClause(i)
			j := i + 1
			if j < len(item) && item[j].is("KEY") {
				j++
			}
			if j < len(item) && item[j].is("DESC") {
				col.pkDesc = true
			}
			def.constraints = append(def.constraints, constraintDef{
				kind: conPrimaryKey, name: pendingName, columns: []string{col.name},
				text: source(sql, item[start:clauseEnd(item, j)]),
			})
		case t.is("UNIQUE"):
			start := beginClause(i)
			def.constraints = append(def.constraints, constraintDef{
				kind: conUnique, name: pendingName, columns: []string{col.name},
				text: source(sql, item[start:clauseEnd(item, i+1)]),
			})
		case t.is("CHECK") && i+1 < len(item) && item[i+1].punct("("):
			start := beginClause(i)
			closing := matchParen(item, i+1)
			def.constraints = append(def.constraints, constraintDef{
				kind: conCheck, name: pendingName,
				expr: innerSource(sql, item, i+1, closing),
				text: source(sql, item[start:min(closing+1, len(item))]),
			})
			i = closing
		case t.is("REFERENCES") && i+1 < len(item):
			start := beginClause(i)
			fk := constraintDef{kind: conForeignKey, name: pendingName, columns: []string{col.name}}
			j := parseReferences(item, i, &fk)
			fk.text = source(sql, item[start:clauseEnd(item, j)])
			def.constraints = append(def.constraints, fk)
			i = j - 1
		case t.is("AS") && i+1 < len(item) && item[i+1].punct("("):
			closing := matchParen(item, i+1)
			col.generated = innerSource(sql, item, i+1, closing)
			i = closing
		case t.is("COLLATE") && i+1 < len(item):
			col.collation = identName(item[i+1])
			i++
		}
		if isAnyKeyword(t, columnStarters) && !t.is("CONSTRAINT") {
			pendingName, clauseStart = "", -1
		}
	}
	def.columns = append(def.columns, col)
}

// clauseEnd returns the index just past the column constraint that has
// reached item[from]: the next constraint keyword, or the end of the item.
func clauseEnd(item []token, from int) int {
	for i := from; i < len(item); i++ {
		if item[i].punct("(") {
			i = matchParen(item, i)
			continue
		}
		if isAnyKeyword(item[i], columnStarters) && !item[i].is("NOT") {
			return i
		}
		// NOT NULL starts a constraint; NOT DEFERRABLE belongs to a foreign key.
		if item[i].is("NOT") && i+1 < len(item) && item[i+1].is("NULL") {
			return i
		}
	}
	return len(item)
}

// parseReferences reads "REFERENCES table [(cols)]" at item[i] into fk and
// returns the index after it.
func parseReferences(item []token, i int, fk *constraintDef) int {
	j := i + 1
	if j < len(item) {
		fk.refTable = identName(item[j])
		j++
	}
	// A schema-qualified target is not valid SQLite, but read it anyway.
	if j+1 < len(item) && item[j].punct(".") {
		fk.refTable = identName(item[j+1])
		j += 2
	}
	if j < len(item) && item[j].punct("(") {
		closing := matchParen(item, j)
		fk.refColumns = indexedColumns(item[j+1 : min(closing, len(item))])
		j = closing + 1
	}
	return j
}

func parseTableConstraint(sql string, item []token) (constraintDef, bool) {
	var c constraintDef
	i := 0
	if item[0].is("CONSTRAINT") && len(item) > 1 {
		c.name = identName(item[1])
		i = 2
	}
	if i >= len(item) {
		return c, false
	}
	c.text = source(sql, item)
	// parenGroup returns the tokens inside the first "(" at or after j,
	// and the index after its ")".
	parenGroup := func(j int) ([]token, int) {
		for ; j < len(item); j++ {
			if item[j].punct("(") {
				closing := matchParen(item, j)
				return item[j+1 : min(closing, len(item))], closing + 1
			}
		}
		return nil, len(item)
	}
	switch {
	case item[i].is("PRIMARY"):
		c.kind = conPrimaryKey
		inner, _ := parenGroup(i)
		c.columns = indexedColumns(inner)
	case item[i].is("UNIQUE"):
		c.kind = conUnique
		inner, _ := parenGroup(i)
		c.columns = indexedColumns(inner)
	case item[i].is("CHECK"):
		c.kind = conCheck
		inner, _ := parenGroup(i)
		c.expr = source(sql, inner)
	case item[i].is("FOREIGN"):
		c.kind = conForeignKey
		inner, next := parenGroup(i)
		c.columns = indexedColumns(inner)
		for j := next; j < len(item); j++ {
			if item[j].is("REFERENCES") {
				parseReferences(item, j, &c)
				break
			}
		}
	default:
		return c, false
	}
	return c, true
}

// indexedColumns reads "a COLLATE x DESC, b" into [a b].
func indexedColumns(toks []token) []string {
	var cols []string
	for _, part := range splitTopLevel(toks) {
		if len(part) > 0 {
			cols = append(cols, identName(part[0]))
		}
	}
	return cols
}

// innerSource returns the text between the "(" at toks[open] and the ")" at
// toks[closing].
func innerSource(sql string, toks []token, open, closing int) string {
	if closing <= open+1 || closing > len(toks) {
		return ""
	}
	return source(sql, toks[open+1:closing])
}

// indexParts reads CREATE INDEX SQL into the token lists of its key items,
// one per indexed column or expression, and the tokens of its WHERE clause.
func indexParts(sql string) (keys [][]token, where []token) {
	toks := tokenize(sql)
	for i, t := range toks {
		if !t.is("ON") {
			continue
		}
		for j := i + 1; j < len(toks); j++ {
			if toks[j].punct("(") {
				closing := matchParen(toks, j)
				keys = splitTopLevel(toks[j+1 : min(closing, len(toks))])
				for k := closing + 1; k < len(toks); k++ {
					if toks[k].is("WHERE") {
						return keys, toks[k+1:]
					}
				}
				return keys, nil
			}
		}
		break
	}
	return nil, nil
}

// triggerParts splits CREATE TRIGGER SQL into the columns named after
// UPDATE OF, the table the trigger is on, and the rest (WHEN clause and
// body), which is where column references live.
func triggerParts(sql string) (updateOf []token, table string, body []token) {
	toks := tokenize(sql)
	for i := 0; i < len(toks); i++ {
		if toks[i].is("OF") && i > 0 && toks[i-1].is("UPDATE") {
			j := i + 1
			for j < len(toks) && !toks[j].is("ON") {
				j++
			}
			updateOf = toks[i+1 : j]
			i = j - 1
			continue
		}
		if toks[i].is("ON") && i+1 < len(toks) {
			j := i + 1
			table = identName(toks[j])
			if j+2 < len(toks) && toks[j+1].punct(".") {
				j += 2
				table = identName(toks[j])
			}
			return updateOf, table, toks[j+1:]
		}
	}
	return updateOf, "", toks
}

// viewBody returns the tokens of a CREATE VIEW after its AS: the query,
// without the view's own name and column list, which are not references.
func viewBody(sql string) []token {
	toks := tokenize(sql)
	for i, t := range toks {
		if t.is("AS") {
			return toks[i+1:]
		}
		if t.punct("(") {
			// The view's column list: skip it whole, it may hold a column named "as".
			if closing := matchParen(toks, i); closing < len(toks) {
				return viewBodyAfter(toks, closing+1)
			}
		}
	}
	return toks
}

func viewBodyAfter(toks []token, from int) []token {
	for i := from; i < len(toks); i++ {
		if toks[i].is("AS") {
			return toks[i+1:]
		}
	}
	return toks[from:]
}
