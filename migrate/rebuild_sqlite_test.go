package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/sqlite"
	"github.com/colcrypt/colcrypt/migrate"
)

// TestRebuiltTableIsReadOnly: while an offline job builds a table's
// replacement, every write to the table is refused with a message naming
// the plan and what to run, since the swap would lose it; revert and
// cut-over both give the table back writable.
func TestRebuiltTableIsReadOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, membersSetup(200)...)
	p := membersPlan(f)
	before := f.snapshot()
	writes := []string{
		`UPDATE members SET code = 'changed' WHERE id = 7`,
		`INSERT INTO members (id, code, email) VALUES (1000, 'new', 'new@example.com')`,
		`DELETE FROM members WHERE id = 8`,
	}
	wantRefused := func(when string) {
		t.Helper()
		for _, w := range writes {
			err := f.execErr(w)
			if err == nil {
				t.Fatalf("%s: %q went through", when, w)
			}
			for _, want := range []string{"read-only", "members", p.Path, "colcrypt revert"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: the refusal of %q does not say %q: %v", when, w, want, err)
				}
			}
		}
	}
	wantWritable := func(when string) {
		t.Helper()
		if err := f.execErr(`UPDATE members SET code = code WHERE id = 7`); err != nil {
			t.Fatalf("%s: the table is still read-only: %v", when, err)
		}
	}

	f.apply(p, migrate.Options{Until: "prepare"})
	wantRefused("after prepare")
	f.apply(p, migrate.Options{Until: "verify"})
	wantRefused("after verify")
	f.revert(p)
	wantWritable("after revert")
	if d := before.diff(f.snapshot()); d != "" {
		t.Fatalf("revert before cut-over left the database different:\n%s", d)
	}

	f.apply(p, migrate.Options{})
	wantWritable("after cut-over")
	f.wantEncrypted("members", "email", "notes")
	if f.tableExists("members__colcrypt_new") {
		t.Error("the replacement is still there after cut-over")
	}
}

// TestRowBehindTriggersFailsVerify: a row inserted behind the read-only
// triggers' back has no counterpart in the replacement, and the swap would
// lose it: verify names it and apply does not cut over.
func TestRowBehindTriggersFailsVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, membersSetup(200)...)
	p := membersPlan(f)
	f.apply(p, migrate.Options{Until: "copy"})
	f.exec(`DROP TRIGGER colcrypt_readonly_members__insert`,
		`INSERT INTO members (id, code, email) VALUES (1000, 'late', 'late@example.com')`)
	vr := f.verify(p)
	if vr.OK() || !strings.Contains(vr.Err().Error(), "id=1000: the row is missing from the table's replacement") {
		t.Fatalf("verify after a row was inserted behind the triggers: %v, want the row named", vr.Err())
	}
	_, err := f.engine(p, f.ks, migrate.Options{}).Apply(t.Context())
	if !errors.Is(err, migrate.ErrVerify) {
		t.Fatalf("apply: got %v, want a verify failure", err)
	}
	if !f.tableExists("members__colcrypt_new") {
		t.Fatal("apply cut over although verify failed")
	}
}

// TestCutoverRefusesDroppedColumn: a column dropped between verify and the
// cut-over must not come back from the table's replacement, nor (in place,
// where the cut-over rebuilds the table from its recorded definition) be
// refilled with its own name as a string: the cut-over refuses, naming it,
// and changes nothing.
func TestCutoverRefusesDroppedColumn(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(ways[inPlace], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, membersSetup(100)...)
			p := membersPlan(f)
			f.apply(p, migrate.Options{Until: "verify", InPlace: inPlace})
			f.exec(`DROP INDEX members_code`, `ALTER TABLE members DROP COLUMN code`)
			dropped := f.snapshot()
			_, err := f.engine(p, f.ks, migrate.Options{}).Apply(t.Context())
			if err == nil || !strings.Contains(err.Error(), "code") || !strings.Contains(err.Error(), "dropped") {
				t.Fatalf("apply after a column was dropped: %v, want a refusal naming the column", err)
			}
			if d := dropped.diff(f.snapshot()); d != "" {
				t.Fatalf("the refused cut-over changed the database:\n%s", d)
			}
			f.wantJob(p, "verify", migrate.StateEncrypting)
		})
	}
}

// TestNullablePrimaryKey: SQLite lets the primary key of a rowid table hold
// NULL unless declared NOT NULL, and no key range selects a NULL key: such
// a table is paged by rowid, so the row keyed NULL is encrypted like the
// others, and revert gives the table back as it was.
func TestNullablePrimaryKey(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(ways[inPlace], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, `CREATE TABLE tags (k TEXT PRIMARY KEY, secret TEXT)`,
				`INSERT INTO tags VALUES (NULL, 'null-keyed secret'), ('a', 'alpha'), ('b', 'beta'), (NULL, 'second null'), ('c', NULL)`)
			p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "tags", columns: []planColumn{{name: "secret"}}}}})
			before := f.snapshot()
			f.apply(p, migrate.Options{InPlace: inPlace, BatchRows: 2})
			f.wantEncrypted("tags", "secret")
			f.wantVerifiedAndReverted(p, before, 4) // the non-NULL secrets
		})
	}
}

