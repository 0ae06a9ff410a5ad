package postgres_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// rekeyFixture: a bigint key, a unique char(11) (iv: column), an e-mail
// under AES-256-CBC with an IV column, AEAD notes with a default, numeric
// under AES-128-CBC with the column IV, timestamptz, an unencrypted column
// with a default, and values a careless rewrite would change (NULL against
// empty, padding, Unicode, extremes).
var rekeyFixture = []string{
	`CREATE TABLE accounts (
		id bigint PRIMARY KEY,
		ssn char(11) NOT NULL CONSTRAINT accounts_ssn_key UNIQUE,
		email varchar(80),
		notes text DEFAULT '(none)',
		balance numeric(14,4),
		seen_at timestamptz,
		tier text NOT NULL DEFAULT 'basic'
	)`,
	`INSERT INTO accounts
		SELECT g, lpad(g::text, 11, '0'),
			CASE WHEN g % 11 = 0 THEN NULL ELSE 'user' || g || '@example.com' END,
			CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE repeat('note ' || g || ' ', g % 9 + 1) END,
			CASE WHEN g % 7 = 0 THEN NULL ELSE g * 3.1415 END,
			timestamptz '2024-02-29 12:00:00.000001+00' + g * interval '1 hour 1 microsecond',
			CASE WHEN g % 3 = 0 THEN 'gold' ELSE 'basic' END
		FROM generate_series(1, 1800) g`,
	`INSERT INTO accounts VALUES
		(-9223372036854775808, '   ', '', '', 0, '-infinity', ''),
		(9223372036854775807, 'a b', NULL, NULL, NULL, NULL, 'basic'),
		(0, 'Ünï 😀', 'zoë@例え.jp', E'tab\tnew\nline ''q'' "dq" \\ 日本語 🏳️‍🌈', -9999999999.9999, 'infinity', 'ü'),
		(1000000, '123-45-6789', '  padded  ', 'NULL', 1e-4, '1999-12-31 23:59:59.999999+14', 'basic')`,
}

// rekeyRows is the row count of rekeyFixture.
const rekeyRows = 1804

// rekeyPlan is the plan apply runs; %EMAIL% is email's suite.
const rekeyPlan = `version: 1
database:
  engine: postgres
  dsn: "%DSN%"
keystore: test.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 100
  drop_defaults: true
tables:
  - name: accounts
    columns:
      - name: ssn
        iv: column
      - name: email
        suite: %EMAIL%
      - name: notes
      - name: balance
        suite: aes-128-cbc
        iv: column
      - name: seen_at
`

// rekeyColumns are the columns rekeyPlan encrypts.
var rekeyColumns = []string{"ssn", "email", "notes", "balance", "seen_at"}

// rekeyRun is one database, its keystore and the plans of the test.
type rekeyRun struct {
	t   *testing.T
	db  *sql.DB
	dir string
	dsn string
	ks  *keystore.Keystore
}

func (r *rekeyRun) plan(name, emailSuite string) *planner.Plan {
	r.t.Helper()
	return r.writePlan(name, strings.ReplaceAll(rekeyPlan, "%EMAIL%", emailSuite))
}

// writePlan writes a plan, with %DSN% replaced by the database's, and
// loads it.
func (r *rekeyRun) writePlan(name, text string) *planner.Plan {
	r.t.Helper()
	path := filepath.Join(r.dir, name)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "%DSN%", r.dsn)), 0o600); err != nil {
		r.t.Fatal(err)
	}
	p, err := planner.Load(path)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *rekeyRun) engine(p *planner.Plan) *migrate.Engine {
	r.t.Helper()
	return r.engineWith(p, migrate.Options{})
}

