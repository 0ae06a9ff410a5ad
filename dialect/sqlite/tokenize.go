package sqlite

import (
	"slices"
	"strings"
)

// SQLite keeps no parsed form of CHECK constraints, constraint names,
// generated-column expressions, trigger bodies or view definitions: only the
// SQL text in sqlite_master. This small tokenizer is how the catalog reader
// gets those facts back. It never fails: malformed input (an unterminated
// quote) yields a last token running to the end of the text, which is the
// conservative reading for a tool that must not miss a reference.

type tokenKind int

const (
	tokWord     tokenKind = iota // bare identifier or keyword
	tokQuoted                    // "ident", [ident] or `ident`
	tokString                    // 'string'
	tokBlob                      // x'hex'
	tokNumber                    // 12, 1.5e3, 0x1F, 1_000
	tokVariable                  // ?, ?1, :name, @name, $name
	tokPunct                     // ( ) , . ; * || <= ...
)

type token struct {
	kind tokenKind
	text string // the source text, quotes included
	pos  int    // byte offset of the token in the source
	end  int    // byte offset just past the token
}

// name returns the identifier a word or quoted token stands for, unquoted.
func (t token) name() (string, bool) {
	switch t.kind {
	case tokWord:
		return t.text, true
	case tokQuoted:
		return unquoteIdent(t.text), true
	}
	return "", false
}