// TestResumeKeepsRecordedKey: a job pages a table by the key recorded
// when it was prepared, even if colcrypt would now choose another. An
// older colcrypt recorded no key and paged a primary key even when it could
// hold NULL (schema.Table.UsableKey now skips such a key): its job resumes
// by that key, since its checkpoints are ranges of it. The test makes one:
// a job paged by k, whose recorded model then says k can hold NULL and
// whose key record is removed.
func TestResumeKeepsRecordedKey(t *testing.T) {
	t.Parallel()
	var rows []string
	for i := range 300 {
		rows = append(rows, fmt.Sprintf("('k%04d', 'secret %d')", 300-i, i))
	}
	f := newFixture(t, `CREATE TABLE tags (k TEXT NOT NULL PRIMARY KEY, secret TEXT)`, "INSERT INTO tags VALUES "+strings.Join(rows, ", "))
	p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "tags", columns: []planColumn{{name: "secret"}}}}})
	before := f.snapshot()
	f.apply(p, migrate.Options{Until: "copy", BatchRows: 50})
	// As a job killed in the middle of its copy: one chunk of rows not
	// recorded, the job still at prepare.
	f.exec(`DELETE FROM colcrypt_ddl WHERE kind = 'key'`,
		`UPDATE colcrypt_ddl SET definition = replace(definition, '"Nullable":false', '"Nullable":true') WHERE kind = 'model'`,
		`DELETE FROM colcrypt_chunks WHERE lo_hash = (SELECT lo_hash FROM colcrypt_chunks WHERE rows_done > 0 ORDER BY lo DESC LIMIT 1)`,
		`UPDATE colcrypt_job SET phase = 'prepare'`)
	f.apply(p, migrate.Options{BatchRows: 50})
	f.wantEncrypted("tags", "secret")
	f.wantVerifiedAndReverted(p, before, 300)
}

// TestRefusesNewerJobRecords: a job whose recorded definitions include a
// kind this colcrypt does not know was prepared by a newer colcrypt, whose
// way of going on this one cannot follow: apply, verify and revert refuse,
// naming the record, and change nothing.
func TestRefusesNewerJobRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t, membersSetup(100)...)
	p := membersPlan(f)
	f.apply(p, migrate.Options{Until: "copy"})
	f.exec(`INSERT INTO colcrypt_ddl (job_id, table_name, seq, kind, name, definition)
		SELECT job_id, table_name, 99, 'some future way', name, '' FROM colcrypt_ddl WHERE kind = 'model'`)
	copied := f.snapshot()
	for what, run := range map[string]func() error{
		"apply":  func() error { _, err := f.engine(p, f.ks, migrate.Options{}).Apply(t.Context()); return err },
		"verify": func() error { _, err := f.engine(p, f.ks, migrate.Options{}).Verify(t.Context()); return err },
		"revert": func() error { _, err := f.engine(p, f.ks, migrate.Options{}).Revert(t.Context()); return err },
	} {
		err := run()
		if err == nil || !strings.Contains(err.Error(), `"some future way"`) || !strings.Contains(err.Error(), "newer colcrypt") {
			t.Errorf("%s of a job with an unknown record: %v, want a refusal naming it", what, err)
		}
	}
	if d := copied.diff(f.snapshot()); d != "" {
		t.Fatalf("the refused commands changed the database:\n%s", d)
	}
}

// TestVerifyNeedsCoveringCheckpoints: verify replays the copy's chunks, so
// checkpoints that no longer cover the whole table (one lost after the copy
// finished) would leave a range unchecked: verify says so, and apply does
// not cut over.
func TestVerifyNeedsCoveringCheckpoints(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(ways[inPlace], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, membersSetup(300)...)
			p := membersPlan(f)
			f.apply(p, migrate.Options{Until: "copy", BatchRows: 50, InPlace: inPlace})
			f.exec(`DELETE FROM colcrypt_chunks WHERE lo_hash = (SELECT lo_hash FROM colcrypt_chunks WHERE rows_done > 0 ORDER BY rows_done DESC, lo LIMIT 1)`)
			vr := f.verify(p)
			if vr.OK() || !strings.Contains(vr.Err().Error(), "do not cover the table") {
				t.Fatalf("verify with a lost checkpoint: %v, want the gap named", vr.Err())
			}
			if _, err := f.engine(p, f.ks, migrate.Options{}).Apply(t.Context()); !errors.Is(err, migrate.ErrVerify) {
				t.Fatalf("apply with a lost checkpoint: %v, want a verify failure", err)
			}
			if !f.beforeCutover("members", "email") {
				t.Fatal("apply cut over although a range was never verified")
			}
		})
	}
}

// swappingDialect is SQLite's, except that the table's first two rows get
// each other's ciphertext of the first planned column in the table's
// replacement: both still decrypt, each to the other row's plaintext.
type swappingDialect struct{ sqlite.Dialect }