func (r *rekeyRun) engineWith(p *planner.Plan, opt migrate.Options) *migrate.Engine {
	r.t.Helper()
	e, err := migrate.New(p, postgres.Dialect{}, r.db, r.ks, opt)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// headers counts the non-NULL values of a column by the suite and key
// version their versioned header names ("aes-256-cbc/v2").
func (r *rekeyRun) headers(column string) map[string]int64 {
	r.t.Helper()
	return r.tableHeaders("accounts", column)
}

// tableHeaders is headers of a column of another table.
func (r *rekeyRun) tableHeaders(table, column string) map[string]int64 {
	r.t.Helper()
	out := map[string]int64{}
	for _, row := range queryRows(r.t, r.db, `SELECT `+column+` FROM `+table+` WHERE `+column+` IS NOT NULL`) {
		ct, ok := row[0].([]byte)
		if !ok {
			r.t.Fatalf("%s.%s holds a %T, want bytea", table, column, row[0])
		}
		suite, v, err := cipher.Header(ct)
		if err != nil {
			r.t.Fatalf("%s.%s holds a value without a versioned header: %v", table, column, err)
		}
		out[string(suite)+"/v"+strconv.Itoa(int(v))]++
	}
	return out
}

// nonNull counts the non-NULL values of each column now.
func (r *rekeyRun) nonNull() map[string]int64 {
	r.t.Helper()
	out := map[string]int64{}
	for _, c := range rekeyColumns {
		var n int64
		if err := r.db.QueryRowContext(r.t.Context(), `SELECT count(`+c+`) FROM accounts`).Scan(&n); err != nil {
			r.t.Fatal(err)
		}
		out[c] = n
	}
	return out
}

// wantVerified runs verify with the plan and fails unless every value
// decrypts to what the copy recorded.
func (r *rekeyRun) wantVerified(p *planner.Plan, when string) {
	r.t.Helper()
	res, err := r.engine(p).Verify(r.t.Context())
	switch {
	case err != nil:
		r.t.Errorf("verify %s: %v", when, err)
	case !res.OK():
		r.t.Errorf("verify %s: %v", when, res.Err())
	case res.Rows != rekeyRows:
		r.t.Errorf("verify %s read %d rows, want %d", when, res.Rows, rekeyRows)
	}
}

// versions reads status and returns, per column, its state and the values
// under each key version ("v1" → n), checking that every value is counted
// under a readable header.
func (r *rekeyRun) versions(p *planner.Plan) (map[string]int, map[string]map[string]int64) {
	r.t.Helper()
	st, err := r.engine(p).Status(r.t.Context())
	if err != nil {
		r.t.Fatalf("status: %v", err)
	}
	states, counts := map[string]int{}, map[string]map[string]int64{}
	for _, c := range st.Columns {
		states[c.Column] = c.State
		counts[c.Column] = map[string]int64{}
		for _, v := range c.Versions {
			counts[c.Column][fmt.Sprintf("v%d", v.Version)] += v.Values
			if v.Suite == "unreadable header" {
				r.t.Errorf("status counts %d values of %s with an unreadable header", v.Values, c.Column)
			}
		}
	}
	return states, counts
}

// failUpdatesOf makes every UPDATE of the row with that id fail (SQLSTATE
// P0001, which the engine does not retry), so a rekey stops in the middle
// with some chunks rewritten and the chunk holding the row not. The trigger
// names no encrypted column. It returns the function that removes it.
func (r *rekeyRun) failUpdatesOf(table string, id int) (remove func()) {
	r.t.Helper()
	exec(r.t, r.db,
		`CREATE FUNCTION rekey_test_stop() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'rekey test: stop here'; END $$`,
		fmt.Sprintf(`CREATE TRIGGER rekey_test_stop BEFORE UPDATE ON %s FOR EACH ROW WHEN (OLD.id = %d)
			EXECUTE FUNCTION rekey_test_stop()`, table, id))
	return func() {
		exec(r.t, r.db, `DROP TRIGGER rekey_test_stop ON `+table, `DROP FUNCTION rekey_test_stop()`)
	}
}

// newRekeyDB opens a fresh database of the test cluster, runs stmts in it,
// and gives it with a keystore in a temporary folder.
func newRekeyDB(t *testing.T, stmts ...string) *rekeyRun {
	t.Helper()
	dsn := pgtest.DSN(t)
	db, err := postgres.Dialect{}.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec(t, db, stmts...)
	dir := t.TempDir()
	return &rekeyRun{t: t, db: db, dir: dir, dsn: dsn, ks: engineKeystore(t, filepath.Join(dir, "test.keystore"))}
}

// newRekeyRun creates the fixture in a new database, applies rekeyPlan
// with email under AES-256-CBC (IV column), and adds key version 2 with a
// backup taken after it. It returns the run, the plan, and the catalog and
// rows as they were before apply.
func newRekeyRun(t *testing.T) (r *rekeyRun, cbc *planner.Plan, catalog, rows map[string]string) {
	t.Helper()
	ctx := t.Context()
	r = newRekeyDB(t, rekeyFixture...)
	db, dir := r.db, r.dir
	catalog = catalogSnapshot(t, db, "accounts")
	rows = rowSnapshot(t, db, "accounts")
	cbc = r.plan("cbc.yaml", "aes-256-cbc")
	if res, err := r.engine(cbc).Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	} else if res.Verify == nil || !res.Verify.OK() {
		t.Fatalf("apply's verify: %+v", res.Verify)
	}
	if got := catalogSnapshot(t, db, "accounts")["column accounts.email_iv"]; got != "bytea NULL" {
		t.Fatalf("after apply accounts.email_iv is %q, want the IV column of aes-256-cbc", got)
	}
	values := r.nonNull()
	for _, c := range rekeyColumns {
		if h := r.headers(c); len(h) != 1 || h[suiteOf(c, "aes-256-cbc")+"/v1"] != values[c] {
			t.Fatalf("after apply accounts.%s holds %v, want %d values under v1", c, h, values[c])
		}
	}
	if _, err := r.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := r.ks.Backup(filepath.Join(dir, "after-v2.backup"), []byte("backup passphrase"), cheapRekeyKDF); err != nil {
		t.Fatal(err)
	}
	return r, cbc, catalog, rows
}

