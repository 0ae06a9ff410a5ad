package migrate_test

import (
	"encoding/json"
	"fmt"
	"sort"
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
// must write the missing chunk's rows and no others: afterwards the copy's
// checkpoints form one chain over the whole table, each chunk starting
// where the one before it ends, so no row is copied (nor its plaintext
// digest counted) twice. Verify after cut-over and revert must both pass.
func TestResumeAfterOutOfOrderChunks(t *testing.T) {
	f := newFixture(t, customersSetup(1200)...)
	p := customersPlan(f, "plan.yaml", "")
	before := f.snapshot()
	f.apply(p, migrate.Options{Until: "copy", Workers: 1, BatchRows: 50, InPlace: true})

	chunks := copyChunks(t, f)
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
	db := f.raw()
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
	kept := map[[2]string]bool{}
	for _, c := range chunks {
		if c != *gap {
			kept[[2]string{c.lo, c.hi}] = true
		}
	}

	f.apply(p, migrate.Options{Workers: 2, BatchRows: 7})
	f.wantEncrypted("customers", "ssn", "email", "notes")
	// The checkpoints after the resumed apply: one chain from the start
	// of the table to its end, and the chunks the resumed run recorded
	// hold the hole's rows and no more.
	after := copyChunks(t, f)
	sort.Slice(after, func(i, j int) bool { return chunkOrder(t, after[i].lo) < chunkOrder(t, after[j].lo) })
	prevHi, total, rewritten, broken := "", 0, 0, false
	for i, c := range after {
		if c.lo != prevHi && !broken {
			t.Errorf("after the resumed apply, copy chunk %d of %d covers (%s, %s] but the chunk before it ends at %q: the chunks overlap or leave a gap\nchunks: %v",
				i+1, len(after), c.lo, c.hi, prevHi, after)
			broken = true
		}
		prevHi, total = c.hi, total+c.rows
		if !kept[[2]string{c.lo, c.hi}] {
			rewritten += c.rows
		}
	}
	if len(after) == 0 || prevHi != "" {
		t.Errorf("after the resumed apply the copy's last chunk ends at %q, not at the end of the table", prevHi)
	}
	if total != 1200 {
		t.Errorf("after the resumed apply the copy's chunks hold %d rows, want the table's 1200", total)
	}
	if rewritten != gap.rows {
		t.Errorf("the resumed apply copied %d rows, want only the %d rows of the lost chunk (%d, %d]", rewritten, gap.rows, lo, hi)
	}
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

// chunkRow is one checkpoint of the copy: its key range (lo, hi] as
// recorded ("" for the start and the end of the table) and its rows.
type chunkRow struct {
	lo, hi string
	rows   int
}

// copyChunks reads the copy's checkpoints.
func copyChunks(t *testing.T, f *fixture) []chunkRow {
	t.Helper()
	db := f.raw()
	defer db.Close()
	rows, err := db.Query(`SELECT lo, COALESCE(hi, ''), rows_done FROM colcrypt_chunks WHERE phase = 'copy'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var chunks []chunkRow
	for rows.Next() {
		var c chunkRow
		if err := rows.Scan(&c.lo, &c.hi, &c.rows); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return chunks
}

// chunkOrder orders chunks by their lower key: the start of the table
// ("") first.
func chunkOrder(t *testing.T, lo string) int {
	t.Helper()
	if lo == "" {
		return -1
	}
	return keyID(t, lo)
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

// TestResumeAfterTheRowAChunkBeginsAtIsGone: a crash lost a chunk while
// the one after it committed, and then the row that later chunk begins at
// was deleted. The walk filling the hole found where to stop by that
// row, ran past it, and wrote and counted the chunks after it a second
// time (the checkpoints held more rows than the table; on a table paged by
// an added row id, verify failed from then on). The chunks recorded from
// that row on are written again instead, once.
func TestResumeAfterTheRowAChunkBeginsAtIsGone(t *testing.T) {
	f := newFixture(t, customersSetup(600)...)
	original := f.snapshot()
	p := customersPlan(f, "plan.yaml", "")
	opt := migrate.Options{BatchRows: 50, Workers: 2, InPlace: true}
	until := opt
	until.Until = "copy"
	f.apply(p, until)
	if f.chunkRows() != 600 {
		t.Fatalf("the copy recorded %d rows, want 600", f.chunkRows())
	}
	db := f.raw()
	var lost, next int
	if err := db.QueryRow(`SELECT rowid, CAST(substr(json_extract(hi, '$[0]'), 2) AS INTEGER) FROM colcrypt_chunks
		WHERE phase = 'copy' AND lo <> '' AND hi <> '' ORDER BY lo_hash LIMIT 1`).Scan(&lost, &next); err != nil {
		t.Fatal(err)
	}
	gone := make([]any, 4)
	if err := db.QueryRow(`SELECT id, ssn, email, notes FROM customers WHERE id = ?`, next).Scan(&gone[0], &gone[1], &gone[2], &gone[3]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f.exec(fmt.Sprintf(`DELETE FROM colcrypt_chunks WHERE rowid = %d`, lost),
		`UPDATE colcrypt_job SET phase = 'prepare'`,
		fmt.Sprintf(`DELETE FROM customers WHERE id = %d`, next))
	f.apply(p, until)
	if rows := f.chunkRows(); rows != 599 {
		t.Fatalf("after the resume the checkpoints hold %d rows, want the table's 599", rows)
	}
	f.apply(p, opt)
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify after the cut-over: %v", vr.Err())
	}
	f.revert(p)
	db = f.raw()
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO customers (id, ssn, email, notes) VALUES (?, ?, ?, ?)`, gone...); err != nil {
		t.Fatal(err)
	}
	if d := original.diff(f.snapshot()); d != "" {
		t.Fatalf("after revert, with the deleted row put back, the table differs:\n%s", d)
	}
}
