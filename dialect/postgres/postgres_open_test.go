package postgres_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/schema"
)

func TestRegistered(t *testing.T) {
	d, err := dialect.Get("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "postgres" || d.DefaultSchema() != "public" || d.CiphertextType(100) != "bytea" {
		t.Errorf("registered dialect = %#v", d)
	}
	if l := d.Limits(); l.RowBytes != 0 || l.ValueBytes != 1<<30 || l.Columns != 1600 {
		t.Errorf("Limits = %+v", l)
	}
	if got := d.ResolveDSN("postgres://h/db", "/plans"); got != "postgres://h/db" {
		t.Errorf("ResolveDSN changed the DSN: %q", got)
	}
}

func TestQuote(t *testing.T) {
	var d postgres.Dialect
	for in, want := range map[string]string{
		`plain`:    `"plain"`,
		`a"b`:      `"a""b"`,
		`we]ird [`: `"we]ird ["`,
		``:         `""`,
	} {
		if got := d.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := d.QuoteTable(schema.TableName{Name: "t"}); got != `"public"."t"` {
		t.Errorf("QuoteTable = %s", got)
	}
	if got := d.QuoteTable(schema.TableName{Schema: `s"x`, Name: "t.u"}); got != `"s""x"."t.u"` {
		t.Errorf("QuoteTable = %s", got)
	}
}

// TestOpenPinsSession checks every connection of the pool, not only the
// first: each must render values with the pinned settings.
func TestOpenPinsSession(t *testing.T) {
	t.Parallel()
	_, db := openDB(t)
	const conns = 4
	db.SetMaxIdleConns(conns)
	var held []*sql.Conn
	for range conns {
		c, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		var ds, is, tz, efd, bo, ce, xo string
		err := c.QueryRowContext(t.Context(), `SELECT current_setting('DateStyle'), current_setting('IntervalStyle'),
			current_setting('TimeZone'), current_setting('extra_float_digits'), current_setting('bytea_output'),
			current_setting('client_encoding'), current_setting('xmloption')`).Scan(&ds, &is, &tz, &efd, &bo, &ce, &xo)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join([]string{ds, is, tz, efd, bo, ce, xo}, "|")
		if want := "ISO, MDY|postgres|UTC|3|hex|UTF8|content"; got != want {
			t.Errorf("session settings = %s, want %s", got, want)
		}
		c.Close()
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	t.Parallel()
	var d postgres.Dialect
	const secret = "s3cr3t-Pa55"
	for _, dsn := range []string{
		"postgres://colcrypt:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5",
		"postgres://colcrypt@127.0.0.1:1/db?sslmode=disable&password=" + secret,
		"host=127.0.0.1 port=1 user=colcrypt password=" + secret + " sslmode=disable",
		"host=127.0.0.1 port=1 user=colcrypt password='" + secret + " x' sslmode=disable",
		"postgres://colcrypt:" + secret + "@127.0.0.1:1/db?sslmode=bogus",
		"host=127.0.0.1 port=notaport password=" + secret,
		// Found by an audit: a DSN whose scheme pgx does not take for a
		// URL, a keyword/value password with escaped spaces or quotes, and
		// a URL password with a raw @.
		" postgres://colcrypt:" + secret + "@127.0.0.1:1/db?sslmode=bogus",
		"POSTGRES://colcrypt:" + secret + "@127.0.0.1:1/db?sslmode=bogus",
		"host=127.0.0.1 port=1 password=" + secret + `\ tail\'s sslmode=bogus`,
		"host=127.0.0.1 port=1 password='" + secret + ` \' it' sslmode=bogus`,
		"postgres://colcrypt:" + secret + "@x@127.0.0.1:1/db?sslmode=bogus",
		"host=127.0.0.1 port=1 password " + secret,
	} {
		db, err := d.Open(t.Context(), dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%s) succeeded", postgres.RedactDSN(dsn))
			continue
		}
		for _, part := range []string{secret, "tail", "@x@", " it"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("error shows (a part of) the password, %q: %v", part, err)
			}
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error does not say where it tried to connect: %v", err)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=pw":             "postgres://u@h/db?password=xxxxx",
		"host=h password=pw user=u":                 "host=h password=xxxxx user=u",
		"host=h password = 'p w\\'x' user=u":        "host=h password = xxxxx user=u",
		"postgresql://h/db":                         "postgresql://h/db",
		"postgres://u:p%zz@h/db":                    "(unparsable URL)",
		" POSTGRES://u:pw@h/db":                     "postgres://u:xxxxx@h/db",
		"postgres://u:p@w@h/db":                     "postgres://u:xxxxx@h/db",
		`host=h password=p\ w'x user=u`:             "host=h password=xxxxx user=u",
		`host=h PASSWORD='p w' dbname=x`:            "host=h PASSWORD=xxxxx dbname=x",
		"password=":                                 "password=xxxxx",
		"host=h port=5432 password secret99":        "host=h port=5432 (the rest does not parse and is not shown)",
	} {
		if got := postgres.RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