// forgetRekeyCheckpoints deletes the rekey's chunk checkpoints, as if the
// process had died after writing chunks but before recording them.
func (r *rekeyRun) forgetRekeyCheckpoints() {
	r.t.Helper()
	res, err := r.db.ExecContext(r.t.Context(), `DELETE FROM colcrypt_chunks WHERE phase = 'rekey'`)
	if err != nil {
		r.t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		r.t.Fatalf("no rekey checkpoint to forget (%d, %v): the stopped rekey recorded no chunk", n, err)
	}
}

// TestRekeyRoundTrip runs SPEC §3's rekey on PostgreSQL: after apply and
// key version 2 (and a backup), rekey every column; every stored header
// names v2, status counts only v2, verify passes and the unique constraint
// still rejects a duplicate. Then email moves from AES-256-CBC with an IV
// column to the AEAD suite (the IV column goes), verify passes under the
// new plan, and revert gives back every row and the catalog of the start.
func TestRekeyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, cbc, catalog, rows := newRekeyRun(t)
	values := r.nonNull()

	if _, err := r.engine(cbc).Rekey(ctx, nil); err != nil {
		t.Fatalf("rekey: %v", err)
	}
	for _, c := range rekeyColumns {
		if h, want := r.headers(c), suiteOf(c, "aes-256-cbc")+"/v2"; len(h) != 1 || h[want] != values[c] {
			t.Errorf("after the rekey accounts.%s holds %v, want %d values under %s", c, h, values[c], want)
		}
	}
	states, counts := r.versions(cbc)
	for _, c := range rekeyColumns {
		if states[c] != migrate.StateEncrypted || len(counts[c]) != 1 || counts[c]["v2"] != values[c] {
			t.Errorf("status of %s after the rekey: state %d, counts %v; want state 3 and only v2: %d", c, states[c], counts[c], values[c])
		}
	}
	r.wantVerified(cbc, "after the rekey to v2")
	_, err := r.db.ExecContext(ctx, `INSERT INTO accounts (id, ssn) SELECT 5000000, ssn FROM accounts WHERE id = 1`)
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "accounts_ssn_key" {
		t.Errorf("inserting a duplicate ssn ciphertext after the rekey: %v; want a violation of accounts_ssn_key", err)
	}
	if res, err := r.engine(cbc).Rekey(ctx, nil); err != nil || !res.Already {
		t.Errorf("a second rekey with nothing newer: %+v, %v; want nothing to do", res, err)
	}

	aead := r.plan("aead.yaml", "aead-aes-256-cbc-hmac-sha256")
	if _, err := r.engine(aead).Rekey(ctx, []string{"accounts.email"}); err != nil {
		t.Fatalf("suite change: %v", err)
	}
	if h := r.headers("email"); len(h) != 1 || h["aead-aes-256-cbc-hmac-sha256/v2"] != values["email"] {
		t.Errorf("email after the suite change holds %v, want %d AEAD values under v2", h, values["email"])
	}
	encrypted := catalogSnapshot(t, r.db, "accounts")
	for k, want := range map[string]string{
		"column accounts.email_iv":    "", // the AEAD suite keeps its IV inline
		"column accounts.balance_iv":  "", // iv: column
		"column accounts.email":       "bytea NULL",
		"column accounts.ssn":         "bytea NOT NULL",
		"constraint accounts_ssn_key": catalog["constraint accounts_ssn_key"],
		"constraint accounts_pkey":    catalog["constraint accounts_pkey"],
	} {
		if got := encrypted[k]; got != want {
			t.Errorf("after the suite change %s = %q, want %q", k, got, want)
		}
	}
	r.wantVerified(aead, "under the new plan after the suite change")
	if _, err := r.engine(cbc).Verify(ctx); err == nil {
		t.Error("verify with the superseded plan should find no job")
	}

	if _, err := r.engine(aead).Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if restored := catalogSnapshot(t, r.db, "accounts"); !maps.Equal(restored, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, restored))
	}
	if after := rowSnapshot(t, r.db, "accounts"); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}

