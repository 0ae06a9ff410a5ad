package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestOfflineInPlaceJobGuardsItsWrites: from prepare to cut-over, an
// offline job that encrypts a table in place refuses a new row and a new
// value of an encrypted column, which the cut-over would lose, naming the
// plan and what to run; other columns and deletes stay writable. Revert
// before the cut-over lifts the guard, and so does the cut-over.
func TestOfflineInPlaceJobGuardsItsWrites(t *testing.T) {
	t.Parallel()
	r := newFailureRun(t, 2000)
	r.inPlace = true
	exec(t, r.admin, `ALTER TABLE accounts ADD COLUMN visits int`)
	catalog := catalogSnapshot(t, r.admin, "accounts")
	guarded := []string{
		`INSERT INTO accounts (id, ssn) VALUES (9999, 'late')`,
		`UPDATE accounts SET email = 'changed@example.com' WHERE id = 1`,
		`UPDATE accounts SET visits = 1, note = NULL WHERE id = 2`,
	}
	free := []string{
		`UPDATE accounts SET visits = 1 WHERE id = 3`,
		`DELETE FROM accounts WHERE id = 4`,
		`DELETE FROM accounts_orig WHERE id = 4`,
	}
	wantRefused := func(when string, words ...string) {
		t.Helper()
		for _, w := range guarded {
			_, err := r.admin.ExecContext(t.Context(), w)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
				t.Errorf("%s: %s: %v, want SQLSTATE 25006", when, w, err)
				continue
			}
			// As logical replication or a restore writes, which ordinary
			// triggers let through.
			if err := execAsReplica(t, r.admin, w); !errors.As(err, &pgErr) || pgErr.Code != "25006" {
				t.Errorf("%s: %s as a replica: %v, want SQLSTATE 25006", when, w, err)
			}
			for _, want := range words {
				if !strings.Contains(pgErr.Message, want) {
					t.Errorf("%s: the refusal %q does not say %q", when, pgErr.Message, want)
				}
			}
		}
	}
	guards := func() int {
		var n int
		if err := r.admin.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'colcrypt\_guard\_%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	r.apply(migrate.Options{Until: "copy"})
	wantRefused("after the copy", "accounts", "in place", "lost", "colcrypt apply "+r.plan.Path, "colcrypt revert "+r.plan.Path)
	exec(t, r.admin, free...)
	r.wantPlaintextIntact()
	if _, err := r.engine(migrate.Options{}).Revert(t.Context()); err != nil {
		t.Fatalf("revert before the cut-over: %v", err)
	}
	if n := guards(); n != 0 {
		t.Errorf("after the revert before the cut-over the table has %d guard triggers", n)
	}
	exec(t, r.admin, guarded[2])

	// Once more, to the end.
	exec(t, r.admin, `UPDATE accounts_orig SET note = NULL WHERE id = 2`)
	r.apply(migrate.Options{Until: "verify"})
	wantRefused("after verify", "accounts")
	if res := r.apply(migrate.Options{}); res.Phase != "done" {
		t.Fatalf("apply ended at phase %q", res.Phase)
	}
	if n := guards(); n != 0 {
		t.Errorf("after the cut-over the table has %d guard triggers", n)
	}
	r.wantVerified("after the cut-over")
	exec(t, r.admin, `UPDATE accounts SET note = NULL WHERE id = 5`, `UPDATE accounts_orig SET note = NULL WHERE id = 5`)
	r.wantRevertedToOriginal(catalog)
}
