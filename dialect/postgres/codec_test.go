package postgres_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/schema"
)

// typeCases are the supported types with awkward values; dialecttest gets
// the same list.
var typeCases = []struct {
	Declared string
	Literals []string
}{
	{"text", []string{`''`, `'  trailing  '`, `'Grüße 日本 🙂'`, `E'tab\there\nnew line'`, `'it''s'`, `NULL`}},
	{"varchar(64)", []string{`''`, `' x '`, `'Grüße 日本 🙂'`, `NULL`}},
	{"varchar", []string{`''`, `repeat('ab', 5000)`, `NULL`}},
	{"char(11)", []string{`''`, `'ab'`, `'ab   '`, `'  ab'`, `'123-45-6789'`, `'日本語🙂'`, `NULL`}},
	{"bytea", []string{`'\x'`, `'\x00ff'`, `'\x000000'`, `decode(repeat('ff00', 3000), 'hex')`, `NULL`}},
	{"smallint", []string{`-32768`, `32767`, `0`, `NULL`}},
	{"integer", []string{`-2147483648`, `2147483647`, `0`, `NULL`}},
	{"bigint", []string{`-9223372036854775808`, `9223372036854775807`, `0`, `NULL`}},
	{"numeric(10,2)", []string{`-99999999.99`, `99999999.99`, `0`, `0.1`, `'NaN'`, `NULL`}},
	{"numeric", []string{`'1e1000'::numeric`, `'-1e-1000'::numeric`, `'1.000'`, `0.00000000000000000001`, `'NaN'`, `'Infinity'`, `'-Infinity'`, `NULL`}},
	{"double precision", []string{`-1.7976931348623157e308`, `1.7976931348623157e308`, `5e-324`, `-2.2250738585072014e-308`, `0.1`, `'-0'`, `'0'`, `'NaN'`, `'Infinity'`, `'-Infinity'`, `NULL`}},
	{"boolean", []string{`true`, `false`, `NULL`}},
	{"date", []string{`'4714-11-24 BC'`, `'5874897-12-31'`, `'2000-02-29'`, `'infinity'`, `'-infinity'`, `NULL`}},
	{"time", []string{`'00:00'`, `'23:59:59.999999'`, `'24:00:00'`, `NULL`}},
	{"time(2) with time zone", []string{`'23:59:59.99-15:59:59'`, `'00:00+05:30'`, `'12:00:00.5+00'`, `NULL`}},
	{"timetz", []string{`'23:59:59.999999-15:59:59'`, `'00:00:00+15:59:59'`, `NULL`}},
	{"timestamp(3)", []string{`'4714-11-24 00:00:00 BC'`, `'294276-12-31 23:59:59.999'`, `'2024-02-29 12:34:56.789'`, `'infinity'`, `'-infinity'`, `NULL`}},
	{"timestamp", []string{`'4714-11-24 23:59:59.999999 BC'`, `'294276-12-31 23:59:59.999999'`, `NULL`}},
	{"timestamptz", []string{`'4714-11-24 23:59:59.999999+00 BC'`, `'294276-12-31 23:59:59.999999+00'`, `'2024-06-01 12:00:00+05:30'`, `'infinity'`, `NULL`}},
	{"uuid", []string{`'00000000-0000-0000-0000-000000000000'`, `'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`, `NULL`}},
	{"json", []string{`'{"b": 1,   "a": [1, 2.50, 1e3], "a": null}'`, `' "x" '`, `'null'`, `NULL`}},
	{"jsonb", []string{`'{"b": 1, "a": [1, 2.50, 1e3]}'`, `'"Grüße"'`, `'null'`, `NULL`}},
	{"xml", []string{`'<a x="1">t</a>'`, `'<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<a/>'`, `'text only'`, `''`, `'<!DOCTYPE a><a/>'`, `NULL`}},
}

// same is the comparison the conformance suite gets: the text forms, which
// are exact for every supported type, compared byte by byte.
func same(a, b string) string {
	return fmt.Sprintf(`((%s)::text COLLATE "C" IS NOT DISTINCT FROM (%s)::text COLLATE "C")`, a, b)
}

