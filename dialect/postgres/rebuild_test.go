package postgres_test

import (
	"bytes"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/schema"
)

// boundFixture is a table with what binds to it besides its columns: a
// serial key, an identity column, a generated column, a check, a unique
// key, a partial expression index, foreign keys to another table, to
// itself and from another table, grants, comments and a storage
// parameter. An offline job builds its replacement and swaps it in; every
// one of these must come through the swap as an in-place job leaves it.
var boundFixture = []string{
	`CREATE TABLE parent (id int PRIMARY KEY)`,
	`INSERT INTO parent SELECT generate_series(1, 10)`,
	`CREATE TABLE acct (
		id bigserial PRIMARY KEY,
		n int GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 5),
		parent_id int CONSTRAINT acct_parent_fk REFERENCES parent (id) ON DELETE CASCADE,
		email varchar(64) NOT NULL,
		code text CONSTRAINT acct_code_key UNIQUE,
		total numeric(10,2) DEFAULT 0 CONSTRAINT acct_total_check CHECK (total >= 0),
		doubled numeric GENERATED ALWAYS AS (total * 2) STORED,
		prev bigint CONSTRAINT acct_prev_fk REFERENCES acct (id)
	) WITH (fillfactor = 80)`,
	`CREATE INDEX acct_code_lower_idx ON acct (lower(code)) WHERE code IS NOT NULL`,
	`CREATE TABLE child (id int PRIMARY KEY, acct_id bigint CONSTRAINT child_acct_fk REFERENCES acct (id))`,
	// Left NOT VALID by its owner: the cut-over must not validate it.
	`ALTER TABLE child ADD CONSTRAINT child_acct_loose_fk FOREIGN KEY (acct_id) REFERENCES acct (id) NOT VALID`,
	`COMMENT ON TABLE acct IS 'customer accounts'`,
	`COMMENT ON COLUMN acct.code IS 'the code'`,
	`COMMENT ON COLUMN acct.email IS 'contact address'`,
	`COMMENT ON INDEX acct_code_lower_idx IS 'lookup by code'`,
	`COMMENT ON CONSTRAINT acct_parent_fk ON acct IS 'the owning parent'`,
	`COMMENT ON CONSTRAINT acct_total_check ON acct IS 'no negative totals'`,
	`COMMENT ON CONSTRAINT acct_code_key ON acct IS 'codes are unique'`,
	`COMMENT ON INDEX acct_pkey IS 'the key''s index'`,
	`ALTER TABLE acct ALTER COLUMN code SET STATISTICS 500`,
	`ALTER TABLE acct ALTER COLUMN code SET (n_distinct = -0.5)`,
	`ALTER TABLE acct ALTER COLUMN code SET COMPRESSION pglz`,
	`ALTER TABLE acct CLUSTER ON acct_code_key`,
	`COMMENT ON CONSTRAINT child_acct_fk ON child IS 'the child''s account'`,
	`GRANT SELECT, INSERT ON acct TO PUBLIC`,
	`INSERT INTO acct (parent_id, email, code, total)
		SELECT g % 10 + 1, 'u' || g || '@example.com', CASE WHEN g % 3 = 0 THEN NULL ELSE 'c' || g END, g
		FROM generate_series(1, 3000) g`,
	`UPDATE acct SET prev = id - 1 WHERE id > 1`,
	`INSERT INTO child SELECT g, g * 7 FROM generate_series(1, 100) g`,
}

const boundPlan = `  - name: acct
    columns:
      - name: email
`

