package postgres_test

import (
	"database/sql"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

// engineFixture has what SPEC's round trip touches: a bigint key, a
// char(11) unique key referenced by a foreign key, an indexed varchar, long
// text, numeric, timestamptz, bytea, a check and a default, and values that
// a careless codec or swap would change (NULL against empty, padding,
// Unicode, extremes).
var engineFixture = []string{
	`CREATE TABLE people (
		id bigint PRIMARY KEY,
		ssn char(11) NOT NULL CONSTRAINT people_ssn_key UNIQUE,
		email varchar(64),
		notes text,
		balance numeric(12,2),
		seen_at timestamptz,
		photo bytea,
		status varchar(10) NOT NULL DEFAULT 'new' CONSTRAINT people_status_check CHECK (status IN ('new', 'vip', '')),
		city text
	)`,
	`CREATE INDEX people_email_idx ON people (email)`,
	`CREATE TABLE visits (
		id int PRIMARY KEY,
		person_ssn char(11) CONSTRAINT visits_person_fk REFERENCES people (ssn),
		at timestamptz
	)`,
	`INSERT INTO people
		SELECT g, lpad(g::text, 11, '0'), 'user' || g || '@example.com', repeat('note ' || g || ' ', 20),
			g * 1.25, timestamptz '2024-01-01 00:00:00.000001+00' + g * interval '1 minute 1 microsecond',
			decode(md5(g::text), 'hex'), CASE WHEN g % 2 = 0 THEN 'vip' ELSE 'new' END, 'city' || g % 7
		FROM generate_series(1, 2500) g`,
	`INSERT INTO people VALUES
		(-9223372036854775808, '   ', '', '', 0, '-infinity', '', '', ''),
		(9223372036854775807, 'a b', NULL, NULL, NULL, NULL, NULL, 'new', NULL),
		(0, 'Ünï 😀', 'zoë@例え.jp', E'tab\tnew\nline ''quoted'' "dq" \\ 日本語 🏳️‍🌈', -9999999999.99, 'infinity', '\x00', 'vip', 'x'),
		(1000000, '123-45-6789', '  padded  ', 'NULL', 1e-2, '1999-12-31 23:59:59.999999+14', '\x00ff00', 'new', NULL)`,
	`INSERT INTO visits SELECT g, lpad((g % 2500 + 1)::text, 11, '0'), now() FROM generate_series(1, 600) g`,
	`INSERT INTO visits VALUES (1001, NULL, NULL), (1002, 'Ünï 😀', NULL), (1003, '   ', NULL)`,
}

const enginePlan = `version: 1
database:
  engine: postgres
  dsn: "%DSN%"
keystore: test.keystore
defaults:
  key: pii
job:
  workers: 2
  batch_rows: 500
  drop_check_constraints: true
  drop_defaults: true
  purge: true
tables:
  - name: people
    columns:
      - name: ssn
        iv: column
      - name: email
      - name: notes
        suite: aes-256-cbc
      - name: balance
        versioned: false
      - name: seen_at
      - name: photo
        suite: 3des-cbc
      - name: status
  - name: visits
    columns:
      - name: person_ssn
        iv: column
`

// TestEngineRoundTrip runs the migration engine against PostgreSQL: apply
// (prepare, copy, verify, cut-over, purge), verify, revert, and compares
// every row and every catalog entry of both tables with the start.
func TestEngineRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	d := postgres.Dialect{}
	db, err := d.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec(t, db, engineFixture...)
	tables := []string{"people", "visits"}
	catalog := catalogSnapshot(t, db, tables...)
	rows := rowSnapshot(t, db, tables...)

	dir := t.TempDir()
	ks := engineKeystore(t, filepath.Join(dir, "test.keystore"))
	planPath := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planPath, []byte(strings.Replace(enginePlan, "%DSN%", dsn, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := planner.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	newEngine := func() *migrate.Engine {
		e, err := migrate.New(p, d, db, ks, migrate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	res, err := newEngine().Apply(ctx)
	if err != nil {
		var blocked *migrate.BlockedError
		if errors.As(err, &blocked) {
			t.Fatalf("apply: %v", blocked)
		}
		t.Fatalf("apply: %v", err)
	}
	if res.Verify == nil || !res.Verify.OK() {
		t.Fatalf("apply's verify: %+v", res.Verify)
	}
	encrypted := catalogSnapshot(t, db, tables...)
	for _, c := range []string{"people.ssn", "people.email", "people.notes", "people.balance", "people.seen_at", "people.photo", "people.status", "visits.person_ssn"} {
		got := encrypted["column "+c]
		if !strings.HasPrefix(got, "bytea") {
			t.Errorf("after apply %s is %q, want bytea", c, got)
		}
	}
	for k, want := range map[string]string{
		"column people.ssn":                  "bytea NOT NULL",
		"column people.status":               "bytea NOT NULL",
		"constraint people_ssn_key":          catalog["constraint people_ssn_key"],
		"constraint visits_person_fk":        catalog["constraint visits_person_fk"],
		"index people_email_idx":             catalog["index people_email_idx"],
		"constraint people_pkey":             catalog["constraint people_pkey"],
		"column people.email_iv":             "", // the AEAD suite keeps its IV inline
		"column people.notes_iv":             "bytea NULL",
		"column people.photo_iv":             "bytea NULL",
		"constraint people_status_check":     "",
		"column people.ssn__colcrypt":        "",
		"column visits.person_ssn__colcrypt": "",
	} {
		if got := encrypted[k]; got != want {
			t.Errorf("after apply %s = %q, want %q", k, got, want)
		}
	}
	var plain int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM people WHERE position(convert_to('@example.com', 'UTF8') IN email) > 0`).Scan(&plain); err != nil || plain != 0 {
		t.Errorf("%d e-mails readable after apply (%v)", plain, err)
	}
	var nulls int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM people WHERE email IS NULL AND notes IS NULL AND notes_iv IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
		t.Errorf("%d rows with NULL email and notes after apply, want 1 (NULL stays NULL) (%v)", nulls, err)
	}

	st, err := newEngine().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Columns {
		var n int64
		for _, v := range c.Versions {
			n += v.Values
		}
		want := map[string]int64{"people.email": 2503, "people.balance": 0, "visits.person_ssn": 602}[strings.TrimPrefix(c.Table, "public.")+"."+c.Column]
		if c.State != migrate.StateEncrypted || (want > 0 && n != want) {
			t.Errorf("status of %s.%s: state %d, %d values by key version %+v", c.Table, c.Column, c.State, n, c.Versions)
		}
	}

	vr, err := newEngine().Verify(ctx)
	if err != nil || !vr.OK() {
		t.Fatalf("verify after cut-over: %+v, %v", vr, err)
	}
	if again, err := newEngine().Apply(ctx); err != nil || !again.Already {
		t.Errorf("second apply: %+v, %v; want nothing to do", again, err)
	}

	if _, err := newEngine().Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	restored := catalogSnapshot(t, db, tables...)
	catalog["constraint people_status_check"] = reparsedCheck(t, db, "people", "people_status_check")
	if !maps.Equal(restored, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, restored))
	}
	after := rowSnapshot(t, db, tables...)
	if !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}

func engineKeystore(t *testing.T, path string) *keystore.Keystore {
	t.Helper()
	cheap := keystore.WithKDF(keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})
	ks, err := keystore.Create(path, keystore.Secret{Passphrase: []byte("engine test passphrase")}, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := ks.Backup(path+".backup", []byte("backup passphrase"), cheap); err != nil {
		t.Fatal(err)
	}
	return ks
}

// rowSnapshot renders every row of the tables as JSON keyed by column
// name, so column order does not matter and types keep their text form
// (padding of char, scale of numeric, microseconds, bytea hex).
func rowSnapshot(t *testing.T, db *sql.DB, tables ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range tables {
		rows, err := db.QueryContext(t.Context(), `SELECT id::text, to_jsonb(x)::text FROM `+table+` x`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, js string
			if err := rows.Scan(&id, &js); err != nil {
				t.Fatal(err)
			}
			out[table+" "+id] = js
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func countDiff(want, got map[string]string) int {
	n := 0
	for k, v := range want {
		if got[k] != v {
			n++
		}
	}
	return n + max(0, len(got)-len(want))
}

func firstDiff(want, got map[string]string) string {
	for k, v := range want {
		if got[k] != v {
			return "  want " + v + "\n  got  " + got[k]
		}
	}
	return ""
}

// enginePlanHead is the start of the plans of the tests below.
const enginePlanHead = `version: 1
database:
  engine: postgres
  dsn: "%DSN%"
keystore: test.keystore
defaults:
  key: pii
  suite: aes-128-cbc
job:
  workers: 3
  batch_rows: 100
  plaintext: "null"
tables:
`

// engineRun is one database with a plan and a keystore.
type engineRun struct {
	db   *sql.DB
	plan string // its path
	p    *planner.Plan
	opt  migrate.Options
	eng  func() *migrate.Engine
}

// applyUntil runs apply up to and including phase (leaving r.opt.Until
// set to it) and fails the test on error.
func (r *engineRun) applyUntil(t *testing.T, phase string) {
	t.Helper()
	r.opt.Until = phase
	if _, err := r.eng().Apply(t.Context()); err != nil {
		t.Fatalf("apply until %s: %v", phase, err)
	}
}

func newEngineRun(t *testing.T, tables string, ddl ...string) *engineRun {
	t.Helper()
	return newEngineRunPlan(t, enginePlanHead+tables, ddl...)
}

// newEngineRunPlan is newEngineRun with the whole plan, whose "%DSN%" is
// replaced by the database's.
func newEngineRunPlan(t *testing.T, plan string, ddl ...string) *engineRun {
	t.Helper()
	dsn := pgtest.DSN(t)
	d := postgres.Dialect{}
	db, err := d.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec(t, db, ddl...)
	dir := t.TempDir()
	ks := engineKeystore(t, filepath.Join(dir, "test.keystore"))
	planPath := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(planPath, []byte(strings.Replace(plan, "%DSN%", dsn, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := planner.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &engineRun{db: db, plan: planPath, p: p}
	r.eng = func() *migrate.Engine {
		e, err := migrate.New(p, d, db, ks, r.opt)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	return r
}

// TestEngineCompositeKey runs the engine on a table keyed by (uuid, text)
// whose encrypted column has a unique constraint, with plaintext: null.
func TestEngineCompositeKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newEngineRun(t, `  - name: sessions
    columns:
      - name: token
        iv: column
      - name: note
`,
		`CREATE TABLE sessions (tenant uuid, name text, token char(8) NOT NULL UNIQUE, note text, PRIMARY KEY (tenant, name))`,
		`INSERT INTO sessions SELECT md5((g % 3)::text)::uuid, 'n' || g || ' ü', lpad(g::text, 8, 'x'),
			CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'note ' || g END FROM generate_series(1, 350) g`)
	catalog := catalogSnapshot(t, r.db, "sessions")
	rows := multisetSnapshot(t, r.db, "sessions")
	if _, err := r.eng().Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	}
	encrypted := catalogSnapshot(t, r.db, "sessions")
	for k, want := range map[string]string{
		`column sessions.token`:           "bytea NOT NULL",
		`column sessions.token_plaintext`: "character(8) NULL",
		`column sessions.note_plaintext`:  "text NULL",
		`constraint sessions_token_key`:   catalog["constraint sessions_token_key"],
		`constraint sessions_pkey`:        catalog["constraint sessions_pkey"],
	} {
		if got := encrypted[k]; got != want {
			t.Errorf("after apply %s = %q, want %q", k, got, want)
		}
	}
	if vr, err := r.eng().Verify(ctx); err != nil || !vr.OK() {
		t.Errorf("verify after cut-over: %+v, %v", vr, err)
	}
	if _, err := r.eng().Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if restored := catalogSnapshot(t, r.db, "sessions"); !maps.Equal(restored, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, restored))
	}
	if after := multisetSnapshot(t, r.db, "sessions"); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}

// TestEngineKeylessTable runs the engine on a table without a key: apply
// adds colcrypt_row_id to page through it and cut-over drops it.
func TestEngineKeylessTable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newEngineRun(t, `  - name: "Event Log"
    columns:
      - name: "Message"
      - name: at
`,
		`CREATE TABLE "Event Log" (id int, "Message" text NOT NULL, ip inet, at timestamp(3))`,
		`INSERT INTO "Event Log" SELECT g % 50, 'event ' || g || repeat('é', g % 13), ('10.0.' || g % 256 || '.1')::inet,
			timestamp '2024-01-01' + g * interval '1.001 s' FROM generate_series(1, 777) g`,
		`INSERT INTO "Event Log" VALUES (NULL, '', NULL, NULL), (1, 'dup', '::1', NULL), (1, 'dup', '::1', NULL)`)
	catalog := catalogSnapshot(t, r.db, "Event Log")
	rows := multisetSnapshot(t, r.db, "Event Log")
	res, err := r.eng().Apply(ctx)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if res.Verify == nil || !res.Verify.OK() || res.Verify.Rows != 780 {
		t.Errorf("apply's verify: %+v", res.Verify)
	}
	encrypted := catalogSnapshot(t, r.db, "Event Log")
	for k, want := range map[string]string{
		`column Event Log.Message`:           "bytea NOT NULL",
		`column Event Log.Message_plaintext`: "text NULL",
		`column Event Log.at_plaintext`:      "timestamp(3) without time zone NULL",
		`column Event Log.colcrypt_row_id`:   "",
	} {
		if got := encrypted[k]; got != want {
			t.Errorf("after apply %s = %q, want %q", k, got, want)
		}
	}
	vr, err := r.eng().Verify(ctx)
	if err != nil || !vr.OK() {
		t.Errorf("verify after cut-over: %+v, %v", vr, err)
	}
	if _, err := r.eng().Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if restored := catalogSnapshot(t, r.db, "Event Log"); !maps.Equal(restored, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, restored))
	}
	if after := multisetSnapshot(t, r.db, "Event Log"); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}

// multisetSnapshot counts the rows of tables (keyless ones too) by their
// JSON form, keyed by column name.
func multisetSnapshot(t *testing.T, db *sql.DB, tables ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range tables {
		q := `SELECT to_jsonb(x)::text, count(*)::text FROM ` + postgres.Dialect{}.Quote(table) + ` x GROUP BY 1`
		for _, r := range queryRows(t, db, q) {
			out[table+" "+r[0].(string)] = r[1].(string)
		}
	}
	return out
}

// TestEngineEncryptedPrimaryKey encrypts a primary key referenced by a
// foreign key: after cut-over the key the engine pages and writes by is
// itself a ciphertext.
func TestEngineEncryptedPrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newEngineRun(t, `  - name: accounts
    columns:
      - name: acct
        iv: column
      - name: owner
  - name: payments
    columns:
      - name: acct
        iv: column
`,
		`CREATE TABLE accounts (acct char(10) PRIMARY KEY, owner text NOT NULL)`,
		`CREATE TABLE payments (id bigint PRIMARY KEY, acct char(10) NOT NULL REFERENCES accounts ON DELETE CASCADE, amount numeric(8,2))`,
		`INSERT INTO accounts SELECT 'A' || g, 'owner ' || g FROM generate_series(1, 400) g`,
		`INSERT INTO accounts VALUES (' ', ''), ('Ω', 'omega')`,
		`INSERT INTO payments SELECT g, 'A' || (g % 400 + 1), g / 3.0 FROM generate_series(1, 900) g`,
		`INSERT INTO payments VALUES (1000, ' ', 1), (1001, 'Ω', 2)`)
	tables := []string{"accounts", "payments"}
	catalog := catalogSnapshot(t, r.db, tables...)
	rows := multisetSnapshot(t, r.db, tables...)
	if _, err := r.eng().Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	}
	encrypted := catalogSnapshot(t, r.db, tables...)
	for k, want := range map[string]string{
		`column accounts.acct`:          "bytea NOT NULL",
		`column payments.acct`:          "bytea NOT NULL",
		`constraint accounts_pkey`:      catalog["constraint accounts_pkey"],
		`constraint payments_acct_fkey`: catalog["constraint payments_acct_fkey"],
	} {
		if got := encrypted[k]; got != want || want == "" {
			t.Errorf("after apply %s = %q, want %q", k, got, want)
		}
	}
	if vr, err := r.eng().Verify(ctx); err != nil || !vr.OK() {
		t.Errorf("verify after cut-over: %+v, %v", vr, err)
	}
	if _, err := r.eng().Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if restored := catalogSnapshot(t, r.db, tables...); !maps.Equal(restored, catalog) {
		t.Errorf("after revert the catalog differs:\n%s", diffSnapshots(catalog, restored))
	}
	if after := multisetSnapshot(t, r.db, tables...); !maps.Equal(after, rows) {
		t.Errorf("after revert %d rows differ, e.g.:\n%s", countDiff(rows, after), firstDiff(rows, after))
	}
}
