package postgres_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// TestChangeCapture: the trigger changes a row's version when a planned
// column changes as text (numeric scale, json without an equality
// operator, NULL against empty) and only then, gives inserted rows a random
// version, a guarded write skips rows whose version moved, and DropCapture
// leaves nothing behind. Two tables whose long names share a prefix get
// their own trigger functions.
func TestChangeCapture(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 60)
	d, db := openDB(t,
		`CREATE TABLE "we""ird t" (id int PRIMARY KEY, amount numeric(6,2), doc json, "e mail" text, score int, ct bytea)`,
		`INSERT INTO "we""ird t" VALUES (1, 1.0, '{"a": 1}', 'a', 1, NULL), (2, NULL, NULL, NULL, 2, NULL)`,
		`CREATE TABLE `+long+`_a (id int PRIMARY KEY, v text)`,
		`CREATE TABLE `+long+`_b (id int PRIMARY KEY, v text)`,
		`INSERT INTO `+long+`_a VALUES (1, 'a')`,
		`INSERT INTO `+long+`_b VALUES (1, 'b')`,
	)
	ctx := t.Context()
	tn := schema.TableName{Schema: "public", Name: `we"ird t`}
	version := func(table string, id int) int64 {
		t.Helper()
		var v int64
		if err := db.QueryRowContext(ctx, `SELECT colcrypt_version FROM `+table+` WHERE id = $1`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for range 2 { // idempotent
		if err := d.AddCapture(ctx, db, tn, []string{"amount", "doc", "e mail"}, []string{"id"}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		stmt string
		want int64
	}{
		{`UPDATE "we""ird t" SET amount = 1.00 WHERE id = 1`, 0}, // same text: numeric(6,2) stores 1.00 already
		{`UPDATE "we""ird t" SET amount = 1.5 WHERE id = 1`, 1},
		{`UPDATE "we""ird t" SET doc = '{"a":1}' WHERE id = 1`, 2},
		{`UPDATE "we""ird t" SET doc = '{"a":1}' WHERE id = 1`, 2},
		{`UPDATE "we""ird t" SET "e mail" = '' WHERE id = 1`, 3},
		{`UPDATE "we""ird t" SET "e mail" = NULL WHERE id = 1`, 4},
		{`UPDATE "we""ird t" SET score = 7, ct = '\x01' WHERE id = 1`, 4},
	}
	for _, s := range steps {
		exec(t, db, s.stmt)
		if v := version(`"we""ird t"`, 1); v != s.want {
			t.Errorf("after %s the version is %d, want %d", s.stmt, v, s.want)
		}
	}
	// As logical replication or a restore writes, which ordinary
	// triggers let through.
	if err := execAsReplica(t, db, `UPDATE "we""ird t" SET "e mail" = 'replicated' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if v := version(`"we""ird t"`, 1); v != 5 {
		t.Errorf("after an update as a replica the version is %d, want 5", v)
	}
	exec(t, db, `INSERT INTO "we""ird t" (id, score) VALUES (3, 0), (4, 0)`)
	if a, b := version(`"we""ird t"`, 3), version(`"we""ird t"`, 4); a == 0 || a == b {
		t.Errorf("inserted rows have versions %d and %d, want random ones", a, b)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := dialect.Update{Table: tn, Key: []string{"id"}, KeyTypes: []string{"integer"}, Set: []string{"ct", dialect.EncVersionColumn},
		Guard: dialect.VersionColumn, Rows: [][]any{{int64(1), []byte("stale"), int64(3), int64(3)}, {int64(2), []byte("fresh"), int64(0), int64(0)}}}
	if err := d.BulkUpdate(ctx, tx, u); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(id || '=' || coalesce(convert_from(ct, 'UTF8'), 'NULL') || '@' || coalesce(colcrypt_enc_version::text, 'NULL'), ' ' ORDER BY id)
		FROM "we""ird t" WHERE id IN (1, 2)`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "1=\x01@NULL 2=fresh@0"; got != want {
		t.Errorf("after guarded writes: %q, want %q", got, want)
	}

	for _, name := range []string{long + "_a", long + "_b"} {
		if err := d.AddCapture(ctx, db, schema.TableName{Schema: "public", Name: name}, []string{"v"}, []string{"id"}); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, db, `UPDATE `+long+`_a SET v = 'A'`, `UPDATE `+long+`_b SET v = 'B'`)
	if a, b := version(long+"_a", 1), version(long+"_b", 1); a != 1 || b != 1 {
		t.Errorf("long names: versions %d and %d, want 1 and 1", a, b)
	}

	for _, table := range []schema.TableName{tn, {Schema: "public", Name: long + "_a"}, {Schema: "public", Name: long + "_b"}} {
		for range 2 {
			if err := d.DropCapture(ctx, db, table); err != nil {
				t.Fatal(err)
			}
		}
	}
	var left sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT string_agg(x, ', ') FROM (
		SELECT attname::text AS x FROM pg_attribute WHERE attname LIKE 'colcrypt%' AND NOT attisdropped
		UNION ALL SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal
		UNION ALL SELECT proname::text FROM pg_proc WHERE proname LIKE 'colcrypt%') s`).Scan(&left); err != nil || left.Valid {
		t.Errorf("after DropCapture: %q left (%v)", left.String, err)
	}
}
