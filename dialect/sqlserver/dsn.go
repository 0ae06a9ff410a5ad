package sqlserver

import (
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/microsoft/go-mssqldb/msdsn"
)

// redactedSecret replaces a password wherever it appears in a message.
const redactedSecret = "xxxxx"

// passwordParam finds password values in the ADO (key=value;...) and ODBC
// forms, quoted with "..." or {...} or bare up to the next ';'. It backs up
// the driver's own parser, which gives nothing for a DSN it rejects.
var passwordParam = regexp.MustCompile(`(?i)(?:^|[;?&\s])(?:password|pwd|change password)\s*=\s*("(?:[^"]|"")*"|\{(?:[^}]|\}\})*\}|[^;&]*)`)

// dsnSecrets lists every form in which the DSN's passwords may appear in a
// message: as parsed by the driver, as written (quoted or URL-escaped) and
// unescaped.
func dsnSecrets(dsn string) []string {
	set := map[string]bool{}
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s == "" {
			return
		}
		set[s] = true
		if u, err := url.QueryUnescape(s); err == nil && u != "" {
			set[u] = true
		}
		if u, err := url.PathUnescape(s); err == nil && u != "" {
			set[u] = true
		}
	}
	if cfg, err := msdsn.Parse(dsn); err == nil || cfg.Parameters != nil {
		add(cfg.Password)
		add(cfg.ChangePassword)
		add(cfg.Parameters[msdsn.Password])
		add(cfg.Parameters[msdsn.ChangePassword])
	}
	for _, m := range passwordParam.FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		add(v)
		switch {
		case strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) && len(v) >= 2:
			add(strings.ReplaceAll(v[1:len(v)-1], `""`, `"`))
		case strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") && len(v) >= 2:
			add(strings.ReplaceAll(v[1:len(v)-1], "}}", "}"))
		}
	}
	// sqlserver://user:password@host/instance?...: the user info ends at
	// the last '@' before the path, even when the password holds '@'.
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			rest = rest[:j]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				add(rest[colon+1 : at])
			}
		}
		if u, err := url.Parse(dsn); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				add(p)
			}
		}
	}
	secrets := make([]string, 0, len(set))
	for s := range set {
		secrets = append(secrets, s)
	}
	// Longest first, so that a password containing another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	return secrets
}

// redact replaces every secret in msg.
func redact(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, redactedSecret)
	}
	return msg
}

// describeDSN names the server and database for error messages, and
// nothing else from the DSN: " (server host\instance, database db)".
func describeDSN(dsn string) string {
	cfg, err := msdsn.Parse(dsn)
	if err != nil || cfg.Host == "" {
		return ""
	}
	server := cfg.Host
	if cfg.Instance != "" {
		server += `\` + cfg.Instance
	}
	if cfg.Database != "" {
		return " (server " + server + ", database " + cfg.Database + ")"
	}
	return " (server " + server + ")"
}
