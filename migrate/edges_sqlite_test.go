package migrate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/sqlite"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/migrate"
)

// TestAutoincrementSequenceSurvives: the rebuild at cut-over and revert
// must keep sqlite_sequence, or ids of deleted rows are handed out again,
// also when the plan spells the table name in another case.
func TestAutoincrementSequenceSurvives(t *testing.T) {
	for _, name := range []string{"accounts", "Accounts"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t,
				`CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL)`,
				`INSERT INTO accounts (owner) VALUES ('a'), ('b'), ('c'), ('d'), ('e'), ('f')`,
				`DELETE FROM accounts WHERE id > 3`,
			)
			p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: name, columns: []planColumn{{name: "owner"}}}}})
			before := f.snapshot()
			nextID := func(when string) {
				t.Helper()
				db := f.raw()
				defer db.Close()
				var id int64
				if err := db.QueryRow(`INSERT INTO accounts (owner) VALUES (x'00') RETURNING id`).Scan(&id); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(`DELETE FROM accounts WHERE id = ?`, id); err != nil {
					t.Fatal(err)
				}
				if id <= 6 {
					t.Errorf("%s: a new row got id %d, reusing the id of a deleted row (the sequence was at 6)", when, id)
				}
			}
			f.apply(p, migrate.Options{})
			nextID("after cut-over")
			if vr := f.verify(p); !vr.OK() {
				t.Fatalf("verify: %v", vr.Err())
			}
			f.revert(p)
			// The probe rows above moved the sequence on; compare the rest.
			after := f.snapshot()
			delete(before.Rows, "sqlite_sequence")
			delete(after.Rows, "sqlite_sequence")
			if d := before.diff(after); d != "" {
				t.Fatalf("after apply and revert the database differs:\n%s", d)
			}
			nextID("after revert")
		})
	}
}

// TestPlaintextNull: with plaintext: null the plaintext column is kept
// under <column>_plaintext and emptied, and revert gives the table back
// exactly.
func TestPlaintextNull(t *testing.T) {
	f := newFixture(t, customersSetup(60)...)
	p := f.plan("plan.yaml", planSpec{job: "  drop_defaults: true\n  plaintext: \"null\"\n", tables: []planTable{{name: "customers",
		columns: []planColumn{{name: "ssn", iv: "column"}, {name: "email"}}}}})
	before := f.snapshot()
	f.apply(p, migrate.Options{})
	f.wantEncrypted("customers", "ssn", "email")
	db := f.raw()
	var kept int
	err := db.QueryRow(`SELECT count(*) FROM customers WHERE ssn_plaintext IS NOT NULL OR email_plaintext IS NOT NULL`).Scan(&kept)
	db.Close()
	if err != nil {
		t.Fatalf("plaintext: null should keep ssn_plaintext and email_plaintext: %v", err)
	}
	if kept != 0 {
		t.Errorf("%d rows still hold plaintext in the kept columns", kept)
	}
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify: %v", vr.Err())
	}
	f.revert(p)
	if d := before.diff(f.snapshot()); d != "" {
		t.Fatalf("after apply and revert the database differs:\n%s", d)
	}
}

// TestApplyRevertApply: a plan can be applied again after a full revert,
// and verify after a revert says there is nothing to verify (exit 2).
func TestApplyRevertApply(t *testing.T) {
	f := newFixture(t, customersSetup(80)...)
	p := customersPlan(f, "plan.yaml", "")
	before := f.snapshot()
	for round := 1; round <= 2; round++ {
		f.apply(p, migrate.Options{})
		f.wantEncrypted("customers", "ssn", "email", "notes")
		if vr := f.verify(p); !vr.OK() {
			t.Fatalf("round %d: verify: %v", round, vr.Err())
		}
		f.revert(p)
		if d := before.diff(f.snapshot()); d != "" {
			t.Fatalf("round %d: after apply and revert the database differs:\n%s", round, d)
		}
		_, err := f.engine(p, f.ks, migrate.Options{}).Verify(context.Background())
		if err == nil || exitcode.Of(err) != exitcode.BadInput {
			t.Errorf("round %d: verify after revert: got %v (exit %d), want a nothing-to-verify error (exit 2)", round, err, exitcode.Of(err))
		}
	}
	// Reverting what is already reverted is nothing to do.
	res, err := f.engine(p, f.ks, migrate.Options{}).Revert(context.Background())
	if err != nil || !res.Already {
		t.Errorf("second revert: %+v, %v; want already done", res, err)
	}
}

