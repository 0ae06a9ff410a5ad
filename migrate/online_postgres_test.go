package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/postgres" // registers the postgres engine
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// postgresWriterOps: the plaintext values are cast to text, so once the
// cut-over has turned email and notes into bytea the statement fails its
// type check ("is of type bytea"). PostgreSQL checks it after locking the
// table, so the write either happens before the cut-over (which waits for
// it) or is refused after it. Deletes and other writes, which no type
// check stops, lock the table first and then look at email's type: the
// application stops at the cut-over, so that the verify after it sees
// exactly the rows the writer left.
var postgresWriterOps = writerOps{
	begin: func(ctx context.Context, db *sql.DB, plaintext bool) (*sql.Tx, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil || plaintext {
			return tx, err
		}
		var typ string
		if _, err = tx.ExecContext(ctx, "LOCK TABLE "+onlineTable+" IN ROW EXCLUSIVE MODE"); err == nil {
			err = tx.QueryRowContext(ctx, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '"+
				onlineTable+"'::regclass AND attname = 'email'").Scan(&typ)
		}
		if err != nil {
			_ = tx.Rollback()
			return nil, err
		}
		if typ == "bytea" {
			_ = tx.Rollback()
			return nil, errCutover
		}
		return tx, nil
	},
	update: "UPDATE " + onlineTable + " SET email = $1::text, notes = $2::text WHERE id = $3",
	insert: "INSERT INTO " + onlineTable + " (id, email, notes, score) VALUES ($1, $2::text, $3::text, 0)",
	remove: "DELETE FROM " + onlineTable + " WHERE id = $1",
	touch:  "UPDATE " + onlineTable + " SET score = score + 1 WHERE id = $1",
	cutover: func(err error) bool {
		return strings.Contains(err.Error(), "is of type bytea but expression is of type text")
	},
	transient: func(err error) bool {
		s := err.Error()
		return strings.Contains(s, "40P01") || strings.Contains(s, "40001")
	},
}

const onlinePostgresPlan = `version: 1
database:
  engine: postgres
  dsn: "%s"
keystore: test.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 500
tables:
  - name: ` + onlineTable + `
    columns:
      - name: email
      - name: notes
        suite: aes-256-cbc
`

