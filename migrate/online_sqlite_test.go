package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/migrate"
)

// sqliteWriterOps: the writer's transactions are BEGIN IMMEDIATE
// (_txlock=immediate), so the check that email is still plaintext and the
// write it guards are atomic against the cut-over, which rebuilds the table
// with email as a BLOB. SQLite would store text in a BLOB column without a
// word, where an application would now write ciphertext. Deletes and other
// writes check too: the application stops at the cut-over, so that the
// verify after it sees exactly the rows the writer left.
var sqliteWriterOps = writerOps{
	begin: func(ctx context.Context, db *sql.DB, _ bool) (*sql.Tx, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return tx, err
		}
		var typ string
		if err := tx.QueryRowContext(ctx, "SELECT type FROM pragma_table_info('"+onlineTable+"') WHERE name = 'email'").Scan(&typ); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
		if !strings.EqualFold(typ, "TEXT") {
			_ = tx.Rollback()
			return nil, errCutover
		}
		return tx, nil
	},
	update:  "UPDATE " + onlineTable + " SET email = ?, notes = ? WHERE id = ?",
	insert:  "INSERT INTO " + onlineTable + " (id, email, notes, score) VALUES (?, ?, ?, 0)",
	remove:  "DELETE FROM " + onlineTable + " WHERE id = ?",
	touch:   "UPDATE " + onlineTable + " SET score = score + 1 WHERE id = ?",
	cutover: func(error) bool { return false },
	pause:   time.Millisecond,
	transient: func(err error) bool {
		return strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy")
	},
}

// TestOnlineApplyLosesNoWrite is the acceptance test of online mode on
// SQLite (see online_writer_test.go).
func TestOnlineApplyLosesNoWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 30,000-row online job against a concurrent writer")
	}
	f := newFixture(t, "CREATE TABLE "+onlineTable+" (id INTEGER PRIMARY KEY, email TEXT, notes TEXT, score INTEGER NOT NULL)",
		fmt.Sprintf(`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %d)
			INSERT INTO `+onlineTable+` SELECT i, 'user' || i || '@example.com', CASE WHEN i %% 10 = 0 THEN NULL ELSE 'note ' || i END, i FROM g`, onlineRows))
	p := f.plan("online.yaml", planSpec{job: "  online: true\n",
		tables: []planTable{{name: onlineTable, columns: []planColumn{{name: "email"}, {name: "notes", suite: "aes-256-cbc"}}}}})

	wdb, err := sql.Open("sqlite", f.dbPath+"?_txlock=immediate&_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer wdb.Close()
	wdb.SetMaxOpenConns(1)

	ctx, cancel := context.WithTimeout(context.Background(), onlineDeadline)
	defer cancel()
	pl := newPhaseLog()
	w := newOnlineWriter(wdb, sqliteWriterOps, pl.phase)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, stop) }()
	// Let the writer start before the job does.
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	res, err := f.engine(p, f.ks, migrate.Options{Workers: 2, BatchRows: onlineBatchRows, Log: slog.New(pl)}).Apply(ctx)
	took := time.Since(start)
	close(stop)
	<-done
	w.report(t, "SQLite", took, pl)
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

	// Nothing of the change capture is left, and the columns are ciphertext.
	f.wantEncrypted(onlineTable, "email", "notes")
	for _, c := range []string{"colcrypt_version", "colcrypt_enc_version"} {
		if f.columnExists(onlineTable, c) {
			t.Errorf("%s is still there after the cut-over", c)
		}
	}
	db := f.raw()
	defer db.Close()
	var triggers int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").Scan(&triggers); err != nil || triggers != 0 {
		t.Errorf("%d triggers left after the cut-over (%v)", triggers, err)
	}

	// Later verifies check every value against the re-baselined digests.
	if vr := f.verify(p); !vr.OK() || vr.Rows != int64(len(w.live)) {
		t.Fatalf("verify after the online cut-over: %+v (want %d rows)", vr, len(w.live))
	}
	f.revert(p)
	w.checkRows(t, db)
}

