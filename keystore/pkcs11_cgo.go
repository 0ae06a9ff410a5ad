//go:build cgo

package keystore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// hsmMu serializes every use of a PKCS#11 module in this process. Each
// operation loads the module, initializes it, works and finalizes it:
// C_Initialize is process-wide, so two at once would fail with
// CKR_CRYPTOKI_ALREADY_INITIALIZED, and a keystore touches the HSM only
// when it is created, opened or rewrapped, so waiting costs nothing.
var hsmMu sync.Mutex

// gcmTagBits is the GCM tag of the wrapped master key: the full 128 bits.
const gcmTagBits = tagSize * 8

// hsmEncrypt encrypts plaintext with the AES key p.Key in token p.Token
// under CKM_AES_GCM with iv and aad. It returns the ciphertext with its tag
// and the IV actually used (some HSMs choose their own).
func hsmEncrypt(p *PKCS11, plaintext, iv, aad []byte) (ciphertext, usedIV []byte, err error) {
	err = withKey(p, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		params := pkcs11.NewGCMParams(iv, aad, gcmTagBits)
		defer params.Free()
		if err := ctx.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return keyOpError(p, "start AES-GCM encryption (C_EncryptInit)", err)
		}
		out, err := ctx.Encrypt(sh, plaintext)
		if err != nil {
			return keyOpError(p, "encrypt the master key (C_Encrypt)", err)
		}
		ciphertext = out
		if usedIV = params.IV(); usedIV == nil {
			usedIV = iv
		}
		return nil
	})
	return ciphertext, usedIV, err
}

// hsmDecrypt reverses hsmEncrypt.
func hsmDecrypt(p *PKCS11, ciphertext, iv, aad []byte) (plaintext []byte, err error) {
	err = withKey(p, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		params := pkcs11.NewGCMParams(iv, aad, gcmTagBits)
		defer params.Free()
		if err := ctx.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return keyOpError(p, "start AES-GCM decryption (C_DecryptInit)", err)
		}
		out, err := ctx.Decrypt(sh, ciphertext)
		if err != nil {
			// A failed GCM tag check is CKR_ENCRYPTED_DATA_INVALID in the
			// standard, and CKR_GENERAL_ERROR from SoftHSM 2.6.
			if code, ok := errors.AsType[pkcs11.Error](err); ok && (code == pkcs11.CKR_ENCRYPTED_DATA_INVALID ||
				code == pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE || code == pkcs11.CKR_GENERAL_ERROR) {
				return failf(ErrWrongSecret, "the PKCS#11 key %q in token %q does not decrypt the keystore's master key (%s): "+
					"it is not the key that protected this keystore (another key with the same label?)", p.Key, p.Token, codeName(code))
			}
			return keyOpError(p, "decrypt the master key (C_Decrypt)", err)
		}
		plaintext = out
		return nil
	})
	return plaintext, err
}

func keyOpError(p *PKCS11, what string, err error) error {
	if code, ok := errors.AsType[pkcs11.Error](err); ok && code == pkcs11.CKR_MECHANISM_INVALID {
		return fmt.Errorf("PKCS#11 key %q in token %q: the token does not support CKM_AES_GCM, which colcrypt needs", p.Key, p.Token)
	}
	return fmt.Errorf("PKCS#11 key %q in token %q: %s: %w", p.Key, p.Token, what, err)
}

// withKey loads p.Module, finds the token and logs in with the PIN, finds
// the key and calls f with it; then logs out and unloads the module.
func withKey(p *PKCS11, f func(*pkcs11.Ctx, pkcs11.SessionHandle, pkcs11.ObjectHandle) error) (err error) {
	hsmMu.Lock()
	defer hsmMu.Unlock()
	ctx, err := loadModule(p.Module)
	if err != nil {
		return err
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		if code, ok := errors.AsType[pkcs11.Error](err); !ok || code != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return fmt.Errorf("PKCS#11 module %s: initialize (C_Initialize): %w", p.Module, err)
		}
	} else {
		defer ctx.Finalize()
	}
	slot, err := findToken(ctx, p.Module, p.Token)
	if err != nil {
		return err
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("PKCS#11 token %q: open a session (C_OpenSession): %w", p.Token, err)
	}
	defer ctx.CloseSession(sh)
	if err := login(ctx, sh, p); err != nil {
		return err
	}
	defer ctx.Logout(sh)
	key, err := findKey(ctx, sh, p)
	if err != nil {
		return err
	}
	return f(ctx, sh, key)
}