// TestRekeyStoppedMidway stops a rekey in the middle, once for the new key
// version and once for a suite change, where SPEC §3 promises "both
// versions decrypt until it ends": status counts values under both and
// verify passes. The checkpoints of the chunks already rewritten are then
// dropped, and the resumed rekey, meeting values already under the target,
// finishes with every value under it exactly once (verify passes).
func TestRekeyStoppedMidway(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, cbc, catalog, rows := newRekeyRun(t)
	values := r.nonNull()

	remove := r.failUpdatesOf("accounts", 1000)
	if _, err := r.engine(cbc).Rekey(ctx, nil); err == nil || !strings.Contains(err.Error(), "rekey test: stop here") {
		t.Fatalf("rekey with a failing chunk: %v, want the trigger's error", err)
	}
	states, counts := r.versions(cbc)
	for _, c := range rekeyColumns {
		if states[c] != migrate.StateKeyChange || counts[c]["v1"] == 0 || counts[c]["v2"] == 0 || counts[c]["v1"]+counts[c]["v2"] != values[c] {
			t.Errorf("status of %s after a stopped rekey: state %d, counts %v; want state 4 and %d values under v1 and v2",
				c, states[c], counts[c], values[c])
		}
	}
	r.wantVerified(cbc, "in the middle of the rekey to v2")
	remove()
	// The checkpoints may lag behind the work: without them the resumed
	// rekey meets values already under v2 and must recognize them by their
	// header instead of encrypting a ciphertext again.
	r.forgetRekeyCheckpoints()
	if _, err := r.engine(cbc).Rekey(ctx, nil); err != nil {
		t.Fatalf("resumed rekey: %v", err)
	}
	for _, c := range rekeyColumns {
		if h, want := r.headers(c), suiteOf(c, "aes-256-cbc")+"/v2"; len(h) != 1 || h[want] != values[c] {
			t.Errorf("after the resumed rekey accounts.%s holds %v, want %d values under %s", c, h, values[c], want)
		}
	}
	r.wantVerified(cbc, "after the resumed rekey")

	// The suite change stops in the middle too: the job is still the old
	// plan's, and values under both suites are in the column.
	aead := r.plan("aead.yaml", "aead-aes-256-cbc-hmac-sha256")
	remove = r.failUpdatesOf("accounts", 1500)
	if _, err := r.engine(aead).Rekey(ctx, []string{"accounts.email"}); err == nil || !strings.Contains(err.Error(), "rekey test: stop here") {
		t.Fatalf("suite change with a failing chunk: %v, want the trigger's error", err)
	}
	if h := r.headers("email"); h["aes-256-cbc/v2"] == 0 || h["aead-aes-256-cbc-hmac-sha256/v2"] == 0 ||
		h["aes-256-cbc/v2"]+h["aead-aes-256-cbc-hmac-sha256/v2"] != values["email"] {
		t.Errorf("email after a stopped suite change holds %v, want values under both suites", h)
	}
	r.wantVerified(cbc, "in the middle of the suite change")
	remove()
	r.forgetRekeyCheckpoints()
	if _, err := r.engine(aead).Rekey(ctx, []string{"accounts.email"}); err != nil {
		t.Fatalf("resumed suite change: %v", err)
	}
	if h := r.headers("email"); len(h) != 1 || h["aead-aes-256-cbc-hmac-sha256/v2"] != values["email"] {
		t.Errorf("email after the resumed suite change holds %v, want %d AEAD values under v2", h, values["email"])
	}
	if got := catalogSnapshot(t, r.db, "accounts")["column accounts.email_iv"]; got != "" {
		t.Errorf("after the suite change accounts.email_iv is still %q", got)
	}
	r.wantVerified(aead, "under the new plan after the resumed suite change")

	if _, err := r.engine(aead).Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if restored := catalogSnapshot(t, r.db, "accounts"); !maps.Equal(restored, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, restored))
	}
	if after := rowSnapshot(t, r.db, "accounts"); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}

