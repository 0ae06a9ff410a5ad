package postgres

import "strings"

// identifiers returns the identifiers of SQL or PL/pgSQL source as
// PostgreSQL resolves them: unquoted ones folded to lower case, quoted ones
// verbatim. String literals (standard, E”, U&”, B”, X”, dollar-quoted)
// and comments (-- and nested /* */) are skipped, so a column named only in
// a message or a comment does not count.
func identifiers(src string) []string {
	var ids []string
	i, n := 0, len(src)
	for i < n {
		c := src[i]
		switch {
		case c == '-' && i+1 < n && src[i+1] == '-':
			for i < n && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && src[i+1] == '*':
			i = skipBlockComment(src, i)
		case c == '\'':
			i = skipString(src, i+1, false)
		case c == '"':
			var id string
			id, i = quotedIdent(src, i+1)
			ids = append(ids, id)
		case c == '$':
			if end, ok := dollarTagEnd(src, i); ok {
				tag := src[i:end]
				if j := strings.Index(src[end:], tag); j >= 0 {
					i = end + j + len(tag)
				} else {
					i = n
				}
			} else {
				i++ // a parameter like $1
			}
		case isIdentStart(c):
			j := i + 1
			for j < n && isIdentPart(src[j]) {
				j++
			}
			word := src[i:j]
			if j < n && src[j] == '\'' && isStringPrefix(word) {
				// E'...' takes backslash escapes; B'', X'', N'' do not.
				i = skipString(src, j+1, word == "e" || word == "E")
				continue
			}
			if (word == "u" || word == "U") && j+1 < n && src[j] == '&' && (src[j+1] == '\'' || src[j+1] == '"') {
				// U&'...' or U&"...": the next round reads the quoted part.
				i = j + 1
				continue
			}
			ids = append(ids, foldIdent(word))
			i = j
		case c >= '0' && c <= '9':
			// a number, including 1e10 and 12abc-style junk: not an identifier
			j := i + 1
			for j < n && isIdentPart(src[j]) {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return ids
}

func isStringPrefix(w string) bool {
	switch w {
	case "e", "E", "b", "B", "x", "X", "n", "N":
		return true
	}
	return false
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// foldIdent lowers ASCII letters only, as PostgreSQL does for unquoted
// identifiers in a UTF-8 database.
func foldIdent(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// skipBlockComment returns the index after the comment starting at i;
// PostgreSQL's block comments nest.
func skipBlockComment(src string, i int) int {
	depth := 0
	n := len(src)
	for i < n {
		switch {
		case src[i] == '/' && i+1 < n && src[i+1] == '*':
			depth++
			i += 2
		case src[i] == '*' && i+1 < n && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return n
}

// skipString returns the index after the string whose body starts at i.
func skipString(src string, i int, backslash bool) int {
	n := len(src)
	for i < n {
		switch {
		case backslash && src[i] == '\\':
			i += 2
		case src[i] == '\'':
			if i+1 < n && src[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return n
}

// quotedIdent reads a double-quoted identifier whose body starts at i.
func quotedIdent(src string, i int) (string, int) {
	var b strings.Builder
	n := len(src)
	for i < n {
		if src[i] == '"' {
			if i+1 < n && src[i+1] == '"' {
				b.WriteByte('"')
				i += 2
				continue
			}
			return b.String(), i + 1
		}
		b.WriteByte(src[i])
		i++
	}
	return b.String(), n
}

// dollarTagEnd reports whether a dollar-quote tag ($$ or $tag$) starts at i
// and where it ends.
func dollarTagEnd(src string, i int) (int, bool) {
	j := i + 1
	if j < len(src) && src[j] == '$' {
		return j + 1, true
	}
	if j >= len(src) || !isIdentStart(src[j]) {
		return 0, false
	}
	for j < len(src) && src[j] != '$' {
		if !isIdentPart(src[j]) || src[j] == '$' {
			return 0, false
		}
		j++
	}
	if j >= len(src) {
		return 0, false
	}
	return j + 1, true
}
