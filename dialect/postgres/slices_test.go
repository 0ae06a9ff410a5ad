package postgres_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/schema"
)

// TestPhysicalSlicesCoverEveryRowOnce reads a table with dead row versions,
// moved rows and deleted rows slice by slice, for several slice counts, and
// wants every live row exactly once, and no more slices than asked for.
func TestPhysicalSlicesCoverEveryRowOnce(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("pgx", pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec(t, db,
		`CREATE TABLE "sliced table" (id bigint PRIMARY KEY, pad text)`,
		`CREATE TABLE empty (id bigint PRIMARY KEY)`,
		`INSERT INTO "sliced table" SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g`,
		`UPDATE "sliced table" SET pad = pad || 'y' WHERE id % 3 = 0`,
		`DELETE FROM "sliced table" WHERE id % 7 = 0`)
	var live int
	if err := db.QueryRow(`SELECT count(*) FROM "sliced table"`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	d := postgres.Dialect{}
	for _, n := range []int{1, 3, 10, 1_000_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			conds, err := d.PhysicalSlices(t.Context(), db, schema.TableName{Schema: "public", Name: "sliced table"}, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(conds) == 0 || len(conds) > n {
				t.Fatalf("%d slices for n = %d, want 1 to %d", len(conds), n, n)
			}
			seen := map[int64]int{}
			for _, c := range conds {
				rows, err := db.Query(`SELECT id FROM "sliced table" WHERE ` + c)
				if err != nil {
					t.Fatalf("slice %q: %v", c, err)
				}
				for rows.Next() {
					var id int64
					if err := rows.Scan(&id); err != nil {
						t.Fatal(err)
					}
					seen[id]++
				}
				rows.Close()
			}
			if len(seen) != live {
				t.Errorf("the %d slices read %d distinct rows, the table has %d", len(conds), len(seen), live)
			}
			for id, k := range seen {
				if k != 1 || id%7 == 0 {
					t.Errorf("row %d read %d times (deleted: %t)", id, k, id%7 == 0)
				}
			}
		})
	}
	conds, err := d.PhysicalSlices(t.Context(), db, schema.TableName{Schema: "public", Name: "empty"}, 4)
	if err != nil || len(conds) != 1 {
		t.Fatalf("slices of an empty table: %q, %v; want one", conds, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM empty WHERE ` + conds[0]).Scan(&n); err != nil || n != 0 {
		t.Errorf("the slice of an empty table: %d rows, %v", n, err)
	}
}

// TestVerifyBeforeCutoverNamesChangedRows: verify before the cut-over
// (which reads the table in storage slices on PostgreSQL) finds a
// ciphertext swapped between rows, a plaintext changed after the copy and
// a row inserted after it, and names each. (The job's guard refuses such
// writes; these come past it, as replication would.)
func TestVerifyBeforeCutoverNamesChangedRows(t *testing.T) {
	t.Parallel()
	r := newFailureRun(t, 3000)
	r.inPlace = true // the ciphertext next to its plaintext, which the test swaps between rows
	r.apply(migrate.Options{Until: "copy"})
	r.wantVerified("right after the copy")
	execPastTriggers(t, r.admin,
		`UPDATE accounts SET email__colcrypt = (SELECT email__colcrypt FROM accounts WHERE id = 12) WHERE id = 10`,
		`UPDATE accounts SET note = 'changed after the copy' WHERE id = 2222`,
		`INSERT INTO accounts (id, ssn, email, note) VALUES (5000, '00000005000', 'late@example.com', NULL)`)
	vr, err := r.engine(migrate.Options{}).Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if vr.OK() {
		t.Fatal("verify passed after three rows were changed")
	}
	msg := vr.Err().Error()
	for _, want := range []string{
		"accounts.email at id=10: decrypted value differs from the plaintext",
		"accounts.note at id=2222: decrypted value differs from the plaintext",
		"accounts.ssn at id=5000: plaintext has a value but the ciphertext is NULL",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("verify: %s\nwant it to name %q", msg, want)
		}
	}
	if vr.Rows != 3001 {
		t.Errorf("verify read %d rows, want 3001", vr.Rows)
	}
}
