package migrate_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// These tests make a statement fail in the middle of a job — a chunk's
// write, a statement of the cut-over's rebuild — and check what a DBA
// would check afterwards: nothing half-done, the job resumable from where
// it stopped, and after it finishes every value as it was.

// membersSetup creates members with n rows: a unique code that is not
// encrypted (its index is rebuilt at cut-over), and two encrypted columns
// with NULLs and empty strings.
func membersSetup(n int) []string {
	var vals []string
	for i := 1; i <= n; i++ {
		email := fmt.Sprintf("'member%d@example.com'", i)
		if i%9 == 0 {
			email = "NULL"
		}
		notes := fmt.Sprintf("'notes of %d ✓'", i)
		if i%4 == 0 {
			notes = "''"
		}
		vals = append(vals, fmt.Sprintf("(%d, 'C%06d', %s, %s)", i, i, email, notes))
	}
	return []string{
		`CREATE TABLE members (id INTEGER PRIMARY KEY, code TEXT NOT NULL, email TEXT, notes TEXT)`,
		`CREATE UNIQUE INDEX members_code ON members (code)`,
		"INSERT INTO members VALUES " + strings.Join(vals, ", "),
	}
}

func membersPlan(f *fixture) *planner.Plan {
	f.t.Helper()
	return f.plan("plan.yaml", planSpec{tables: []planTable{{name: "members",
		columns: []planColumn{{name: "email"}, {name: "notes", suite: "aes-128-cbc"}}}}})
}

// wantJob checks the job's phase and every column's state, as colcrypt
// status shows them.
func (f *fixture) wantJob(p *planner.Plan, phase string, state int) {
	f.t.Helper()
	rep := f.status(p)
	if rep.Job == nil || rep.Job.Phase != phase {
		f.t.Errorf("status: job %+v, want phase %q", rep.Job, phase)
	}
	f.wantStates(p, state)
}

// copyChunk is a recorded chunk of the copy: ids in (lo, hi], hi < 0 for
// the end of the table.
type copyChunk struct {
	lo, hi int
	rows   int
	doneAt string
}

func (c copyChunk) holds(id int) bool { return id > c.lo && (c.hi < 0 || id <= c.hi) }