// TestRekeyResumesAfterATableFinished stops a rekey of two tables in the
// second one, when the first is done (state 3 under v2): the next
// `rekey --all` (Rekey with no columns) must finish the second table, as a
// rekey killed at that moment and run again would need.
func TestRekeyResumesAfterATableFinished(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newRekeyDB(t,
		`CREATE TABLE first_t (id int PRIMARY KEY, x text)`,
		`CREATE TABLE second_t (id int PRIMARY KEY, y varchar(40))`,
		`INSERT INTO first_t SELECT g, 'x' || g FROM generate_series(1, 300) g`,
		`INSERT INTO second_t SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'y' || g END FROM generate_series(1, 300) g`)
	db := r.db
	rows := rowSnapshot(t, db, "first_t", "second_t")
	p := r.writePlan("two.yaml", `version: 1
database:
  engine: postgres
  dsn: "%DSN%"
keystore: test.keystore
defaults:
  key: pii
job:
  batch_rows: 50
tables:
  - name: first_t
    columns:
      - name: x
  - name: second_t
    columns:
      - name: y
`)
	if _, err := r.engine(p).Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := r.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := r.ks.Backup(filepath.Join(r.dir, "after-v2.backup"), []byte("backup passphrase"), cheapRekeyKDF); err != nil {
		t.Fatal(err)
	}
	remove := r.failUpdatesOf("second_t", 200)
	if _, err := r.engine(p).Rekey(ctx, nil); err == nil || !strings.Contains(err.Error(), "rekey test: stop here") {
		t.Fatalf("rekey with a failing chunk in second_t: %v, want the trigger's error", err)
	}
	states, _ := r.versions(p)
	if states["x"] != migrate.StateEncrypted || states["y"] != migrate.StateKeyChange {
		t.Fatalf("after the stopped rekey x is in state %d and y in %d; the test needs first_t done (3) and second_t mid-rekey (4)",
			states["x"], states["y"])
	}
	remove()
	if _, err := r.engine(p).Rekey(ctx, nil); err != nil {
		t.Errorf("rekey --all after first_t finished and second_t stopped: %v; want it to finish second_t", err)
		// What a user can do instead, so the rest is checked.
		if _, err := r.engine(p).Rekey(ctx, []string{"second_t.y"}); err != nil {
			t.Fatalf("rekey --column second_t.y: %v", err)
		}
	}
	states, counts := r.versions(p)
	for _, c := range []string{"x", "y"} {
		if states[c] != migrate.StateEncrypted || len(counts[c]) != 1 || counts[c]["v2"] == 0 {
			t.Errorf("status of %s after the rekey: state %d, counts %v; want state 3 and only v2", c, states[c], counts[c])
		}
	}
	if res, err := r.engine(p).Verify(ctx); err != nil || !res.OK() {
		t.Errorf("verify after the rekey: %v %v", err, res.Err())
	}
	if _, err := r.engine(p).Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if after := rowSnapshot(t, db, "first_t", "second_t"); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}

