//go:build cgo

package main

import (
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/internal/softhsmtest"
	"github.com/colcrypt/colcrypt/keystore"
)

// The PKCS#11 variables join the secret variables setSecrets empties.
func init() {
	secretEnv = append(secretEnv,
		"COLCRYPT_PKCS11_MODULE", "COLCRYPT_PKCS11_TOKEN", "COLCRYPT_PKCS11_KEY", "COLCRYPT_PKCS11_PIN",
		"COLCRYPT_NEW_PKCS11_MODULE", "COLCRYPT_NEW_PKCS11_TOKEN", "COLCRYPT_NEW_PKCS11_KEY", "COLCRYPT_NEW_PKCS11_PIN")
}

const (
	cliToken = "colcrypt-cli"
	cliKey   = "colcrypt-master"
	cliPIN   = "731902" // searched for in every output: make it unlike anything else printed
)

// newCLIHSM gives the test a SoftHSM2 token with one AES key.
func newCLIHSM(t *testing.T) *softhsmtest.Token {
	t.Helper()
	tok := softhsmtest.New(t, cliToken, cliPIN)
	tok.AddAESKey(t, cliKey)
	return tok
}

// hsmEnv is every variable that creates a keystore in the test's token.
func hsmEnv(tok *softhsmtest.Token) []string {
	return []string{"COLCRYPT_PKCS11_MODULE", tok.Module, "COLCRYPT_PKCS11_TOKEN", tok.Label,
		"COLCRYPT_PKCS11_KEY", cliKey, "COLCRYPT_PKCS11_PIN", tok.PIN}
}

// hsmOpenEnv is what opens a keystore in the test's token: the labels are
// in the keystore.
func hsmOpenEnv(tok *softhsmtest.Token) []string {
	return []string{"COLCRYPT_PKCS11_MODULE", tok.Module, "COLCRYPT_PKCS11_PIN", tok.PIN}
}

func hsmSecret(tok *softhsmtest.Token) keystore.Secret {
	return keystore.Secret{PKCS11: &keystore.PKCS11{Module: tok.Module, PIN: []byte(tok.PIN)}}
}

// tableHex is every stored byte of customers, as hex, in id order.
func tableHex(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT * FROM customers ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(strings.Join(cols, ",") + "\n")
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				b.WriteString("x" + hex.EncodeToString(v))
			case string:
				b.WriteString("s" + hex.EncodeToString([]byte(v)))
			case nil:
				b.WriteString("NULL")
			default:
				fmt.Fprintf(&b, "%T %v", v, v)
			}
			b.WriteString(";")
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// secretsIn fails the test when any output holds a secret: the PIN, a
// master key, or a data key in hex or base64.
func secretsIn(t *testing.T, outputs []string, secrets map[string]string) {
	t.Helper()
	for what, secret := range secrets {
		for _, out := range outputs {
			if strings.Contains(strings.ToLower(out), strings.ToLower(secret)) {
				t.Errorf("output contains %s:\n%s", what, out)
			}
		}
	}
}

