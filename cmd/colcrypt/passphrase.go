package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
)

// secretVars names where one secret may come from, and whose it is, for
// prompts and for the hint of an error.
type secretVars struct {
	passphrase string      // variable holding a passphrase
	masterKey  string      // variable holding 64 hex characters; "" when only a passphrase will do
	pkcs11     *pkcs11Vars // variables naming a key in a PKCS#11 HSM; nil when only a passphrase will do
	owner      string      // "keystore", "new keystore" or "backup"
	// opening is set for the hints of opening an existing keystore, whose
	// header already names its PKCS#11 token and key.
	opening bool
}

// pkcs11Vars are the variables of a master key in a PKCS#11 HSM. The
// token, key or PIN variable chooses the HSM; the module alone does not:
// it says where this machine's PKCS#11 library is, and may be set for
// every run.
type pkcs11Vars struct {
	module, token, key, pin string
	// sharedModule is read when module is empty: the new protector of a
	// rewrap is usually in the same HSM.
	sharedModule string
}

// The variables of SPEC §5.
var (
	masterVars = secretVars{passphrase: "COLCRYPT_PASSPHRASE", masterKey: "COLCRYPT_MASTER_KEY", owner: "keystore",
		pkcs11: &pkcs11Vars{module: "COLCRYPT_PKCS11_MODULE", token: "COLCRYPT_PKCS11_TOKEN", key: "COLCRYPT_PKCS11_KEY", pin: "COLCRYPT_PKCS11_PIN"}}
	newMasterVars = secretVars{passphrase: "COLCRYPT_NEW_PASSPHRASE", masterKey: "COLCRYPT_NEW_MASTER_KEY", owner: "new keystore",
		pkcs11: &pkcs11Vars{module: "COLCRYPT_NEW_PKCS11_MODULE", token: "COLCRYPT_NEW_PKCS11_TOKEN", key: "COLCRYPT_NEW_PKCS11_KEY",
			pin: "COLCRYPT_NEW_PKCS11_PIN", sharedModule: "COLCRYPT_PKCS11_MODULE"}}
	backupVars = secretVars{passphrase: "COLCRYPT_BACKUP_PASSPHRASE", owner: "backup"}
)

// group is how messages name all the variables at once: "the
// COLCRYPT_PKCS11_* variables".
func (v *pkcs11Vars) group() string {
	return "the " + strings.TrimSuffix(v.pin, "PIN") + "* variables"
}

// chosen says whether the variables choose the HSM: the token, key or
// PIN variable is set.
func (v *pkcs11Vars) chosen() bool {
	return os.Getenv(v.token) != "" || os.Getenv(v.key) != "" || os.Getenv(v.pin) != ""
}

// read returns the PKCS#11 key the variables name, or nil when none of
// token, key and PIN is set. creating is true when the key is to protect
// a keystore (init, restore, the new side of a rewrap), which needs its
// labels; opening needs only the module and the PIN.
func (v *pkcs11Vars) read(purpose string, creating bool) (*keystore.PKCS11, error) {
	if !v.chosen() {
		return nil, nil
	}
	p := &keystore.PKCS11{
		Module: strings.TrimSpace(os.Getenv(v.module)),
		Token:  os.Getenv(v.token),
		Key:    os.Getenv(v.key),
		PIN:    []byte(os.Getenv(v.pin)),
	}
	if p.Module == "" && v.sharedModule != "" {
		p.Module = strings.TrimSpace(os.Getenv(v.sharedModule))
	}
	var missing []string
	if p.Module == "" {
		name := v.module
		if v.sharedModule != "" {
			name += " (or " + v.sharedModule + ")"
		}
		missing = append(missing, name)
	}
	if creating && p.Token == "" {
		missing = append(missing, v.token)
	}
	if creating && p.Key == "" {
		missing = append(missing, v.key)
	}
	if len(p.PIN) == 0 {
		missing = append(missing, v.pin)
	}
	if len(missing) == 0 {
		return p, nil
	}
	clear(p.PIN)
	need := v.module + ", " + v.token + ", " + v.key + " and " + v.pin
	if !creating {
		need = v.module + " and " + v.pin + " (the token and key labels are in the keystore)"
	}
	return nil, exitcode.Input(fmt.Errorf("%s: %s not set: a master key in a PKCS#11 HSM needs %s",
		purpose, strings.Join(missing, " and "), need))
}

