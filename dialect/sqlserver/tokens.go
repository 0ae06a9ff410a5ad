package sqlserver

import (
	"strings"
	"unicode"
)

// scanIdentifiers returns the identifiers of a T-SQL text in order, with
// [bracket] and "double quote" quoting removed, skipping string literals,
// comments (-- and nested /* */), numbers and @variables. star reports a
// select-list * (SELECT *, t.*, ", *", TOP (n) *), as opposed to
// COUNT(*) or a multiplication.
//
// It is a lexer, not a parser: a name that is both a column of the table
// and something else in the text (an alias, another table's column)
// counts as the column. For deciding what blocks an encryption that errs
// on the safe side.
func scanIdentifiers(text string) (idents []string, star bool) {
	rs := []rune(text)
	n := len(rs)
	var recent []string // the last few significant tokens, lower case
	push := func(tok string) {
		recent = append(recent, strings.ToLower(tok))
		if len(recent) > 4 {
			recent = recent[1:]
		}
	}
	last := func() string {
		if len(recent) == 0 {
			return ""
		}
		return recent[len(recent)-1]
	}
	// quoted reads a [..] or ".." identifier or a '..' string starting at
	// i, where the closing rune is escaped by doubling.
	quoted := func(i int, closing rune) (string, int) {
		var b strings.Builder
		for i++; i < n; i++ {
			if rs[i] == closing {
				if i+1 < n && rs[i+1] == closing {
					b.WriteRune(closing)
					i++
					continue
				}
				return b.String(), i + 1
			}
			b.WriteRune(rs[i])
		}
		return b.String(), n
	}
	for i := 0; i < n; {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '-' && i+1 < n && rs[i+1] == '-':
			for i < n && rs[i] != '\n' {
				i++
			}
		case r == '/' && i+1 < n && rs[i+1] == '*':
			depth := 0
			for i < n {
				if rs[i] == '/' && i+1 < n && rs[i+1] == '*' {
					depth++
					i += 2
				} else if rs[i] == '*' && i+1 < n && rs[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		case r == '\'':
			_, i = quoted(i, '\'')
			push("'")
		case (r == 'N' || r == 'n') && i+1 < n && rs[i+1] == '\'':
			_, i = quoted(i+1, '\'')
			push("'")
		case r == '[':
			var id string
			id, i = quoted(i, ']')
			idents = append(idents, id)
			push("[" + id + "]")
		case r == '"':
			var id string
			id, i = quoted(i, '"')
			idents = append(idents, id)
			push("[" + id + "]")
		case unicode.IsDigit(r) || (r == '.' && i+1 < n && unicode.IsDigit(rs[i+1])):
			for i < n && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || rs[i] == '.') {
				i++
			}
			push("0")
		case r == '@' || unicode.IsLetter(r) || r == '_' || r == '#':
			j := i + 1
			for j < n && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || strings.ContainsRune("_@#$", rs[j])) {
				j++
			}
			word := string(rs[i:j])
			if r != '@' {
				idents = append(idents, word)
			}
			push(word)
			i = j
		case r == '*':
			switch last() {
			case "select", "distinct", "all", ",", ".":
				star = true
			case ")", "0":
				for _, tok := range recent {
					if tok == "top" {
						star = true
					}
				}
			}
			push("*")
			i++
		default:
			push(string(r))
			i++
		}
	}
	return idents, star
}
