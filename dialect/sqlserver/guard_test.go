package sqlserver

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

const guardRefusal = "colcrypt: job 7 is encrypting dbo.t in place, offline: run colcrypt apply 'plans/it''s.yaml'"

// TestGuardStatementsAreTSQL puts the write guard through the T-SQL
// grammar: its trigger on every kind of table name and column name, its
// drop, and the cut-over's check that it is enabled.
func TestGuardStatementsAreTSQL(t *testing.T) {
	for _, tn := range moverTables {
		tn = withDefaultSchema(tn)
		requireTSQL(t, "guard of "+tn.String(), withinTriggerGrammar(guardSQL(tn, []string{"email", "we]ird 'col"}, guardRefusal)))
		requireTSQL(t, "lift the guard of "+tn.String(), dropGuardStep(tn).sql)
	}
	requireTSQL(t, "disabled trigger query", triggerDisabledSQL)

	got := guardSQL(withDefaultSchema(schema.TableName{Name: "cc_customers"}), []string{"email", "ssn"}, guardRefusal)
	for _, frag := range []string{
		"CREATE OR ALTER TRIGGER [dbo].[colcrypt_guard_cc_customers] ON [dbo].[cc_customers] AFTER INSERT, UPDATE AS",
		"IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;",
		"IF NOT EXISTS (SELECT 1 FROM deleted) OR UPDATE([email]) OR UPDATE([ssn])",
		"THROW 50000, N'colcrypt: job 7 is encrypting dbo.t in place, offline: run colcrypt apply ''plans/it''''s.yaml''', 1;",
	} {
		if !strings.Contains(got, frag) {
			t.Errorf("guard lacks %q:\n%s", frag, got)
		}
	}
	// Negative control: a THROW without its state is not T-SQL.
	if errs := tsqlErrors(strings.Replace(withinTriggerGrammar(got), ", 1;", ";", 1)); len(errs) == 0 {
		t.Error("the checker accepted a THROW without its state")
	}
	long := guardSQL(withDefaultSchema(schema.TableName{Name: "t"}), []string{"c"}, strings.Repeat("é", 3000))
	if n := strings.Count(long, "é"); n != maxThrowChars {
		t.Errorf("a refusal of 3000 characters kept %d, want %d", n, maxThrowChars)
	}
}

// TestSwapLiftsTheGuard: the cut-over and the revert's cut-over drop the
// guard before the columns it names, once per table, in their
// transaction.
func TestSwapLiftsTheGuard(t *testing.T) {
	for _, forward := range []bool{true, false} {
		group := customersGroup(forward)
		name := "guarded swap"
		if !forward {
			name = "guarded unswap"
		}
		steps := stepsFor(t, name, group, allPending(group))
		for _, ts := range group {
			tn := withDefaultSchema(ts.Table.Name)
			frag := "DROP TRIGGER " + quoteTable(guardTrigger(tn))
			if n := count(steps, frag); n != 1 {
				t.Errorf("forward %v: %q %d times:\n%s", forward, frag, n, strings.Join(sqlOf(steps), "\n"))
				continue
			}
			guard := find(t, steps, frag)
			column := find(t, steps, "ALTER TABLE "+quoteTable(tn)+" DROP COLUMN ["+ts.Columns[0].Name+"]")
			if column < 0 || guard > column {
				t.Errorf("forward %v: %s: the guard is lifted at step %d, the column dropped at %d", forward, tn, guard, column)
			}
		}
	}
}

// TestWriteGuardOnServer: the guard refuses an insert and an update of a
// guarded column with the refusal, lets other writes through, and a
// disabled guard stops the cut-over.
func TestWriteGuardOnServer(t *testing.T) {
	tn := schema.TableName{Schema: "dbo", Name: "cm_guarded"}
	ctx, db := serverTable(t, "write-guard", tn,
		"CREATE TABLE dbo.cm_guarded (id int NOT NULL PRIMARY KEY, email varchar(64) NULL, note varchar(20) NULL)",
		"INSERT INTO dbo.cm_guarded (id, email, note) VALUES (1, 'a@example.com', 'x'), (2, 'b@example.com', 'y')")
	d := sqlServer{}
	exec := func(q string) error {
		_, err := db.ExecContext(ctx, q)
		return err
	}
	if err := d.GuardWrites(ctx, db, tn, []string{"email"}, guardRefusal); err != nil {
		t.Fatal(err)
	}
	// The guard is colcrypt's own: the catalog reader leaves it out of the
	// table's triggers, which the planner would otherwise report.
	if tb, err := d.ReadTable(ctx, db, tn); err != nil {
		t.Fatal(err)
	} else if len(tb.Triggers) != 0 {
		t.Errorf("the table's triggers include %s", tb.Triggers[0].Name)
	}
	refused := map[string]string{
		"insert":                  "INSERT INTO dbo.cm_guarded (id, note) VALUES (3, 'z')",
		"update of email":         "UPDATE dbo.cm_guarded SET email = 'c@example.com' WHERE id = 1",
		"update of email as is":   "UPDATE dbo.cm_guarded SET email = email WHERE id = 2",
		"merge inserting a row":   "MERGE dbo.cm_guarded AS t USING (SELECT 4 AS id) AS s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id);",
		"update in a transaction": "BEGIN TRANSACTION; UPDATE dbo.cm_guarded SET note = 'n', email = NULL WHERE id = 1; COMMIT",
	}
	for what, q := range refused {
		if err := exec(q); err == nil || !strings.Contains(err.Error(), "colcrypt: job 7 is encrypting") {
			t.Errorf("%s: got %v, want the refusal", what, err)
		}
	}
	for what, q := range map[string]string{
		"update of another column": "UPDATE dbo.cm_guarded SET note = 'w' WHERE id = 1",
		"update of no row":         "UPDATE dbo.cm_guarded SET email = 'c@example.com' WHERE id = 99",
		"delete":                   "DELETE FROM dbo.cm_guarded WHERE id = 2",
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	var rows int
	var email sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(email) FROM dbo.cm_guarded").Scan(&rows, &email); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || email.String != "a@example.com" {
		t.Errorf("after the writes: %d rows, e-mail %q; want 1 row with a@example.com", rows, email.String)
	}

	// The cut-over's check, in the transaction it runs in.
	check := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // read only
		return refuseDisabledTriggers(ctx, tx, dialect.TableSwap{Table: &schema.Table{Name: tn}}, true)
	}
	if err := check(); err != nil {
		t.Errorf("enabled guard: %v", err)
	}
	if err := exec("DISABLE TRIGGER dbo.colcrypt_guard_cm_guarded ON dbo.cm_guarded"); err != nil {
		t.Fatal(err)
	}
	if err := check(); err == nil || !strings.Contains(err.Error(), "ENABLE TRIGGER [dbo].[colcrypt_guard_cm_guarded] ON [dbo].[cm_guarded]") {
		t.Errorf("disabled guard: got %v, want the refusal naming how to enable it", err)
	}
	if err := d.DropWriteGuard(ctx, db, tn); err != nil {
		t.Fatal(err)
	}
	if err := exec("INSERT INTO dbo.cm_guarded (id, email) VALUES (5, 'e@example.com')"); err != nil {
		t.Errorf("after the guard was lifted: %v", err)
	}
	if err := d.DropWriteGuard(ctx, db, tn); err != nil {
		t.Errorf("lifting a guard that is gone: %v", err)
	}
}