// masterSecret returns the secret of an existing keystore, from
// COLCRYPT_PASSPHRASE or COLCRYPT_MASTER_KEY, else from a prompt on the
// terminal. purpose says what it is for ("open keystore keys/prod.keystore")
// and starts the error when there is no way to get it (exit 2, never a hang).
func (a *app) masterSecret(purpose string) (keystore.Secret, error) {
	return a.secret(masterVars, purpose, "Passphrase to "+purpose, false)
}

// newMasterSecret returns the secret that will protect a keystore being
// created (init, restore): the same variables, but a prompt asks twice.
func (a *app) newMasterSecret(purpose string) (keystore.Secret, error) {
	return a.secret(masterVars, purpose, "New passphrase to "+purpose, true)
}

// replacementSecret returns the new secret of a rewrap, from
// COLCRYPT_NEW_PASSPHRASE, COLCRYPT_NEW_MASTER_KEY or the
// COLCRYPT_NEW_PKCS11_* variables, else a prompt asked twice.
func (a *app) replacementSecret(purpose string) (keystore.Secret, error) {
	return a.secret(newMasterVars, purpose, "New passphrase to "+purpose, true)
}

// backupPassphrase returns the passphrase of a backup file, from
// COLCRYPT_BACKUP_PASSPHRASE, else a prompt (asked twice when confirm, for
// a new backup).
func (a *app) backupPassphrase(purpose string, confirm bool) ([]byte, error) {
	s, err := a.secret(backupVars, purpose, "Backup passphrase to "+purpose, confirm)
	return s.Passphrase, err
}

// secret reads the secret v names. confirm is true for a secret that will
// protect something new: a prompt asks twice, and a PKCS#11 key needs its
// token and key labels.
func (a *app) secret(v secretVars, purpose, prompt string, confirm bool) (keystore.Secret, error) {
	// An empty variable counts as unset: `COLCRYPT_PASSPHRASE= colcrypt …`
	// means "ask me", and an empty passphrase is never right.
	pass := os.Getenv(v.passphrase)
	var hexKey string
	if v.masterKey != "" {
		hexKey = strings.TrimSpace(os.Getenv(v.masterKey))
	}
	if v.pkcs11 != nil && v.pkcs11.chosen() {
		if pass != "" || hexKey != "" {
			other := v.passphrase
			if pass == "" {
				other = v.masterKey
			}
			return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: both %s and %s are set: set only one", purpose, other, v.pkcs11.group()))
		}
		hsm, err := v.pkcs11.read(purpose, confirm)
		if err != nil {
			return keystore.Secret{}, err
		}
		return keystore.Secret{PKCS11: hsm}, nil
	}
	switch {
	case pass != "" && hexKey != "":
		return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: both %s and %s are set: set only one", purpose, v.passphrase, v.masterKey))
	case hexKey != "":
		key, err := hex.DecodeString(hexKey)
		if err != nil || len(key) != keystore.MasterKeySize {
			// Never echo the value: it may be a real key with a typo.
			return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: %s must be %d hex characters (%d bytes); it has %d characters",
				purpose, v.masterKey, 2*keystore.MasterKeySize, keystore.MasterKeySize, len(hexKey)))
		}
		return keystore.Secret{MasterKey: key}, nil
	case pass != "":
		return keystore.Secret{Passphrase: []byte(pass)}, nil
	}

	if a.stdin == nil || !term.IsTerminal(int(a.stdin.Fd())) {
		set := v.passphrase
		if v.masterKey != "" {
			set += " (or " + v.masterKey + ")"
		}
		return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: no passphrase: set %s, or run on a terminal to be prompted", purpose, set))
	}
	p, err := a.readPassword(prompt + ": ")
	if err != nil {
		return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: read passphrase: %w", purpose, err))
	}
	if len(p) == 0 {
		return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: empty passphrase", purpose))
	}
	if confirm {
		again, err := a.readPassword("Repeat the passphrase: ")
		if err != nil {
			return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: read passphrase: %w", purpose, err))
		}
		same := bytes.Equal(p, again)
		clear(again)
		if !same {
			clear(p)
			return keystore.Secret{}, exitcode.Input(fmt.Errorf("%s: the passphrases do not match", purpose))
		}
	}
	return keystore.Secret{Passphrase: p}, nil
}