// is reports whether t is the bare keyword kw (case-insensitive). A quoted
// token is never a keyword.
func (t token) is(kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

// punct reports whether t is the punctuation p.
func (t token) punct(p string) bool { return t.kind == tokPunct && t.text == p }

func unquoteIdent(s string) string {
	if len(s) < 2 {
		return s
	}
	switch s[0] {
	case '"':
		return strings.ReplaceAll(trimQuotes(s, '"'), `""`, `"`)
	case '`':
		return strings.ReplaceAll(trimQuotes(s, '`'), "``", "`")
	case '[':
		// SQLite has no escape inside brackets: the first ] ends the name.
		return strings.TrimSuffix(s[1:], "]")
	case '\'':
		return strings.ReplaceAll(trimQuotes(s, '\''), `''`, `'`)
	}
	return s
}

// trimQuotes strips the opening quote and, when present, the closing one
// (an unterminated token has none).
func trimQuotes(s string, q byte) string {
	s = s[1:]
	if len(s) > 0 && s[len(s)-1] == q {
		s = s[:len(s)-1]
	}
	return s
}

// tokenize splits SQL into tokens, dropping whitespace and comments.
func tokenize(sql string) []token {
	var toks []token
	i := 0
	for i < len(sql) {
		c := sql[i]
		start := i
		var kind tokenKind
		switch {
		case isSpace(c):
			i++
			continue
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if j := strings.IndexByte(sql[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
			continue
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			if j := strings.Index(sql[i+2:], "*/"); j >= 0 {
				i += 2 + j + 2
			} else {
				i = len(sql)
			}
			continue
		case (c == 'x' || c == 'X') && i+1 < len(sql) && sql[i+1] == '\'':
			kind = tokBlob
			i = skipQuoted(sql, i+1, '\'')
		case c == '\'':
			kind = tokString
			i = skipQuoted(sql, i, '\'')
		case c == '"' || c == '`':
			kind = tokQuoted
			i = skipQuoted(sql, i, c)
		case c == '[':
			kind = tokQuoted
			if j := strings.IndexByte(sql[i:], ']'); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
		case isDigit(c) || (c == '.' && i+1 < len(sql) && isDigit(sql[i+1])):
			kind = tokNumber
			i = skipNumber(sql, i)
		case isIdentStart(c):
			kind = tokWord
			for i < len(sql) && isIdentPart(sql[i]) {
				i++
			}
		case c == '?':
			kind = tokVariable
			i++
			for i < len(sql) && isDigit(sql[i]) {
				i++
			}
		case (c == ':' || c == '@' || c == '$') && i+1 < len(sql) && isIdentPart(sql[i+1]):
			kind = tokVariable
			i++
			for i < len(sql) && isIdentPart(sql[i]) {
				i++
			}
		default:
			kind = tokPunct
			i += punctLen(sql[i:])
		}
		toks = append(toks, token{kind: kind, text: sql[start:i], pos: start, end: i})
	}
	return toks
}

// skipQuoted returns the offset just past the quoted token starting at
// sql[i] == q, where a doubled quote stands for one.
func skipQuoted(sql string, i int, q byte) int {
	i++
	for i < len(sql) {
		if sql[i] == q {
			if i+1 < len(sql) && sql[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(sql)
}

func skipNumber(sql string, i int) int {
	if sql[i] == '0' && i+1 < len(sql) && (sql[i+1] == 'x' || sql[i+1] == 'X') {
		i += 2
		for i < len(sql) && (isHexDigit(sql[i]) || sql[i] == '_') {
			i++
		}
		return i
	}
	for i < len(sql) && (isDigit(sql[i]) || sql[i] == '_' || sql[i] == '.') {
		i++
	}
	if i < len(sql) && (sql[i] == 'e' || sql[i] == 'E') {
		j := i + 1
		if j < len(sql) && (sql[j] == '+' || sql[j] == '-') {
			j++
		}
		if j < len(sql) && isDigit(sql[j]) {
			i = j
			for i < len(sql) && (isDigit(sql[i]) || sql[i] == '_') {
				i++
			}
		}
	}
	return i
}

var multiCharPunct = []string{"->>", "||", "<=", ">=", "<>", "!=", "==", "<<", ">>", "->"}

func punctLen(s string) int {
	for _, p := range multiCharPunct {
		if strings.HasPrefix(s, p) {
			return len(p)
		}
	}
	return 1
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// isIdentStart follows SQLite: letters, underscore and every byte of a
// multi-byte UTF-8 character.
func isIdentStart(c byte) bool {
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}
func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// matchParen returns the index of the ")" closing the "(" at toks[open], or
// len(toks) when it is unbalanced.
func matchParen(toks []token, open int) int {
	depth := 0
	for i := open; i < len(toks); i++ {
		switch {
		case toks[i].punct("("):
			depth++
		case toks[i].punct(")"):
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(toks)
}

// splitTopLevel splits toks at commas outside parentheses.
func splitTopLevel(toks []token) [][]token {
	var parts [][]token
	depth, start := 0, 0
	for i, t := range toks {
		switch {
		case t.punct("("):
			depth++
		case t.punct(")"):
			depth--
		case t.punct(",") && depth == 0:
			parts = append(parts, toks[start:i])
			start = i + 1
		}
	}
	if start < len(toks) {
		parts = append(parts, toks[start:])
	}
	return parts
}

// source returns the SQL text that toks cover, from the first token's
// start to the last token's end.
func source(sql string, toks []token) string {
	if len(toks) == 0 {
		return ""
	}
	return sql[toks[0].pos:toks[len(toks)-1].end]
}

// starPrecursors are the tokens after which "*" means "every column" rather
// than multiplication: SELECT *, SELECT DISTINCT *, a, *, t.*.
var starPrecursors = []string{"SELECT", "DISTINCT", "ALL", "RETURNING"}

// reservedWords are SQLite keywords that can never stand for a column
// unquoted (those without a fallback to identifier in SQLite's grammar), so
// "SELECT x AS y" references no column named "as".
var reservedWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`ADD ALL ALTER AND AS AUTOINCREMENT BETWEEN CASE CHECK COLLATE
		COMMIT CONSTRAINT CREATE DEFAULT DEFERRABLE DELETE DISTINCT DROP ELSE ESCAPE EXCEPT EXISTS
		FOREIGN FROM GROUP HAVING IN INDEX INDEXED INSERT INTERSECT INTO IS ISNULL JOIN LIMIT NOT
		NOTHING NOTNULL NULL ON OR ORDER PRIMARY REFERENCES RETURNING SELECT SET TABLE THEN TO
		TRANSACTION UNION UNIQUE UPDATE USING VALUES WHEN WHERE`) {
		reservedWords[w] = true
	}
}

// notColumnAfter are keywords after which a name is a table or an alias,
// never a column reference: FROM t, JOIN t, INTO t, UPDATE t, x AS alias.
var notColumnAfter = []string{"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "AS"}

// columnRefs returns the names in cols (in their order, as spelled there)
// that toks reference as identifiers. String literals never count; a name
// followed by "(" is a function or a table with a column list, and one
// followed by "." is a qualifier, so neither counts. A "*" in a select list
// references every column. Matching is case-insensitive, as SQLite's is.
func columnRefs(toks []token, cols []string) []string {
	found := make([]bool, len(cols))
	mark := func(name string) {
		for i, c := range cols {
			if strings.EqualFold(c, name) {
				found[i] = true
			}
		}
	}
	for i, t := range toks {
		if t.punct("*") && i > 0 {
			p := toks[i-1]
			if p.punct(",") || p.punct(".") || isAnyKeyword(p, starPrecursors) {
				for j := range found {
					found[j] = true
				}
			}
			continue
		}
		name, ok := t.name()
		if !ok || (t.kind == tokWord && reservedWords[strings.ToUpper(t.text)]) {
			continue
		}
		if i+1 < len(toks) && (toks[i+1].punct("(") || toks[i+1].punct(".")) {
			continue
		}
		if i > 0 && isAnyKeyword(toks[i-1], notColumnAfter) {
			continue
		}
		mark(name)
	}
	var refs []string
	for i, f := range found {
		if f {
			refs = append(refs, cols[i])
		}
	}
	return refs
}

// mentions reports whether toks name the object (a table or view)
// anywhere. A column of another table spelled like the object counts too:
// a false positive only asks the user to look, a miss would break a view.
func mentions(toks []token, object string) bool {
	for _, t := range toks {
		if name, ok := t.name(); ok && strings.EqualFold(name, object) {
			return true
		}
	}
	return false
}

func isAnyKeyword(t token, kws []string) bool {
	for _, kw := range kws {
		if t.is(kw) {
			return true
		}
	}
	return false
}

// withoutNullTests drops from a WHERE clause's tokens each test of a bare
// column for NULL (c IS NULL, c IS NOT NULL, c ISNULL, c NOTNULL, c NOT
// NULL) that is a whole operand of AND, OR or NOT, or the whole clause:
// NULL stays NULL under encryption, so such a test selects the same rows
// on the ciphertext. A column in a larger expression tested for NULL
// ((a || b) IS NULL, a = b IS NULL) is kept.
func withoutNullTests(toks []token) []token {
	at := func(i int, kws ...string) bool {
		for j, kw := range kws {
			if i+j >= len(toks) || !toks[i+j].is(kw) {
				return false
			}
		}
		return true
	}
	// before and after: where a whole operand begins and ends. The AND of
	// x BETWEEN a AND c IS NULL is not one ((x BETWEEN a AND c) IS NULL
	// compares c): with a BETWEEN anywhere, no AND counts.
	between := slices.ContainsFunc(toks, func(t token) bool { return t.is("BETWEEN") })
	and := func(i int) bool { return !between && at(i, "AND") }
	before := func(i int) bool { return i < 0 || toks[i].punct("(") || and(i) || at(i, "OR") || at(i, "NOT") }
	after := func(i int) bool { return i >= len(toks) || toks[i].punct(")") || and(i) || at(i, "OR") }
	var out []token
	for i := 0; i < len(toks); i++ {
		_, isName := toks[i].name()
		if isName && !(toks[i].kind == tokWord && reservedWords[strings.ToUpper(toks[i].text)]) && before(i-1) {
			n := 0 // the test's tokens after the column
			switch {
			case at(i+1, "IS", "NOT", "NULL"):
				n = 3
			case at(i+1, "IS", "NULL"), at(i+1, "NOT", "NULL"):
				n = 2
			case at(i+1, "ISNULL"), at(i+1, "NOTNULL"):
				n = 1
			}
			if n > 0 && after(i+n+1) {
				i += n
				continue
			}
		}
		out = append(out, toks[i])
	}
	return out
}
