package postgres_test

import (
	"database/sql"
	"maps"
	"testing"
)

// logReplacementWrites records the statement of every write into the
// table's replacement, from a statement trigger created once the job is
// prepared: the tests below see which way the copy wrote the rows.
func logReplacementWrites(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	exec(t, db,
		`CREATE TABLE IF NOT EXISTS write_log (query text)`,
		`CREATE OR REPLACE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO write_log VALUES (current_query());
			RETURN NULL;
		END
		$$`,
		`CREATE TRIGGER log_writes AFTER INSERT ON `+table+`__colcrypt_new FOR EACH STATEMENT EXECUTE FUNCTION log_write()`)
}

// loggedWrites counts the statements logged by their first word, and
// drops the trigger before the cut-over.
func loggedWrites(t *testing.T, db *sql.DB, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	readSnapshot(t, db, out, `SELECT split_part(ltrim(query), ' ', 1), count(*)::text FROM write_log GROUP BY 1`)
	exec(t, db, `DROP TRIGGER log_writes ON `+table+`__colcrypt_new`)
	return out
}

// applyWritingWith runs the whole job, and wants the copy to have
// written the table's replacement with statements of one kind only (their
// first word): COPY, or INSERT for the join. Verify must pass after.
func applyWritingWith(t *testing.T, r *engineRun, table, kind string) {
	t.Helper()
	r.applyUntil(t, "prepare")
	logReplacementWrites(t, r.db, table)
	r.applyUntil(t, "copy")
	if got := loggedWrites(t, r.db, table); got[kind] == "" || len(got) != 1 {
		t.Errorf("the copy wrote the replacement with %v; want %s only", got, kind)
	}
	r.opt.Until = ""
	if _, err := r.eng().Apply(t.Context()); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if vr, err := r.eng().Verify(t.Context()); err != nil || !vr.OK() {
		t.Fatalf("verify: %+v, %v", vr, err)
	}
}

// kindsFixture is a table with a column of most kinds of type PostgreSQL
// has, built-in and user-defined, with NULLs, odd values (NaN, -0,
// infinities, empty arrays, nested arrays, a value stored out of line) and
// an identity and a generated column.
var kindsFixture = []string{
	`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
	`CREATE TYPE pair AS (a int, b text)`,
	`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`,
	`CREATE TABLE kinds (
		id bigint PRIMARY KEY,
		email varchar(64),
		c_char char(5), c_text text, c_num numeric(12,4), c_float float8, c_real real,
		c_ts timestamptz, c_date date, c_time time, c_interval interval, c_bool bool,
		c_bytes bytea, c_uuid uuid, c_jsonb jsonb, c_json json, c_xml xml,
		c_inet inet, c_cidr cidr, c_mac macaddr, c_ints int4[], c_texts text[],
		c_pair pair, c_mood mood, c_pos posint, c_range int4range, c_tsv tsvector,
		c_money money, c_bits varbit, c_point point, c_big text,
		c_ident int GENERATED ALWAYS AS IDENTITY (START WITH 50),
		c_gen int GENERATED ALWAYS AS (length(c_text)) STORED
	)`,
	`INSERT INTO kinds (id, email, c_char, c_text, c_num, c_float, c_real, c_ts, c_date, c_time, c_interval, c_bool,
		c_bytes, c_uuid, c_jsonb, c_json, c_xml, c_inet, c_cidr, c_mac, c_ints, c_texts, c_pair, c_mood, c_pos,
		c_range, c_tsv, c_money, c_bits, c_point, c_big)
	SELECT g, 'u' || g || '@example.com',
		CASE WHEN g % 5 = 0 THEN NULL ELSE left('ab' || g, 5) END,
		CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'tab' || chr(9) || 'nl' || chr(10) || 'bs\' || g || ' ü' END,
		g * 1.0001 - 50,
		(ARRAY['NaN', '-0', 'Infinity', '-Infinity', '1e-300', '3.14159'])[g % 6 + 1]::float8,
		g / 7.0,
		'2024-02-29 12:34:56.789+00'::timestamptz + g * interval '1 hour',
		CASE WHEN g % 9 = 0 THEN 'infinity'::date ELSE '2000-01-01'::date + g END,
		'23:59:59.999999'::time - g * interval '1 second',
		make_interval(months => g, secs => g / 3.0),
		CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END,
		CASE WHEN g % 6 = 0 THEN '\x'::bytea ELSE decode(md5(g::text), 'hex') END,
		md5(g::text)::uuid,
		jsonb_build_object('g', g, 'nested', jsonb_build_array(1, 'two', NULL)),
		('{"b": 1,  "a": [1, 2], "b": ' || g || '}')::json,
		('<r n="' || g || '">x &amp; y</r>')::xml,
		('10.' || g % 256 || '.0.1/' || (8 + g % 25))::inet,
		'192.168.0.0/16'::cidr,
		'08:00:2b:01:02:03'::macaddr,
		CASE g % 4 WHEN 0 THEN '{}' WHEN 1 THEN ARRAY[[1, NULL], [3, g]] ELSE ARRAY[g, NULL, -g] END,
		ARRAY['a,b', NULL, '"q"', 'NULL', ''],
		ROW(g, 'p ' || g)::pair,
		(ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::mood,
		g,
		CASE WHEN g % 2 = 0 THEN int4range(g, g + 10) ELSE 'empty'::int4range END,
		to_tsvector('simple', 'the quick fox ' || g),
		g * 1.25,
		(g % 64)::bit(6)::varbit,
		point(g, -g / 3.0),
		CASE WHEN g % 50 = 0 THEN (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 400) i) END
	FROM generate_series(1, 600) g`,
}

// kindsSnapshot gives each row's columns as PostgreSQL prints them, all
// but email.
func kindsSnapshot(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	var cols string
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum), count(*) FROM pg_attribute
		WHERE attrelid = 'kinds'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE 'email%'`).Scan(&cols, &n); err != nil {
		t.Fatal(err)
	}
	if n != 32 {
		t.Fatalf("kinds has %d columns besides email, want 32: %s", n, cols)
	}
	out := map[string]string{}
	readSnapshot(t, db, out, `SELECT id::text, ROW(`+cols+`)::text FROM kinds`)
	return out
}

