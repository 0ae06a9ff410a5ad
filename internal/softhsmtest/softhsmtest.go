// Package softhsmtest gives a test a SoftHSM2 token of its own, in a new
// folder, with AES keys made inside it the way an HSM administrator would:
// non-extractable and sensitive. Without SoftHSM2 the test is skipped, or
// fails when CI is set (as internal/pgtest does for PostgreSQL).
package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Modules are where Debian's softhsm2 package puts the module.
var Modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

const missing = "SoftHSM2 is not installed (no libsofthsm2.so or softhsm2-util): run ./scripts/test, which installs Debian's softhsm2 package, or apt-get install softhsm2"

// Module returns the path of the SoftHSM2 module; without SoftHSM2 the
// test is skipped, or fails when CI is set.
func Module(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err == nil {
		for _, m := range Modules {
			if _, err := os.Stat(m); err == nil {
				return m
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal(missing)
	}
	t.Skip(missing)
	return ""
}

// Token is one initialized token of a SoftHSM2 whose configuration and
// token folder belong to the test.
type Token struct {
	Module string // the module to load
	Label  string
	PIN    string // the user PIN
}

// New points SOFTHSM2_CONF (for the rest of the test, so the test cannot
// be parallel) at a configuration whose token folder is new, and
// initializes a token labelled label with user PIN pin there.
func New(t testing.TB, label, pin string) *Token {
	t.Helper()
	module := Module(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok := &Token{Module: module, Label: label, PIN: pin}
	AddToken(t, label, pin)
	return tok
}

// AddToken initializes another token in the current SOFTHSM2_CONF's folder.
func AddToken(t testing.TB, label, pin string) {
	t.Helper()
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin+"-so")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token --label %s: %v\n%s", label, err, out)
	}
}