// suiteOf is the suite rekeyPlan gives a column.
func suiteOf(column, email string) string {
	switch column {
	case "email":
		return email
	case "balance":
		return "aes-128-cbc"
	}
	return "aead-aes-256-cbc-hmac-sha256"
}

var cheapRekeyKDF = keystore.WithKDF(keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})

// TestRekeyPurge: a rekey rewrites every row in place, so the table's
// file keeps each old row version, and with it each value under the old
// key version, until vacuum reuses the space, and stays at about twice its
// size. With purge: true the rekey rebuilds the table (VACUUM FULL) before
// the columns leave state 4: after a checkpoint, none of a sample of the
// values under v1 is left in the table's file, and the table is back to
// its size before the rekey (within a tenth; without purge it grows by
// more than that).
func TestRekeyPurge(t *testing.T) {
	t.Parallel()
	for _, purge := range []bool{false, true} {
		name := "no purge"
		if purge {
			name = "purge"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			r, _, _, _ := newRekeyRun(t)
			text := strings.ReplaceAll(rekeyPlan, "%EMAIL%", "aes-256-cbc")
			if purge {
				text = strings.Replace(text, "  drop_defaults: true\n", "  drop_defaults: true\n  purge: true\n", 1)
			}
			p := r.writePlan("rekey.yaml", text)
			old := r.emailSample()
			before := tableBytes(t, r.db, "accounts")
			if _, err := r.engine(p).Rekey(ctx, nil); err != nil {
				t.Fatalf("rekey: %v", err)
			}
			r.wantEmailOnV2(p)
			left := r.leftInFile(old)
			after := tableBytes(t, r.db, "accounts")
			t.Logf("%d of %d sampled v1 values left in the table's file; table %d bytes before the rekey, %d after", left, len(old), before, after)
			switch {
			case purge && left > 0:
				t.Errorf("after a rekey with purge %d of %d values under key version 1 are still in the table's file", left, len(old))
			case purge && after > before*11/10:
				t.Errorf("after a rekey with purge the table takes %d bytes, %d before: not rebuilt", after, before)
			case !purge && (left == 0 || after <= before*11/10):
				// Pruning of the pages the rekey passes over lets it reuse some
				// of the space it frees (1.47 × once), so the control asks only
				// for more than what purge must get below.
				t.Errorf("without purge %d old values are left and the table grew from %d to %d bytes: this test no longer shows what purge removes", left, before, after)
			}
		})
	}
}