// boundSnapshot adds to catalogSnapshot what it does not read: owner,
// grants, comments, storage parameters, sequences and foreign keys from
// other tables.
func boundSnapshot(t *testing.T, db *sql.DB, table string) map[string]string {
	t.Helper()
	out := catalogSnapshot(t, db, table)
	readSnapshot(t, db, out, `
SELECT 'owner', relowner::regrole::text FROM pg_class WHERE oid = $1::regclass
UNION ALL SELECT 'grants', coalesce(relacl::text, '') FROM pg_class WHERE oid = $1::regclass
UNION ALL SELECT 'comment', coalesce(obj_description($1::regclass, 'pg_class'), '')
UNION ALL SELECT 'options', coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = $1::regclass
UNION ALL SELECT 'column ' || attname || ' comment', coalesce(col_description(attrelid, attnum), '')
	FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
UNION ALL SELECT 'column ' || attname || ' statistics/options/compression',
	attstattarget::text || '/' || coalesce(array_to_string(attoptions, ','), '') || '/' || attcompression::text
	FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
UNION ALL SELECT 'index ' || indexrelid::regclass::text || ' clustered', indisclustered::text
	FROM pg_index WHERE indrelid = $1::regclass
UNION ALL SELECT 'column ' || attname || ' identity/generated', attidentity::text || '/' || attgenerated::text
	FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
UNION ALL SELECT 'column ' || attname || ' sequence', coalesce(pg_get_serial_sequence($1::text, attname), '')
	FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
UNION ALL SELECT 'foreign key ' || conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) || ' valid=' || convalidated
	FROM pg_constraint WHERE confrelid = $1::regclass
UNION ALL SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ' comment', coalesce(obj_description(oid, 'pg_constraint'), '')
	FROM pg_constraint WHERE conrelid = $1::regclass OR confrelid = $1::regclass
UNION ALL SELECT 'index ' || indexrelid::regclass::text || ' comment', coalesce(obj_description(indexrelid, 'pg_class'), '')
	FROM pg_index WHERE indrelid = $1::regclass`, table)
	return out
}

func tableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRowContext(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestRebuildKeepsWhatBindsToTheTable runs the same job on the same table
// twice, rebuilt and in place, and wants the same table after either: the
// catalog, what binds to the table, the rows, and how the sequences, the
// identity column and the foreign keys behave next. Revert then gives back
// the table as it was.
func TestRebuildKeepsWhatBindsToTheTable(t *testing.T) {
	t.Parallel()
	type result struct {
		before, after map[string]string
		inserted      string
	}
	run := func(t *testing.T, inPlace bool) result {
		r := newEngineRun(t, boundPlan, boundFixture...)
		r.opt.InPlace = inPlace
		var res result
		res.before = boundSnapshot(t, r.db, "acct")
		rows := rowSnapshot(t, r.db, "acct", "child", "parent")

		r.applyUntil(t, "verify")
		if got := tableExists(t, r.db, "acct__colcrypt_new"); got == inPlace {
			t.Fatalf("in place %t: the replacement exists: %t", inPlace, got)
		}
		r.opt.Until = ""
		ar, err := r.eng().Apply(t.Context())
		if err != nil || ar.Phase != "done" {
			t.Fatalf("apply: %v, %+v", err, ar)
		}
		if tableExists(t, r.db, "acct__colcrypt_new") {
			t.Error("the replacement is still there after the cut-over")
		}
		res.after = boundSnapshot(t, r.db, "acct")
		vr, err := r.eng().Verify(t.Context())
		if err != nil || !vr.OK() {
			t.Fatalf("verify after cut-over: %+v, %v", vr, err)
		}
		// The serial and the identity go on where the table's were, the
		// foreign keys still hold both ways.
		if err := r.db.QueryRowContext(t.Context(), `INSERT INTO acct (parent_id, email, code, prev)
			VALUES (2, decode('00', 'hex'), 'new', 3000) RETURNING id::text || ' ' || n::text`).Scan(&res.inserted); err != nil {
			t.Fatalf("insert after cut-over: %v", err)
		}
		for _, bad := range []string{
			`INSERT INTO child VALUES (1000, 999999)`,
			`INSERT INTO acct (parent_id, email, prev) VALUES (99, '\x00', NULL)`,
			`INSERT INTO acct (parent_id, email, prev) VALUES (1, '\x00', 999999)`,
			`DELETE FROM acct WHERE id = 7`, // child 1 refers to it
		} {
			var pgErr *pgconn.PgError
			if _, err := r.db.ExecContext(t.Context(), bad); !errors.As(err, &pgErr) || pgErr.Code != "23503" {
				t.Errorf("%s after cut-over: %v, want a foreign key violation", bad, err)
			}
		}
		exec(t, r.db, `DELETE FROM acct WHERE code = 'new'`)

		if _, err := r.eng().Revert(t.Context()); err != nil {
			t.Fatalf("revert: %v", err)
		}
		if got := boundSnapshot(t, r.db, "acct"); !maps.Equal(got, res.before) {
			// The serial's and identity's positions are not in the
			// snapshot: the insert above used one of each.
			t.Errorf("in place %t: after revert the table differs:\n%s", inPlace, diffSnapshots(res.before, got))
		}
		if got := rowSnapshot(t, r.db, "acct", "child", "parent"); !maps.Equal(got, rows) {
			t.Errorf("in place %t: after revert %d rows differ, e.g.:\n%s", inPlace, countDiff(rows, got), firstDiff(rows, got))
		}
		return res
	}
	rebuilt, inPlace := run(t, false), run(t, true)
	if !maps.Equal(rebuilt.after, inPlace.after) {
		t.Errorf("after cut-over, rebuilt against in place:\n%s", diffSnapshots(inPlace.after, rebuilt.after))
	}
	if rebuilt.inserted != "3001 15100" || inPlace.inserted != rebuilt.inserted {
		t.Errorf("the row inserted after cut-over got id and n %q rebuilt, %q in place; want 3001 15100", rebuilt.inserted, inPlace.inserted)
	}
}

// TestRebuiltTableIsReadOnly: from prepare to cut-over an offline job's
// table refuses every write, with a message naming the plan and what to
// run, and reads go on; revert makes it writable again and leaves nothing
// of the replacement behind.
func TestRebuiltTableIsReadOnly(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, boundPlan, boundFixture...)
	r.applyUntil(t, "prepare")
	writes := []string{
		`INSERT INTO acct (email) VALUES ('late@example.com')`,
		`UPDATE acct SET total = 1 WHERE id = 1`,
		`DELETE FROM acct WHERE id = 3000`, // no row refers to the last one
		`TRUNCATE acct CASCADE`,
	}
	for i := range 2 * len(writes) {
		// Each write also as logical replication or a restore writes,
		// which ordinary triggers let through.
		w, as := writes[i/2], "while the job runs"
		var err error
		if i%2 == 0 {
			_, err = r.db.ExecContext(t.Context(), w)
		} else {
			as = "as a replica while the job runs"
			err = execAsReplica(t, r.db, w)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
			t.Errorf("%s %s: %v, want SQLSTATE 25006", w, as, err)
			continue
		}
		for _, want := range []string{"acct is read-only", "colcrypt apply " + r.plan, "colcrypt revert " + r.plan} {
			if !strings.Contains(pgErr.Message, want) {
				t.Errorf("%s: %q does not say %q", w, pgErr.Message, want)
			}
		}
	}
	var n int
	if err := r.db.QueryRowContext(t.Context(), `SELECT count(*) FROM acct`).Scan(&n); err != nil || n != 3000 {
		t.Errorf("reading the table while the job runs: %d rows, %v", n, err)
	}
	if _, err := r.eng().Revert(t.Context()); err != nil {
		t.Fatal(err)
	}
	exec(t, r.db, writes[:3]...)
	for _, gone := range []string{"acct__colcrypt_new", "colcrypt_readonly_acct"} {
		var left bool
		if err := r.db.QueryRowContext(t.Context(), `SELECT to_regclass($1) IS NOT NULL OR to_regproc($1) IS NOT NULL`, gone).Scan(&left); err != nil || left {
			t.Errorf("after revert %s is still there (%v)", gone, err)
		}
	}
}

