package migrate_test

import (
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestOfflineInPlaceJobGuardsItsWrites: from prepare to cut-over an
// offline job that encrypts a SQLite table in place refuses a new row and
// a new value of a planned column, which the cut-over would lose, naming
// the plan and what to run; other columns and deletes stay writable. A
// revert before the cut-over lifts the guard, and the whole job, cut-over
// and revert leave no trace of it.
func TestOfflineInPlaceJobGuardsItsWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, append(customersSetup(300), `ALTER TABLE customers ADD COLUMN visits INTEGER`)...)
	p := customersPlan(f, "plan.yaml", "")
	guarded := []string{
		`INSERT INTO customers (id, ssn) VALUES (9999, 'late')`,
		`UPDATE customers SET email = 'changed@example.com' WHERE id = 1`,
		`UPDATE customers SET visits = 1, notes = NULL WHERE id = 2`,
	}
	guards := func() int {
		db := f.raw()
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'colcrypt\_guard\_%' ESCAPE '\'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	f.apply(p, migrate.Options{Until: "copy", InPlace: true})
	for _, w := range guarded {
		err := f.execErr(w)
		if err == nil {
			t.Errorf("%s after the copy went through", w)
			continue
		}
		for _, want := range []string{"customers in place", "would be lost at its cut-over", "colcrypt apply " + p.Path, "colcrypt revert " + p.Path} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the refusal %q does not say %q", w, err, want)
			}
		}
	}
	f.exec(`UPDATE customers SET visits = 1 WHERE id = 3`, `DELETE FROM customers WHERE id = 4`)
	f.revert(p)
	if n := guards(); n != 0 {
		t.Errorf("after the revert before the cut-over the table has %d guard triggers", n)
	}
	f.exec(guarded[2])

	before := f.snapshot()
	f.apply(p, migrate.Options{InPlace: true})
	if n := guards(); n != 0 {
		t.Errorf("after the cut-over the table has %d guard triggers", n)
	}
	f.wantVerifiedAndReverted(p, before, -1)
}