// tableBytes is the size of a table's files, TOAST included, indexes not.
func tableBytes(t *testing.T, db *sql.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(t.Context(), `SELECT pg_table_size($1::regclass)`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// heapFile writes every dirty page to disk (CHECKPOINT) and returns the
// bytes of a table's main file, free space and dead row versions included.
func heapFile(t *testing.T, db *sql.DB, table string) []byte {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), `CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	var b []byte
	if err := db.QueryRowContext(t.Context(), `SELECT pg_read_binary_file(pg_relation_filepath($1::regclass))`, table).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRekeyPurgeWaitsForOlderSnapshots: VACUUM FULL keeps every row
// version that a transaction begun before it may still need: one whose
// snapshot in the table's database is older, and, through VACUUM FULL's
// own snapshot, one holding an xid in any database. A purge run beside
// them would leave the old ciphertexts in the table's file, so it waits for
// them instead. Given up after Options.PurgeWait, the rekey fails naming
// both sessions and how to end them, and the column stays in state 4; run
// again, the rekey waits, says so, purges once they have ended, and no v1
// value is left in the file.
func TestRekeyPurgeWaitsForOlderSnapshots(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, _, _, _ := newRekeyRun(t)
	text := strings.ReplaceAll(rekeyPlan, "%EMAIL%", "aes-256-cbc")
	p := r.writePlan("rekey.yaml", strings.Replace(text, "  drop_defaults: true\n", "  drop_defaults: true\n  purge: true\n", 1))
	old := r.emailSample()

	// A report in the table's database whose snapshot is older than the
	// rekey (it reads no table, so it holds no lock the rekey waits for),
	// and a transaction in another database that took an xid.
	otherDSN, err := pgtest.WithDatabase(r.dsn, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	other, err := postgres.Dialect{}.Open(ctx, otherDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var pids []int
	var ends []func()
	for _, h := range []struct {
		db    *sql.DB
		begin string
	}{
		{r.db, `SELECT pg_backend_pid()`},
		{other, `SELECT pg_backend_pid() WHERE pg_current_xact_id() IS NOT NULL`},
	} {
		conn, err := h.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var pid int
		if _, err := conn.ExecContext(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ`); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, h.begin).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		ends = append(ends, func() {
			if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
				t.Error(err)
			}
		})
	}

	_, err = r.engineWith(p, migrate.Options{PurgeWait: 2 * time.Second}).Rekey(ctx, nil)
	for _, pid := range pids {
		if want := fmt.Sprintf("session %d (", pid); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("pg_terminate_backend(%d)", pid)) {
			t.Errorf("rekey with purge beside older transactions: %v; want an error naming %q and how to end it", err, want)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "the job resumes at the purge") {
		t.Fatalf("rekey with purge beside older transactions: %v; want an error saying how to go on", err)
	}
	if states, _ := r.versions(p); states["email"] != migrate.StateKeyChange {
		t.Errorf("after the purge gave up email is in state %d, want %d", states["email"], migrate.StateKeyChange)
	}

	waiting := make(chan struct{}, 1)
	log := slog.New(messageHandler{prefix: "purge waits", seen: waiting})
	done := make(chan error, 1)
	go func() {
		_, err := r.engineWith(p, migrate.Options{PurgeWait: time.Minute, Log: log}).Rekey(ctx, nil)
		done <- err
	}()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("the rekey ended (%v) while a snapshot from before it was open; want it to wait", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the rekey did not log that its purge waits")
	}
	for _, end := range ends {
		end()
	}
	if err := <-done; err != nil {
		t.Fatalf("rekey after the report ended: %v", err)
	}
	r.wantEmailOnV2(p)
	if left := r.leftInFile(old); left > 0 {
		t.Errorf("after the purge %d of %d sampled values under key version 1 are still in the table's file", left, len(old))
	}
}