func (d swappingDialect) RebuildChunk(ctx context.Context, tx dialect.Querier, ts dialect.TableSwap, u dialect.Update) error {
	if u.Lo == nil && len(u.Rows) >= 2 {
		u.Rows = slices.Clone(u.Rows)
		a, b, k := slices.Clone(u.Rows[0]), slices.Clone(u.Rows[1]), len(u.Key)
		a[k], b[k] = b[k], a[k]
		u.Rows[0], u.Rows[1] = a, b
	}
	return d.Dialect.RebuildChunk(ctx, tx, ts, u)
}

// TestCopyVerifiesWhatItWrites: the copy of a rebuilt table reads back
// what each chunk wrote, in the chunk's transaction, and compares it with
// the plaintext. Ciphertexts written into the wrong rows fail the chunk
// with a verify error naming the rows; nothing of the chunk is committed,
// so the table and the checkpoints are as before, and a correct run
// afterwards encrypts every row.
func TestCopyVerifiesWhatItWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, membersSetup(50)...)
	p := membersPlan(f)
	before, data := f.snapshot(), f.userData()
	_, err := f.engineOn(swappingDialect{}, p, f.ks, migrate.Options{}).Apply(t.Context())
	if !errors.Is(err, migrate.ErrVerify) {
		t.Fatalf("apply writing swapped ciphertexts: %v, want a verify failure", err)
	}
	for _, want := range []string{"members.email at id=1: decrypted value differs", "members.email at id=2: decrypted value differs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("apply writing swapped ciphertexts: %v, want %q", err, want)
		}
	}
	f.wantJob(p, "prepare", migrate.StateEncrypting)
	var first int
	if err := f.raw().QueryRow(`SELECT count(*) FROM colcrypt_chunks WHERE lo = ''`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if first != 0 {
		t.Error("the chunk that failed its check has a checkpoint: it must roll back")
	}
	if d := data.diff(f.userData()); d != "" {
		t.Fatalf("the failed copy changed the table:\n%s", d)
	}
	f.apply(p, migrate.Options{})
	f.wantEncrypted("members", "email", "notes")
	f.wantVerifiedAndReverted(p, before, 50-50/9+50)
}

// reverseCounter is SQLite's dialect, counting the rows the chunks of a
// revert write into the table's replacement.
type reverseCounter struct {
	sqlite.Dialect
	rows *atomic.Int64
}

func (d reverseCounter) RebuildChunk(ctx context.Context, tx dialect.Querier, ts dialect.TableSwap, u dialect.Update) error {
	if ts.Reverse {
		d.rows.Add(int64(len(u.Rows)))
	}
	return d.Dialect.RebuildChunk(ctx, tx, ts, u)
}

// TestRevertRebuildsTheTable: the revert of a table the copy rebuilt
// writes every restored row into a replacement of the recorded CREATE
// TABLE, as the copy did, and its cut-over gives back the schema (the
// CREATE TABLE text included) and the rows exactly. A column added since
// the cut-over, which a replacement would lose, keeps the revert in place;
// and since SQLite's in-place revert too rebuilds the table from its
// recorded definition, its cut-over refuses, naming the column, with
// nothing changed, until the column is dropped.
func TestRevertRebuildsTheTable(t *testing.T) {
	t.Parallel()
	for _, added := range []bool{false, true} {
		t.Run(map[bool]string{false: "as the cut-over left it", true: "a column added since"}[added], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, membersSetup(300)...)
			p := membersPlan(f)
			before, data := f.snapshot(), f.userData()
			f.apply(p, migrate.Options{BatchRows: 50})
			if added {
				f.exec(`ALTER TABLE members ADD COLUMN visits INTEGER`)
			}
			var written atomic.Int64
			revert := func() error {
				_, err := f.engineOn(reverseCounter{rows: &written}, p, f.ks, migrate.Options{BatchRows: 50}).Revert(t.Context())
				return err
			}
			if added {
				err := revert()
				if err == nil || !strings.Contains(err.Error(), "column visits was added to members after its cut-over") {
					t.Fatalf("revert after a column was added: %v; want a refusal naming the column", err)
				}
				if written.Load() != 0 || !f.columnExists("members", "visits") || !f.columnExists("members", "email__colcrypt_plain") {
					t.Errorf("revert after a column was added wrote %d rows into a replacement; want it in place, stopped before its cut-over",
						written.Load())
				}
				f.exec(`ALTER TABLE members DROP COLUMN visits`)
			}
			if err := revert(); err != nil {
				t.Fatalf("revert: %v", err)
			}
			if !added && written.Load() != 300 {
				t.Errorf("the revert wrote %d rows into the table's replacement, want 300", written.Load())
			}
			if d := before.diff(f.snapshot()); d != "" {
				t.Errorf("after apply and revert the database differs:\n%s", d)
			}
			if d := data.diff(f.userData()); d != "" {
				t.Errorf("after apply and revert the rows differ:\n%s", d)
			}
			if f.tableExists("members__colcrypt_new") {
				t.Error("the revert's replacement is still there")
			}
		})
	}
}
