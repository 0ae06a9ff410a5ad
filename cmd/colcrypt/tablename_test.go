package main

import (
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
			if r := runCLI(t, "verify", first); r.code != 0 {
				t.Errorf("verify of the first plan after the second was refused: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
