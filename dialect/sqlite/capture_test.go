package sqlite

import (
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// TestChangeCapture: the triggers change the version of a row when a
// planned column is set and only then, give inserted rows a random version,
// a guarded write skips rows whose version moved, and DropCapture leaves
// the table as it was.
func TestChangeCapture(t *testing.T) {
	for _, tc := range []struct {
		name, create string
		key          []string
	}{
		{"rowid table", `CREATE TABLE "we""ird t" (id INTEGER PRIMARY KEY, "e mail" TEXT, notes TEXT, score INTEGER, ct TEXT)`, []string{"rowid"}},
		{"without rowid", `CREATE TABLE "we""ird t" (id TEXT PRIMARY KEY, "e mail" TEXT, notes TEXT, score INTEGER, ct TEXT) WITHOUT ROWID`, []string{"id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			d := Dialect{}
			db := openTemp(t)
			tn := schema.TableName{Name: `we"ird t`}
			exec := func(stmt string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, stmt, args...); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			version := func(id string) int64 {
				t.Helper()
				var v int64
				if err := db.QueryRowContext(ctx, `SELECT colcrypt_version FROM "we""ird t" WHERE id = ?`, id).Scan(&v); err != nil {
					t.Fatal(err)
				}
				return v
			}
			exec(tc.create)
			exec(`INSERT INTO "we""ird t" VALUES ('1', 'a', 'b', 1, NULL), ('2', NULL, NULL, 2, NULL)`)
			var before string
			if err := db.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE name = ?", tn.Name).Scan(&before); err != nil {
				t.Fatal(err)
			}
			for range 2 { // idempotent
				if err := d.AddCapture(ctx, db, tn, []string{"e mail", "notes"}, tc.key); err != nil {
					t.Fatal(err)
				}
			}
			if v := version("1"); v != 0 {
				t.Fatalf("existing row has version %d, want 0", v)
			}
			exec(`UPDATE "we""ird t" SET "e mail" = 'c' WHERE id = '1'`)
			exec(`UPDATE "we""ird t" SET notes = NULL WHERE id = '1'`)
			exec(`UPDATE "we""ird t" SET score = 5 WHERE id = '1'`)
			if v := version("1"); v != 2 {
				t.Errorf("after two updates of planned columns and one of another column the version is %d, want 2", v)
			}
			exec(`INSERT INTO "we""ird t" (id, "e mail") VALUES ('3', 'x')`)
			exec(`INSERT INTO "we""ird t" (id, "e mail") VALUES ('4', 'y')`)
			if a, b := version("3"), version("4"); a == 0 || a == b {
				t.Errorf("inserted rows have versions %d and %d, want random ones", a, b)
			}

			// colcrypt writes ciphertext columns, never planned ones. Row 1 is
			// at version 2: a write guarded on 1 is skipped, one
			// guarded on 2 lands; row 2 (version 0) is written.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			u := dialect.Update{Table: tn, Key: []string{"id"}, Set: []string{"ct", dialect.EncVersionColumn}, Guard: dialect.VersionColumn,
				Rows: [][]any{{"1", "stale", int64(1), int64(1)}, {"2", "fresh", int64(0), int64(0)}}}
			if err := d.BulkUpdate(ctx, tx, u); err != nil {
				t.Fatal(err)
			}
			u.Rows = [][]any{{"1", "now", int64(2), int64(2)}}
			if err := d.BulkUpdate(ctx, tx, u); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			rows, err := db.QueryContext(ctx, `SELECT id, coalesce(ct, 'NULL'), coalesce(colcrypt_enc_version, -1) FROM "we""ird t" WHERE id IN ('1', '2') ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var id, notes string
				var enc int64
				if err := rows.Scan(&id, &notes, &enc); err != nil {
					t.Fatal(err)
				}
				got = append(got, id+"="+notes+"@"+string(rune('0'+enc)))
			}
			rows.Close()
			if want := []string{"1=now@2", "2=fresh@0"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("after guarded writes: %v, want %v", got, want)
			}
			if v := version("1"); v != 2 {
				t.Errorf("colcrypt's own write changed the version to %d", v)
			}

			for range 2 {
				if err := d.DropCapture(ctx, db, tn); err != nil {
					t.Fatal(err)
				}
			}
			var after string
			var triggers int
			if err := db.QueryRowContext(ctx, "SELECT sql, (SELECT count(*) FROM sqlite_master WHERE type = 'trigger') FROM sqlite_master WHERE name = ?",
				tn.Name).Scan(&after, &triggers); err != nil {
				t.Fatal(err)
			}
			if after != before || triggers != 0 {
				t.Errorf("after DropCapture: %d triggers, table\n%s\nwant\n%s", triggers, after, before)
			}
		})
	}
}
