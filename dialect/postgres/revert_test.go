package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestRevertBuildsAReplacement reverts a finished job on a table the job
// rebuilt and on one it encrypted in place, twice: once straight through,
// once interrupted in the middle of its decrypt and run again. Either way
// the catalog and every value come back. The rebuilt table's revert writes
// the restored rows into a new table of the recorded definition, so the
// table ends about the size it had before the job, with its columns in
// their places; the in-place revert writes a new version of every row, and
// the table ends at several times its size, with the restored columns last
// (the known limits this way avoids). While the revert is unfinished, the
// rebuilt table refuses every write and the other one writes to its
// encrypted columns, naming the command that finishes the revert.
func TestRevertBuildsAReplacement(t *testing.T) {
	t.Parallel()
	const rows = 5000
	for _, inPlace := range []bool{false, true} {
		name := map[bool]string{false: "rebuilt", true: "in place"}[inPlace]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newFailureRun(t, rows)
			r.inPlace = inPlace
			catalog := catalogSnapshot(t, r.admin, "accounts")
			before := relationSize(t, r, "accounts")
			order := columnOrder(t, r.admin, "accounts")

			// Straight through, with one worker: two sessions inserting
			// into a table make PostgreSQL extend it by many pages at
			// once, which a small table may leave partly empty.
			if res := r.apply(migrate.Options{Workers: 1}); res.Phase != "done" {
				t.Fatalf("apply ended at phase %q", res.Phase)
			}
			encrypted := relationSize(t, r, "accounts")
			if _, err := r.engine(migrate.Options{Workers: 1}).Revert(t.Context()); err != nil {
				t.Fatalf("revert: %v", err)
			}
			if got := catalogSnapshot(t, r.admin, "accounts"); !maps.Equal(got, catalog) {
				t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, got))
			}
			r.wantPlaintextIntact()
			after := relationSize(t, r, "accounts")
			t.Logf("accounts: %d bytes before the job, %d encrypted, %d after the revert", before, encrypted, after)
			// In place, the encrypted rows' versions and then the restored
			// ones stay in the table's files; a replacement has only the
			// restored rows.
			if grown := float64(after) / float64(before); inPlace && grown < 2 {
				t.Errorf("in place the revert left the table at %.2f times its size before the job; new versions of every row should make it at least twice", grown)
			} else if !inPlace && grown > 1.1 {
				t.Errorf("the rebuilt revert left the table at %.2f times its size before the job, want at most 1.1", grown)
			}
			// A replacement has the recorded columns in their places; in
			// place, the restored columns come last (a known limit).
			if got := columnOrder(t, r.admin, "accounts"); !inPlace && got != order {
				t.Errorf("after the rebuilt revert the columns are %s, want %s", got, order)
			} else if inPlace && got == order {
				t.Errorf("after the in-place revert the columns are in their places (%s): PostgreSQL cannot put them there", got)
			}

			// Interrupted. Each checkpoint of the decrypt lingers, so that
			// the revert is stopped in its middle.
			catalog = catalogSnapshot(t, r.admin, "accounts") // in place, with the columns moved
			if res := r.apply(migrate.Options{}); res.Phase != "done" {
				t.Fatalf("apply again ended at phase %q", res.Phase)
			}
			exec(t, r.admin, `CREATE FUNCTION slow_statement() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					PERFORM pg_sleep(0.05);
					RETURN NULL;
				END
				$$`,
				`CREATE TRIGGER slow_checkpoints AFTER INSERT ON colcrypt_chunks FOR EACH STATEMENT EXECUTE FUNCTION slow_statement()`)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stopped := make(chan error, 1)
			go func() {
				_, err := r.engine(migrate.Options{}).Revert(ctx)
				stopped <- err
			}()
			decrypted := func() int {
				var n int
				if err := r.admin.QueryRowContext(t.Context(), `SELECT count(*) FROM colcrypt_chunks WHERE phase = 'decrypt'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for deadline := time.Now().Add(time.Minute); decrypted() < 2; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the revert recorded fewer than 2 chunks in a minute")
				}
			}
			cancel()
			if err := <-stopped; err == nil {
				t.Fatal("the revert finished before it was stopped")
			}
			if n := decrypted(); n*500 >= rows {
				t.Fatalf("the revert decrypted %d chunks of 500 rows before it stopped: all of them", n)
			}
			r.wantJob("prepare", migrate.StateDecrypting)
			if !inPlace && !tableExists(t, r.admin, "accounts__colcrypt_new") {
				t.Error("the stopped revert has no replacement")
			}
			// The replacement's table is read-only; in place, the
			// encrypted columns are guarded: a value written now would be
			// lost at the revert's cut-over.
			refusal := []string{"accounts is read-only", "decrypts", "colcrypt revert " + r.plan.Path}
			if inPlace {
				refusal = []string{"decrypting accounts in place", "lost", "colcrypt revert " + r.plan.Path}
			}
			_, err := r.admin.ExecContext(t.Context(), `UPDATE accounts SET note = NULL WHERE id = 1`)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
				t.Errorf("a write while the revert is unfinished: %v, want SQLSTATE 25006", err)
			} else {
				for _, want := range refusal {
					if !strings.Contains(pgErr.Message, want) {
						t.Errorf("the refusal %q does not say %q", pgErr.Message, want)
					}
				}
			}
			exec(t, r.admin, `DROP TRIGGER slow_checkpoints ON colcrypt_chunks`)

			r.wantRevertedToOriginal(catalog)
			for _, gone := range []string{"accounts__colcrypt_new", "colcrypt_readonly_accounts"} {
				var left bool
				if err := r.admin.QueryRowContext(t.Context(), `SELECT to_regclass($1) IS NOT NULL OR to_regproc($1) IS NOT NULL`, gone).Scan(&left); err != nil || left {
					t.Errorf("after revert %s is still there (%v)", gone, err)
				}
			}
			if !inPlace {
				// A run that crashed after the swap committed, before the
				// job recorded it, is run again: it finds the replacement
				// gone and the table swapped, and finishes.
				exec(t, r.admin, `UPDATE colcrypt_job SET phase = 'verify'`)
				if res, err := r.engine(migrate.Options{}).Revert(t.Context()); err != nil || res.Phase != "done" {
					t.Fatalf("revert again after a lost record of its cut-over: %+v, %v", res, err)
				}
				if got := catalogSnapshot(t, r.admin, "accounts"); !maps.Equal(got, catalog) {
					t.Errorf("after revert ran again the catalog differs:\n%s", diffSnapshots(catalog, got))
				}
				r.wantPlaintextIntact()
			}
		})
	}
}

// relationSize is the size of the table's main fork, in bytes, once a
// VACUUM has cut off any empty pages at its end.
func relationSize(t *testing.T, r *failureRun, table string) int64 {
	t.Helper()
	exec(t, r.admin, "VACUUM "+table)
	var n int64
	if err := r.admin.QueryRowContext(t.Context(), `SELECT pg_relation_size($1)`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// columnOrder lists the table's columns in their order.
func columnOrder(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var cols string
	if err := db.QueryRowContext(t.Context(), `SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, table).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	return cols
}

