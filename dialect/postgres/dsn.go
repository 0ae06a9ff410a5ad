package postgres

import (
	"errors"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DSNs come from plans, often through environment variables, so they are
// read as a DBA would write them and never shown with their password,
// however it is written.

// normalizeDSN trims the DSN and lower-cases a URL's scheme: pgx reads
// " postgres://…" or "POSTGRES://…" as keyword/value text, finds no
// keyword in it, and would connect to its defaults (the local socket, the
// OS user) instead of the server named.
func normalizeDSN(dsn string) string {
	dsn = strings.TrimSpace(dsn)
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok {
		if s := strings.ToLower(scheme); s == "postgres" || s == "postgresql" {
			return s + "://" + rest
		}
	}
	return dsn
}

// isURL reports whether a normalized DSN is a URL.
func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// RedactDSN returns the DSN with its password replaced, for error messages.
func RedactDSN(dsn string) string {
	dsn = normalizeDSN(dsn)
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "(unparsable URL)"
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	var b strings.Builder
	last, parsed := 0, 0
	for _, kv := range keywordValues(dsn) {
		if strings.EqualFold(kv.key, "password") {
			b.WriteString(dsn[last:kv.valueAt])
			b.WriteString("xxxxx")
			last = kv.end
		}
		parsed = kv.end
	}
	b.WriteString(dsn[last:parsed])
	// What does not parse as keyword = value may hold a password too
	// ("password secret"): it is not shown.
	if strings.TrimSpace(dsn[parsed:]) != "" {
		b.WriteString(" (the rest does not parse and is not shown)")
	}
	return strings.TrimSpace(b.String())
}

// keywordValue is one keyword = value of a keyword/value DSN: its keyword,
// its value unquoted, and where the value's text starts and ends.
type keywordValue struct {
	key, value   string
	valueAt, end int
}

// keywordValues reads a keyword/value DSN as libpq does: keyword = value
// pairs apart by spaces; a value is either single-quoted, or ends at the
// next space; inside both, a backslash takes the next character as it is.
// What does not parse ends the reading.
func keywordValues(s string) []keywordValue {
	var out []keywordValue
	i := 0
	space := func() {
		for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
			i++
		}
	}
	for {
		space()
		start := i
		for i < len(s) && s[i] != '=' && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
			i++
		}
		key := s[start:i]
		space()
		if key == "" || i >= len(s) || s[i] != '=' {
			return out
		}
		i++
		space()
		kv := keywordValue{key: key, valueAt: i}
		var v strings.Builder
		quoted := i < len(s) && s[i] == '\''
		if quoted {
			i++
		}
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				v.WriteByte(s[i+1])
				i += 2
				continue
			}
			if quoted && c == '\'' {
				i++
				break
			}
			if !quoted && strings.IndexByte(" \t\n\r\f\v", c) >= 0 {
				break
			}
			v.WriteByte(c)
			i++
		}
		kv.value, kv.end = v.String(), i
		out = append(out, kv)
	}
}

// dsnSecrets lists the passwords a DSN may carry, parsed or not, and the
// pieces of one holding spaces: a message may quote a part of it.
func dsnSecrets(dsn string, cfg *pgx.ConnConfig) []string {
	dsn = normalizeDSN(dsn)
	var s []string
	if cfg != nil {
		s = append(s, cfg.Password)
	}
	if isURL(dsn) {
		if u, err := url.Parse(dsn); err == nil {
			if p, ok := u.User.Password(); ok {
				s = append(s, p, url.QueryEscape(p), url.PathEscape(p))
			}
			s = append(s, u.Query()["password"]...)
		}
	} else {
		for _, kv := range keywordValues(dsn) {
			if strings.EqualFold(kv.key, "password") {
				s = append(s, kv.value, dsn[kv.valueAt:kv.end])
			}
		}
	}
	for _, p := range s {
		for _, f := range strings.Fields(p) {
			if len(f) >= 3 && f != p {
				s = append(s, f)
			}
		}
	}
	return s
}

// parseError is pgx's error for a DSN it cannot parse without the DSN,
// which pgx quotes with its own, partial, masking of the password.
func parseError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), "cannot parse `"+pe.ConnString+"`: ")
	if msg == err.Error() {
		msg = "the DSN does not parse"
	}
	return &scrubbedError{msg: "cannot parse the DSN: " + msg, err: err}
}
