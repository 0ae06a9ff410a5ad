package migrate_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestJobStateHoldsNoPlaintextKeysPostgres: PostgreSQL pages through a
// table by its key, so when the key is a column the job encrypts, every
// chunk bound is one of its plaintext values. Neither the checkpoints
// (bounds and the hashes that find them), nor verify's message naming a
// row that differs, nor the job's events may hold one; and the sealed
// checkpoints still let a copy resume where it stopped.
func TestJobStateHoldsNoPlaintextKeysPostgres(t *testing.T) {
	t.Parallel()
	var numbers []string
	// Enough rows for 7 chunks however the chunker sizes them: it grows a
	// fast chunk up to 4 × batch_rows (160).
	for i := range 1000 {
		numbers = append(numbers, fmt.Sprintf("4%03d-%04d-%04d-%04d", i, i*7%10000, i*13%10000, i*31%10000))
	}
	d, db, p, ks := postgresJob(t, func(dsn string) string {
		return fmt.Sprintf(`version: 1
database:
  engine: postgres
  dsn: "%s"
keystore: test.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 40
tables:
  - name: cards
    columns:
      - name: number
        iv: column
      - name: holder
`, dsn)
	}, `CREATE TABLE cards (number text PRIMARY KEY, holder text)`,
		`INSERT INTO cards SELECT n, 'holder ' || i FROM unnest($$`+"{"+strings.Join(numbers, ",")+"}"+`$$::text[]) WITH ORDINALITY AS u(n, i)`)
	leaks := func(when, text string) {
		t.Helper()
		var leaked []string
		for _, n := range numbers {
			// The number, and the unkeyed hash an earlier version found
			// checkpoints by: SHA-256 of the encoded bound.
			h := sha256.Sum256([]byte(`["s` + n + `"]`))
			if strings.Contains(text, n) || strings.Contains(text, hex.EncodeToString(h[:16])) {
				leaked = append(leaked, n)
			}
		}
		if len(leaked) > 0 {
			t.Errorf("%s: %d of %d card numbers can be read (e.g. %s)", when, len(leaked), len(numbers), leaked[0])
		}
	}
	state := func() string {
		t.Helper()
		var out strings.Builder
		for _, table := range []string{"colcrypt_chunks", "colcrypt_events", "colcrypt_job", "colcrypt_columns"} {
			var s sql.NullString
			if err := db.QueryRowContext(t.Context(), "SELECT string_agg(t::text, E'\\n') FROM "+table+" t").Scan(&s); err != nil {
				t.Fatal(err)
			}
			out.WriteString(s.String)
		}
		return out.String()
	}
	exec := func(stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := db.ExecContext(t.Context(), s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	chunkCount := func() (n int) {
		t.Helper()
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(until string) *migrate.Result {
		t.Helper()
		e, err := migrate.New(p, d, db, ks, migrate.Options{Until: until})
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.Apply(t.Context())
		if err != nil {
			t.Fatalf("apply --until %q: %v", until, err)
		}
		return res
	}

	run("copy")
	chunks := chunkCount()
	t.Logf("the copy recorded %d chunks", chunks)
	if chunks < 7 {
		t.Fatalf("the copy recorded %d chunks, want at least 7 (1000 rows, at most 160 a chunk)", chunks)
	}
	leaks("after the copy, colcrypt's tables", state())
	// A lost checkpoint: the next apply writes that chunk again, and only it.
	exec(`DELETE FROM colcrypt_chunks WHERE ctid = (SELECT ctid FROM colcrypt_chunks WHERE phase = 'copy' ORDER BY done_at, lo_hash OFFSET 3 LIMIT 1)`,
		`UPDATE colcrypt_job SET phase = 'prepare'`)
	run("copy")
	// The hole is filled by chunks of the resumed run's size, which may be
	// smaller than the lost one: the rows recorded, not the chunks, must
	// come out the same.
	var recorded int
	if err := db.QueryRowContext(t.Context(), `SELECT coalesce(sum(rows_done), 0) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if n := chunkCount(); n < chunks || recorded != len(numbers) {
		t.Fatalf("after a lost checkpoint the copy recorded %d chunks of %d rows, want at least %d chunks of %d rows", n, recorded, chunks, len(numbers))
	}

	// Verify names a row that differs without its number.
	var ct string
	if err := db.QueryRowContext(t.Context(), `SELECT column_name FROM information_schema.columns
		WHERE table_name = 'cards' AND column_name LIKE 'holder_%' AND data_type = 'bytea'`).Scan(&ct); err != nil {
		t.Fatalf("the ciphertext column of holder: %v", err)
	}
	flip := fmt.Sprintf(`UPDATE cards SET %q = set_byte(%[1]q, 20, get_byte(%[1]q, 20) # 255) WHERE number = '%s'`, ct, numbers[5])
	exec(flip)
	e, err := migrate.New(p, d, db, ks, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vr, err := e.Verify(t.Context())
	if err == nil {
		err = vr.Err()
	}
	if !errors.Is(err, migrate.ErrVerify) || !strings.Contains(err.Error(), "cards.holder at number=(withheld: an encrypted column; keyed hash ") {
		t.Fatalf("verify of a changed value: %v, want a failure naming the row by a keyed hash", err)
	}
	t.Logf("verify: %v", err)
	leaks("verify's message", err.Error())
	leaks("the job's events", state())
	exec(flip)

	if res := run(""); res.Phase != "done" {
		t.Fatalf("apply ended at phase %q", res.Phase)
	}
	leaks("after cut-over, colcrypt's tables", state())
	e, err = migrate.New(p, d, db, ks, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if vr, err := e.Verify(t.Context()); err != nil || !vr.OK() {
		t.Fatalf("verify after cut-over: %v %v", err, vr.Err())
	}
	// A row deleted since: verify, which reads the table by its encrypted
	// key, cannot name it, and says why.
	exec(`DELETE FROM cards WHERE ctid = (SELECT min(ctid) FROM cards)`)
	vr, err = e.Verify(t.Context())
	if err == nil {
		err = vr.Err()
	}
	if !errors.Is(err, migrate.ErrVerify) || !strings.Contains(err.Error(), "its rows cannot be paired with the copy's records") {
		t.Fatalf("verify after a row was deleted: %v, want the totals named as differing, and why no row is named", err)
	}
	leaks("verify's message after cut-over", err.Error())
	if _, err := e.Revert(t.Context()); err != nil {
		t.Fatalf("revert: %v", err)
	}
	var back int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM cards WHERE number = ANY($1) AND holder LIKE 'holder %'`,
		"{"+strings.Join(numbers, ",")+"}").Scan(&back); err != nil || back != len(numbers)-1 {
		t.Fatalf("after revert %d of the %d rows left are back as they were (%v)", back, len(numbers)-1, err)
	}
}