// TestBoundObjectsKeepTheJobInPlace: a view, a trigger, a policy or
// another table's column of the table's row type bind to the table itself,
// which a swap would drop: the job then adds ciphertext columns to the
// table, as before, and finishes.
func TestBoundObjectsKeepTheJobInPlace(t *testing.T) {
	t.Parallel()
	for name, ddl := range map[string][]string{
		"view":     {`CREATE VIEW acct_codes AS SELECT id, code FROM acct`},
		"trigger":  {`CREATE TRIGGER acct_noop BEFORE UPDATE ON acct FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`},
		"row type": {`CREATE TABLE acct_history (at timestamptz, old acct)`},
		"policy":   {`CREATE POLICY acct_own ON acct USING (true)`},
		// A replacement made by CREATE TABLE … (LIKE …) would have the
		// default access method.
		"access method": {`CREATE ACCESS METHOD heap_again TYPE TABLE HANDLER heap_tableam_handler`,
			`ALTER TABLE acct SET ACCESS METHOD heap_again`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newEngineRun(t, boundPlan, append(slices.Clone(boundFixture), ddl...)...)
			r.applyUntil(t, "prepare")
			if tableExists(t, r.db, "acct__colcrypt_new") {
				t.Errorf("the job builds a replacement of acct despite the %s bound to it", name)
			}
			var added bool
			if err := r.db.QueryRowContext(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_attribute
				WHERE attrelid = 'acct'::regclass AND attname = 'email__colcrypt')`).Scan(&added); err != nil || !added {
				t.Errorf("prepare did not add the ciphertext column to acct (%v)", err)
			}
			r.opt.Until = ""
			if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" || !res.Verify.OK() {
				t.Fatalf("apply: %v, %+v", err, res)
			}
		})
	}
}

// TestVerifyPairsRowsWithTheReplacement: before the cut-over verify pairs
// each row of the table with the replacement's row of the same key, so a
// row missing from the replacement, a row only in it, and a ciphertext
// moved between rows are each named, and apply does not cut over.
func TestVerifyPairsRowsWithTheReplacement(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, boundPlan, boundFixture...)
	r.applyUntil(t, "copy")
	exec(t, r.db,
		`DELETE FROM acct__colcrypt_new WHERE id = 10`,
		`INSERT INTO acct__colcrypt_new (id, email) VALUES (5000000, '\x00')`,
		`UPDATE acct__colcrypt_new SET email = (SELECT email FROM acct__colcrypt_new WHERE id = 12) WHERE id = 11`)
	vr, err := r.eng().Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	msg := ""
	if !vr.OK() {
		msg = vr.Err().Error()
	}
	for _, want := range []string{
		"acct.* at id=10: the row is missing from the table's replacement",
		"acct.* at id=5000000: the row is in the table's replacement only",
		"acct.email at id=11",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("verify: %q\nwant it to name %q", msg, want)
		}
	}
	r.opt.Until = ""
	if _, err := r.eng().Apply(t.Context()); !errors.Is(err, migrate.ErrVerify) {
		t.Errorf("apply after the replacement was tampered with: %v, want a verify failure", err)
	}
	if !tableExists(t, r.db, "acct__colcrypt_new") {
		t.Error("apply cut over although verify failed")
	}
}

// TestRebuildTablesLinkedByForeignKey: two tables of one plan, both
// rebuilt, one referencing the other by a column that is not encrypted.
// Each swap moves the foreign key to the other's replacement; after the
// cut-over it still holds, and revert gives everything back.
func TestRebuildTablesLinkedByForeignKey(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, boundPlan+`  - name: child
    columns:
      - name: note
`, append(boundFixture,
		`ALTER TABLE child ADD COLUMN note text`,
		`UPDATE child SET note = 'note ' || id`)...)
	before := map[string]map[string]string{"acct": boundSnapshot(t, r.db, "acct"), "child": boundSnapshot(t, r.db, "child")}
	rows := rowSnapshot(t, r.db, "acct", "child")
	r.applyUntil(t, "verify")
	for _, built := range []string{"acct__colcrypt_new", "child__colcrypt_new"} {
		if !tableExists(t, r.db, built) {
			t.Fatalf("%s was not built", built)
		}
	}
	r.opt.Until = ""
	if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" {
		t.Fatalf("apply: %v, %+v", err, res)
	}
	for _, gone := range []string{"acct__colcrypt_new", "child__colcrypt_new"} {
		if tableExists(t, r.db, gone) {
			t.Errorf("%s is still there after the cut-over", gone)
		}
	}
	var pgErr *pgconn.PgError
	if _, err := r.db.ExecContext(t.Context(), `INSERT INTO child (id, acct_id) VALUES (5000, 999999)`); !errors.As(err, &pgErr) || pgErr.Code != "23503" {
		t.Errorf("a child of no account after the cut-over: %v, want a foreign key violation", err)
	}
	if _, err := r.eng().Revert(t.Context()); err != nil {
		t.Fatal(err)
	}
	for table, want := range before {
		if got := boundSnapshot(t, r.db, table); !maps.Equal(got, want) {
			t.Errorf("after revert %s differs:\n%s", table, diffSnapshots(want, got))
		}
	}
	if got := rowSnapshot(t, r.db, "acct", "child"); !maps.Equal(got, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, got), firstDiff(rows, got))
	}
}

// TestPurgeSkipsRebuiltTable: with purge: true, an in-place job rewrites
// the table (VACUUM FULL gives it new files) so no plaintext stays in its
// pages, while after a rebuild the table holding the plaintext was dropped
// whole: the replacement keeps its files, and both end verified.
func TestPurgeSkipsRebuiltTable(t *testing.T) {
	t.Parallel()
	for _, inPlace := range []bool{false, true} {
		r := newEngineRun(t, boundPlan, boundFixture...)
		r.p.Job.Purge = true
		r.opt.InPlace = inPlace
		r.applyUntil(t, "verify")
		filenode := func(table string) (n int64) {
			t.Helper()
			if err := r.db.QueryRowContext(t.Context(), `SELECT pg_relation_filenode($1)`, table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := filenode(map[bool]string{true: "acct", false: "acct__colcrypt_new"}[inPlace])
		r.opt.Until = ""
		if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" {
			t.Fatalf("in place %t: apply: %v, %+v", inPlace, err, res)
		}
		if rewritten := filenode("acct") != before; rewritten != inPlace {
			t.Errorf("in place %t: purge rewrote the table: %t", inPlace, rewritten)
		}
		if vr, err := r.eng().Verify(t.Context()); err != nil || !vr.OK() {
			t.Errorf("in place %t: verify after purge: %+v, %v", inPlace, vr, err)
		}
	}
}

// TestInPlacePurgeNeedsNoWait: apply's purge removes plaintext columns the
// cut-over dropped, and VACUUM FULL writes a dropped column as NULL in
// every row version it keeps, those a snapshot older than the purge may
// still read included. So apply's purge does not wait for such a
// snapshot (a rekey's must), and once it ran no plaintext is left in the
// table's file.
func TestInPlacePurgeNeedsNoWait(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, boundPlan, boundFixture...)
	r.p.Job.Purge = true
	r.opt.InPlace = true
	r.opt.PurgeWait = time.Second // a purge that waited would fail
	var sample []string
	for _, row := range queryRows(t, r.db, `SELECT email FROM acct WHERE id % 100 = 1`) {
		sample = append(sample, row[0].(string))
	}
	if file := heapFile(t, r.db, "acct"); !bytes.Contains(file, []byte(sample[0])) {
		t.Fatalf("the table's file does not hold %q before the job", sample[0])
	}
	report, err := r.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer report.Close()
	if _, err := report.ExecContext(t.Context(), `BEGIN ISOLATION LEVEL REPEATABLE READ`); err != nil {
		t.Fatal(err)
	}
	if _, err := report.ExecContext(t.Context(), `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" {
		t.Fatalf("apply with purge beside an older snapshot: %v, %+v", err, res)
	}
	file := heapFile(t, r.db, "acct")
	for _, email := range sample {
		if bytes.Contains(file, []byte(email)) {
			t.Errorf("after the purge the table's file still holds %q", email)
		}
	}
	if _, err := report.ExecContext(t.Context(), `COMMIT`); err != nil {
		t.Fatal(err)
	}
}

// TestCutoverValidatesForeignKeysAfterCommit: the swap of a rebuilt table
// recreates the foreign keys in both directions NOT VALID, so that checking
// them does not read the referencing tables under its locks, and validates
// them once it committed. A swap run again after a crash in between finds
// the keys left NOT VALID and validates them, but not a key its owner left
// NOT VALID before the job.
func TestCutoverValidatesForeignKeysAfterCommit(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, boundPlan, boundFixture...)
	d := postgres.Dialect{}
	model, err := d.ReadTable(t.Context(), r.db, schema.TableName{Name: "acct"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" {
		t.Fatalf("apply: %v, %+v", err, res)
	}
	validity := func() map[string]string {
		out := map[string]string{}
		readSnapshot(t, r.db, out, `SELECT conrelid::regclass::text || '.' || conname, convalidated::text
			FROM pg_constraint WHERE contype = 'f' AND (conrelid = $1::regclass OR confrelid = $1::regclass)`, "acct")
		return out
	}
	want := map[string]string{"acct.acct_parent_fk": "true", "acct.acct_prev_fk": "true",
		"child.child_acct_fk": "true", "child.child_acct_loose_fk": "false"}
	if got := validity(); !maps.Equal(got, want) {
		t.Fatalf("after the cut-over the foreign keys are validated %v, want %v", got, want)
	}
	// What a crash between the swap's commit and the validation leaves.
	exec(t, r.db,
		`ALTER TABLE acct DROP CONSTRAINT acct_parent_fk`,
		`ALTER TABLE acct ADD CONSTRAINT acct_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE NOT VALID`,
		`ALTER TABLE child DROP CONSTRAINT child_acct_fk`,
		`ALTER TABLE child ADD CONSTRAINT child_acct_fk FOREIGN KEY (acct_id) REFERENCES acct (id) NOT VALID`)
	if err := d.Swap(t.Context(), r.db, []dialect.TableSwap{{Table: model, Rebuilt: true}}); err != nil {
		t.Fatalf("the swap run again: %v", err)
	}
	if got := validity(); !maps.Equal(got, want) {
		t.Fatalf("after the swap ran again the foreign keys are validated %v, want %v", got, want)
	}
}

// TestColumnGrantsSurviveTheSwap: privileges granted on an encrypted
// column (which keep its job in place) are on the ciphertext column after
// the cut-over and on the plaintext column again after revert, as the
// column's other grants and comment are.
func TestColumnGrantsSurviveTheSwap(t *testing.T) {
	t.Parallel()
	r := newEngineRun(t, boundPlan, append(slices.Clone(boundFixture),
		`DO $$ BEGIN CREATE ROLE colcrypt_test_analyst; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`GRANT SELECT (id, email), UPDATE (email) ON acct TO colcrypt_test_analyst`)...)
	grants := func() string {
		var acl sql.NullString
		if err := r.db.QueryRowContext(t.Context(), `SELECT attacl::text FROM pg_attribute
			WHERE attrelid = 'acct'::regclass AND attname = 'email'`).Scan(&acl); err != nil {
			t.Fatal(err)
		}
		return acl.String
	}
	before := grants()
	if !strings.Contains(before, "colcrypt_test_analyst=rw") {
		t.Fatalf("fixture: email's grants are %q", before)
	}
	if res, err := r.eng().Apply(t.Context()); err != nil || res.Phase != "done" {
		t.Fatalf("apply: %v, %+v", err, res)
	}
	if got := grants(); got != before {
		t.Errorf("after the cut-over email's grants are %q, want %q", got, before)
	}
	if _, err := r.eng().Revert(t.Context()); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if got := grants(); got != before {
		t.Errorf("after revert email's grants are %q, want %q", got, before)
	}
}
