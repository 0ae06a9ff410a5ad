package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestOneTableUnderTwoNames: SQLite's main.customers is customers. A second
// plan spelling the table the other way must find the first job's work and
// refuse to encrypt its ciphertext again (it did: every value ended up
// encrypted twice, verify of the first plan failed on every row, and the
// reverts left ciphertext or a BLOB column behind).
func TestOneTableUnderTwoNames(t *testing.T) {
	for _, names := range [][2]string{{"customers", "main.customers"}, {"MAIN.customers", "customers"}} {
		t.Run(names[0]+" then "+names[1], func(t *testing.T) {
			f := newBadInputFixture(t)
			setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
			first := f.plan(t, "first.yaml", strings.Replace(goodPlanBody, "name: customers", "name: "+names[0], 1))
			if r := runCLI(t, "apply", first, "--no-backup-check"); r.code != 0 {
				t.Fatalf("apply %s: exit %d\n%s", names[0], r.code, r.stderr)
			}
			second := f.plan(t, "second.yaml", strings.Replace(goodPlanBody, "name: customers", "name: "+names[1], 1))
			for _, cmd := range []string{"plan", "apply"} {
				args := []string{cmd, second}
				if cmd == "apply" {
					args = append(args, "--no-backup-check")
				}
				r := runCLI(t, args...)
				if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "already encrypted") {
					t.Errorf("%s of %s after a job on %s: exit %d, want 1 with the already-encrypted blocker\nstdout: %s\nstderr: %s",
						cmd, names[1], names[0], r.code, r.stdout, r.stderr)
				}
			}
			if r := runCLI(t, "status", second, "--format", "json"); r.code != 0 || !strings.Contains(r.stdout, `"state": 3`) {
				t.Errorf("status of %s after a job on %s: exit %d, want the column encrypted (state 3)\n%s%s", names[1], names[0], r.code, r.stdout, r.stderr)
			}
			// The first plan's job is found under its own spelling.
			if r := runCLI(t, "verify", first); r.code != 0 {
				t.Errorf("verify of the first plan after the second was refused: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := runCLI(t, "revert", first); r.code != 0 {
				t.Errorf("revert of the first plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := runCLI(t, "plan", second); r.code != 0 {
				t.Errorf("plan of %s once the job on %s was reverted: exit %d\n%s%s", names[1], names[0], r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestPlanBesideAnotherPlansRekey: a rekey that another plan's job left
// half done is that plan's to finish; plan of this plan neither reports
// it as its own job nor tells the user to run a rekey this plan refuses.
func TestPlanBesideAnotherPlansRekey(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	first := f.plan(t, "first.yaml", goodPlanBody)
	mustRun(t, "apply", first, "--no-backup-check")
	mustRun(t, "keys", "add", f.keystore, "pii")
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER stop_rekey BEFORE UPDATE ON customers WHEN OLD.id = 1 BEGIN SELECT RAISE(ABORT, 'stop here'); END`); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "rekey", first, "--column", "customers.email", "--no-backup-check"); r.code == 0 {
		t.Fatalf("rekey went through the trigger meant to stop it\n%s", r.stdout)
	}
	if _, err := db.Exec(`DROP TRIGGER stop_rekey`); err != nil {
		t.Fatal(err)
	}
	second := f.plan(t, "second.yaml", strings.Replace(goodPlanBody, "- name: email", "- name: ssn\n        iv: column", 1))
	r := runCLI(t, "plan", second)
	if r.code != 0 || strings.Contains(r.stdout, "in progress") || strings.Contains(r.stdout, "rekey") {
		t.Errorf("plan of another column beside the first plan's unfinished rekey: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "status", first, "--format", "json"); r.code != 0 || !strings.Contains(r.stdout, `"state": 4`) {
		t.Errorf("status of the first plan: exit %d, want its column mid-rekey (state 4)\n%s%s", r.code, r.stdout, r.stderr)
	}
}