// TestMoreBlockers: objects that would see ciphertext block the plan, and
// a blocked apply creates nothing at all, not even colcrypt's tables.
func TestMoreBlockers(t *testing.T) {
	cases := []struct {
		name  string
		setup []string
		want  string
	}{
		{"view", []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)`,
			`CREATE VIEW t_domains AS SELECT substr(email, instr(email, '@') + 1) AS domain FROM t`}, "t_domains"},
		{"generated column", []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT,
			domain TEXT GENERATED ALWAYS AS (substr(email, instr(email, '@') + 1)) VIRTUAL)`}, "domain"},
		{"unique with iv: field", []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE)`}, "field-level IVs cannot keep a unique constraint"},
		{"foreign key to a table outside the plan", []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE)`,
			`CREATE TABLE other (id INTEGER PRIMARY KEY, email TEXT REFERENCES t (email))`}, "other.email"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			setup := append(c.setup, `INSERT INTO t (id, email) VALUES (1, 'a@example.com'), (2, NULL)`)
			f := newFixture(t, setup...)
			iv := "field"
			if strings.HasPrefix(c.name, "foreign key") {
				iv = "column"
			}
			p := f.plan("plan.yaml", planSpec{iv: iv, tables: []planTable{{name: "t", columns: []planColumn{{name: "email"}}}}})
			before := f.snapshot()
			_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
			var blocked *migrate.BlockedError
			if !errors.As(err, &blocked) || exitcode.Of(err) != exitcode.Failed {
				t.Fatalf("apply: got %v (exit %d), want a BlockedError (exit 1)", err, exitcode.Of(err))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("blocker %q does not name %q", err, c.want)
			}
			if d := before.diff(f.snapshot()); d != "" {
				t.Fatalf("a blocked apply changed the database:\n%s", d)
			}
			db := f.raw()
			defer db.Close()
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name LIKE 'colcrypt%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("a blocked apply created %d colcrypt objects", n)
			}
		})
	}
}

// TestEventLogConflictDoesNotFailTheJob: the event log is shared by every
// colcrypt process on the database (a verify or status in another
// terminal, a second apply), and each appends with the next seq. When
// another process takes the seq this one read (seen for real in
// e2e.TestConcurrentApplies: "append event verify done: UNIQUE constraint
// failed: colcrypt_events.job_id, colcrypt_events.seq"), the phase whose
// work is done and checkpointed must not fail. A trigger stands in for the
// other process, deterministically, once.
func TestEventLogConflictDoesNotFailTheJob(t *testing.T) {
	f := newFixture(t, customersSetup(60)...)
	p := customersPlan(f, "plan.yaml", "")
	f.apply(p, migrate.Options{Until: "prepare"})
	f.exec(`CREATE TRIGGER other_process BEFORE INSERT ON colcrypt_events
		WHEN NEW.event = 'copy done' AND NOT EXISTS (SELECT 1 FROM colcrypt_events WHERE event = 'verify (another process)')
		BEGIN
			INSERT INTO colcrypt_events (job_id, seq, at, event, detail) VALUES (NEW.job_id, NEW.seq, NEW.at, 'verify (another process)', '');
		END`)
	res, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
	if err != nil {
		t.Fatalf("apply failed because another process wrote the event log at the same moment: %v", err)
	}
	if res.Phase != "done" {
		t.Errorf("apply ended at phase %q", res.Phase)
	}
}