// TestHSMRoundTrip: a keystore made in the HSM by keys init, a key added,
// backed up, a SQLite plan applied, verified and reverted, every command
// opening the keystore through the HSM; and nothing printed or logged
// (-v) holds the PIN, a master key or a data key.
func TestHSMRoundTrip(t *testing.T) {
	tok := newCLIHSM(t)
	f := newBadInputFixture(t)
	if err := os.Remove(f.keystore); err != nil {
		t.Fatal(err)
	}
	plan := f.plan(t, "good.yaml", goodPlanBody)
	var outputs []string
	run := func(args ...string) cliResult {
		t.Helper()
		r := mustRun(t, append([]string{"-v"}, args...)...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}

	setSecrets(t, hsmEnv(tok)...)
	r := run("keys", "init", f.keystore)
	if want := "created keystore " + f.keystore + `, protected by a PKCS#11 key "colcrypt-master" in token "colcrypt-cli"` + "\n"; r.stdout != want {
		t.Errorf("keys init printed %q, want %q", r.stdout, want)
	}
	run("keys", "add", f.keystore, "pii")

	// From here on the module and the PIN are enough.
	setSecrets(t, append(hsmOpenEnv(tok), "COLCRYPT_BACKUP_PASSPHRASE", testBackup)...)
	run("keys", "backup", f.keystore, filepath.Join(f.dir, "shop.backup"))
	keys := listJSON(t, f.keystore)
	if len(keys) != 1 || keys[0].Name != "pii" || keys[0].Version != 1 {
		t.Fatalf("keys list: %+v", keys)
	}
	run("apply", plan)
	if got := emails(t, f); got == plaintextEmails {
		t.Fatalf("customers.email after apply is still plaintext: %s", got)
	}
	run("verify", plan)
	run("status", plan)
	run("revert", plan)
	if got := emails(t, f); got != plaintextEmails {
		t.Errorf("customers.email after revert = %q, want %q", got, plaintextEmails)
	}

	// A rewrap onto a master key and back shows that key in the search too.
	setSecrets(t, append(hsmOpenEnv(tok), "COLCRYPT_NEW_MASTER_KEY", testMasterHex)...)
	run("keys", "rewrap", f.keystore)
	setSecrets(t, "COLCRYPT_MASTER_KEY", testMasterHex, "COLCRYPT_PKCS11_MODULE", tok.Module,
		"COLCRYPT_NEW_PKCS11_TOKEN", tok.Label, "COLCRYPT_NEW_PKCS11_KEY", cliKey, "COLCRYPT_NEW_PKCS11_PIN", tok.PIN)
	r = run("keys", "rewrap", f.keystore)
	if want := "rewrapped keystore " + f.keystore + `: 1 keys, now protected by the new PKCS#11 key "colcrypt-master" in token "colcrypt-cli"` + "\n"; r.stdout != want {
		t.Errorf("keys rewrap printed %q, want %q", r.stdout, want)
	}

	secrets := map[string]string{"the PIN": cliPIN, "the master key": testMasterHex}
	for id, dek := range deks(t, f.keystore, hsmSecret(tok)) {
		secrets["data key "+id+" (hex)"] = hex.EncodeToString(dek)
		secrets["data key "+id+" (base64)"] = base64.StdEncoding.EncodeToString(dek)
	}
	if !strings.Contains(strings.Join(outputs, ""), "level=DEBUG") {
		t.Error("-v logged nothing at debug level: the search for secrets saw no debug logs")
	}
	secretsIn(t, outputs, secrets)
	data, err := os.ReadFile(f.keystore)
	if err != nil {
		t.Fatal(err)
	}
	secretsIn(t, []string{string(data)}, map[string]string{"the PIN": cliPIN, "the module path": tok.Module})
}

// TestHSMRewrapKeepsTheRows moves the keystore of an encrypted table from
// a passphrase to the HSM and back: the data keys, their check values and
// every stored byte of the table stay the same, and verify passes under
// each protector.
func TestHSMRewrapKeepsTheRows(t *testing.T) {
	tok := newCLIHSM(t)
	f := newBadInputFixture(t)
	plan := f.plan(t, "good.yaml", goodPlanBody)
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
	mustRun(t, "apply", plan, "--no-backup-check")
	rows := tableHex(t, f.dir)
	keys := listJSON(t, f.keystore)
	before := deks(t, f.keystore, keystore.Secret{Passphrase: []byte(badInputPass)})

	// passphrase → HSM; the module variable is shared with the new side,
	// and does not count as a second secret next to COLCRYPT_PASSPHRASE.
	setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass, "COLCRYPT_PKCS11_MODULE", tok.Module,
		"COLCRYPT_NEW_PKCS11_TOKEN", tok.Label, "COLCRYPT_NEW_PKCS11_KEY", cliKey, "COLCRYPT_NEW_PKCS11_PIN", tok.PIN)
	r := mustRun(t, "keys", "rewrap", f.keystore, "--plan", plan)
	if want := "rewrapped keystore " + f.keystore + `: 1 keys, now protected by the new PKCS#11 key "colcrypt-master" in token "colcrypt-cli"` + "\n"; r.stdout != want {
		t.Errorf("rewrap printed %q, want %q", r.stdout, want)
	}
	if r := runCLI(t, "keys", "list", f.keystore); r.code != exitcode.BadInput {
		t.Errorf("the old passphrase still opens the keystore after rewrap onto the HSM: exit %d", r.code)
	}
	setSecrets(t, hsmOpenEnv(tok)...)
	if got := listJSON(t, f.keystore); !equalKeys(got, keys) {
		t.Errorf("keys after rewrap onto the HSM = %+v, want %+v", got, keys)
	}
	mustRun(t, "verify", plan)
	sameDEKs(t, before, deks(t, f.keystore, hsmSecret(tok)))

	// HSM → passphrase.
	const newPass = "passphrase after the HSM"
	setSecrets(t, append(hsmOpenEnv(tok), "COLCRYPT_NEW_PASSPHRASE", newPass)...)
	r = mustRun(t, "keys", "rewrap", f.keystore)
	if want := "rewrapped keystore " + f.keystore + ": 1 keys, now protected by the new passphrase\n"; r.stdout != want {
		t.Errorf("rewrap printed %q, want %q", r.stdout, want)
	}
	setSecrets(t, "COLCRYPT_PASSPHRASE", newPass)
	if got := listJSON(t, f.keystore); !equalKeys(got, keys) {
		t.Errorf("keys after rewrap back onto a passphrase = %+v, want %+v", got, keys)
	}
	mustRun(t, "verify", plan)
	sameDEKs(t, before, deks(t, f.keystore, keystore.Secret{Passphrase: []byte(newPass)}))
	if got := tableHex(t, f.dir); got != rows {
		t.Errorf("the table's bytes changed across the rewraps:\nbefore\n%s\nafter\n%s", rows, got)
	}
}