// readPassword prompts on stderr and reads a line from the terminal on
// stdin without echoing it.
func (a *app) readPassword(prompt string) ([]byte, error) {
	fmt.Fprint(a.stderr, prompt)
	p, err := term.ReadPassword(int(a.stdin.Fd()))
	fmt.Fprintln(a.stderr)
	return p, err
}

// openKeystore opens the keystore at path with the master secret: the
// file is checked first, so nobody types a passphrase for a missing file.
// Every failure is one line naming the file and what to do (exit 2).
func (a *app) openKeystore(path string) (*keystore.Keystore, error) {
	k, _, err := a.openKeystoreSecret(path)
	return k, err
}

// openKeystoreSecret is openKeystore, also giving the master secret that
// opened it.
func (a *app) openKeystoreSecret(path string) (*keystore.Keystore, keystore.Secret, error) {
	purpose := "open keystore " + path
	if err := checkReadable(purpose, path, masterVars); err != nil {
		return nil, keystore.Secret{}, err
	}
	s, err := a.masterSecret(purpose)
	if err != nil {
		return nil, s, err
	}
	k, err := keystore.Open(path, s)
	if s.PKCS11 != nil {
		clear(s.PKCS11.PIN) // the HSM has done its part
	}
	if err != nil {
		opening := masterVars
		opening.opening = true
		return nil, s, keystoreError(err, s, opening)
	}
	return k, s, nil
}

// checkReadable fails early, before any prompt, when path is not a
// regular file.
func checkReadable(purpose, path string, v secretVars) error {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return keystoreError(fmt.Errorf("%s: %w", purpose, err), keystore.Secret{}, v)
	}
	switch {
	case fi.IsDir():
		return exitcode.Input(fmt.Errorf("%s: is a directory, not a file", purpose))
	case !fi.Mode().IsRegular():
		return exitcode.Input(fmt.Errorf("%s: not a regular file", purpose))
	}
	return nil
}

// mustNotExist fails early, before any prompt, when path exists.
func mustNotExist(purpose, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return keystoreError(fmt.Errorf("%s: %w", purpose, keystore.ErrExists), keystore.Secret{}, secretVars{})
	}
	return nil
}

// keystoreError marks err as bad input (exit 2) and appends what to do
// about it. s is the secret that was tried and v where it came from.
func keystoreError(err error, s keystore.Secret, v secretVars) error {
	if hint := keystoreHint(err, s, v); hint != "" {
		err = fmt.Errorf("%w (%s)", err, hint)
	}
	return exitcode.Input(err)
}

