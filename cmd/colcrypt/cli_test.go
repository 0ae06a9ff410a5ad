package main

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// cliResult is what one in-process command line produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs one colcrypt command line in-process through run, with a
// stdin that is not a terminal, so a missing passphrase fails instead of
// prompting.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, stdin)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// secretEnv lists every variable a secret can come from.
var secretEnv = []string{
	"COLCRYPT_PASSPHRASE", "COLCRYPT_MASTER_KEY",
	"COLCRYPT_NEW_PASSPHRASE", "COLCRYPT_NEW_MASTER_KEY",
	"COLCRYPT_BACKUP_PASSPHRASE",
}

// setSecrets empties every secret variable for the rest of the test (an
// empty variable counts as unset), then sets the given ones, as
// name, value pairs.
func setSecrets(t *testing.T, pairs ...string) {
	t.Helper()
	for _, name := range secretEnv {
		t.Setenv(name, "")
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		t.Setenv(pairs[i], pairs[i+1])
	}
}