// TestOnlineRevertBeforeCutover: a job stopped before its cut-over and
// reverted leaves no capture trigger or version column behind, and an
// offline job cannot be resumed online.
func TestOnlineRevertBeforeCutover(t *testing.T) {
	f := newFixture(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)",
		"INSERT INTO t VALUES (1, 'a@x'), (2, NULL), (3, '')")
	before := f.snapshot()
	p := f.plan("p.yaml", planSpec{tables: []planTable{{name: "t", columns: []planColumn{{name: "email"}}}}})

	f.apply(p, migrate.Options{Online: true, Until: "copy"})
	if !f.columnExists("t", "colcrypt_version") {
		t.Fatal("online prepare added no version column")
	}
	// A change now leaves the row stale: verify does not count it as a
	// failure, and a second run carries on online without --online.
	f.exec("UPDATE t SET email = 'b@x' WHERE id = 1", "INSERT INTO t (id, email) VALUES (4, 'new')")
	res := f.apply(p, migrate.Options{Until: "verify"})
	if res.Verify == nil || !res.Verify.OK() || res.Verify.Stale != 2 {
		t.Fatalf("verify with two changed rows: %+v", res.Verify)
	}
	f.revert(p)
	f.exec("UPDATE t SET email = 'a@x' WHERE id = 1", "DELETE FROM t WHERE id = 4")
	if d := before.diff(f.snapshot()); d != "" {
		t.Errorf("after revert before cut-over (and undoing the writes) the database differs:\n%s", d)
	}
	// Applied again without --online, the job starts over offline.
	f.apply(p, migrate.Options{Until: "prepare"})
	if f.columnExists("t", "colcrypt_version") {
		t.Error("a job started over offline after an online one was reverted added the change capture again")
	}
	f.revert(p)

	// Offline job, then --online: refused, nothing changed.
	p2 := f.plan("p2.yaml", planSpec{tables: []planTable{{name: "t", columns: []planColumn{{name: "email", iv: "column"}}}}})
	f.apply(p2, migrate.Options{Until: "copy"})
	_, err := f.engine(p2, f.ks, migrate.Options{Online: true}).Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "prepared offline") {
		t.Fatalf("resuming an offline job online: %v", err)
	}
	var blocked *migrate.BlockedError
	if errors.As(err, &blocked) || f.columnExists("t", "colcrypt_version") {
		t.Errorf("the refusal changed something: %v", err)
	}
	f.revert(p2)
}

// TestOnlineEncryptedKey: rows changed between the verify and the cut-over
// of a table paged by an encrypted key (updates, a changed key, an insert
// and a delete) are re-encrypted under the cut-over's lock, and the
// digests re-recorded after it, which verify adds up for such a table.
func TestOnlineEncryptedKey(t *testing.T) {
	f := newFixture(t, "CREATE TABLE t (ssn TEXT PRIMARY KEY, email TEXT)",
		`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 50)
			INSERT INTO t SELECT printf('%03d-00', i), 'user' || i || '@example.com' FROM g`)
	p := f.plan("p.yaml", planSpec{job: "  online: true\n",
		tables: []planTable{{name: "t", columns: []planColumn{{name: "ssn", iv: "column"}, {name: "email"}}}}})
	f.apply(p, migrate.Options{Until: "verify"})
	f.exec("UPDATE t SET email = 'changed' WHERE ssn = '007-00'",
		"UPDATE t SET email = NULL WHERE ssn = '008-00'",
		"UPDATE t SET ssn = '999-99' WHERE ssn = '009-00'",
		"INSERT INTO t (ssn, email) VALUES ('100-00', '')",
		"DELETE FROM t WHERE ssn = '010-00'")
	res := f.apply(p, migrate.Options{})
	if res.Phase != "done" {
		t.Fatalf("apply ended at %s", res.Phase)
	}
	f.wantEncrypted("t", "ssn", "email")
	if vr := f.verify(p); !vr.OK() || vr.Rows != 50 {
		t.Fatalf("verify after the cut-over: %+v", vr)
	}
	f.revert(p)
	db := f.raw()
	defer db.Close()
	var got string
	if err := db.QueryRow(`SELECT group_concat(ssn || '=' || coalesce(email, 'NULL'), ',') FROM (SELECT * FROM t
		WHERE ssn IN ('007-00', '008-00', '009-00', '999-99', '100-00', '010-00', '011-00') ORDER BY ssn)`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "007-00=changed,008-00=NULL,011-00=user11@example.com,100-00=,999-99=user9@example.com"; got != want {
		t.Errorf("after revert: %s\nwant %s", got, want)
	}
}