// TestRevertRebuildsEveryType runs the round trip of TestEngineRoundTrip's
// people, without the foreign key on ssn that keeps that job in place,
// plus a column with a collation: apply and revert both build the
// table's replacement. The revert's replacement gets every restored value
// through its type's restore expression (numeric, timestamptz, bytea,
// padded char, varchar with a collation, text), and the table must come
// back with every row and every catalog entry as they were, its columns in
// their places.
func TestRevertRebuildsEveryType(t *testing.T) {
	t.Parallel()
	var fixture []string
	for _, stmt := range engineFixture {
		if !strings.Contains(stmt, "visits") {
			fixture = append(fixture, stmt)
		}
	}
	fixture = append(fixture, `ALTER TABLE people ADD COLUMN region varchar(8) COLLATE "C" DEFAULT 'EU'`,
		`UPDATE people SET region = CASE id % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'ü' ELSE 'US ' END`)
	r := newEngineRunPlan(t, enginePlan[:strings.Index(enginePlan, "  - name: visits")]+"      - name: region\n", fixture...)
	catalog := catalogSnapshot(t, r.db, "people")
	rows := rowSnapshot(t, r.db, "people")
	order := columnOrder(t, r.db, "people")

	r.applyUntil(t, "prepare")
	if !tableExists(t, r.db, "people__colcrypt_new") {
		t.Fatal("apply did not build a replacement of people: the test would not reach the revert's")
	}
	r.opt.Until = ""
	if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if res, err := r.eng().Revert(t.Context()); err != nil || res.Phase != "done" {
		t.Fatalf("revert: %+v, %v", res, err)
	}
	var rebuilt bool
	if err := r.db.QueryRowContext(t.Context(), `SELECT EXISTS (SELECT 1 FROM colcrypt_events
		WHERE event = 'prepared table' AND detail LIKE '%restored rows go into a replacement%')`).Scan(&rebuilt); err != nil || !rebuilt {
		t.Errorf("the revert's log does not say it built a replacement (%v)", err)
	}
	// A check comes back from its recorded definition, which PostgreSQL
	// parses again into an equal one it may write differently.
	catalog["constraint people_status_check"] = reparsedCheck(t, r.db, "people", "people_status_check")
	if got := catalogSnapshot(t, r.db, "people"); !maps.Equal(got, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, got))
	}
	if got := rowSnapshot(t, r.db, "people"); !maps.Equal(got, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, got), firstDiff(rows, got))
	}
	if got := columnOrder(t, r.db, "people"); got != order {
		t.Errorf("after revert the columns are %s, want %s", got, order)
	}
}

// TestRevertKeepsAColumnAddedAfterTheCutover: a column added to the
// encrypted table after the cut-over is not in the recorded definition a
// replacement would have, so the revert of that rebuilt table decrypts in
// place instead, says so in the job's log, and the added column keeps its
// values.
func TestRevertKeepsAColumnAddedAfterTheCutover(t *testing.T) {
	t.Parallel()
	r := newFailureRun(t, 2000)
	if res := r.apply(migrate.Options{}); res.Phase != "done" {
		t.Fatalf("apply ended at phase %q", res.Phase)
	}
	exec(t, r.admin, `ALTER TABLE accounts ADD COLUMN tier int DEFAULT 3`, `UPDATE accounts SET tier = id % 7`)
	if _, err := r.engine(migrate.Options{}).Revert(t.Context()); err != nil {
		t.Fatalf("revert: %v", err)
	}
	r.wantPlaintextIntact()
	var wrong int
	if err := r.admin.QueryRowContext(t.Context(), `SELECT count(*) FROM accounts WHERE tier IS DISTINCT FROM id % 7`).Scan(&wrong); err != nil || wrong != 0 {
		t.Errorf("after revert %d rows lost their tier (%v)", wrong, err)
	}
	var note string
	if err := r.admin.QueryRowContext(t.Context(), `SELECT detail FROM colcrypt_events WHERE event = 'revert in place'`).Scan(&note); err != nil {
		t.Errorf("the job's log has no note of the revert in place: %v", err)
	} else if !strings.Contains(note, "column tier was added") {
		t.Errorf("the note %q does not name the added column", note)
	}
}