func keystoreHint(err error, s keystore.Secret, v secretVars) string {
	gaveKey := s.MasterKey != nil
	if s.PKCS11 != nil && v.pkcs11 != nil {
		if hint := pkcs11Hint(err, v); hint != "" {
			return hint
		}
	}
	if wpe, ok := errors.AsType[*keystore.WrongProtectorError](err); ok && v.pkcs11 != nil {
		return fmt.Sprintf("set %s instead of %s", v.needs(wpe.File), v.gave(wpe.Given))
	}
	switch {
	case errors.Is(err, keystore.ErrWrongSecret):
		if gaveKey {
			return fmt.Sprintf("set %s to the %s's master key", v.masterKey, v.owner)
		}
		return fmt.Sprintf("set %s to the %s's passphrase", v.passphrase, v.owner)
	case errors.Is(err, keystore.ErrWrongProtector):
		if gaveKey {
			return fmt.Sprintf("set %s instead of %s", v.passphrase, v.masterKey)
		}
		return fmt.Sprintf("set %s instead of %s", v.masterKey, v.passphrase)
	case errors.Is(err, keystore.ErrCorrupt):
		if v.owner == "backup" {
			return "the backup cannot be used; restore from another backup"
		}
		return "restore the keystore from a backup with colcrypt keys restore"
	case errors.Is(err, keystore.ErrExists):
		return "choose another path, or move the existing file away first"
	case errors.Is(err, fs.ErrNotExist) && v.owner == "keystore":
		return "check the path, or create a keystore with colcrypt keys init"
	}
	return ""
}

// needs names the variables of a kind of protector (a
// keystore.WrongProtectorError's File) that open a keystore.
func (v secretVars) needs(kind string) string {
	switch kind {
	case keystore.KindMasterKey:
		return v.masterKey
	case keystore.KindPKCS11:
		return v.pkcs11.module + " and " + v.pkcs11.pin
	}
	return v.passphrase
}

// gave names the variables of a kind of protector that was given.
func (v secretVars) gave(kind string) string {
	if kind == keystore.KindPKCS11 {
		return v.pkcs11.group()
	}
	return v.needs(kind)
}

// pkcs11Hint says what to do about an error of a PKCS#11 key given
// through v, naming the variable to change.
func pkcs11Hint(err error, v secretVars) string {
	p := v.pkcs11
	switch {
	case errors.Is(err, keystore.ErrPKCS11Module):
		return fmt.Sprintf("set %s to the path of the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2", p.module)
	case errors.Is(err, keystore.ErrPKCS11Token) && v.opening:
		return fmt.Sprintf("set %s to the module of the HSM that holds the keystore's token", p.module)
	case errors.Is(err, keystore.ErrPKCS11Token):
		return fmt.Sprintf("set %s to the label of one of the module's tokens, or %s to another HSM's module", p.token, p.module)
	case errors.Is(err, keystore.ErrPKCS11PIN):
		return fmt.Sprintf("set %s to the token's user PIN", p.pin)
	case errors.Is(err, keystore.ErrPKCS11Key) && v.opening:
		return fmt.Sprintf("the key that protected the keystore is gone from the token: set %s to the module of the HSM that holds it, "+
			"or restore the keystore from a backup with colcrypt keys restore", p.module)
	case errors.Is(err, keystore.ErrPKCS11Key):
		return fmt.Sprintf("set %s to the label of an AES key in the token (made in the HSM, not extractable, allowed to encrypt and decrypt)", p.key)
	case errors.Is(err, keystore.ErrPKCS11Label):
		return fmt.Sprintf("unset %s and %s: the keystore names its own token and key", p.token, p.key)
	case errors.Is(err, keystore.ErrWrongSecret):
		return fmt.Sprintf("set %s to the module of the HSM that holds the keystore's key, or restore the keystore from a backup with colcrypt keys restore", p.module)
	}
	return ""
}

// isPKCS11Error tells an error of the HSM itself (module, token, PIN, key)
// from one of the keystore file or a passphrase.
func isPKCS11Error(err error) bool {
	for _, target := range []error{keystore.ErrPKCS11Module, keystore.ErrPKCS11Token, keystore.ErrPKCS11PIN,
		keystore.ErrPKCS11Key, keystore.ErrPKCS11Label, keystore.ErrNoCgo} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