// TestOnlineApplyLosesNoWritePostgres is the acceptance test of online
// mode on PostgreSQL (see online_writer_test.go), run with --online.
func TestOnlineApplyLosesNoWritePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 30,000-row online job against a concurrent writer")
	}
	dsn := pgtest.DSN(t)
	d, err := dialect.Get("postgres")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), onlineDeadline)
	defer cancel()
	db, err := d.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		"CREATE TABLE " + onlineTable + " (id bigint PRIMARY KEY, email varchar(80), notes text, score bigint NOT NULL)",
		fmt.Sprintf(`INSERT INTO `+onlineTable+` SELECT g, 'user' || g || '@example.com', CASE WHEN g %% 10 = 0 THEN NULL ELSE 'note ' || g END, g
			FROM generate_series(1, %d) g`, onlineRows),
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	ks := newKeystore(t, filepath.Join(dir, "test.keystore"), true)
	planPath := filepath.Join(dir, "online.yaml")
	if err := os.WriteFile(planPath, []byte(fmt.Sprintf(onlinePostgresPlan, dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := planner.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}

	wdb, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer wdb.Close()
	wdb.SetMaxOpenConns(1)
	pl := newPhaseLog()
	w := newOnlineWriter(wdb, postgresWriterOps, pl.phase)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, stop) }()
	time.Sleep(50 * time.Millisecond)

	e, err := migrate.New(p, d, db, ks, migrate.Options{Online: true, Workers: 2, BatchRows: onlineBatchRows, Log: slog.New(pl)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := e.Apply(ctx)
	took := time.Since(start)
	close(stop)
	<-done
	w.report(t, "PostgreSQL", took, pl)
	if err != nil {
		t.Fatalf("online apply: %v", err)
	}
	if w.err != nil {
		t.Fatalf("the writer failed: %v", w.err)
	}
	if res.Verify == nil || !res.Verify.OK() {
		t.Fatalf("apply's verify: %+v", res.Verify)
	}
	t.Logf("verify before cut-over: %d rows, %d values, %d stale rows left to the cut-over", res.Verify.Rows, res.Verify.Values, res.Verify.Stale)
	if w.updates+w.inserts < 50 || w.perPhase["copy"] == 0 || w.perPhase["verify"] == 0 {
		t.Errorf("the writer did not overlap the job: %d updates, %d inserts, per phase %v", w.updates, w.inserts, w.perPhase)
	}

	var leftovers string
	if err := db.QueryRowContext(ctx, `SELECT coalesce(string_agg(x, ', '), '') FROM (
		SELECT attname::text AS x FROM pg_attribute WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped AND attname LIKE 'colcrypt%'
		UNION ALL SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'people'::regclass
		UNION ALL SELECT proname::text FROM pg_proc WHERE proname LIKE 'colcrypt%') s`).Scan(&leftovers); err != nil || leftovers != "" {
		t.Errorf("change capture left after the cut-over: %q (%v)", leftovers, err)
	}
	var types string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attname) FROM pg_attribute
		WHERE attrelid = 'people'::regclass AND attname IN ('email', 'notes')`).Scan(&types); err != nil || types != "bytea,bytea" {
		t.Errorf("after apply email and notes are %q (%v), want bytea", types, err)
	}

	again := func() *migrate.Engine {
		e, err := migrate.New(p, d, db, ks, migrate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	vr, err := again().Verify(ctx)
	if err != nil || !vr.OK() || vr.Rows != int64(len(w.live)) {
		t.Fatalf("verify after the online cut-over: %+v, %v (want %d rows)", vr, err, len(w.live))
	}
	if _, err := again().Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	w.checkRows(t, db)
}

// TestOnlineKeylessPostgres: a table without a key (paged by the added row
// id, which the cut-over drops) changed between the verify and the
// cut-over: the changes are re-encrypted under the lock, the whole table's
// digest is recorded again after it, and the change capture is gone.
func TestOnlineKeylessPostgres(t *testing.T) {
	ctx := t.Context()
	d, db, p, ks := postgresJob(t, func(dsn string) string {
		return strings.NewReplacer("name: "+onlineTable, `name: "log book"`, "- name: email\n      - name: notes\n        suite: aes-256-cbc\n", "- name: e-mail\n").
			Replace(fmt.Sprintf(onlinePostgresPlan, dsn))
	},
		`CREATE TABLE "log book" (at int, "e-mail" text)`,
		`INSERT INTO "log book" SELECT g, 'user' || g FROM generate_series(1, 700) g`)
	engine := func(opt migrate.Options) *migrate.Engine {
		e, err := migrate.New(p, d, db, ks, opt)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if _, err := engine(migrate.Options{Online: true, Until: "verify", BatchRows: 100}).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`UPDATE "log book" SET "e-mail" = 'changed' WHERE at = 7`,
		`UPDATE "log book" SET "e-mail" = NULL WHERE at = 8`,
		`INSERT INTO "log book" VALUES (701, '')`,
		`DELETE FROM "log book" WHERE at = 9`,
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := engine(migrate.Options{BatchRows: 100}).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	var cols string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = '"log book"'::regclass AND attnum > 0 AND NOT attisdropped`).Scan(&cols); err != nil || cols != "at,e-mail" {
		t.Errorf("columns after the cut-over: %q (%v)", cols, err)
	}
	if vr, err := engine(migrate.Options{}).Verify(ctx); err != nil || !vr.OK() || vr.Rows != 700 {
		t.Fatalf("verify after the cut-over: %+v, %v", vr, err)
	}
	if _, err := engine(migrate.Options{}).Revert(ctx); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(at || '=' || coalesce("e-mail", 'NULL'), ',' ORDER BY at) FROM "log book"
		WHERE at IN (6, 7, 8, 9, 701)`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "6=user6,7=changed,8=NULL,701="; got != want {
		t.Errorf("after revert: %s, want %s", got, want)
	}
}

// postgresJob opens a new PostgreSQL database through the dialect, runs
// ddl in it, and writes and loads the plan plan(dsn) beside a new keystore.
func postgresJob(t *testing.T, plan func(dsn string) string, ddl ...string) (dialect.Dialect, *sql.DB, *planner.Plan, *keystore.Keystore) {
	t.Helper()
	dsn := pgtest.DSN(t)
	d, err := dialect.Get("postgres")
	if err != nil {
		t.Fatal(err)
	}
	db, err := d.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, s := range ddl {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	dir := t.TempDir()
	ks := newKeystore(t, filepath.Join(dir, "test.keystore"), true)
	planPath := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(planPath, []byte(plan(dsn)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := planner.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	return d, db, p, ks
}

// TestStrayWriteAfterOnlineCutoverPostgres: once an online cut-over
// commits, the application writes again, and may write what is not
// colcrypt's ciphertext into an encrypted column (here a text literal,
// which PostgreSQL takes as bytea). The job is done all the same: the
// digests recorded after the cut-over count that value as verify does, the
// columns are encrypted (state 3), and verify names the row instead of
// failing on a column the cut-over dropped. Before, apply failed on it
// every time it was run again, and verify and revert each sent the user
// to the other.
func TestStrayWriteAfterOnlineCutoverPostgres(t *testing.T) {
	// The rebaseline must not reach the last row before the writer's
	// first write after the cut-over lands: with 4000 rows it did once in
	// a CI run, with the machine loaded by other packages' tests (the
	// writer had not yet sent its next statement when the cut-over
	// committed). 20000 rows give it five times the time.
	const rows = 20000
	ctx := t.Context()
	var dsn string
	d, db, p, ks := postgresJob(t, func(s string) string {
		dsn = s
		return strings.Replace(fmt.Sprintf(onlinePostgresPlan, dsn), "      - name: notes\n        suite: aes-256-cbc\n", "", 1)
	},
		"CREATE TABLE "+onlineTable+" (id bigint PRIMARY KEY, email text)",
		fmt.Sprintf("INSERT INTO "+onlineTable+" SELECT g, 'user' || g || '@example.com' FROM generate_series(1, %d) g", rows))
	// The writer changes the last row, which the digests' pass after the
	// cut-over reads last; its write waiting on the cut-over's lock lands
	// as soon as that commits.
	wdb, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer wdb.Close()
	stop, done := make(chan struct{}), make(chan struct{})
	var writes int
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := wdb.ExecContext(ctx, fmt.Sprintf("UPDATE "+onlineTable+" SET email = 'app@example.com' WHERE id = %d", rows)); err == nil {
				writes++
			}
		}
	}()
	e, err := migrate.New(p, d, db, ks, migrate.Options{Online: true, Workers: 2, BatchRows: 200})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Apply(ctx)
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("apply with a stray write after the cut-over: %v", err)
	}
	engine := func() *migrate.Engine {
		e, err := migrate.New(p, d, db, ks, migrate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	rep, err := engine().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Columns {
		if c.State != migrate.StateEncrypted {
			t.Errorf("status of %s.%s after apply: state %d, want 3", c.Table, c.Column, c.State)
		}
	}
	vr, err := engine().Verify(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	want := fmt.Sprintf("id=%d", rows)
	if vr.OK() || vr.Undecryptable != 1 || len(vr.Mismatches) != 1 || !strings.Contains(vr.Mismatches[0].Row, want) {
		t.Fatalf("verify after %d writes: %+v, want the one value at %s that does not decrypt", writes, vr, want)
	}
	var note string
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(detail), '') FROM colcrypt_events WHERE event = 'values that do not decrypt after the cut-over'").
		Scan(&note); err != nil || !strings.Contains(note, "1 values of "+onlineTable) || !strings.Contains(note, want) {
		t.Errorf("the job's events say %q (%v), want the value at %s", note, err, want)
	}
}
