package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the test's own connection

	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// pgKillPlan encrypts three columns of a PostgreSQL table offline, so that
// apply and revert each build the table's replacement. Its check and
// default on email go at the cut-over and come back on revert.
const pgKillPlan = `version: 1
database:
  engine: postgres
  dsn: %q
keystore: kill.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 500
  drop_check_constraints: true
  drop_defaults: true
tables:
  - name: people
    columns:
      - name: ssn
        iv: column
      - name: email
      - name: note
        suite: aes-128-cbc
`

// pgKillSetup is a table with what a cut-over must carry over or give
// back: a key other tables refer to, a foreign key of its own, a unique
// key and a check and a default on encrypted columns, an identity column,
// and an index on a column the job does not touch.
func pgKillSetup(rows int) []string {
	return []string{
		`CREATE TABLE team (id int PRIMARY KEY)`,
		`INSERT INTO team SELECT g FROM generate_series(1, 10) g`,
		`CREATE TABLE people (
			id bigint PRIMARY KEY,
			team_id int NOT NULL REFERENCES team (id),
			ssn char(11) NOT NULL CONSTRAINT people_ssn_key UNIQUE,
			email varchar(64) DEFAULT 'nobody@example.com' CONSTRAINT people_email_check CHECK (email LIKE '%@%'),
			note text,
			n int GENERATED ALWAYS AS IDENTITY
		)`,
		`CREATE INDEX people_team_idx ON people (team_id)`,
		fmt.Sprintf(`INSERT INTO people (id, team_id, ssn, email, note)
			SELECT g, 1 + g %% 10, lpad(g::text, 11, '0'),
				CASE WHEN g %% 7 = 0 THEN NULL ELSE 'user' || g || '@example.com' END,
				CASE g %% 5 WHEN 0 THEN '' WHEN 1 THEN NULL ELSE repeat('note ' || g || ' ü ', 1 + g %% 9) END
			FROM generate_series(1, %d) g`, rows),
		`CREATE TABLE visit (id bigint PRIMARY KEY, person_id bigint NOT NULL REFERENCES people (id))`,
		`INSERT INTO visit SELECT g, 1 + (g * 7) % 1000 FROM generate_series(1, 2000) g`,
	}
}

// TestKillApplyRekeyAndRevertOnPostgres kills apply, then a rekey under
// a new key version, then revert of a PostgreSQL job with SIGKILL at
// random moments until each finishes. Apply and revert build a
// replacement of the table, so until a cut-over the table itself must
// hold exactly what it held when the job (or the revert) began; the rekey
// rewrites values in place, so after each of its kills every value must
// still decrypt (verify). After apply every value must decrypt to the
// original, after the rekey every value must be under the new version,
// and after revert the table, what binds to it and every row must be as
// they were.
func TestKillApplyRekeyAndRevertOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a 50,000-row job many times")
	}
	const rows = 50_000
	seed := killSeed(t)
	t.Logf("kill schedule seed %d (replay with %s=%d)", seed, killSeedVariable, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9a11))

	dsn := pgtest.DSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	planPath, r := pgKillJob(t, db, dsn, rows)
	original := pgTableState(t, db)
	originalRows := pgRowsDigest(t, db)
	// Until its cut-over, a job that builds a replacement never writes
	// to the table.
	untouched := func(want string) func(*testing.T) {
		return func(t *testing.T) {
			var building bool
			if err := db.QueryRowContext(t.Context(), `SELECT to_regclass('people__colcrypt_new') IS NOT NULL`).Scan(&building); err != nil {
				t.Fatal(err)
			}
			if building && pgRowsDigest(t, db) != want {
				t.Fatal("the table changed before the cut-over")
			}
		}
	}
	// A rekey rewrites the table in place: after each kill every value
	// must still decrypt, under whichever key version holds it.
	readable := func(t *testing.T) {
		t.Helper()
		if res := r.run("verify", planPath); res.code != 0 {
			t.Fatalf("verify after a killed rekey: exit %d\n%s", res.code, lastLines(res.stderr, 5))
		}
	}
	kills := map[string]int{}
	landed := map[string]int{} // where the kills landed: the job's last event
	longest := map[string]time.Duration{"apply": killMaxDelay, "rekey": killMaxDelay, "revert": killMaxDelay}
	enough := func() bool {
		return kills["apply"] >= minKillsPerJob && kills["rekey"] >= minKillsPerJob && kills["revert"] >= minKillsPerJob
	}
	version := 1 // the newest version of key pii
	for cycle := 1; cycle <= maxCycles && (cycle == 1 || !enough()); cycle++ {
		kills["apply"] += runUntilDone(t, r, rng, pgWhere(db), "apply", planPath, true, longest, landed, untouched(originalRows))
		r.mustRun(0, "verify", planPath)
		checkStatusOf(t, r, planPath, 3, 3)
		var typ string
		if err := db.QueryRowContext(t.Context(), `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = 'people'::regclass AND attname = 'email'`).Scan(&typ); err != nil || typ != "bytea" {
			t.Fatalf("after apply email is of type %q (%v), want the ciphertext's bytea", typ, err)
		}

		version++
		r.mustRun(0, "keys", "add", "kill.keystore", "pii")
		r.mustRun(0, "keys", "backup", "kill.keystore", fmt.Sprintf("kill.keystore.v%d", version))
		kills["rekey"] += runUntilDone(t, r, rng, pgWhere(db), "rekey", planPath, true, longest, landed, readable, "--all")
		r.mustRun(0, "verify", planPath)
		checkAllUnderVersion(t, r, planPath, version)

		kills["revert"] += runUntilDone(t, r, rng, pgWhere(db), "revert", planPath, true, longest, landed, untouched(pgRowsDigest(t, db)))
		if got := pgTableState(t, db); got != original {
			t.Fatalf("cycle %d: after the killed and resumed revert the table differs.\nbefore:\n%s\nafter:\n%s", cycle, original, got)
		}
		if got := pgRowsDigest(t, db); got != originalRows {
			t.Fatalf("cycle %d: after the killed and resumed revert the rows differ", cycle)
		}
		checkStatusOf(t, r, planPath, 3, 1)
		t.Logf("cycle %d: %d kills during apply, %d during rekey, %d during revert so far; table and rows identical to the original",
			cycle, kills["apply"], kills["rekey"], kills["revert"])
	}
	if !enough() {
		t.Errorf("only %d kills during apply, %d during rekey and %d during revert landed in %d cycles, want %d of each",
			kills["apply"], kills["rekey"], kills["revert"], maxCycles, minKillsPerJob)
	}
	t.Logf("the kills landed after: %v", landed)
}

