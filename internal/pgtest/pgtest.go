// Package pgtest gives each test its own empty PostgreSQL database on the
// cluster named by COLCRYPT_POSTGRES_DSN, so that the tests of several
// packages can run in parallel against one cluster without seeing each
// other's tables.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvDSN names the variable holding the DSN of the test cluster.
const EnvDSN = "COLCRYPT_POSTGRES_DSN"

// adminTimeout bounds CREATE and DROP DATABASE: on a healthy local cluster
// they take milliseconds, so a minute means the cluster is stuck.
const adminTimeout = time.Minute

const missingMessage = "COLCRYPT_POSTGRES_DSN is not set: run ./scripts/test, which starts PostgreSQL"

// DSN creates a new empty database for this test and returns a DSN for it.
// The database is dropped, closing any connection still open to it, when
// the test ends. Without COLCRYPT_POSTGRES_DSN the test is skipped, or fails
// when CI is set, so that CI never passes by skipping.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(missingMessage)
		}
		t.Skip(missingMessage)
	}
	name := "colcrypt_t_" + randomSuffix(t)
	dsn, err := WithDatabase(base, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := createDatabase(ctx, base, name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := admin(ctx, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dsn
}

// WithDatabase returns dsn, in URL or keyword/value form, with its database
// replaced by name.
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url's errors quote the whole DSN, password included.
			return "", fmt.Errorf("%s is not a valid URL", EnvDSN)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form the last setting of a keyword wins.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

// fileCopyVersion is the first server version with CREATE DATABASE ...
// STRATEGY. Its FILE_COPY strategy copies the small template several times
// faster than the default WAL_LOG on a test cluster running with fsync=off.
const fileCopyVersion = 150000

func createDatabase(ctx context.Context, dsn, name string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var version int
	if err := db.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return err
	}
	stmt := "CREATE DATABASE " + name
	if version >= fileCopyVersion {
		stmt += " STRATEGY FILE_COPY"
	}
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func admin(ctx context.Context, dsn, stmt string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func randomSuffix(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: random database name: %v", err)
	}
	return hex.EncodeToString(b[:])
}
