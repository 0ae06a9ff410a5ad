package postgres

import (
	"bytes"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/colcrypt/colcrypt/internal/pgtest"
)

var byteaArrays = map[string]byteaArray{
	"none":           {},
	"one NULL":       {nil},
	"empty and NULL": {{}, nil, {}},
	"values":         {[]byte("a"), {0, 0xff, 0}, nil, bytes.Repeat([]byte{7}, 70000)},
}

var int8Arrays = map[string]int8Array{
	"none":   {},
	"values": {0, 1, -1, math.MaxInt64, math.MinInt64, 42},
}

// TestArraysEncodeAsPgxDoes: the self-encoding arrays give, byte for
// byte, what pgx's own encoding of the same slices gives, and a type map
// with registerArrays encodes them itself instead of through pgx.
func TestArraysEncodeAsPgxDoes(t *testing.T) {
	fast, plain := pgtype.NewMap(), pgtype.NewMap()
	registerArrays(fast)
	check := func(name string, oid uint32, mine, theirs any) {
		t.Helper()
		if _, ok := fast.PlanEncode(oid, pgtype.BinaryFormatCode, mine).(selfEncodePlan); !ok {
			t.Errorf("%s: the registered codec does not encode %T itself", name, mine)
		}
		// A prefix checks that the array appends to what the buffer holds.
		got, err := fast.Encode(oid, pgtype.BinaryFormatCode, mine, []byte("prefix"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := plain.Encode(oid, pgtype.BinaryFormatCode, theirs, []byte("prefix"))
		if err != nil {
			t.Fatalf("%s: pgx: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoded\n%x\nwant (pgx)\n%x", name, got, want)
		}
	}
	for name, a := range byteaArrays {
		check("bytea "+name, pgtype.ByteaArrayOID, a, [][]byte(a))
	}
	for name, a := range int8Arrays {
		check("int8 "+name, pgtype.Int8ArrayOID, a, []int64(a))
	}
	// Another array type keeps pgx's own encoding, and so does text.
	if _, ok := fast.PlanEncode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, int8Array{1}).(selfEncodePlan); ok {
		t.Error("an int8Array bound to an int4[] parameter encodes itself as int8")
	}
	if _, ok := fast.PlanEncode(pgtype.ByteaArrayOID, pgtype.TextFormatCode, byteaArray{}).(selfEncodePlan); ok {
		t.Error("a byteaArray in text format encodes itself in binary")
	}
}

// TestArraysRoundTripPostgres sends the arrays through a connection of
// Open and reads each element back as the server sees it.
func TestArraysRoundTripPostgres(t *testing.T) {
	db, err := Dialect{}.Open(t.Context(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, a := range byteaArrays {
		rows, err := db.QueryContext(t.Context(), `SELECT coalesce(encode(v, 'hex'), 'NULL') FROM unnest($1::bytea[]) AS v`, a)
		if err != nil {
			t.Fatalf("bytea %s: %v", name, err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		var want []string
		for _, v := range a {
			s := "NULL"
			if v != nil {
				s = hex.EncodeToString(v)
			}
			want = append(want, s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("bytea %s: the server read %d elements, want %d, or they differ", name, len(got), len(want))
		}
	}
	for name, a := range int8Arrays {
		var n int64
		var text string
		if err := db.QueryRowContext(t.Context(),
			`SELECT count(*), coalesce(string_agg(v::text, ',' ORDER BY o), '') FROM unnest($1::bigint[]) WITH ORDINALITY AS u(v, o)`, a).
			Scan(&n, &text); err != nil {
			t.Fatalf("int8 %s: %v", name, err)
		}
		var want []string
		for _, v := range a {
			want = append(want, strconv.FormatInt(v, 10))
		}
		if n != int64(len(a)) || text != strings.Join(want, ",") {
			t.Errorf("int8 %s: the server read %d elements %q, want %d %q", name, n, text, len(a), strings.Join(want, ","))
		}
	}
}