// TestMissingTableNamesThePlanLine: SPEC §6, unknown tables are errors
// with file:line:column, as unknown columns already are, and exit 2.
func TestMissingTableNamesThePlanLine(t *testing.T) {
	f := newFixture(t, customersSetup(5)...)
	p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "clients", columns: []planColumn{{name: "email"}}}}})
	_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
	if err == nil || exitcode.Of(err) != exitcode.BadInput {
		t.Fatalf("apply with a missing table: got %v (exit %d), want exit 2", err, exitcode.Of(err))
	}
	if !strings.Contains(err.Error(), "plan.yaml:12:11") {
		t.Errorf("the error does not locate the table in the plan (plan.yaml:12:11): %v", err)
	}
	p = f.plan("plan2.yaml", planSpec{tables: []planTable{{name: "customers", columns: []planColumn{{name: "no_such"}}}}})
	_, err = f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "plan2.yaml:14:15") {
		t.Errorf("apply with a missing column: got %v, want it located at plan2.yaml:14:15", err)
	}
}

// TestVerifyAfterAnInterruptedCutover: a cut-over that swapped a table and
// stopped before it recorded the swap (killed between the two) leaves a
// table that reads neither as before it nor as after it. Verify says to
// finish the job with apply, instead of failing on the columns the swap
// replaced; apply then finishes it.
func TestVerifyAfterAnInterruptedCutover(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)`,
		`INSERT INTO people VALUES (1, 'a@example.com'), (2, NULL), (3, 'c@example.com'), (4, 'd@example.com')`,
	)
	p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "people", columns: []planColumn{{name: "email"}}}}})
	f.apply(p, migrate.Options{Until: "verify"})
	// What the swap does, committed, without the record that follows it.
	f.exec(`DROP TABLE people`, `ALTER TABLE "people__colcrypt_new" RENAME TO people`)
	_, err := f.engine(p, f.ks, migrate.Options{}).Verify(context.Background())
	if err == nil || exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "interrupted after it swapped the columns") ||
		!strings.Contains(err.Error(), "colcrypt apply") {
		t.Fatalf("verify after an interrupted cut-over: %v (exit %d), want exit 2 saying to finish it with apply", err, exitcode.Of(err))
	}
	f.apply(p, migrate.Options{})
	f.wantStates(p, migrate.StateEncrypted)
	if vr := f.verify(p); !vr.OK() || vr.Values != 3 {
		t.Fatalf("verify once apply finished the cut-over: %+v %v", vr, vr.Err())
	}
}

// TestVerifyOfAColumnWithoutRecordedState: a planned column the job's
// records do not name once its copy is done (records edited by hand, or a
// plan that names it differently) is bad input that says how to see the
// job's state; verify used to dereference the missing record and panic.
func TestVerifyOfAColumnWithoutRecordedState(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, phone TEXT)`,
		`INSERT INTO people VALUES (1, 'a@example.com', '555-0101'), (2, NULL, '555-0102')`,
	)
	p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "people", columns: []planColumn{{name: "email"}, {name: "phone"}}}}})
	f.apply(p, migrate.Options{Until: "verify"})
	f.exec(`DELETE FROM colcrypt_columns WHERE table_name = 'people' AND column_name = 'phone'`)
	_, err := f.engine(p, f.ks, migrate.Options{}).Verify(context.Background())
	if err == nil || exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "people.phone has no recorded state") ||
		!strings.Contains(err.Error(), "colcrypt status") {
		t.Fatalf("verify with people.phone's record gone: %v (exit %d), want exit 2 naming the column and status", err, exitcode.Of(err))
	}
}

