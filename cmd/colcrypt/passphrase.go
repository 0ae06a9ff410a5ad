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
	passphrase string // variable holding a passphrase
	masterKey  string // variable holding 64 hex characters; "" when only a passphrase will do
	owner      string // "keystore", "new keystore" or "backup"
}

// The variables of SPEC §5.
var (
	masterVars    = secretVars{passphrase: "COLCRYPT_PASSPHRASE", masterKey: "COLCRYPT_MASTER_KEY", owner: "keystore"}
	newMasterVars = secretVars{passphrase: "COLCRYPT_NEW_PASSPHRASE", masterKey: "COLCRYPT_NEW_MASTER_KEY", owner: "new keystore"}
	backupVars    = secretVars{passphrase: "COLCRYPT_BACKUP_PASSPHRASE", owner: "backup"}
)

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
// COLCRYPT_NEW_PASSPHRASE or COLCRYPT_NEW_MASTER_KEY, else a prompt asked
// twice.
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

func (a *app) secret(v secretVars, purpose, prompt string, confirm bool) (keystore.Secret, error) {
	// An empty variable counts as unset: `COLCRYPT_PASSPHRASE= colcrypt …`
	// means "ask me", and an empty passphrase is never right.
	pass := os.Getenv(v.passphrase)
	var hexKey string
	if v.masterKey != "" {
		hexKey = strings.TrimSpace(os.Getenv(v.masterKey))
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
	if err != nil {
		return nil, s, keystoreError(err, s, masterVars)
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