// copyChunks reads the recorded chunks of the copy.
func (f *fixture) copyChunks() []copyChunk {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	rows, err := db.Query(`SELECT lo, COALESCE(hi, ''), rows_done, done_at FROM colcrypt_chunks WHERE phase = 'copy'`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []copyChunk
	for rows.Next() {
		var lo, hi string
		c := copyChunk{hi: -1}
		if err := rows.Scan(&lo, &hi, &c.rows, &c.doneAt); err != nil {
			f.t.Fatal(err)
		}
		if lo != "" {
			c.lo = keyID(f.t, lo)
		}
		if hi != "" {
			c.hi = keyID(f.t, hi)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// wantChunksMatchCiphertexts checks that the copy left nothing half-done:
// a row has ciphertexts exactly when it lies in a recorded chunk, every
// chunk's count is right, and no two chunks overlap.
func (f *fixture) wantChunksMatchCiphertexts(chunks []copyChunk, inPlace bool) {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	query := `SELECT id, email IS NOT NULL, email__colcrypt IS NOT NULL, notes IS NOT NULL, notes__colcrypt IS NOT NULL, NULL
		FROM members ORDER BY id`
	if !inPlace {
		query = `SELECT m.id, m.email IS NOT NULL, r.email IS NOT NULL, m.notes IS NOT NULL, r.notes IS NOT NULL, r.id IS NOT NULL
		FROM members m LEFT JOIN members__colcrypt_new r ON r.id = m.id ORDER BY m.id`
	}
	rows, err := db.Query(query)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	counted := make([]int, len(chunks))
	bad := 0
	for rows.Next() {
		var id int
		var email, emailCT, notes, notesCT bool
		var copied sql.NullBool // rebuilt: the row is in the replacement
		if err := rows.Scan(&id, &email, &emailCT, &notes, &notesCT, &copied); err != nil {
			f.t.Fatal(err)
		}
		in := 0
		for i, c := range chunks {
			if c.holds(id) {
				in++
				counted[i]++
			}
		}
		if in > 1 {
			f.t.Errorf("row %d lies in %d recorded chunks", id, in)
		}
		recorded := in > 0
		if copied.Valid && copied.Bool != recorded {
			if bad++; bad <= 5 {
				f.t.Errorf("row %d: in a recorded chunk %v, in the replacement %v", id, recorded, copied.Bool)
			}
		}
		if want := recorded && email; emailCT != want || notesCT != (recorded && notes) {
			if bad++; bad <= 5 {
				f.t.Errorf("row %d: in a recorded chunk %v, email ciphertext %v, notes ciphertext %v: half-done", id, recorded, emailCT, notesCT)
			}
		}
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	for i, c := range chunks {
		if counted[i] != c.rows {
			f.t.Errorf("chunk (%d, %d] records %d rows and holds %d", c.lo, c.hi, c.rows, counted[i])
		}
	}
}

// TestCopyWriteFailsMidway makes one row's write fail in the middle of
// the copy, through a trigger created after the plan was checked that
// refuses to write its ciphertext (into the column added to the table, or
// into the table's replacement). Apply must fail naming the table and the
// cause, keep the chunks it committed (and nothing of the failed ones),
// leave the plaintext alone; once the trigger is gone the next apply must
// go on from there without writing a finished chunk again.
func TestCopyWriteFailsMidway(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(ways[inPlace], func(t *testing.T) { testCopyWriteFailsMidway(t, inPlace) })
	}
}

func testCopyWriteFailsMidway(t *testing.T, inPlace bool) {
	t.Parallel()
	const rows = 1000
	f := newFixture(t, membersSetup(rows)...)
	p := membersPlan(f)
	before := f.snapshot()
	opt := migrate.Options{Workers: 2, BatchRows: 40}
	// write is the event of a row's ciphertext being written.
	write := "INSERT ON members__colcrypt_new"
	if inPlace {
		write = "UPDATE OF email__colcrypt ON members"
	}

	f.apply(p, migrate.Options{Until: "prepare", InPlace: inPlace})
	f.exec(`CREATE TRIGGER refuse_member_500 BEFORE ` + write + ` WHEN NEW.id = 500
		BEGIN SELECT RAISE(ABORT, 'member 500 is on legal hold'); END`)
	beforeData := f.userData()
	_, err := f.engine(p, f.ks, opt).Apply(t.Context())
	if err == nil {
		t.Fatal("apply went through a copy whose write of row 500 fails")
	}
	t.Logf("apply failed as it should: %v", err)
	for _, want := range []string{"members", "member 500 is on legal hold"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	first := f.copyChunks()
	if len(first) == 0 {
		t.Fatal("no chunk of the failed copy was recorded: the test needs chunks committed before the failure")
	}
	for _, c := range first {
		if c.holds(500) {
			t.Fatalf("the chunk (%d, %d] holding the refused row is recorded as done", c.lo, c.hi)
		}
	}
	f.wantChunksMatchCiphertexts(first, inPlace)
	f.wantJob(p, "prepare", migrate.StateEncrypting)
	if d := beforeData.diff(f.userData()); d != "" {
		t.Fatalf("the failed copy changed the plaintext:\n%s", d)
	}

	// Resume, counting every row the resumed copy writes.
	f.exec(`DROP TRIGGER refuse_member_500`,
		`CREATE TABLE rewritten (id INTEGER)`,
		`CREATE TRIGGER count_rewrites AFTER `+write+` BEGIN INSERT INTO rewritten VALUES (NEW.id); END`)
	f.apply(p, migrate.Options{Workers: 2, BatchRows: 40, Until: "copy"})
	db := f.raw()
	rewritten := map[int]int{}
	idRows, err := db.Query(`SELECT id FROM rewritten`)
	if err != nil {
		t.Fatal(err)
	}
	for idRows.Next() {
		var id int
		if err := idRows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		rewritten[id]++
	}
	idRows.Close()
	db.Close()
	f.exec(`DROP TRIGGER count_rewrites`, `DROP TABLE rewritten`)

	doneBefore := 0
	for _, c := range first {
		doneBefore += c.rows
	}
	redone := 0
	for id, n := range rewritten {
		for _, c := range first {
			if c.holds(id) {
				redone++
			}
		}
		if n > 1 {
			t.Errorf("row %d was written %d times by the resumed copy", id, n)
		}
	}
	t.Logf("%d chunks (%d rows) done before the failure; the resumed copy wrote %d rows", len(first), doneBefore, len(rewritten))
	if redone > 0 {
		t.Errorf("the resumed copy wrote %d rows of chunks the failed run had finished", redone)
	}
	if len(rewritten) != rows-doneBefore {
		t.Errorf("the resumed copy wrote %d rows, want the %d the failed run left", len(rewritten), rows-doneBefore)
	}
	after := f.copyChunks()
	recorded := map[int]copyChunk{}
	for _, c := range after {
		recorded[c.lo] = c
	}
	for _, c := range first {
		if got, ok := recorded[c.lo]; !ok || got != c {
			t.Errorf("chunk (%d, %d] done at %s before the failure is now %+v", c.lo, c.hi, c.doneAt, got)
		}
	}
	total := 0
	for _, c := range after {
		total += c.rows
	}
	if total != rows {
		t.Errorf("the chunks record %d rows, the table has %d", total, rows)
	}
	f.wantChunksMatchCiphertexts(after, inPlace)

	f.apply(p, opt)
	f.wantJob(p, "done", migrate.StateEncrypted)
	f.wantEncrypted("members", "email", "notes")
	f.wantVerifiedAndReverted(p, before, -1)
}

// TestCutoverStatementFails makes a statement of the cut-over's rebuild
// of the table fail, through a change made between verify and cut-over.
// The rebuild runs in one transaction: the database must be exactly as
// after verify, the job still at verify and resumable, and once the cause
// is removed apply must finish with every value intact. A table rebuilt
// during the copy is read-only until its cut-over, so the changes that
// need a write to the table are made to one copied in place.
func TestCutoverStatementFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inPlace []bool   // the ways the case applies to
		setup   []string // between verify and cut-over
		want    []string // in the error
		fix     []string
	}{
		{
			// The first statement, renaming the table aside, fails.
			name:    "the rebuild's scratch name is taken",
			inPlace: []bool{true},
			setup:   []string{`CREATE TABLE members__colcrypt_old (x)`},
			want:    []string{"members", "members__colcrypt_old"},
			fix:     []string{`DROP TABLE members__colcrypt_old`},
		},
		{
			// A late statement, after the rows were copied into the
			// rebuilt table and the old one dropped: the recorded unique
			// index no longer holds.
			name:    "recorded unique index violated since",
			inPlace: []bool{true},
			setup: []string{
				`DROP INDEX members_code`,
				`UPDATE members SET code = 'C000001' WHERE id = 2`,
			},
			want: []string{"members", "members_code", "UNIQUE"},
			fix: []string{
				`UPDATE members SET code = 'C000002' WHERE id = 2`,
				`CREATE UNIQUE INDEX members_code ON members (code)`,
			},
		},
		{
			// The planner blocks a view on an encrypted column; one
			// created after it ran would read ciphertext after cut-over.
			name:    "view on the encrypted column",
			inPlace: []bool{false, true},
			setup:   []string{`CREATE VIEW member_emails AS SELECT id, email FROM members`},
			want:    []string{"members", "member_emails"},
			fix:     []string{`DROP VIEW member_emails`},
		},
		{
			// The planner blocks a trigger on an encrypted column; the
			// rebuild recreates only the triggers recorded at prepare.
			name:    "trigger on the encrypted column",
			inPlace: []bool{false, true},
			setup: []string{
				`CREATE TABLE email_changes (id INTEGER, old TEXT)`,
				`CREATE TRIGGER members_email_audit AFTER UPDATE OF email ON members
					BEGIN INSERT INTO email_changes VALUES (OLD.id, OLD.email); END`,
			},
			want: []string{"members", "members_email_audit"},
			fix:  []string{`DROP TRIGGER members_email_audit`, `DROP TABLE email_changes`},
		},
		{
			// The replacement has no such column: the swap would drop it
			// with its values.
			name:    "column added to the table since",
			inPlace: []bool{false},
			setup:   []string{`ALTER TABLE members ADD COLUMN nickname TEXT DEFAULT 'x'`},
			want:    []string{"members", "nickname", "added"},
			fix:     []string{`ALTER TABLE members DROP COLUMN nickname`},
		},
	} {
		for _, inPlace := range tc.inPlace {
			t.Run(tc.name+"/"+ways[inPlace], func(t *testing.T) { testCutoverStatementFails(t, inPlace, tc.setup, tc.want, tc.fix) })
		}
	}
}

func testCutoverStatementFails(t *testing.T, inPlace bool, setup, want, fix []string) {
	t.Parallel()
	f := newFixture(t, membersSetup(300)...)
	p := membersPlan(f)
	before := f.snapshot()
	f.apply(p, migrate.Options{Until: "verify", InPlace: inPlace})
	f.exec(setup...)
	verified := f.snapshot()

	_, err := f.engine(p, f.ks, migrate.Options{}).Apply(t.Context())
	if err == nil {
		after := f.snapshot()
		t.Fatalf("apply went through the cut-over despite the change; the schema is now:\n  %s", strings.Join(after.Schema, "\n  "))
	}
	t.Logf("cut-over failed as it should: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not name %q: %v", w, err)
		}
	}
	if d := verified.diff(f.snapshot()); d != "" {
		t.Fatalf("the failed cut-over changed the database:\n%s", d)
	}
	if !f.beforeCutover("members", "email") {
		t.Error("the failed cut-over lost the copy's ciphertexts")
	}
	f.wantJob(p, "verify", migrate.StateEncrypting)
	if vr := f.verify(p); !vr.OK() {
		t.Fatalf("verify after the failed cut-over: %v", vr.Err())
	}

	f.exec(fix...)
	if res := f.apply(p, migrate.Options{}); res.Phase != "done" {
		t.Errorf("apply after the fix ended at phase %q, want done", res.Phase)
	}
	f.wantJob(p, "done", migrate.StateEncrypted)
	f.wantEncrypted("members", "email", "notes")
	f.wantVerifiedAndReverted(p, before, -1)
}