// pgKillJob creates the kill table of rows rows in db (whose DSN is dsn),
// a keystore and the kill plan in a new folder, and returns the plan's
// path and a runner there with the keystore's passphrases.
func pgKillJob(t *testing.T, db *sql.DB, dsn string, rows int) (string, *runner) {
	t.Helper()
	for _, stmt := range pgKillSetup(rows) {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	dir := t.TempDir()
	newKeystore(t, filepath.Join(dir, "kill.keystore"))
	planPath := filepath.Join(dir, "kill.yaml")
	if err := os.WriteFile(planPath, []byte(fmt.Sprintf(pgKillPlan, dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	return planPath, newRunner(t, dir, "COLCRYPT_PASSPHRASE="+passphrase, "COLCRYPT_BACKUP_PASSPHRASE=backup "+passphrase)
}

// pgWhere says how far the job got (its kind, last phase and last event),
// and its last event; the events of the test's own verify runs do not
// count.
func pgWhere(db *sql.DB) func(*testing.T) (string, string) {
	return func(t *testing.T) (string, string) {
		var kind, phase, event sql.NullString
		err := db.QueryRowContext(t.Context(), `SELECT (SELECT kind FROM colcrypt_job), (SELECT phase FROM colcrypt_job),
			(SELECT event FROM colcrypt_events WHERE event <> 'verify' ORDER BY seq DESC LIMIT 1)`).Scan(&kind, &phase, &event)
		if err != nil {
			return "no job recorded yet", "nothing"
		}
		return fmt.Sprintf("%s job, last phase completed %q, last event %q", kind.String, phase.String, event.String), event.String
	}
}

// pgTableState describes people and what binds to it: its columns in
// order (type, NOT NULL, default, identity), its constraints and those of
// other tables on it, and its indexes.
func pgTableState(t *testing.T, db *sql.DB) string {
	t.Helper()
	var parts []string
	for _, q := range []string{
		`SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' ||
			coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attidentity::text, E'\n' ORDER BY a.attnum)
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = 'people'::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
		`SELECT string_agg(conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated, E'\n'
			ORDER BY conrelid::regclass::text, conname)
		FROM pg_constraint WHERE conrelid = 'people'::regclass OR confrelid = 'people'::regclass`,
		`SELECT string_agg(pg_get_indexdef(indexrelid), E'\n' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'people'::regclass`,
	} {
		var s string
		if err := db.QueryRowContext(t.Context(), q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n--\n")
}

// pgRowsDigest is an MD5 of every row of people, in key order.
func pgRowsDigest(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	if err := db.QueryRowContext(t.Context(), `SELECT md5(string_agg(p::text, E'\n' ORDER BY id)) FROM people p`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
