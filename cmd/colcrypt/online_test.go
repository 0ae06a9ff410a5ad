package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyOnline: --online runs the job with change capture, and a job
// prepared offline refuses to continue online.
func TestApplyOnline(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	online := f.plan(t, "online.yaml", goodPlanBody)
	r := runCLI(t, "apply", online, "--online", "--no-backup-check")
	if r.code != 0 || !strings.Contains(r.stdout, "phase done complete") {
		t.Fatalf("apply --online: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "verify", online); r.code != 0 {
		t.Fatalf("verify after apply --online: exit %d\n%s", r.code, r.stderr)
	}

	// A job that is done has nothing to do online either.
	if r := runCLI(t, "apply", online, "--online"); r.code != 0 || !strings.Contains(r.stdout, "already done") {
		t.Errorf("apply --online of a finished job: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	offline := f.plan(t, "offline.yaml", strings.Replace(goodPlanBody, "- name: email", "- name: ssn\n        iv: column", 1))
	if r := runCLI(t, "apply", offline, "--until", "copy"); r.code != 0 {
		t.Fatalf("apply --until copy: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, "apply", offline, "--online", "--no-backup-check")
	if r.code != 2 || !strings.Contains(r.stderr, "was prepared offline") {
		t.Errorf("resuming an offline job with --online: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, "apply", offline, "--no-backup-check"); r.code != 0 {
		t.Fatalf("finishing the offline job: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, "apply", offline, "--online"); r.code != 0 || !strings.Contains(r.stdout, "already done") {
		t.Errorf("apply --online of a job finished offline: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyBeforeTheCopyFinished: verify of a job whose copy has not
// finished checks what it wrote so far, exits 0 and says so.
func TestVerifyBeforeTheCopyFinished(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	plan := f.plan(t, "plan.yaml", goodPlanBody)
	if r := runCLI(t, "apply", plan, "--until", "prepare"); r.code != 0 {
		t.Fatalf("apply --until prepare: exit %d\n%s", r.code, r.stderr)
	}
	r := runCLI(t, "verify", plan)
	if r.code != 0 || !strings.Contains(r.stdout, "verify passed so far: the copy is not finished, and the 0 values in the 0 rows it has written") {
		t.Fatalf("verify after prepare: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// TestDryRunLeavesTheFileAsItWas: plan reads the database and changes
// nothing in it, not even its journal mode (a setting of the file, which
// other programs use too), and neither does an apply refused before it
// begins.
func TestDryRunLeavesTheFileAsItWas(t *testing.T) {
	f := newBadInputFixture(t)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	db := filepath.Join(f.dir, "shop.db")
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "plan", f.plan(t, "plan.yaml", goodPlanBody)); r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	missing := f.plan(t, "missing.yaml", strings.Replace(goodPlanBody, "- name: email", "- name: email\n        key: nosuchkey", 1))
	if r := runCLI(t, "apply", missing); r.code != 2 || !strings.Contains(r.stderr, "nosuchkey") {
		t.Fatalf("apply with a key the keystore lacks: exit %d, want 2\n%s", r.code, r.stderr)
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("plan and a refused apply changed the database file (header bytes 18-19, the journal mode: %v, then %v)", before[18:20], after[18:20])
	}
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(db + side); err == nil {
			t.Errorf("plan left %s beside the database", filepath.Base(db+side))
		}
	}
}
