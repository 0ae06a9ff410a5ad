package migrate_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestRekeyRerunsAChunkWhoseCheckpointWasLost: a rekey stopped midway has
// committed some chunks under key version 2. The checkpoint of one of them
// is then lost (a checkpoint may lag behind the work), so the resumed
// rekey re-runs a chunk whose values are already under v2. It must
// recognize them by their header and decrypt them with v2, not take them
// for v1 values: the rekey finishes, every value is under v2 exactly once,
// verify passes, and revert gives back the original table.
func TestRekeyRerunsAChunkWhoseCheckpointWasLost(t *testing.T) {
	const stopAt = 450 // the row whose update the database refuses
	f := newFixture(t, customersSetup(700)...)
	original := f.snapshot()
	// ssn is AES-CBC with one IV for the column, derived from the key
	// version: a v2 value read as a v1 value decrypts to garbage.
	p := f.plan("plan.yaml", planSpec{job: "  drop_defaults: true\n", tables: []planTable{{name: "customers", columns: []planColumn{
		{name: "ssn", suite: "aes-256-cbc", iv: "column"}, {name: "email"}, {name: "notes", suite: "aes-128-cbc"}}}}})
	f.apply(p, migrate.Options{BatchRows: 100, Workers: 2})
	columns := []string{"ssn", "email", "notes"}
	values := map[string]int{}
	for _, col := range columns {
		for h, n := range f.headers("customers", col) {
			if !strings.HasSuffix(h, "/v1") {
				t.Fatalf("customers.%s holds values under %s after apply, want v1", col, h)
			}
			values[col] += n
		}
	}
	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}

	// One worker, so the chunks before the refused row commit and the
	// chunk holding it does not.
	f.exec(`CREATE TRIGGER stop_rekey BEFORE UPDATE ON customers WHEN NEW.id = ` + strconv.Itoa(stopAt) +
		` BEGIN SELECT RAISE(ABORT, 'not now'); END`)
	opt := migrate.Options{BatchRows: 100, Workers: 1, NoBackupCheck: true}
	if _, err := f.engine(p, f.ks, opt).Rekey(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "not now") {
		t.Fatalf("the rekey went through a row the database refused to change: %v", err)
	}
	f.exec(`DROP TRIGGER stop_rekey`)
	if h := f.headers("customers", "email"); len(h) != 2 {
		t.Fatalf("after the stopped rekey the e-mails are under %v, want both v1 and v2 (half done)", h)
	}
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify in the middle of the rekey: %v", vr.Err())
	}

	// Lose the checkpoint of the first committed chunk, and check its
	// rows are under v2: the resumed rekey meets values it wrote itself.
	db := f.raw()
	var lo, hi string
	var rows int
	if err := db.QueryRow(`SELECT lo, COALESCE(hi, ''), rows_done FROM colcrypt_chunks
		WHERE phase = 'rekey' AND rows_done > 0 ORDER BY rowid LIMIT 1`).Scan(&lo, &hi, &rows); err != nil {
		db.Close()
		t.Fatalf("no committed chunk of the stopped rekey: %v", err)
	}
	if hi == "" {
		db.Close()
		t.Fatalf("the stopped rekey's first chunk (%s, end] runs to the end of the table, past row %d", lo, stopAt)
	}
	from, to := 1, keyID(t, hi)
	if lo != "" {
		from = keyID(t, lo) + 1
	}
	if _, err := db.Exec(`DELETE FROM colcrypt_chunks WHERE phase = 'rekey' AND lo = ?`, lo); err != nil {
		db.Close()
		t.Fatal(err)
	}
	db.Close()
	if to >= stopAt {
		t.Fatalf("the lost chunk [%d, %d] holds row %d, which the stopped rekey did not write", from, to, stopAt)
	}
	for col, want := range map[string]string{"ssn": "aes-256-cbc/v2", "email": "aead-aes-256-cbc-hmac-sha256/v2", "notes": "aes-128-cbc/v2"} {
		if h := f.rangeHeaders(col, from, to); len(h) != 1 || h[want] == 0 {
			t.Fatalf("customers.%s in the lost chunk [%d, %d] is under %v, want only %s", col, from, to, h, want)
		}
	}
	t.Logf("lost the checkpoint of rows [%d, %d] (%d rows)", from, to, rows)

	if _, err := f.engine(p, f.ks, opt).Rekey(context.Background(), nil); err != nil {
		t.Fatalf("rekey after a lost checkpoint: %v", err)
	}
	for _, col := range columns {
		h := f.headers("customers", col)
		n := 0
		for version, count := range h {
			if !strings.HasSuffix(version, "/v2") {
				t.Errorf("customers.%s holds %d values under %s after the resumed rekey", col, count, version)
			}
			n += count
		}
		if n != values[col] {
			t.Errorf("customers.%s holds %d values after the resumed rekey, want %d", col, n, values[col])
		}
	}
	for _, c := range f.status(p).Columns {
		if c.State != migrate.StateEncrypted || c.KeyVersion != 2 {
			t.Errorf("status of %s after the resumed rekey: state %d, key v%d; want state 3 under v2", c.Column, c.State, c.KeyVersion)
		}
	}
	f.wantVerifiedAndReverted(p, original, -1)
}

// rangeHeaders is headers for the rows of customers with id from..to.
func (f *fixture) rangeHeaders(column string, from, to int) map[string]int {
	f.t.Helper()
	return f.headersWhere("customers", column, "id BETWEEN ? AND ?", from, to)
}
