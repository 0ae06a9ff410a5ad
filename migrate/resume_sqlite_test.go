package migrate_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestResumeAfterOutOfOrderChunks recreates what a kill -9 during copy
// leaves when workers commit chunks out of order: chunks before and after
// a missing one are checkpointed, the missing one's rows have no
// ciphertext, and the job's last completed phase is prepare. The resumed
// apply (with a retuned batch size, which the plan fingerprint allows)
// must finish, and verify after cut-over and revert must both pass: no
// chunk's plaintext digest may be counted twice.
func TestResumeAfterOutOfOrderChunks(t *testing.T) {
	f := newFixture(t, customersSetup(1200)...)
	p := customersPlan(f, "plan.yaml", "")
	before := f.snapshot()
	f.apply(p, migrate.Options{Until: "copy", Workers: 1, BatchRows: 50, InPlace: true})

	db := f.raw()
	type chunkRow struct {
		lo, hi string
		rows   int
	}
	rows, err := db.Query(`SELECT lo, COALESCE(hi, ''), rows_done FROM colcrypt_chunks WHERE phase = 'copy'`)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []chunkRow
	for rows.Next() {
		var c chunkRow
		if err := rows.Scan(&c.lo, &c.hi, &c.rows); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	rows.Close()
	if len(chunks) < 4 {
		t.Fatalf("the copy made %d chunks; the test needs at least 4", len(chunks))
	}
	// The gap: a chunk in the middle, not the first (lo "") nor the last (hi "").
	var gap *chunkRow
	for i := range chunks {
		if chunks[i].lo != "" && chunks[i].hi != "" && chunks[i].rows != 50 {
			gap = &chunks[i]
			break
		}
	}
	if gap == nil {
		t.Fatalf("no chunk of a grown size in the middle: %v", chunks)
	}
	lo, hi := keyID(t, gap.lo), keyID(t, gap.hi)
	t.Logf("%d chunks; dropping the checkpoint of (%d, %d], %d rows", len(chunks), lo, hi, gap.rows)
	for _, stmt := range []string{
		`DELETE FROM colcrypt_chunks WHERE phase = 'copy' AND lo = '` + strings.ReplaceAll(gap.lo, "'", "''") + `'`,
		`UPDATE customers SET ssn__colcrypt = NULL, email__colcrypt = NULL, notes__colcrypt = NULL, notes_iv = NULL
			WHERE id > ` + strconv.Itoa(lo) + ` AND id <= ` + strconv.Itoa(hi),
		`UPDATE colcrypt_job SET phase = 'prepare'`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	f.apply(p, migrate.Options{Workers: 2, BatchRows: 7})
	f.wantEncrypted("customers", "ssn", "email", "notes")
	if vr := f.verify(p); !vr.OK() {
		t.Errorf("verify after the resumed apply: %v", vr.Err())
	}
	if _, err := f.engine(p, f.ks, migrate.Options{}).Revert(t.Context()); err != nil {
		t.Fatalf("revert after the resumed apply: %v", err)
	}
	if d := before.diff(f.snapshot()); d != "" {
		t.Fatalf("after apply and revert the database differs:\n%s", d)
	}
}

// keyID decodes a checkpointed integer key such as ["i123"].
func keyID(t *testing.T, enc string) int {
	t.Helper()
	var parts []string
	if err := json.Unmarshal([]byte(enc), &parts); err != nil || len(parts) != 1 || !strings.HasPrefix(parts[0], "i") {
		t.Fatalf("unexpected checkpoint key %q (%v)", enc, err)
	}
	n, err := strconv.Atoi(parts[0][1:])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRevertAfterRowsChangedSinceCutover: after cut-over the table lives
// on. A row deleted since (a customer erased on request) or a value set to
// NULL must not make revert impossible: the restored values can be checked
// against their own ciphertexts instead of the digest of the copy.
func TestRevertAfterRowsChangedSinceCutover(t *testing.T) {
	for _, change := range []string{
		`DELETE FROM customers WHERE id = 10`,
		`UPDATE customers SET email = NULL WHERE id = 11`,
	} {
		t.Run(change, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, customersSetup(200)...)
			p := customersPlan(f, "plan.yaml", "")
			f.apply(p, migrate.Options{})
			f.exec(change)
			if _, err := f.engine(p, f.ks, migrate.Options{}).Revert(t.Context()); err != nil {
				t.Fatalf("revert after %q: %v", change, err)
			}
			f.wantStates(p, migrate.StateUnencrypted)
		})
	}
}
