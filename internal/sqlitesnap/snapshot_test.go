package sqlitesnap_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/internal/sqlitesnap"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "snap.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, s := range []string{
		// score has no declared type: a REAL column would store -0.0 as 0.
		`CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score)`,
		`INSERT INTO people VALUES (1, 'ada', 0.0), (2, 'bob', 1.5)`,
		`CREATE TABLE colcrypt_jobs (id INTEGER PRIMARY KEY, state TEXT)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

func take(t *testing.T, db *sql.DB) sqlitesnap.Snapshot {
	t.Helper()
	s, err := sqlitesnap.Take(db, sqlitesnap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// change applies stmt and returns the diff from the snapshot before it.
func change(t *testing.T, stmt string) string {
	t.Helper()
	db := open(t)
	before := take(t, db)
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	return before.Diff(take(t, db))
}

func TestSnapshotEqualsItself(t *testing.T) {
	db := open(t)
	a, b := take(t, db), take(t, db)
	if d := a.Diff(b); d != "" {
		t.Fatalf("two snapshots of an unchanged database differ:\n%s", d)
	}
	// colcrypt's own tables are not part of the snapshot.
	if _, ok := a.Rows["colcrypt_jobs"]; ok {
		t.Error("the snapshot holds colcrypt's own table colcrypt_jobs")
	}
	if _, err := db.Exec(`INSERT INTO colcrypt_jobs VALUES (1, 'done')`); err != nil {
		t.Fatal(err)
	}
	if d := a.Diff(take(t, db)); d != "" {
		t.Fatalf("a write to colcrypt_jobs shows in the diff:\n%s", d)
	}
}

func TestDiffNamesChanges(t *testing.T) {
	for _, tc := range []struct {
		name, stmt string
		want       []string
	}{
		{"row value", `UPDATE people SET name = 'bea' WHERE id = 2`,
			[]string{"table people row 1", `name=text("bob")`, `name=text("bea")`}},
		{"negative zero", `UPDATE people SET score = -0.0 WHERE id = 1`,
			[]string{"table people row 0", "real(0|0000000000000000)", "real(-0|8000000000000000)"}},
		{"schema", `CREATE INDEX people_name ON people (name)`,
			[]string{"schema differs", "index people_name on people"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := change(t, tc.stmt)
			for _, w := range tc.want {
				if !strings.Contains(d, w) {
					t.Errorf("diff after %s does not say %q:\n%s", tc.stmt, w, d)
				}
			}
		})
	}
}