// TestCodecRoundTrip encodes every value the way the migration engine
// does, restores it into a second column of the same type, and checks that
// the two are the same value and that sizes agree with the codec.
func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	d, db := openDB(t)
	for i, tc := range typeCases {
		t.Run(tc.Declared, func(t *testing.T) {
			table := fmt.Sprintf("rt_%d", i)
			exec(t, db, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v %s, back %s)`, table, tc.Declared, tc.Declared))
			for j, lit := range tc.Literals {
				exec(t, db, fmt.Sprintf(`INSERT INTO %s (id, v) VALUES (%d, %s)`, table, j, lit))
			}
			tb := readTable(t, d, db, table)
			codec, err := d.Codec(tb.Column("v"))
			if err != nil {
				t.Fatal(err)
			}
			plain := map[int][]byte{}
			q := fmt.Sprintf(`SELECT id, %s, %s FROM %s WHERE v IS NOT NULL`, codec.SelectExpr("v"), codec.PlainLenExpr("v"), table)
			rows, err := db.QueryContext(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var (
					id     int
					v      any
					sqlLen int64
				)
				if err := rows.Scan(&id, &v, &sqlLen); err != nil {
					t.Fatal(err)
				}
				b, err := codec.Encode(v)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(b)) != sqlLen {
					t.Errorf("%s: PlainLenExpr says %d bytes, Encode gave %d", tc.Literals[id], sqlLen, len(b))
				}
				if m := codec.MaxPlainBytes(); m > 0 && int64(len(b)) > m {
					t.Errorf("%s: %d plaintext bytes exceed MaxPlainBytes %d", tc.Literals[id], len(b), m)
				}
				plain[id] = b
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			upd := fmt.Sprintf(`UPDATE %s SET back = %s WHERE id = $2`, table, codec.RestoreExpr("$1"))
			for id, b := range plain {
				v, err := codec.Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.ExecContext(t.Context(), upd, v, id); err != nil {
					t.Fatalf("%s: restore: %v", tc.Literals[id], err)
				}
			}
			q = fmt.Sprintf(`SELECT id, v::text, back::text FROM %s WHERE NOT %s ORDER BY id`, table, same("v", "back"))
			rows, err = db.QueryContext(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var (
					id      int
					v, back sql.NullString
				)
				if err := rows.Scan(&id, &v, &back); err != nil {
					t.Fatal(err)
				}
				t.Errorf("%s: stored %q, restored %q", tc.Literals[id], v.String, back.String)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCharPadding proves that dropping char(n)'s pad spaces in the
// plaintext loses nothing: the restored value has the very same stored
// bytes, pad spaces included, as bpcharsend shows.
func TestCharPadding(t *testing.T) {
	t.Parallel()
	d, db := openDB(t,
		`CREATE TABLE pad (id int PRIMARY KEY, v char(11), back char(11))`,
		`INSERT INTO pad VALUES (1, 'ab', NULL), (2, 'ab   ', NULL), (3, '  ab', NULL), (4, '', NULL)`)
	codec, err := d.Codec(readTable(t, d, db, "pad").Column("v"))
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, fmt.Sprintf(`UPDATE pad SET back = %s`, codec.RestoreExpr(codec.SelectExpr("v"))))
	rows, err := db.QueryContext(t.Context(), `SELECT id, bpcharsend(v), bpcharsend(back), `+codec.SelectExpr("v")+` FROM pad ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[int]string{1: "ab", 2: "ab", 3: "  ab", 4: ""}
	for rows.Next() {
		var (
			id      int
			v, back []byte
			plain   string
		)
		if err := rows.Scan(&id, &v, &back, &plain); err != nil {
			t.Fatal(err)
		}
		if string(v) != string(back) || len(v) != 11 {
			t.Errorf("row %d: stored %q, restored %q", id, v, back)
		}
		if plain != want[id] {
			t.Errorf("row %d: plaintext %q, want %q", id, plain, want[id])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestMaxPlainBytes checks every bounded type's MaxPlainBytes against the
// longest text the server produces for the type's extreme values: none may
// exceed it, and slack says by how much the bound is known to be loose.
func TestMaxPlainBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		declared string
		want     int64
		slack    int64 // MaxPlainBytes minus the longest value that exists
		extremes []string
	}{
		{"boolean", 5, 0, []string{"true", "false"}},
		{"smallint", 6, 0, []string{"-32768", "32767"}},
		{"integer", 11, 0, []string{"-2147483648", "2147483647"}},
		{"bigint", 20, 0, []string{"-9223372036854775808", "9223372036854775807"}},
		{"double precision", 24, 0, []string{"-1.7976931348623157e308", "5e-324", "-5e-324",
			"-2.2250738585072014e-308", "-1.2345678901234567e-100", "-0.00012345678901234567",
			"-123456789012345.67", "-1234567890123456.7", "'-Infinity'", "'NaN'", "'-0'"}},
		{"numeric(10,2)", 12, 0, []string{"-99999999.99", "99999999.99", "'NaN'"}},
		{"numeric(5,0)", 6, 0, []string{"-99999"}},
		{"numeric(2,2)", 5, 0, []string{"-0.99"}},
		{"numeric(2,5)", 8, 0, []string{"-0.00099"}},
		{"numeric(3,-2)", 6, 0, []string{"-99900"}},
		{"numeric(1,0)", 3, 0, []string{"-9", "'NaN'"}},
		{"date", 13, 0, []string{"'4714-11-24 BC'", "'5874897-12-31'", "'-infinity'"}},
		{"time", 15, 0, []string{"'23:59:59.999999'", "'24:00:00'"}},
		{"time(0)", 15, 7, []string{"'23:59:59'"}},
		{"timetz", 24, 0, []string{"'23:59:59.999999-15:59:59'", "'23:59:59.999999+15:59:59'"}},
		{"timestamp", 32, 3, []string{"'4714-11-24 23:59:59.999999 BC'", "'294276-12-31 23:59:59.999999'", "'-infinity'"}},
		{"timestamp(3)", 32, 6, []string{"'4714-11-24 23:59:59.999 BC'", "'294276-12-31 23:59:59.999'"}},
		{"timestamptz", 35, 3, []string{"'4714-11-24 23:59:59.999999+00 BC'", "'294276-12-31 23:59:59.999999+00'", "'-infinity'"}},
		{"uuid", 36, 0, []string{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"}},
		{"varchar(3)", 12, 0, []string{"'🙂🙂🙂'", "'abc'"}},
		{"char(3)", 12, 0, []string{"'🙂🙂🙂'", "'a'"}},
	}
	d, db := openDB(t)
	for i, tc := range cases {
		t.Run(tc.declared, func(t *testing.T) {
			table := fmt.Sprintf("mx_%d", i)
			exec(t, db, fmt.Sprintf(`CREATE TABLE %s (v %s)`, table, tc.declared))
			codec, err := d.Codec(readTable(t, d, db, table).Column("v"))
			if err != nil {
				t.Fatal(err)
			}
			if got := codec.MaxPlainBytes(); got != tc.want {
				t.Errorf("MaxPlainBytes = %d, want %d", got, tc.want)
			}
			var longest int64
			for _, lit := range tc.extremes {
				exec(t, db, fmt.Sprintf(`INSERT INTO %s VALUES (%s)`, table, lit))
			}
			q := fmt.Sprintf(`SELECT max(%s) FROM %s`, codec.PlainLenExpr("v"), table)
			if err := db.QueryRowContext(t.Context(), q).Scan(&longest); err != nil {
				t.Fatal(err)
			}
			if longest > codec.MaxPlainBytes() {
				t.Errorf("a value of %d bytes exceeds MaxPlainBytes %d", longest, codec.MaxPlainBytes())
			}
			if longest+tc.slack != codec.MaxPlainBytes() {
				t.Errorf("longest value %d bytes + slack %d != MaxPlainBytes %d", longest, tc.slack, codec.MaxPlainBytes())
			}
		})
	}
	for _, decl := range []string{"text", "varchar", "bytea", "json", "jsonb", "xml", "numeric", "bpchar"} {
		t.Run(decl, func(t *testing.T) {
			table := "unbounded_" + strings.ReplaceAll(decl, " ", "_")
			exec(t, db, fmt.Sprintf(`CREATE TABLE %s (v %s)`, table, decl))
			codec, err := d.Codec(readTable(t, d, db, table).Column("v"))
			if err != nil {
				t.Fatal(err)
			}
			if got := codec.MaxPlainBytes(); got != 0 {
				t.Errorf("MaxPlainBytes = %d, want 0 (unbounded)", got)
			}
		})
	}
}

// unsupportedTypes must each give ErrUnsupportedType naming the type.
var unsupportedTypes = []string{
	"real", "money", "integer[]", "text[]", "interval", "cc_mood", "cc_ssn", "cc_pair",
	"int4range", "inet", "bit(3)", "point", "tsvector", "oid", "\"char\"", "name",
}

// unsupportedFixture creates the user-defined types among unsupportedTypes;
// it may run again on the same database.
var unsupportedFixture = []string{
	createOnce(`CREATE TYPE cc_mood AS ENUM ('sad', 'ok')`),
	createOnce(`CREATE DOMAIN cc_ssn AS char(11)`),
	createOnce(`CREATE TYPE cc_pair AS (a int, b text)`),
	// A type that shadows a supported name must not pass for it.
	`CREATE SCHEMA IF NOT EXISTS shadow`,
	createOnce(`CREATE DOMAIN shadow.text AS integer`),
}

// createOnce runs a CREATE that has no IF NOT EXISTS form, unless the
// object exists.
func createOnce(stmt string) string {
	return `DO $$ BEGIN ` + stmt + `; EXCEPTION WHEN duplicate_object THEN NULL; END $$`
}

func TestCodecUnsupported(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, unsupportedFixture...)
	types := append(unsupportedTypes[:len(unsupportedTypes):len(unsupportedTypes)], "shadow.text")
	for i, typ := range types {
		t.Run(typ, func(t *testing.T) {
			table := fmt.Sprintf("un_%d", i)
			exec(t, db, fmt.Sprintf(`CREATE TABLE %s (v %s)`, table, typ))
			col := readTable(t, d, db, table).Column("v")
			_, err := d.Codec(col)
			if !errors.Is(err, dialect.ErrUnsupportedType) {
				t.Fatalf("Codec(%s) = %v, want ErrUnsupportedType", col.Declared, err)
			}
			if !strings.Contains(err.Error(), col.Declared) {
				t.Errorf("error %q does not name the type %s", err, col.Declared)
			}
		})
	}
}

// TestCodecHandBuilt covers columns built by hand with SQL-standard type
// names rather than read from the catalog.
func TestCodecHandBuilt(t *testing.T) {
	t.Parallel()
	var d postgres.Dialect
	for _, tc := range []struct {
		typ      string
		length   int
		max      int64
		wantErr  bool
		restored string
	}{
		{typ: "integer", max: 11, restored: "CAST(($1) AS integer)"},
		{typ: "character varying", length: 10, max: 40, restored: "CAST(($1) AS character varying)"},
		{typ: "bytea", max: 0, restored: "$1"},
		{typ: "real", wantErr: true},
	} {
		c, err := d.Codec(&schema.Column{Name: "c", Type: tc.typ, Length: tc.length})
		if tc.wantErr {
			if !errors.Is(err, dialect.ErrUnsupportedType) {
				t.Errorf("%s: err = %v, want ErrUnsupportedType", tc.typ, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if c.MaxPlainBytes() != tc.max || c.RestoreExpr("$1") != tc.restored {
			t.Errorf("%s: MaxPlainBytes %d, RestoreExpr %q; want %d, %q", tc.typ, c.MaxPlainBytes(), c.RestoreExpr("$1"), tc.max, tc.restored)
		}
	}
}