// TestColumnIVsAreLinkedOnlyByForeignKeys: with iv: column, the columns of
// a foreign key (and of a chain of them) share one IV, so the key can be
// rebuilt on the ciphertexts; a column under the same key that no foreign
// key links to them has an IV of its own, so the same SSN does not show as
// the same ciphertext in both (it did: the IV came from the key alone).
func TestColumnIVsAreLinkedOnlyByForeignKeys(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE patients (ssn TEXT PRIMARY KEY, name TEXT)`,
		`CREATE TABLE visits (id INTEGER PRIMARY KEY, ssn TEXT REFERENCES patients (ssn))`,
		`CREATE TABLE bills (id INTEGER PRIMARY KEY, visit_ssn TEXT REFERENCES visits (ssn))`,
		`CREATE UNIQUE INDEX visits_ssn ON visits (ssn)`,
		`CREATE TABLE staff (id INTEGER PRIMARY KEY, badge TEXT)`,
		`INSERT INTO patients VALUES ('123-45-6789', 'Ann')`,
		`INSERT INTO visits VALUES (1, '123-45-6789')`,
		`INSERT INTO bills VALUES (1, '123-45-6789')`,
		`INSERT INTO staff VALUES (1, '123-45-6789')`,
	)
	column := func(name string) planColumn { return planColumn{name: name, iv: "column"} }
	p := f.plan("plan.yaml", planSpec{suite: "aes-256-cbc", tables: []planTable{
		{name: "patients", columns: []planColumn{column("ssn")}},
		{name: "visits", columns: []planColumn{column("ssn")}},
		{name: "bills", columns: []planColumn{column("visit_ssn")}},
		{name: "staff", columns: []planColumn{column("badge")}},
	}})
	f.apply(p, migrate.Options{})
	db := f.raw()
	defer db.Close()
	var linked, patient, staff string
	if err := db.QueryRow(`SELECT hex(p.ssn), hex(s.badge), (SELECT count(DISTINCT hex(x)) FROM
		(SELECT ssn AS x FROM patients UNION ALL SELECT ssn FROM visits UNION ALL SELECT visit_ssn FROM bills))
		FROM patients p, staff s`).Scan(&patient, &staff, &linked); err != nil {
		t.Fatal(err)
	}
	if linked != "1" {
		t.Errorf("the SSN along the chain of foreign keys has %s different ciphertexts, want 1", linked)
	}
	if patient == staff {
		t.Errorf("patients.ssn and staff.badge, under one key and linked by no foreign key, both hold %s for the same SSN", patient)
	}
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify: %v", vr.Err())
	}
}

// TestColumnIVGroupsBranchAndLoop: the IV group of a column follows every
// foreign key it takes part in, not just the first: one column referencing
// two tables, and two tables referencing each other, each get one IV, and
// the cut-over rebuilds their keys. (Following one key from each column
// gave p2.id an IV of its own, and the cut-over refused every time.)
func TestColumnIVGroupsBranchAndLoop(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE p1 (id TEXT PRIMARY KEY)`,
		`CREATE TABLE p2 (id TEXT PRIMARY KEY)`,
		`CREATE TABLE c (n INTEGER PRIMARY KEY, ref TEXT REFERENCES p1 (id), FOREIGN KEY (ref) REFERENCES p2 (id))`,
		`CREATE TABLE a (x TEXT PRIMARY KEY REFERENCES b (y) DEFERRABLE INITIALLY DEFERRED)`,
		`CREATE TABLE b (y TEXT PRIMARY KEY REFERENCES a (x) DEFERRABLE INITIALLY DEFERRED)`,
		`INSERT INTO p1 VALUES ('k1'), ('k2')`,
		`INSERT INTO p2 VALUES ('k1'), ('k2')`,
		`INSERT INTO c VALUES (1, 'k1'), (2, 'k2')`,
		`BEGIN; INSERT INTO a VALUES ('v1'); INSERT INTO b VALUES ('v1'); COMMIT`,
	)
	column := func(name string) planColumn { return planColumn{name: name, iv: "column"} }
	p := f.plan("plan.yaml", planSpec{suite: "aes-256-cbc", tables: []planTable{
		{name: "p1", columns: []planColumn{column("id")}},
		{name: "p2", columns: []planColumn{column("id")}},
		{name: "c", columns: []planColumn{column("ref")}},
		{name: "a", columns: []planColumn{column("x")}},
		{name: "b", columns: []planColumn{column("y")}},
	}})
	f.apply(p, migrate.Options{})
	db := f.raw()
	defer db.Close()
	for what, q := range map[string]string{
		"p1.id, p2.id and c.ref": `SELECT count(DISTINCT hex(v)) FROM (SELECT id AS v FROM p1 WHERE rowid = 1 UNION ALL
			SELECT id FROM p2 WHERE rowid = 1 UNION ALL SELECT ref FROM c WHERE n = 1)`,
		"a.x and b.y": `SELECT count(DISTINCT hex(v)) FROM (SELECT x AS v FROM a UNION ALL SELECT y FROM b)`,
	} {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s hold the same value as %d different ciphertexts, want 1", what, n)
		}
	}
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify: %v", vr.Err())
	}
}