// loadModule loads the PKCS#11 module at path, telling a missing file from
// one that is not a PKCS#11 module (pkcs11.New says neither).
func loadModule(path string) (*pkcs11.Ctx, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, failf(ErrPKCS11Module, "PKCS#11 module %s: no such file", path)
	case err != nil:
		return nil, failf(ErrPKCS11Module, "PKCS#11 module %s: %v", path, pathless(err))
	case fi.IsDir():
		return nil, failf(ErrPKCS11Module, "PKCS#11 module %s: is a directory, not the vendor's PKCS#11 library (.so)", path)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, failf(ErrPKCS11Module, "PKCS#11 module %s: not a PKCS#11 module (it cannot be loaded as a shared library, or has no C_GetFunctionList)", path)
	}
	return ctx, nil
}

// findToken returns the slot of the one token labelled label; when there
// is none, the error lists the labels present.
func findToken(ctx *pkcs11.Ctx, module, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("PKCS#11 module %s: list the slots (C_GetSlotList): %w", module, err)
	}
	var found []uint
	var present []string
	for _, slot := range slots {
		info, err := ctx.GetTokenInfo(slot)
		if err != nil {
			return 0, fmt.Errorf("PKCS#11 module %s: read the token in slot %d (C_GetTokenInfo): %w", module, slot, err)
		}
		if info.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue // a free slot, offered for initializing a new token
		}
		// Labels are padded with blanks to 32 bytes.
		have := strings.TrimRight(info.Label, " \x00")
		present = append(present, fmt.Sprintf("%q", have))
		if have == label {
			found = append(found, slot)
		}
	}
	slices.Sort(present)
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return 0, failf(ErrPKCS11Token, "PKCS#11 module %s has %d tokens labelled %q: give the token a unique label", module, len(found), label)
	case len(present) == 0:
		return 0, failf(ErrPKCS11Token, "no PKCS#11 token labelled %q in module %s: it has no initialized token", label, module)
	}
	return 0, failf(ErrPKCS11Token, "no PKCS#11 token labelled %q in module %s (tokens present: %s)", label, module, strings.Join(present, ", "))
}

// login logs in as the token's user. Neither the PIN nor anything about it
// appears in an error.
func login(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, p *PKCS11) error {
	// The library takes a string, which cannot be wiped; it lives only as
	// long as this call.
	err := ctx.Login(sh, pkcs11.CKU_USER, string(p.PIN))
	code, _ := errors.AsType[pkcs11.Error](err)
	switch {
	case err == nil, code == pkcs11.CKR_USER_ALREADY_LOGGED_IN:
		return nil
	case code == pkcs11.CKR_PIN_INCORRECT, code == pkcs11.CKR_PIN_LEN_RANGE:
		return failf(ErrPKCS11PIN, "PKCS#11 token %q: wrong PIN (CKR_PIN_INCORRECT)", p.Token)
	case code == pkcs11.CKR_PIN_LOCKED:
		return failf(ErrPKCS11PIN, "PKCS#11 token %q: the user PIN is locked after too many wrong tries (CKR_PIN_LOCKED); the token's security officer must reset it", p.Token)
	case code == pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
		return failf(ErrPKCS11PIN, "PKCS#11 token %q has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED); the token's security officer must set one", p.Token)
	}
	return fmt.Errorf("PKCS#11 token %q: log in (C_Login): %w", p.Token, err)
}

// findKey returns the one AES secret key labelled p.Key.
func findKey(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, p *PKCS11) (pkcs11.ObjectHandle, error) {
	template := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, p.Key),
	}
	if err := ctx.FindObjectsInit(sh, template); err != nil {
		return 0, fmt.Errorf("PKCS#11 token %q: search for key %q (C_FindObjectsInit): %w", p.Token, p.Key, err)
	}
	// Two are enough to tell "one" from "several".
	objs, _, err := ctx.FindObjects(sh, 2)
	if finalErr := ctx.FindObjectsFinal(sh); err == nil && finalErr != nil {
		err = finalErr
	}
	if err != nil {
		return 0, fmt.Errorf("PKCS#11 token %q: search for key %q (C_FindObjects): %w", p.Token, p.Key, err)
	}
	switch len(objs) {
	case 0:
		return 0, failf(ErrPKCS11Key, "no AES key labelled %q in PKCS#11 token %q", p.Key, p.Token)
	case 1:
		return objs[0], nil
	}
	return 0, failf(ErrPKCS11Key, "several AES keys labelled %q in PKCS#11 token %q: give the key a unique label", p.Key, p.Token)
}

// codeName is the name of a PKCS#11 return value, e.g. CKR_GENERAL_ERROR.
func codeName(code pkcs11.Error) string {
	msg := code.Error() // "pkcs11: 0x5: CKR_GENERAL_ERROR"
	return msg[strings.LastIndex(msg, " ")+1:]
}
