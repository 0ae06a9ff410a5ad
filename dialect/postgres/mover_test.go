package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/schema"
)

func TestMoverBasics(t *testing.T) {
	t.Parallel()
	var d postgres.Dialect
	if got := d.StateTypes(); got != (dialect.StateTypes{Text: "text", Key: "text", Blob: "bytea", BigInt: "bigint"}) {
		t.Errorf("StateTypes = %+v", got)
	}
	if got := d.Placeholder(12); got != "$12" {
		t.Errorf("Placeholder(12) = %s", got)
	}
	if got := d.FirstRows("SELECT id FROM t ORDER BY id", 4999, 1); got != "SELECT id FROM t ORDER BY id LIMIT 1 OFFSET 4999" {
		t.Errorf("FirstRows = %s", got)
	}
	if expr, add := d.RowID(); expr != "colcrypt_row_id" || !add {
		t.Errorf("RowID = %s, %v", expr, add)
	}
	if _, ok := any(d).(dialect.SingleWriter); ok {
		t.Error("PostgreSQL has concurrent writers: Dialect must not implement SingleWriter")
	}
}

func TestAddAndDropColumns(t *testing.T) {
	t.Parallel()
	d, db := openDB(t,
		`CREATE TABLE "no key" (msg text, n int)`,
		`INSERT INTO "no key" SELECT 'm' || g, g FROM generate_series(1, 50) g`)
	ctx := t.Context()
	tn := schema.TableName{Name: "no key"}
	for range 2 {
		if err := d.AddColumn(ctx, db, tn, "msg__colcrypt", "bytea"); err != nil {
			t.Fatal(err)
		}
		if err := d.AddRowID(ctx, db, tn); err != nil {
			t.Fatal(err)
		}
	}
	tb := readTable(t, d, db, "no key")
	if c := tb.Column("msg__colcrypt"); c == nil || c.Declared != "bytea" || !c.Nullable {
		t.Errorf("msg__colcrypt = %+v", c)
	}
	var rows, distinct, indexes int
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT colcrypt_row_id) FROM "no key"`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != 50 || distinct != 50 {
		t.Errorf("row ids: %d distinct in %d rows, want one per row", distinct, rows)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_index WHERE indrelid = '"no key"'::regclass AND indisunique`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != 1 {
		t.Errorf("%d unique indexes, want exactly one on colcrypt_row_id after adding it twice", indexes)
	}
	// New rows get a row id too.
	exec(t, db, `INSERT INTO "no key" (msg) VALUES ('late')`)
	var late sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT colcrypt_row_id FROM "no key" WHERE msg = 'late'`).Scan(&late); err != nil || !late.Valid {
		t.Errorf("row id of a new row = %v, %v", late, err)
	}
	for range 2 {
		if err := d.DropColumn(ctx, db, tn, "msg__colcrypt"); err != nil {
			t.Fatal(err)
		}
		if err := d.DropColumn(ctx, db, tn, "colcrypt_row_id"); err != nil {
			t.Fatal(err)
		}
	}
	if cols := columnNames(readTable(t, d, db, "no key")); !slices.Equal(cols, []string{"msg", "n"}) {
		t.Errorf("columns after drop = %v", cols)
	}
}

// TestBulkUpdateKeys writes ciphertext-like values through BulkUpdate for
// tables keyed by every kind of key, with key values read back the way
// the migration engine reads them (database/sql scanning into any).
func TestBulkUpdateKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		create string // a table t with a text column src and bytea columns ct, iv
		insert string
		rowID  bool
	}{
		{"bigint", `CREATE TABLE t (id bigint PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (id, src) SELECT g * 1000000000000, 'v' || g FROM generate_series(1, 20) g`, false},
		{"int", `CREATE TABLE t (id int PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (id, src) SELECT g, 'v' || g FROM generate_series(-5, 14) g`, false},
		{"smallint", `CREATE TABLE t (id smallint PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (id, src) SELECT g, 'v' || g FROM generate_series(1, 20) g`, false},
		{"text", `CREATE TABLE t (k text PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (k, src) SELECT 'kéy ' || g || E' \'"', 'v' || g FROM generate_series(1, 20) g`, false},
		{"char", `CREATE TABLE t (k char(11) PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (k, src) SELECT lpad(g::text, g % 5 + 2, '0'), 'v' || g FROM generate_series(1, 20) g`, false},
		{"uuid", `CREATE TABLE t (k uuid PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (k, src) SELECT md5(g::text)::uuid, 'v' || g FROM generate_series(1, 20) g`, false},
		{"numeric", `CREATE TABLE t (k numeric(12,3) PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (k, src) SELECT g / 7.0, 'v' || g FROM generate_series(1, 20) g`, false},
		{"composite int text", `CREATE TABLE t (a int, b varchar(10), src text, ct bytea, iv bytea, PRIMARY KEY (a, b))`,
			`INSERT INTO t (a, b, src) SELECT g % 3, 'b' || g, 'v' || g FROM generate_series(1, 20) g`, false},
		{"composite date timestamptz", `CREATE TABLE t (d date, ts timestamptz, src text, ct bytea, iv bytea, PRIMARY KEY (d, ts))`,
			`INSERT INTO t (d, ts, src) SELECT date '2024-02-28' + g % 3, timestamptz '2024-03-01 12:34:56.789012+02' + g * interval '1 hour 1 microsecond', 'v' || g
			 FROM generate_series(1, 20) g`, false},
		{"infinite times", `CREATE TABLE t (d date, ts timestamp(3), tz timestamptz, src text, ct bytea, iv bytea, PRIMARY KEY (d, ts, tz))`,
			`INSERT INTO t (d, ts, tz, src) SELECT
				CASE g % 3 WHEN 0 THEN date 'infinity' WHEN 1 THEN date '-infinity' ELSE date '0044-03-15 BC' + g END,
				CASE g % 4 WHEN 0 THEN timestamp 'infinity' WHEN 1 THEN '-infinity' ELSE timestamp '2024-01-01 00:00:00.123' + g * interval '1 ms' END,
				CASE g % 5 WHEN 0 THEN timestamptz 'infinity' ELSE timestamptz '1999-12-31 23:59:59.999999+14' + g * interval '1 us' END,
				'v' || g FROM generate_series(1, 20) g`, false},
		{"bytea", `CREATE TABLE t (k bytea PRIMARY KEY, src text, ct bytea, iv bytea)`,
			`INSERT INTO t (k, src) SELECT decode(md5(g::text), 'hex'), 'v' || g FROM generate_series(1, 20) g`, false},
		{"row id", `CREATE TABLE t (src text, ct bytea, iv bytea)`,
			`INSERT INTO t (src) SELECT 'v' || g FROM generate_series(1, 20) g`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, db := openDB(t, tc.create, tc.insert,
				// NULLs stay NULL; empty strings are values.
				`UPDATE t SET src = NULL WHERE src IN ('v2', 'v7')`,
				`UPDATE t SET src = '' WHERE src = 'v3'`)
			ctx := t.Context()
			model := readTable(t, d, db, "t")
			key, keyTypes := model.UsableKey(), []string{}
			for _, k := range key {
				keyTypes = append(keyTypes, model.Column(k).Declared)
			}
			if tc.rowID {
				if err := d.AddRowID(ctx, db, model.Name); err != nil {
					t.Fatal(err)
				}
				key, keyTypes = []string{"colcrypt_row_id"}, []string{""}
			}
			var quoted []string
			for _, k := range key {
				quoted = append(quoted, d.Quote(k))
			}
			// The chunk: every row but the last non-NULL one in key order.
			rows := queryRows(t, db, "SELECT "+strings.Join(quoted, ", ")+", src FROM t ORDER BY "+strings.Join(quoted, ", "))
			skip := len(rows) - 1
			for rows[skip][len(key)] == nil {
				skip--
			}
			var chunk [][]any
			for i, r := range rows {
				if i == skip {
					continue
				}
				out := append([]any{}, r[:len(key)]...)
				if src := r[len(key)]; src == nil {
					out = append(out, nil, nil)
				} else {
					out = append(out, []byte("ct:"+src.(string)), []byte{0, 1, 2})
				}
				chunk = append(chunk, out)
			}
			u := dialect.Update{Table: model.Name, Key: key, KeyTypes: keyTypes, Set: []string{"ct", "iv"}, Rows: chunk}
			bulkUpdate(t, d, db, u)
			// Twice, as a retried chunk does.
			bulkUpdate(t, d, db, u)

			var wrong, untouched int
			if err := db.QueryRowContext(ctx, `SELECT
				count(*) FILTER (WHERE ct IS DISTINCT FROM convert_to('ct:' || src, 'UTF8') OR iv IS DISTINCT FROM CASE WHEN src IS NOT NULL THEN '\x000102'::bytea END),
				count(*) FILTER (WHERE ct IS NULL AND iv IS NULL AND src IS NOT NULL)
				FROM t`).Scan(&wrong, &untouched); err != nil {
				t.Fatal(err)
			}
			// The last row was not in the chunk; no other row may differ.
			if wrong != 1 || untouched != 1 {
				t.Errorf("%d rows differ and %d untouched, want only the row outside the chunk (1, 1)", wrong, untouched)
			}
		})
	}
}

// TestBulkUpdateRestore writes decoded plaintexts back the way revert does:
// values as the codec's Decode gives them, wrapped by its RestoreExpr.
func TestBulkUpdateRestore(t *testing.T) {
	t.Parallel()
	d, db := openDB(t,
		`CREATE TABLE t (id int PRIMARY KEY,
			n numeric(10,2), b bytea, s text, c char(5), v varchar(8) COLLATE "C", ts timestamptz, f float8, u uuid, j jsonb, allnull int,
			n_r numeric(10,2), b_r bytea, s_r text, c_r char(5), v_r varchar(8) COLLATE "C", ts_r timestamptz, f_r float8, u_r uuid, j_r jsonb, allnull_r int)`,
		`INSERT INTO t (id, n, b, s, c, v, ts, f, u, j) VALUES
			(1, 12.50, '\x00ff', 'héllo', 'ab', 'Zz', '2024-01-02 03:04:05.123456+07', 0.1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50]}'),
			(2, NULL, '', '', '', '', NULL, 'NaN', NULL, 'null'),
			(3, -0.01, NULL, NULL, 'abcde', NULL, '-infinity', -1e308, NULL, NULL),
			(4, 99999999.99, '\x', E'tab\tnew\nline', NULL, 'x y ', '1999-12-31 23:59:59.999999+00', NULL, '00000000-0000-0000-0000-000000000000', '[]')`)
	ctx := t.Context()
	model := readTable(t, d, db, "t")
	cols := []string{"n", "b", "s", "c", "v", "ts", "f", "u", "j", "allnull"}
	var exprs, set []string
	var restore []func(string) string
	var codecs []dialect.Codec
	for _, name := range cols {
		codec, err := d.Codec(model.Column(name))
		if err != nil {
			t.Fatal(err)
		}
		codecs = append(codecs, codec)
		exprs = append(exprs, codec.SelectExpr(d.Quote(name)))
		set = append(set, name+"_r")
		restore = append(restore, codec.RestoreExpr)
	}
	var chunk [][]any
	for _, r := range queryRows(t, db, "SELECT id, "+strings.Join(exprs, ", ")+" FROM t ORDER BY id") {
		out := []any{r[0]}
		for i, v := range r[1:] {
			if v == nil {
				out = append(out, nil)
				continue
			}
			p, err := codecs[i].Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) == 0 {
				// A cipher may give back an empty plaintext as nil.
				p = nil
			}
			dv, err := codecs[i].Decode(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, dv)
		}
		chunk = append(chunk, out)
	}
	bulkUpdate(t, d, db, dialect.Update{Table: model.Name, Key: []string{"id"}, KeyTypes: []string{"integer"},
		Set: set, SetExpr: restore, Rows: chunk})
	for _, c := range cols {
		var differ int
		q := fmt.Sprintf(`SELECT count(*) FROM t WHERE %[1]s IS DISTINCT FROM %[1]s_r OR (%[1]s)::text IS DISTINCT FROM (%[1]s_r)::text`, c)
		if err := db.QueryRowContext(ctx, q).Scan(&differ); err != nil {
			t.Fatal(err)
		}
		if differ != 0 {
			t.Errorf("%s: %d rows not restored exactly", c, differ)
		}
	}
	var emptyBytes int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE b_r = ''::bytea`).Scan(&emptyBytes); err != nil {
		t.Fatal(err)
	}
	if emptyBytes != 2 {
		t.Errorf("%d empty bytea values restored, want 2 (empty is not NULL)", emptyBytes)
	}
}

func TestBulkUpdateRejectsBadRows(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, `CREATE TABLE t (id bigint PRIMARY KEY, ct bytea)`)
	tn := schema.TableName{Name: "t"}
	for _, tc := range []struct {
		name string
		rows [][]any
		want string
	}{
		{"short row", [][]any{{int64(1)}}, "row 1 has 1 values"},
		{"NULL key", [][]any{{nil, []byte("x")}}, "NULL"},
		{"mixed types", [][]any{{int64(1), []byte("x")}, {int64(2), "x"}}, "different types"},
	} {
		tx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = d.BulkUpdate(t.Context(), tx, dialect.Update{Table: tn, Key: []string{"id"}, KeyTypes: []string{"bigint"}, Set: []string{"ct"}, Rows: tc.rows})
		tx.Rollback() //nolint:errcheck // only undoes the failed update
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// customersFixture is shaped like the conformance schema's cc_customers
// and cc_orders, without what the planner blocks (identity, generated
// column, trigger and view on planned columns).
var customersFixture = []string{
	`CREATE TABLE cc_customers (
		id integer PRIMARY KEY,
		ssn char(11) NOT NULL CONSTRAINT cc_customers_ssn_key UNIQUE,
		email varchar(64) NULL,
		status varchar(10) NOT NULL DEFAULT 'new'
			CONSTRAINT cc_customers_status_check CHECK (status IN ('new', 'vip')),
		region varchar(8) COLLATE "C" NULL,
		notes text NULL
	)`,
	`CREATE INDEX cc_customers_email_idx ON cc_customers (email)`,
	`CREATE INDEX cc_customers_region_email_idx ON cc_customers (region, email) WHERE notes IS NOT NULL`,
	`CREATE TABLE cc_orders (
		id int PRIMARY KEY,
		customer_id int NOT NULL CONSTRAINT cc_orders_customer_fk REFERENCES cc_customers (id),
		customer_ssn char(11) NULL CONSTRAINT cc_orders_ssn_fk REFERENCES cc_customers (ssn) ON DELETE CASCADE,
		amount numeric(10,2)
	)`,
	`INSERT INTO cc_customers (id, ssn, email, status, region, notes) VALUES
		(1, '123-45-6789', 'ann@example.com', 'vip', 'EU', 'first'),
		(2, '987-65-4321', NULL, 'new', NULL, NULL),
		(3, '555-00-1111', '', 'new', 'ü', ''),
		(4, '1 2', 'zoë@例え.jp', 'vip', 'US', 'x')`,
	`INSERT INTO cc_orders VALUES (10, 1, '123-45-6789', 9.99), (11, 2, NULL, 0), (12, 4, '1 2', 1.00)`,
	`CREATE TABLE cc_customers_orig AS SELECT * FROM cc_customers`,
	`CREATE TABLE cc_orders_orig AS SELECT * FROM cc_orders`,
}

// swapColumns are the planned columns: ssn and customer_ssn deterministic
// (no IV column, keeping the unique constraint and the foreign key), the
// others with IV columns.
var swapColumns = map[string][]dialect.SwapColumn{
	"cc_customers": {
		{Name: "ssn"},
		{Name: "email", IV: "email_iv"},
		{Name: "status", IV: "status_iv"},
		{Name: "region", IV: "region_iv"},
	},
	"cc_orders": {{Name: "customer_ssn"}},
}

// fakeCiphertext stands for a deterministic encryption in SQL, so that
// equal plaintexts give equal "ciphertexts" and the foreign key holds.
func fakeCiphertext(col string) string { return `convert_to('ct:' || (` + col + `)::text, 'UTF8')` }

// prepareSwap does what apply's prepare and copy do before cut-over: add
// and fill the ciphertext and IV columns.
func prepareSwap(t *testing.T, d postgres.Dialect, db *sql.DB) []dialect.TableSwap {
	t.Helper()
	var group []dialect.TableSwap
	for _, name := range []string{"cc_customers", "cc_orders"} {
		model := readTable(t, d, db, name)
		ts := dialect.TableSwap{Table: model, DropChecks: true, DropDefaults: true}
		for _, sc := range swapColumns[name] {
			sc.Temp, sc.TempType = sc.Name+"__colcrypt", "bytea"
			addColumn(t, d, db, model.Name, sc.Temp, "bytea")
			set := d.Quote(sc.Temp) + " = " + fakeCiphertext(d.Quote(sc.Name))
			if sc.IV != "" {
				addColumn(t, d, db, model.Name, sc.IV, "bytea")
				set += ", " + d.Quote(sc.IV) + ` = CASE WHEN ` + d.Quote(sc.Name) + ` IS NOT NULL THEN '\x0102'::bytea END`
			}
			exec(t, db, "UPDATE "+d.QuoteTable(model.Name)+" SET "+set)
			ts.Columns = append(ts.Columns, sc)
		}
		group = append(group, ts)
	}
	return group
}

// prepareUnswap does what revert does before its cut-over: add restore
// columns of the original types and fill them with the plaintexts.
func prepareUnswap(t *testing.T, d postgres.Dialect, db *sql.DB, swapped []dialect.TableSwap) []dialect.TableSwap {
	t.Helper()
	var group []dialect.TableSwap
	for _, ts := range swapped {
		back := dialect.TableSwap{Table: ts.Table, DropChecks: ts.DropChecks, DropDefaults: ts.DropDefaults, KeepPlaintext: ts.KeepPlaintext}
		for _, sc := range ts.Columns {
			col := ts.Table.Column(sc.Name)
			codec, err := d.Codec(col)
			if err != nil {
				t.Fatal(err)
			}
			r := dialect.SwapColumn{Name: sc.Name, Temp: sc.Name + "__colcrypt_plain", TempType: col.Declared, IV: sc.IV}
			addColumn(t, d, db, ts.Table.Name, r.Temp, col.Declared)
			exec(t, db, "UPDATE "+d.QuoteTable(ts.Table.Name)+" SET "+d.Quote(r.Temp)+" = "+
				codec.RestoreExpr(`substr(convert_from(`+d.Quote(sc.Name)+`, 'UTF8'), 4)`))
			back.Columns = append(back.Columns, r)
		}
		group = append(group, back)
	}
	return group
}

func addColumn(t *testing.T, d postgres.Dialect, db *sql.DB, tn schema.TableName, col, typ string) {
	t.Helper()
	if err := d.AddColumn(t.Context(), db, tn, col, typ); err != nil {
		t.Fatal(err)
	}
}

func TestSwapAndUnswap(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, customersFixture...)
	ctx := t.Context()
	tables := []string{"cc_customers", "cc_orders"}
	original := catalogSnapshot(t, db, tables...)

	group := prepareSwap(t, d, db)
	if err := d.Swap(ctx, db, group); err != nil {
		t.Fatal(err)
	}
	swapped := catalogSnapshot(t, db, tables...)
	wantSwapped := map[string]string{
		"column cc_customers.ssn":          "bytea NOT NULL",
		"column cc_customers.email":        "bytea NULL",
		"column cc_customers.email_iv":     "bytea NULL",
		"column cc_customers.status":       "bytea NOT NULL", // default dropped
		"column cc_customers.region":       "bytea NULL",
		"column cc_customers.id":           original["column cc_customers.id"],
		"column cc_customers.notes":        original["column cc_customers.notes"],
		"column cc_orders.customer_ssn":    "bytea NULL",
		"constraint cc_customers_ssn_key":  original["constraint cc_customers_ssn_key"],
		"constraint cc_customers_pkey":     original["constraint cc_customers_pkey"],
		"constraint cc_orders_ssn_fk":      original["constraint cc_orders_ssn_fk"],
		"constraint cc_orders_customer_fk": original["constraint cc_orders_customer_fk"],
		"index cc_customers_email_idx":     original["index cc_customers_email_idx"],
		"index cc_customers_ssn_key":       original["index cc_customers_ssn_key"],
	}
	for k, want := range wantSwapped {
		if got := swapped[k]; got != want || want == "" {
			t.Errorf("after Swap %s = %q, want %q", k, got, want)
		}
	}
	for _, gone := range []string{"constraint cc_customers_status_check", "column cc_customers.ssn__colcrypt",
		"column cc_customers.email__colcrypt", "column cc_orders.customer_ssn__colcrypt"} {
		if v, ok := swapped[gone]; ok {
			t.Errorf("after Swap %s still there: %s", gone, v)
		}
	}
	// Both columns of the two-column partial index were swapped: it is
	// there once, as it was.
	if got, want := swapped["index cc_customers_region_email_idx"], original["index cc_customers_region_email_idx"]; got != want {
		t.Errorf("two-column index = %q, want %q", got, want)
	}
	var ct []byte
	if err := db.QueryRowContext(ctx, `SELECT ssn FROM cc_customers WHERE id = 1`).Scan(&ct); err != nil || string(ct) != "ct:123-45-6789" {
		t.Errorf("ssn of row 1 = %q, %v; want the ciphertext", ct, err)
	}
	// The foreign key on the ciphertexts is enforced.
	if _, err := db.ExecContext(ctx, `INSERT INTO cc_orders (id, customer_id, customer_ssn) VALUES (99, 1, 'ct:nobody')`); err == nil || !strings.Contains(err.Error(), "cc_orders_ssn_fk") {
		t.Errorf("insert breaking the foreign key: err = %v", err)
	}

	// Again: nothing left to do, nothing rebuilt.
	oid := indexOID(t, db, "cc_customers_ssn_key")
	if err := d.Swap(ctx, db, group); err != nil {
		t.Fatalf("second Swap: %v", err)
	}
	if again := catalogSnapshot(t, db, tables...); !maps.Equal(again, swapped) {
		t.Errorf("second Swap changed the catalog:\n%s", diffSnapshots(swapped, again))
	}
	if oid != indexOID(t, db, "cc_customers_ssn_key") {
		t.Error("second Swap rebuilt the unique index")
	}

	back := prepareUnswap(t, d, db, group)
	if err := d.Unswap(ctx, db, back); err != nil {
		t.Fatal(err)
	}
	restored := catalogSnapshot(t, db, tables...)
	// A check comes back from its recorded definition, as pg_dump would
	// restore it, and PostgreSQL prints the re-parsed expression with
	// different (equivalent) casts.
	original["constraint cc_customers_status_check"] = reparsedCheck(t, db, "cc_customers", "cc_customers_status_check")
	if !maps.Equal(restored, original) {
		t.Errorf("after Unswap the catalog differs from the original:\n%s", diffSnapshots(original, restored))
	}
	sameRows(t, db, "cc_customers", "id, ssn, email, status, region, notes")
	sameRows(t, db, "cc_orders", "id, customer_id, customer_ssn, amount")
	if err := d.Unswap(ctx, db, back); err != nil {
		t.Fatalf("second Unswap: %v", err)
	}
	if again := catalogSnapshot(t, db, tables...); !maps.Equal(again, original) {
		t.Errorf("second Unswap changed the catalog:\n%s", diffSnapshots(original, again))
	}
	// The restored check and default work again.
	if _, err := db.ExecContext(ctx, `INSERT INTO cc_customers (id, ssn) VALUES (5, '000-00-0000')`); err != nil {
		t.Errorf("insert using the restored default: %v", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO cc_customers (id, ssn, status) VALUES (6, '000-00-0001', 'bad')`); err == nil {
		t.Error("the restored check constraint lets 'bad' through")
	}
}

// TestSwapFailureChangesNothing breaks one recorded definition: the swap
// fails after it has dropped and renamed columns, and the rollback must
// leave both tables exactly as they were.
func TestSwapFailureChangesNothing(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, customersFixture...)
	ctx := t.Context()
	tables := []string{"cc_customers", "cc_orders"}
	group := prepareSwap(t, d, db)
	before := catalogSnapshot(t, db, tables...)
	data := queryRows(t, db, `SELECT * FROM cc_customers ORDER BY id`)

	ix := indexByName(group[0].Table, "cc_customers_email_idx")
	good := ix.Definition
	ix.Definition = "CREATE INDEX cc_customers_email_idx ON public.no_such_table USING btree (email)"
	err := d.Swap(ctx, db, group)
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("Swap with a broken definition: err = %v", err)
	}
	if after := catalogSnapshot(t, db, tables...); !maps.Equal(after, before) {
		t.Errorf("a failed Swap changed the catalog:\n%s", diffSnapshots(before, after))
	}
	if after := queryRows(t, db, `SELECT * FROM cc_customers ORDER BY id`); fmt.Sprint(after) != fmt.Sprint(data) {
		t.Errorf("a failed Swap changed the rows:\n%v\n%v", data, after)
	}

	// Fixed, it goes through; then a broken Unswap changes nothing either.
	ix.Definition = good
	if err := d.Swap(ctx, db, group); err != nil {
		t.Fatal(err)
	}
	back := prepareUnswap(t, d, db, group)
	swapped := catalogSnapshot(t, db, tables...)
	back[0].Table.Checks[0].Definition = "CHECK (no_such_column > 0)"
	if err := d.Unswap(ctx, db, back); err == nil || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("Unswap with a broken definition: err = %v", err)
	}
	if after := catalogSnapshot(t, db, tables...); !maps.Equal(after, swapped) {
		t.Errorf("a failed Unswap changed the catalog:\n%s", diffSnapshots(swapped, after))
	}
}

// TestSwapKeepPlaintextAndRowID covers plan option plaintext: null and a
// table without a key.
func TestSwapKeepPlaintextAndRowID(t *testing.T) {
	t.Parallel()
	d, db := openDB(t,
		`CREATE TABLE "Log Entries" ("Msg" text NOT NULL DEFAULT 'x', note varchar(20) COLLATE "C", n int)`,
		`CREATE INDEX log_note ON "Log Entries" (note)`,
		`INSERT INTO "Log Entries" VALUES ('a', 'b', 1), ('', NULL, 2), ('c', 'd', 3)`,
		`CREATE TABLE orig AS SELECT * FROM "Log Entries"`)
	ctx := t.Context()
	tn := schema.TableName{Name: "Log Entries"}
	original := catalogSnapshot(t, db, "Log Entries")
	model := readTable(t, d, db, tn.Name)
	if err := d.AddRowID(ctx, db, tn); err != nil {
		t.Fatal(err)
	}
	ts := dialect.TableSwap{Table: model, RowID: "colcrypt_row_id", KeepPlaintext: true, DropDefaults: true}
	for _, name := range []string{"Msg", "note"} {
		sc := dialect.SwapColumn{Name: name, Temp: name + "__colcrypt", TempType: "bytea", IV: name + "_iv", Plaintext: name + "_plaintext"}
		addColumn(t, d, db, tn, sc.Temp, "bytea")
		addColumn(t, d, db, tn, sc.IV, "bytea")
		exec(t, db, `UPDATE "Log Entries" SET `+d.Quote(sc.Temp)+" = "+fakeCiphertext(d.Quote(name))+", "+d.Quote(sc.IV)+` = '\x01'`)
		ts.Columns = append(ts.Columns, sc)
	}
	if err := d.Swap(ctx, db, []dialect.TableSwap{ts}); err != nil {
		t.Fatal(err)
	}
	swapped := catalogSnapshot(t, db, "Log Entries")
	for k, want := range map[string]string{
		`column Log Entries.Msg`:            "bytea NOT NULL",
		`column Log Entries.Msg_plaintext`:  "text NULL",
		`column Log Entries.note`:           "bytea NULL",
		`column Log Entries.note_plaintext`: "character varying(20) NULL COLLATE \"C\"",
		`index log_note`:                    original["index log_note"],
	} {
		if got := swapped[k]; got != want {
			t.Errorf("after Swap %s = %q, want %q", k, got, want)
		}
	}
	if v, ok := swapped["column Log Entries.colcrypt_row_id"]; ok {
		t.Errorf("row-id column still there: %s", v)
	}
	var kept int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "Log Entries" WHERE "Msg_plaintext" IS NOT NULL OR note_plaintext IS NOT NULL`).Scan(&kept); err != nil || kept != 0 {
		t.Errorf("%d rows keep plaintext (%v), want 0", kept, err)
	}

	back := prepareUnswap(t, d, db, []dialect.TableSwap{ts})
	// A revert may add the row-id column again to page through the table;
	// Unswap drops it.
	if err := d.AddRowID(ctx, db, tn); err != nil {
		t.Fatal(err)
	}
	back[0].RowID = "colcrypt_row_id"
	if err := d.Unswap(ctx, db, back); err != nil {
		t.Fatal(err)
	}
	if restored := catalogSnapshot(t, db, "Log Entries"); !maps.Equal(restored, original) {
		t.Errorf("after Unswap:\n%s", diffSnapshots(original, restored))
	}
	// Column order is the one thing PostgreSQL cannot restore in place.
	if got := columnNames(readTable(t, d, db, tn.Name)); !slices.Equal(got, []string{"n", "Msg", "note"}) {
		t.Errorf("columns = %v, want the restored ones last", got)
	}
	sameRows(t, db, `"Log Entries"`, `"Msg", note, n`, "orig")
}

// TestSwapLockTimeout: a cut-over waiting on a lock gives up with SQLSTATE
// 55P03, which the engine's retry helper treats as transient.
func TestSwapLockTimeout(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, customersFixture...)
	group := prepareSwap(t, d, db)
	before := catalogSnapshot(t, db, "cc_customers", "cc_orders")
	holder, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(t.Context(), `SELECT 1 FROM cc_orders LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = d.Swap(t.Context(), db, group)
	holder.Rollback() //nolint:errcheck // read-only; only releases the lock
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "sqlstate 55p03") {
		t.Fatalf("Swap blocked by a reader: err = %v, want a lock timeout (SQLSTATE 55P03)", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("gave up after %v", took)
	}
	if after := catalogSnapshot(t, db, "cc_customers", "cc_orders"); !maps.Equal(after, before) {
		t.Errorf("a timed-out Swap changed the catalog:\n%s", diffSnapshots(before, after))
	}
	if err := d.Swap(t.Context(), db, group); err != nil {
		t.Errorf("Swap once the lock is free: %v", err)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, `CREATE TABLE t (id int PRIMARY KEY, secret text)`,
		`INSERT INTO t SELECT g, 'plain' || g FROM generate_series(1, 1000) g`,
		`ALTER TABLE t DROP COLUMN secret`)
	var before, after int64
	size := `SELECT pg_relation_size('t')`
	if err := db.QueryRowContext(t.Context(), size).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := d.Purge(t.Context(), db, schema.TableName{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(t.Context(), size).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after >= before {
		t.Errorf("table size %d → %d: VACUUM FULL did not rewrite without the dropped column", before, after)
	}
}

// catalogSnapshot describes the tables by name, independent of column
// order: each column's type, nullability, default and collation, each
// constraint's and index's definition.
func catalogSnapshot(t *testing.T, db *sql.DB, tables ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	read := func(q string) { readSnapshot(t, db, out, q, tables) }
	read(`SELECT 'column ' || c.relname || '.' || a.attname,
		format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END ||
		coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') ||
		CASE WHEN a.attcollation NOT IN (0, 100) THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		LEFT JOIN pg_collation co ON co.oid = a.attcollation
		WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped`)
	read(`SELECT 'constraint ' || con.conname, con.contype::text || ' ' || pg_get_constraintdef(con.oid) || ' valid=' || con.convalidated
		FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
		WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace`)
	read(`SELECT 'index ' || i.relname, pg_get_indexdef(i.oid)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
		WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace`)
	return out
}

// reparsedCheck gives the snapshot of a check constraint recreated from
// its own definition on a copy of the table.
func reparsedCheck(t *testing.T, db *sql.DB, table, name string) string {
	t.Helper()
	var def, again string
	if err := db.QueryRowContext(t.Context(), `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conname = $1 AND conrelid = $2::regclass`, name, table).Scan(&def); err != nil {
		t.Fatal(err)
	}
	scratch := "reparse_" + table
	exec(t, db, "CREATE TABLE "+scratch+" (LIKE "+table+")", "ALTER TABLE "+scratch+" ADD CONSTRAINT "+name+" "+def)
	defer exec(t, db, "DROP TABLE "+scratch)
	if err := db.QueryRowContext(t.Context(), `SELECT contype::text || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
		FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass`, name, scratch).Scan(&again); err != nil {
		t.Fatal(err)
	}
	return again
}

func diffSnapshots(want, got map[string]string) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			lines = append(lines, "  missing "+k+": "+want[k])
		} else if g != want[k] {
			lines = append(lines, "  changed "+k+": "+want[k]+" → "+g)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			lines = append(lines, "  extra "+k+": "+got[k])
		}
	}
	return strings.Join(lines, "\n")
}

func indexOID(t *testing.T, db *sql.DB, name string) uint32 {
	t.Helper()
	var oid uint32
	if err := db.QueryRowContext(t.Context(), `SELECT oid FROM pg_class WHERE relname = $1`, name).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	return oid
}

// sameRows checks that table holds exactly the rows of its copy
// <table>_orig (or orig), compared by column name.
func sameRows(t *testing.T, db *sql.DB, table, cols string, orig ...string) {
	t.Helper()
	copyName := table + "_orig"
	if len(orig) > 0 {
		copyName = orig[0]
	}
	var n int
	q := fmt.Sprintf(`SELECT count(*) FROM ((SELECT %[1]s FROM %[2]s EXCEPT ALL SELECT %[1]s FROM %[3]s)
		UNION ALL (SELECT %[1]s FROM %[3]s EXCEPT ALL SELECT %[1]s FROM %[2]s)) d`, cols, table, copyName)
	if err := db.QueryRowContext(t.Context(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n != 0 {
		t.Errorf("%s: %d rows differ from the original", table, n)
	}
}

func queryRows(t *testing.T, db *sql.DB, q string) [][]any {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func bulkUpdate(t *testing.T, d postgres.Dialect, db *sql.DB, u dialect.Update) {
	t.Helper()
	if err := bulkUpdateTx(t.Context(), d, db, u); err != nil {
		t.Fatal(err)
	}
}

func bulkUpdateTx(ctx context.Context, d postgres.Dialect, db *sql.DB, u dialect.Update) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := d.BulkUpdate(ctx, tx, u); err != nil {
		return err
	}
	return tx.Commit()
}

func columnNames(tb *schema.Table) []string {
	var out []string
	for _, c := range tb.Columns {
		out = append(out, c.Name)
	}
	return out
}

// TestSwapPartitionedTable: on a partitioned table every step cascades to
// the partitions, and the recreated index must cover them again.
func TestSwapPartitionedTable(t *testing.T) {
	t.Parallel()
	d, db := openDB(t,
		`CREATE TABLE parts (id int, region text, email varchar(64) NOT NULL, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu')`,
		`CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us')`,
		`CREATE INDEX parts_email_idx ON parts (email)`,
		`INSERT INTO parts SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'u' || g FROM generate_series(1, 100) g`)
	ctx := t.Context()
	tables := []string{"parts", "parts_eu", "parts_us"}
	original := catalogSnapshot(t, db, tables...)
	model := readTable(t, d, db, "parts")
	addColumn(t, d, db, model.Name, "email__colcrypt", "bytea")
	addColumn(t, d, db, model.Name, "email_iv", "bytea")
	exec(t, db, `UPDATE parts SET email__colcrypt = `+fakeCiphertext("email")+`, email_iv = '\x01'`)
	ts := dialect.TableSwap{Table: model, Columns: []dialect.SwapColumn{{Name: "email", Temp: "email__colcrypt", TempType: "bytea", IV: "email_iv"}}}
	if err := d.Swap(ctx, db, []dialect.TableSwap{ts}); err != nil {
		t.Fatal(err)
	}
	swapped := catalogSnapshot(t, db, tables...)
	for _, k := range []string{"index parts_email_idx", "index parts_eu_email_idx", "index parts_us_email_idx"} {
		if swapped[k] != original[k] || original[k] == "" {
			t.Errorf("after Swap %s = %q, want %q", k, swapped[k], original[k])
		}
	}
	if got := swapped["column parts_eu.email"]; got != "bytea NOT NULL" {
		t.Errorf("partition column after Swap = %q", got)
	}
	back := prepareUnswap(t, d, db, []dialect.TableSwap{ts})
	if err := d.Unswap(ctx, db, back); err != nil {
		t.Fatal(err)
	}
	if restored := catalogSnapshot(t, db, tables...); !maps.Equal(restored, original) {
		t.Errorf("after Unswap:\n%s", diffSnapshots(original, restored))
	}
	var valid bool
	if err := db.QueryRowContext(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = 'parts_email_idx'::regclass`).Scan(&valid); err != nil || !valid {
		t.Errorf("parts_email_idx valid = %v, %v", valid, err)
	}
}

// TestSwapForgetsCachedStatements: pgx prepares and caches statements per
// connection; one prepared before a swap must not be reused after it, when
// the column it reads has another type under the same name.
func TestSwapForgetsCachedStatements(t *testing.T) {
	t.Parallel()
	d, db := openDB(t, customersFixture...)
	ctx := t.Context()
	// One connection, so the statements below share its cache.
	db.SetMaxOpenConns(1)
	const q = `SELECT ssn FROM cc_customers WHERE ssn > $1 ORDER BY ssn LIMIT 1`
	var before any
	if err := db.QueryRowContext(ctx, q, "000").Scan(&before); err != nil {
		t.Fatal(err)
	}
	group := prepareSwap(t, d, db)
	if err := d.Swap(ctx, db, group); err != nil {
		t.Fatal(err)
	}
	var after any
	if err := db.QueryRowContext(ctx, q, []byte("ct:")).Scan(&after); err != nil {
		t.Fatalf("the statement prepared before the swap, after it: %v", err)
	}
	if b, ok := after.([]byte); !ok || !strings.HasPrefix(string(b), "ct:") {
		t.Errorf("after the swap ssn reads %T %q, want the ciphertext", after, after)
	}
	back := prepareUnswap(t, d, db, group)
	if err := d.Unswap(ctx, db, back); err != nil {
		t.Fatal(err)
	}
	var again any
	if err := db.QueryRowContext(ctx, q, "000").Scan(&again); err != nil || again != before {
		t.Errorf("after the unswap ssn reads %v, %v; want %v", again, err, before)
	}
}

// readSnapshot adds to out the (key, value) rows of a query.
func readSnapshot(t *testing.T, db *sql.DB, out map[string]string, q string, args ...any) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