// TestRebuildCopiesEveryColumnAsItIs: an offline job writes its
// replacement's rows with COPY in binary, each column not encrypted
// carried through the client in binary, as record_send gives it. Every
// value of every kind must come back exactly as it was, and the identity
// and generated columns go on as before.
func TestRebuildCopiesEveryColumnAsItIs(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, `  - name: kinds
    columns:
      - name: email
`, kindsFixture...)
	before := kindsSnapshot(t, r.db)
	if len(before) != 600 {
		t.Fatalf("the fixture has %d rows, want 600", len(before))
	}
	applyWritingWith(t, r, "kinds", "COPY")
	after := kindsSnapshot(t, r.db)
	if !maps.Equal(before, after) {
		t.Errorf("%d rows differ after the rebuild, e.g.:\n%s", countDiff(before, after), firstDiff(before, after))
	}
	var ident, gen int
	if err := r.db.QueryRowContext(t.Context(), `INSERT INTO kinds (id, c_text) VALUES (1000, 'four') RETURNING c_ident, c_gen`).Scan(&ident, &gen); err != nil {
		t.Fatal(err)
	}
	if ident != 650 || gen != 4 {
		t.Errorf("a row inserted after the cut-over got identity %d and generated %d; want 650 and 4", ident, gen)
	}
}

// TestRebuildJoinsWhereATypeHasNoBinaryForm: aclitem has no binary send
// or receive function, so a table with a column made of it (here an array
// of them, whose own type has array_send) cannot be carried through COPY
// in binary; its chunks join on the server instead, and the job works as
// before.
func TestRebuildJoinsWhereATypeHasNoBinaryForm(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, `  - name: grants
    columns:
      - name: email
`, `CREATE TABLE grants (id int PRIMARY KEY, email text, perm aclitem[])`,
		`INSERT INTO grants SELECT g, 'u' || g || '@example.com', CASE WHEN g % 3 > 0 THEN ARRAY[makeaclitem('pg_monitor'::regrole, 'pg_read_all_data'::regrole, 'SELECT', g % 2 = 0)] END
		FROM generate_series(1, 250) g`)
	before := rowSnapshot(t, r.db, "grants")
	applyWritingWith(t, r, "grants", "INSERT")
	if _, err := r.eng().Revert(t.Context()); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if after := rowSnapshot(t, r.db, "grants"); !maps.Equal(before, after) {
		t.Errorf("%d rows differ after apply and revert, e.g.:\n%s", countDiff(before, after), firstDiff(before, after))
	}
}