// emailSample gives a sample of accounts.email's values (under v1 before
// a rekey).
func (r *rekeyRun) emailSample() [][]byte {
	r.t.Helper()
	var out [][]byte
	for _, row := range queryRows(r.t, r.db, `SELECT email FROM accounts WHERE id % 50 = 1 AND email IS NOT NULL`) {
		out = append(out, row[0].([]byte))
	}
	return out
}

// wantEmailOnV2 checks that verify passes and that every value of
// accounts.email is under v2, as after a finished rekey.
func (r *rekeyRun) wantEmailOnV2(p *planner.Plan) {
	r.t.Helper()
	r.wantVerified(p, "after the rekey")
	if states, counts := r.versions(p); states["email"] != migrate.StateEncrypted || len(counts["email"]) != 1 || counts["email"]["v2"] == 0 {
		r.t.Fatalf("after the rekey email is in state %d with %v, want state 3 and only v2", states["email"], counts["email"])
	}
}

// leftInFile counts the values of sample still in the heap file of
// accounts, after a checkpoint.
func (r *rekeyRun) leftInFile(sample [][]byte) int {
	r.t.Helper()
	file := heapFile(r.t, r.db, "accounts")
	left := 0
	for _, ct := range sample {
		if bytes.Contains(file, ct) {
			left++
		}
	}
	return left
}

// messageHandler is a slog.Handler that signals seen at each record whose
// message begins with prefix.
type messageHandler struct {
	prefix string
	seen   chan struct{}
}

func (h messageHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h messageHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h messageHandler) WithGroup(string) slog.Handler            { return h }
func (h messageHandler) Handle(_ context.Context, rec slog.Record) error {
	if strings.HasPrefix(rec.Message, h.prefix) {
		select {
		case h.seen <- struct{}{}:
		default:
		}
	}
	return nil
}

// TestRekeyOfATableWithoutAKey: a table with no key is paged by a row id
// colcrypt adds, and its cut-over drops it. Rekey read its chunks by that
// column and failed at once ("column colcrypt_row_id does not exist"),
// leaving the column in state 4; now it adds the row id again, rewrites
// every value, and drops it before the column leaves state 4.
func TestRekeyOfATableWithoutAKey(t *testing.T) {
	ctx := t.Context()
	r := newRekeyDB(t, `CREATE TABLE readings (n int, note text)`,
		`INSERT INTO readings SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE 'reading ' || g END FROM generate_series(1, 1000) g`)
	db := r.db
	catalog, rows := catalogSnapshot(t, db, "readings"), multisetSnapshot(t, db, "readings")
	p := r.writePlan("plan.yaml", `version: 1
database:
  engine: postgres
  dsn: "%DSN%"
keystore: test.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 100
tables:
  - name: readings
    columns:
      - name: note
`)
	if _, err := r.engine(p).Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := r.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.engineWith(p, migrate.Options{NoBackupCheck: true}).Rekey(ctx, nil); err != nil {
		t.Fatalf("rekey of a table without a key: %v", err)
	}
	if h := r.tableHeaders("readings", "note"); len(h) != 1 || h["aead-aes-256-cbc-hmac-sha256/v2"] != 889 {
		t.Errorf("readings.note after the rekey holds %v, want 889 values under v2", h)
	}
	if _, ok := catalogSnapshot(t, db, "readings")["column readings.colcrypt_row_id"]; ok {
		t.Error("the rekey left its row id column behind")
	}
	if res, err := r.engine(p).Verify(ctx); err != nil || !res.OK() {
		t.Fatalf("verify after the rekey: %v %v", res, err)
	}
	if _, err := r.engine(p).Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if d := diffSnapshots(catalog, catalogSnapshot(t, db, "readings")); d != "" {
		t.Errorf("the schema after revert differs:\n%s", d)
	}
	if after := multisetSnapshot(t, db, "readings"); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}