func sameDEKs(t *testing.T, want, got map[string][]byte) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%d data keys, want %d", len(got), len(want))
	}
	for id, w := range want {
		if hex.EncodeToString(got[id]) != hex.EncodeToString(w) {
			t.Errorf("data key %s changed", id)
		}
	}
}

// TestHSMErrors: each mistake with the HSM is exit 2 and one line naming
// the module, token or key and the variable to fix, without the PIN.
func TestHSMErrors(t *testing.T) {
	tok := newCLIHSM(t)
	softhsmtest.AddToken(t, "spare", "2468")
	dir := t.TempDir()
	hsmStore := filepath.Join(dir, "hsm.keystore")
	setSecrets(t, hsmEnv(tok)...)
	mustRun(t, "keys", "init", hsmStore)
	passStore := filepath.Join(dir, "pass.keystore")
	if _, err := keystore.Create(passStore, keystore.Secret{Passphrase: []byte(testPass)}, cheapKDF); err != nil {
		t.Fatal(err)
	}
	notModule := filepath.Join(dir, "libbogus.so")
	if err := os.WriteFile(notModule, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "libmissing.so")
	newStore := filepath.Join(dir, "new.keystore")
	env := func(pairs ...string) []string {
		base := map[string]string{}
		for i := 0; i+1 < len(hsmEnv(tok)); i += 2 {
			base[hsmEnv(tok)[i]] = hsmEnv(tok)[i+1]
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			base[pairs[i]] = pairs[i+1]
		}
		var out []string
		for k, v := range base {
			out = append(out, k, v)
		}
		return out
	}
	module := tok.Module

	for _, c := range []struct {
		name string
		env  []string
		args []string
		msg  string // the fixture folder written as $DIR, the module as $MODULE
	}{
		{"module not found", env("COLCRYPT_PKCS11_MODULE", missing), []string{"keys", "init", newStore},
			"colcrypt: create keystore $DIR/new.keystore: PKCS#11 module $DIR/libmissing.so: no such file " +
				"(set COLCRYPT_PKCS11_MODULE to the path of the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2)"},
		{"not a PKCS#11 module", env("COLCRYPT_PKCS11_MODULE", notModule), []string{"keys", "list", hsmStore},
			"colcrypt: open keystore $DIR/hsm.keystore: PKCS#11 module $DIR/libbogus.so: not a PKCS#11 module " +
				"(it cannot be loaded as a shared library, or has no C_GetFunctionList) " +
				"(set COLCRYPT_PKCS11_MODULE to the path of the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2)"},
		{"token not found", env("COLCRYPT_PKCS11_TOKEN", "prod"), []string{"keys", "init", newStore},
			`colcrypt: create keystore $DIR/new.keystore: no PKCS#11 token labelled "prod" in module $MODULE (tokens present: "colcrypt-cli", "spare") ` +
				"(set COLCRYPT_PKCS11_TOKEN to the label of one of the module's tokens, or COLCRYPT_PKCS11_MODULE to another HSM's module)"},
		{"wrong PIN", env("COLCRYPT_PKCS11_PIN", "000000"), []string{"keys", "list", hsmStore},
			`colcrypt: open keystore $DIR/hsm.keystore: PKCS#11 token "colcrypt-cli": wrong PIN (CKR_PIN_INCORRECT) (set COLCRYPT_PKCS11_PIN to the token's user PIN)`},
		{"wrong PIN at init", env("COLCRYPT_PKCS11_PIN", "000000"), []string{"keys", "init", newStore},
			`colcrypt: create keystore $DIR/new.keystore: PKCS#11 token "colcrypt-cli": wrong PIN (CKR_PIN_INCORRECT) (set COLCRYPT_PKCS11_PIN to the token's user PIN)`},
		{"key not found", env("COLCRYPT_PKCS11_KEY", "nope"), []string{"keys", "init", newStore},
			`colcrypt: create keystore $DIR/new.keystore: no AES key labelled "nope" in PKCS#11 token "colcrypt-cli" ` +
				"(set COLCRYPT_PKCS11_KEY to the label of an AES key in the token (made in the HSM, not extractable, allowed to encrypt and decrypt))"},
		{"labels not the keystore's", env("COLCRYPT_PKCS11_TOKEN", "spare", "COLCRYPT_PKCS11_PIN", "2468"), []string{"keys", "list", hsmStore},
			`colcrypt: open keystore $DIR/hsm.keystore: protected by a PKCS#11 key in token "colcrypt-cli", not in token "spare" ` +
				"(unset COLCRYPT_PKCS11_TOKEN and COLCRYPT_PKCS11_KEY: the keystore names its own token and key)"},
		{"HSM keystore, passphrase given", []string{"COLCRYPT_PASSPHRASE", testPass}, []string{"keys", "list", hsmStore},
			`colcrypt: open keystore $DIR/hsm.keystore: protected by a PKCS#11 key "colcrypt-master" in token "colcrypt-cli", not a passphrase ` +
				"(set COLCRYPT_PKCS11_MODULE and COLCRYPT_PKCS11_PIN instead of COLCRYPT_PASSPHRASE)"},
		{"HSM keystore, master key given", []string{"COLCRYPT_MASTER_KEY", testMasterHex}, []string{"keys", "list", hsmStore},
			`colcrypt: open keystore $DIR/hsm.keystore: protected by a PKCS#11 key "colcrypt-master" in token "colcrypt-cli", not a master key ` +
				"(set COLCRYPT_PKCS11_MODULE and COLCRYPT_PKCS11_PIN instead of COLCRYPT_MASTER_KEY)"},
		{"passphrase keystore, HSM given", hsmOpenEnv(tok), []string{"keys", "list", passStore},
			"colcrypt: open keystore $DIR/pass.keystore: protected by a passphrase, not a PKCS#11 key " +
				"(set COLCRYPT_PASSPHRASE instead of the COLCRYPT_PKCS11_* variables)"},
		{"HSM and passphrase both set", env("COLCRYPT_PASSPHRASE", testPass), []string{"keys", "list", hsmStore},
			"colcrypt: open keystore $DIR/hsm.keystore: both COLCRYPT_PASSPHRASE and the COLCRYPT_PKCS11_* variables are set: set only one"},
		{"HSM and master key both set", env("COLCRYPT_MASTER_KEY", testMasterHex), []string{"keys", "init", newStore},
			"colcrypt: create keystore $DIR/new.keystore: both COLCRYPT_MASTER_KEY and the COLCRYPT_PKCS11_* variables are set: set only one"},
		{"new HSM and new passphrase both set", append(hsmOpenEnv(tok), "COLCRYPT_NEW_PASSPHRASE", "x", "COLCRYPT_NEW_PKCS11_PIN", "1"),
			[]string{"keys", "rewrap", hsmStore},
			"colcrypt: rewrap keystore $DIR/hsm.keystore: both COLCRYPT_NEW_PASSPHRASE and the COLCRYPT_NEW_PKCS11_* variables are set: set only one"},
		{"init without a key label", []string{"COLCRYPT_PKCS11_MODULE", module, "COLCRYPT_PKCS11_TOKEN", cliToken, "COLCRYPT_PKCS11_PIN", cliPIN},
			[]string{"keys", "init", newStore},
			"colcrypt: create keystore $DIR/new.keystore: COLCRYPT_PKCS11_KEY not set: a master key in a PKCS#11 HSM needs " +
				"COLCRYPT_PKCS11_MODULE, COLCRYPT_PKCS11_TOKEN, COLCRYPT_PKCS11_KEY and COLCRYPT_PKCS11_PIN"},
		{"open without a module", []string{"COLCRYPT_PKCS11_PIN", cliPIN}, []string{"keys", "list", hsmStore},
			"colcrypt: open keystore $DIR/hsm.keystore: COLCRYPT_PKCS11_MODULE not set: a master key in a PKCS#11 HSM needs " +
				"COLCRYPT_PKCS11_MODULE and COLCRYPT_PKCS11_PIN (the token and key labels are in the keystore)"},
		{"rewrap onto the HSM with a wrong new PIN", append(hsmOpenEnv(tok), "COLCRYPT_NEW_PKCS11_TOKEN", cliToken,
			"COLCRYPT_NEW_PKCS11_KEY", cliKey, "COLCRYPT_NEW_PKCS11_PIN", "000000"), []string{"keys", "rewrap", hsmStore},
			`colcrypt: rewrap keystore $DIR/hsm.keystore: PKCS#11 token "colcrypt-cli": wrong PIN (CKR_PIN_INCORRECT) (set COLCRYPT_NEW_PKCS11_PIN to the token's user PIN)`},
		{"rewrap onto a missing new token", append(hsmOpenEnv(tok), "COLCRYPT_NEW_PKCS11_TOKEN", "prod",
			"COLCRYPT_NEW_PKCS11_KEY", cliKey, "COLCRYPT_NEW_PKCS11_PIN", cliPIN), []string{"keys", "rewrap", hsmStore},
			`colcrypt: rewrap keystore $DIR/hsm.keystore: no PKCS#11 token labelled "prod" in module $MODULE (tokens present: "colcrypt-cli", "spare") ` +
				"(set COLCRYPT_NEW_PKCS11_TOKEN to the label of one of the module's tokens, or COLCRYPT_NEW_PKCS11_MODULE to another HSM's module)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			setSecrets(t, c.env...)
			before, err := os.ReadFile(hsmStore)
			if err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, append([]string{"-v"}, c.args...)...)
			if r.code != exitcode.BadInput {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, exitcode.BadInput, r.stdout, r.stderr)
			}
			got := strings.ReplaceAll(strings.ReplaceAll(lastLine(r.stderr), dir, "$DIR"), "module "+module, "module $MODULE")
			if got != c.msg {
				t.Errorf("stderr\n got %s\nwant %s", got, c.msg)
			}
			secretsIn(t, []string{r.stdout, r.stderr}, map[string]string{"the PIN": cliPIN, "the wrong PIN": "000000"})
			if _, err := os.Stat(newStore); err == nil {
				t.Errorf("a failed command wrote %s", newStore)
			}
			after, err := os.ReadFile(hsmStore)
			if err != nil || string(after) != string(before) {
				t.Errorf("a failed command changed %s", hsmStore)
			}
		})
	}
}