// TestVerifyBetweenCutoverGroups: a cut-over that finished one group and
// stopped on the next (here: a column added to the second table since the
// copy) leaves the job in phase verify with the first table cut over.
// Verify checks that one as after its cut-over and the other as before
// its own, instead of refusing as if a swap had been interrupted.
func TestVerifyBetweenCutoverGroups(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE t1 (id INTEGER PRIMARY KEY, s TEXT)`,
		`CREATE TABLE t2 (id INTEGER PRIMARY KEY, s TEXT)`,
		`INSERT INTO t1 VALUES (1, 'a'), (2, 'b'), (3, NULL)`,
		`INSERT INTO t2 VALUES (1, 'c'), (2, 'd')`,
	)
	p := f.plan("plan.yaml", planSpec{tables: []planTable{
		{name: "t1", columns: []planColumn{{name: "s"}}},
		{name: "t2", columns: []planColumn{{name: "s"}}},
	}})
	f.apply(p, migrate.Options{Until: "verify"})
	f.exec(`ALTER TABLE t2 ADD COLUMN nick TEXT`)
	if _, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background()); err == nil {
		t.Fatal("apply cut over t2 although a column was added to it since the copy; the test needs it refused")
	}
	states := map[string]int{}
	for _, c := range f.status(p).Columns {
		states[c.Table] = c.State
	}
	if states["t1"] != migrate.StateEncrypted || states["t2"] == migrate.StateEncrypted {
		t.Fatalf("states after the refused cut-over of t2: %v; the test needs t1 cut over and t2 not", states)
	}
	vr := f.verify(p)
	if !vr.OK() || vr.Values != 4 || vr.Rows != 5 {
		t.Fatalf("verify between the two groups: %+v %v, want 4 values in 5 rows", vr, vr.Err())
	}
}

// failingRevert is SQLite's dialect, except that a revert's chunks fail.
type failingRevert struct{ sqlite.Dialect }

func (d failingRevert) RebuildChunk(ctx context.Context, tx dialect.Querier, ts dialect.TableSwap, u dialect.Update) error {
	if ts.Reverse {
		return errors.New("disk full")
	}
	return d.Dialect.RebuildChunk(ctx, tx, ts, u)
}

// TestVerifyDuringAStoppedRevert: verify of a plan whose revert stopped
// midway says to finish the revert; it said the job "was reverted (phase
// prepare)", as if it were done.
func TestVerifyDuringAStoppedRevert(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)`,
		`INSERT INTO people VALUES (1, 'a@example.com'), (2, NULL), (3, 'c@example.com')`,
	)
	p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "people", columns: []planColumn{{name: "email"}}}}})
	f.apply(p, migrate.Options{})
	if _, err := f.engineOn(failingRevert{}, p, f.ks, migrate.Options{}).Revert(context.Background()); err == nil {
		t.Fatal("the revert whose chunks fail succeeded")
	}
	_, err := f.engine(p, f.ks, migrate.Options{}).Verify(context.Background())
	want := "the revert of plan " + p.Path + " was stopped before it finished; finish it with colcrypt revert " + p.Path
	if exitcode.Of(err) != exitcode.BadInput || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("verify during a stopped revert: %v (exit %d), want exit 2 saying %q", err, exitcode.Of(err), want)
	}
	f.revert(p)
	_, err = f.engine(p, f.ks, migrate.Options{}).Verify(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nothing to verify: the job of plan "+p.Path+" was reverted") {
		t.Fatalf("verify after the revert: %v, want nothing to verify", err)
	}
}
