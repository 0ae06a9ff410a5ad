package sqlserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

func TestRegistered(t *testing.T) {
	d, err := dialect.Get("sqlserver")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "sqlserver" || d.DefaultSchema() != "dbo" {
		t.Errorf("got %s with default schema %q", d.Name(), d.DefaultSchema())
	}
	if dsn := "sqlserver://u:p@h?database=db"; d.ResolveDSN(dsn, "/plans") != dsn {
		t.Error("ResolveDSN must not touch a SQL Server DSN")
	}
}

func TestQuote(t *testing.T) {
	d := sqlServer{}
	tests := map[string]string{
		"email":               "[email]",
		"we]ird col":          "[we]]ird col]",
		`cc odd "name" [x]-y`: `[cc odd "name" [x]]-y]`,
		"]]":                  "[]]]]]",
		"":                    "[]",
	}
	for in, want := range tests {
		if got := d.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := d.QuoteTable(schema.TableName{Schema: "sales", Name: "a]b"}); got != "[sales].[a]]b]" {
		t.Errorf("QuoteTable = %s", got)
	}
	if got := d.QuoteTable(schema.TableName{Name: "t"}); got != "[dbo].[t]" {
		t.Errorf("QuoteTable without schema = %s, want the default schema", got)
	}
}

func TestCiphertextTypeAndLimits(t *testing.T) {
	d := sqlServer{}
	tests := map[int64]string{1: "VARBINARY(1)", 64: "VARBINARY(64)", 8000: "VARBINARY(8000)", 8001: "VARBINARY(MAX)", 0: "VARBINARY(MAX)", -1: "VARBINARY(MAX)"}
	for n, want := range tests {
		if got := d.CiphertextType(n); got != want {
			t.Errorf("CiphertextType(%d) = %s, want %s", n, got, want)
		}
	}
	if l := d.Limits(); l.RowBytes != 8060 || l.ValueBytes != 1<<31-1 || l.Columns != 1024 {
		t.Errorf("limits = %+v", l)
	}
	if got := d.StoredLenExpr(nil, "[c]"); got != "DATALENGTH([c])" {
		t.Errorf("StoredLenExpr = %s", got)
	}
}

func TestDSNSecrets(t *testing.T) {
	tests := []struct{ dsn, secret string }{
		{"sqlserver://sa:S3cret@db.example:1433?database=app", "S3cret"},
		{"sqlserver://sa:p%40ss%3Aw0rd@db.example?database=app", "p@ss:w0rd"},
		{"sqlserver://sa:raw@pass@db.example/inst", "raw@pass"},
		{"server=db;user id=sa;password=Pa55;database=app", "Pa55"},
		{`server=db;user id=sa;Password="semi;colon";database=app`, "semi;colon"},
		{"odbc:server=db;uid=sa;PWD={brace;}}d};database=app", "brace;}d"},
		{`server=db;user id=sa;pwd="quo""ted";database=app`, `quo"ted`},
		{"odbc:server=db;uid=sa;pwd={odbc pw};database=app", "odbc pw"},
		{"sqlserver://sa:hunter2@db:notaport", "hunter2"},
	}
	for _, tt := range tests {
		secrets := dsnSecrets(tt.dsn)
		found := false
		for _, s := range secrets {
			if s == tt.secret {
				found = true
			}
		}
		if !found {
			t.Errorf("dsnSecrets(%q) = %q, missing %q", tt.dsn, secrets, tt.secret)
		}
		if msg := redact("failed: "+tt.dsn+" / "+tt.secret, secrets); strings.Contains(msg, tt.secret) {
			t.Errorf("redact left the password in %q", msg)
		}
	}
}

// TestOpenErrorsHideThePassword connects to a closed port and parses a bad
// DSN: neither message may hold the password, whatever the driver echoes.
func TestOpenErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const secret = "Sup3r-s3cret"
	dsns := []string{
		"sqlserver://sa:" + secret + "@127.0.0.1:1?database=app&dial+timeout=2",
		"server=127.0.0.1;port=1;user id=sa;password=" + secret + ";dial timeout=2",
		"sqlserver://sa:" + secret + "@127.0.0.1:notaport?database=app",
		"odbc:server=127.0.0.1,1;uid=sa;pwd={" + secret + "};log=notanumber",
		// The shapes that made the PostgreSQL engine show a password.
		" sqlserver://sa:" + secret + "@127.0.0.1:1?database=app&dial+timeout=2",
		"SQLSERVER://sa:" + secret + "@127.0.0.1:1?database=app&dial+timeout=2",
		"sqlserver://sa:" + secret + "@x@127.0.0.1:1?database=app&dial+timeout=2",
		"server=127.0.0.1;port=1;user id=sa;password=\"" + secret + " it\";dial timeout=2",
	}
	for _, dsn := range dsns {
		db, err := sqlServer{}.Open(ctx, dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded against a closed port", dsn)
			continue
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), secret) {
				t.Errorf("Open error reveals the password: %v", e)
			}
		}
		if !strings.Contains(err.Error(), "connect to SQL Server") {
			t.Errorf("error %q does not say what failed", err)
		}
	}
}

func TestOpenHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := sqlServer{}.Open(ctx, "sqlserver://sa:pw@127.0.0.1:1?database=app")
	if err == nil {
		t.Fatal("Open succeeded with a cancelled context")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Open returned %v, want context.Canceled", err)
	}
}

// TestOpenErrorScrubsEchoedDSN: the driver today does not echo the DSN,
// but the guarantee must not rest on that. An error that quotes the whole
// DSN is scrubbed, cannot be unwrapped to the original, and still says
// whether the context ended it.
func TestOpenErrorScrubsEchoedDSN(t *testing.T) {
	const secret = "hunter2"
	for _, dsn := range []string{
		"sqlserver://sa:" + secret + "@db.example?database=app",
		"server=db.example;user id=sa;password=" + secret,
	} {
		cause := fmt.Errorf("cannot use %q: %w", dsn, context.DeadlineExceeded)
		err := openError(dsn, cause)
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), secret) {
				t.Errorf("error chain reveals the password: %v", e)
			}
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v: lost context.DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), "db.example") {
			t.Errorf("%v: does not name the server", err)
		}
	}
	plain := errors.New("login failed for user 'sa'")
	if err := openError("sqlserver://sa:x@h", plain); !errors.Is(err, plain) {
		t.Errorf("an error without secrets must stay wrapped: %v", err)
	}
}
