package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/schema"
)

// holdJobLock takes the job lock of table in the fixture's database, as
// another colcrypt run working on it would, until the returned function
// releases it (or the test ends).
func (f *fixture) holdJobLock(table string) func() {
	f.t.Helper()
	d, err := dialect.Get("sqlite")
	if err != nil {
		f.t.Fatal(err)
	}
	jl, ok := d.(dialect.JobLocker)
	if !ok {
		f.t.Fatal("the sqlite engine takes no job locks (dialect.JobLocker)")
	}
	db, err := d.Open(context.Background(), f.dbPath)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { db.Close() })
	release, err := jl.TryLockTables(context.Background(), db, []string{dialect.TableKey(d, schema.ParseTableName(table))})
	if err != nil {
		f.t.Fatalf("lock %s: %v", table, err)
	}
	f.t.Cleanup(release)
	return release
}

// fileBytes is the database file and its write-ahead log, if any.
func (f *fixture) fileBytes() []byte {
	f.t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(f.dbPath + suffix)
		if err != nil && !os.IsNotExist(err) {
			f.t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

var lockedMessage = regexp.MustCompile(`^another colcrypt run \(apply, revert or rekey\) is working on table (main\.)?customers: wait for it to finish, or stop it; nothing was changed$`)

// wantLockedOut checks that a command ran into another run's job lock:
// exit 2, a message saying so, and the database file untouched.
func (f *fixture) wantLockedOut(what string, before []byte, run func() error) {
	f.t.Helper()
	err := run()
	switch {
	case err == nil:
		f.t.Fatalf("%s while another run holds the job lock: no error", what)
	case exitcode.Of(err) != exitcode.BadInput || !errors.Is(err, dialect.ErrLockHeld) || !lockedMessage.MatchString(err.Error()):
		f.t.Fatalf("%s while another run holds the job lock: exit %d: %v; want exit 2 saying another run is working on customers", what, exitcode.Of(err), err)
	}
	var locked *migrate.TableLockedError
	if !errors.As(err, &locked) {
		f.t.Errorf("%s: %v is not a *migrate.TableLockedError", what, err)
	}
	if !bytes.Equal(before, f.fileBytes()) {
		f.t.Fatalf("%s was refused for the job lock but changed the database file", what)
	}
}

// TestJobLockRefusesApplyRevertRekey: while another run holds the job lock
// of the planned table, apply, revert and rekey each stop at once with
// exit 2 and nothing changed; once it is released, each runs.
func TestJobLockRefusesApplyRevertRekey(t *testing.T) {
	f := newFixture(t, customersSetup(60)...)
	p := customersPlan(f, "plan.yaml", "")
	original := f.snapshot()

	release := f.holdJobLock("customers")
	f.wantLockedOut("apply", f.fileBytes(), func() error {
		_, err := f.engine(p, f.ks, migrate.Options{}).Apply(context.Background())
		return err
	})
	release()
	f.apply(p, migrate.Options{})
	f.wantEncrypted("customers", "ssn", "email", "notes")

	if _, err := f.ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	release = f.holdJobLock("customers")
	encrypted := f.fileBytes()
	f.wantLockedOut("rekey", encrypted, func() error {
		_, err := f.engine(p, f.ks, migrate.Options{NoBackupCheck: true}).Rekey(context.Background(), nil)
		return err
	})
	f.wantLockedOut("revert", encrypted, func() error {
		_, err := f.engine(p, f.ks, migrate.Options{}).Revert(context.Background())
		return err
	})
	// Read-only commands take no lock.
	if v := f.verify(p); !v.OK() {
		t.Fatalf("verify while another run holds the job lock: %v", v.Err())
	}
	f.wantStates(p, migrate.StateEncrypted)
	release()

	if res, err := f.engine(p, f.ks, migrate.Options{NoBackupCheck: true}).Rekey(context.Background(), nil); err != nil || res.Already {
		t.Fatalf("rekey once the lock is released: %+v, %v", res, err)
	}
	f.revert(p)
	if d := original.diff(f.snapshot()); d != "" {
		t.Fatalf("after the refused commands, the apply, rekey and revert the database differs:\n%s", d)
	}
}

// TestJobLockIsPerTable: a plan spelling the locked table another way is
// refused too (names compare as dialect.TableKey does), while a plan on
// another table of the same database runs beside the lock.
func TestJobLockIsPerTable(t *testing.T) {
	f := newFixture(t, append(customersSetup(30),
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, card TEXT)",
		"INSERT INTO orders VALUES (1, '4111111111111111'), (2, NULL), (3, '5500000000000004')")...)
	f.holdJobLock("customers")

	other := f.plan("main-customers.yaml", planSpec{tables: []planTable{{name: "main.customers", columns: []planColumn{{name: "email"}}}}})
	f.wantLockedOut("apply of a plan naming main.customers", f.fileBytes(), func() error {
		_, err := f.engine(other, f.ks, migrate.Options{}).Apply(context.Background())
		return err
	})
	both := f.plan("both.yaml", planSpec{tables: []planTable{
		{name: "orders", columns: []planColumn{{name: "card"}}},
		{name: "customers", columns: []planColumn{{name: "email"}}}}})
	f.wantLockedOut("apply of a plan naming orders and customers", f.fileBytes(), func() error {
		_, err := f.engine(both, f.ks, migrate.Options{}).Apply(context.Background())
		return err
	})

	orders := f.plan("orders.yaml", planSpec{tables: []planTable{{name: "orders", columns: []planColumn{{name: "card"}}}}})
	f.apply(orders, migrate.Options{})
	f.wantEncrypted("orders", "card")
	f.revert(orders)
}
