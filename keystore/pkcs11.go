package keystore

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// The master key in a PKCS#11 HSM (SPEC §3). The HSM holds a
// non-extractable AES key; colcrypt draws a random master key, has the HSM
// encrypt it under that AES key (CKM_AES_GCM, random IV, the header's salt
// as additional data), and records in the header the token and key labels,
// the IV and the wrapped master key. Opening has the HSM decrypt it, and
// from there on everything is as for a raw master key. The PIN and the
// module path are never written: the PIN is a secret, and the module path
// differs from machine to machine.

// Sentinel errors of the PKCS#11 source, tested with errors.Is; each comes
// with a text that names the module, token or key.
var (
	// ErrPKCS11Module: the module file is missing or is not a PKCS#11 module.
	ErrPKCS11Module = errors.New("PKCS#11 module not found or not a PKCS#11 module")
	// ErrPKCS11Token: no token of that label in the module.
	ErrPKCS11Token = errors.New("PKCS#11 token not found")
	// ErrPKCS11PIN: the token refused the PIN (or it is locked).
	ErrPKCS11PIN = errors.New("PKCS#11 PIN refused")
	// ErrPKCS11Key: no AES key of that label in the token, or several.
	ErrPKCS11Key = errors.New("PKCS#11 key not found")
	// ErrPKCS11Label: a token or key label given to open a keystore is not
	// the one its header records.
	ErrPKCS11Label = errors.New("not the keystore's PKCS#11 token or key")
	// ErrNoCgo: this colcrypt was built without cgo, which PKCS#11 needs to
	// load the vendor's module.
	ErrNoCgo = errors.New("this colcrypt was built without cgo; PKCS#11 needs a cgo build")
)

// PKCS11 is a master key held in a PKCS#11 HSM: the AES key labelled Key
// in the token labelled Token of the module (the vendor's shared library)
// at Module, used after logging in with the user PIN.
//
// To create or rewrap a keystore, every field is needed. To open one, only
// Module and PIN are: the labels are read from the keystore's header, and
// when Token or Key is given it must match them.
type PKCS11 struct {
	Module string
	Token  string
	Key    string
	PIN    []byte
}

// Bounds on labels. A token label is CK_UTF8CHAR[32] in PKCS#11; an object
// label has no limit there, but it is written in the header, which is
// bounded (maxHeaderSize).
const (
	maxTokenLabel = 32
	maxKeyLabel   = 256

	pkcs11MechanismGCM = "CKM_AES_GCM"
	// pkcs11WrappedSize is a wrapped master key: the key and a GCM tag.
	pkcs11WrappedSize = MasterKeySize + tagSize
)

// pkcs11AAD is the additional data of the master key's encryption in the
// HSM: it binds the wrapped master key to this header's salt, which is new
// at every Create, Rewrap and Restore, so a wrapped key copied from another
// keystore does not decrypt here.
const pkcs11AADLabel = "colcrypt keystore v1 pkcs11 master key\x00"

func pkcs11AAD(salt []byte) []byte { return append([]byte(pkcs11AADLabel), salt...) }

// pkcs11Header is what the header records of a master key in an HSM.
type pkcs11Header struct {
	Token     string `json:"token"`
	Key       string `json:"key"`
	Mechanism string `json:"mechanism"`
	IV        []byte `json:"iv"`
	Wrapped   []byte `json:"wrapped_master_key"`
}

func (p *PKCS11) validate(creating bool) error {
	switch {
	case p.Module == "":
		return fail(ErrInvalid, "no PKCS#11 module: give the path of the HSM vendor's PKCS#11 library")
	case len(p.PIN) == 0:
		return fail(ErrInvalid, "empty PKCS#11 PIN")
	case creating && p.Token == "":
		return fail(ErrInvalid, "no PKCS#11 token label")
	case creating && p.Key == "":
		return fail(ErrInvalid, "no PKCS#11 key label")
	case len(p.Token) > maxTokenLabel || !utf8.ValidString(p.Token):
		return failf(ErrInvalid, "PKCS#11 token label %q: at most %d bytes of UTF-8", p.Token, maxTokenLabel)
	case len(p.Key) > maxKeyLabel || !utf8.ValidString(p.Key):
		return failf(ErrInvalid, "PKCS#11 key label of %d bytes: at most %d bytes of UTF-8", len(p.Key), maxKeyLabel)
	}
	return nil
}

func (h *pkcs11Header) validate() error {
	switch {
	case h.Token == "" || len(h.Token) > maxTokenLabel || !utf8.ValidString(h.Token):
		return fmt.Errorf("invalid PKCS#11 token label")
	case h.Key == "" || len(h.Key) > maxKeyLabel || !utf8.ValidString(h.Key):
		return fmt.Errorf("invalid PKCS#11 key label")
	case h.Mechanism != pkcs11MechanismGCM:
		return fmt.Errorf("unknown PKCS#11 mechanism %q", h.Mechanism)
	case len(h.IV) != nonceSize:
		return fmt.Errorf("PKCS#11 IV of %d bytes, want %d", len(h.IV), nonceSize)
	case len(h.Wrapped) != pkcs11WrappedSize:
		return fmt.Errorf("wrapped master key of %d bytes, want %d", len(h.Wrapped), pkcs11WrappedSize)
	}
	return nil
}

// wrapInHSM draws a new master key and has the HSM encrypt it; it returns
// the master key (the caller wipes it) and what the header records.
func wrapInHSM(p *PKCS11, salt []byte) ([]byte, *pkcs11Header, error) {
	master := randomBytes(MasterKeySize)
	iv := randomBytes(nonceSize)
	wrapped, usedIV, err := hsmEncrypt(p, master, iv, pkcs11AAD(salt))
	if err != nil {
		wipe(master)
		return nil, nil, err
	}
	if len(wrapped) != pkcs11WrappedSize || len(usedIV) != nonceSize {
		wipe(master)
		return nil, nil, fmt.Errorf("PKCS#11 key %q in token %q: AES-GCM returned %d bytes with a %d-byte IV, want %d and %d",
			p.Key, p.Token, len(wrapped), len(usedIV), pkcs11WrappedSize, nonceSize)
	}
	return master, &pkcs11Header{Token: p.Token, Key: p.Key, Mechanism: pkcs11MechanismGCM, IV: usedIV, Wrapped: wrapped}, nil
}

// unwrapInHSM has the HSM decrypt the master key recorded in h. The labels
// come from h; p.Token and p.Key, when given, must name the same.
func unwrapInHSM(p *PKCS11, h *pkcs11Header, salt []byte) ([]byte, error) {
	if p.Token != "" && p.Token != h.Token {
		return nil, failf(ErrPKCS11Label, "protected by a PKCS#11 key in token %q, not in token %q", h.Token, p.Token)
	}
	if p.Key != "" && p.Key != h.Key {
		return nil, failf(ErrPKCS11Label, "protected by the PKCS#11 key %q in token %q, not by the key %q", h.Key, h.Token, p.Key)
	}
	use := *p
	use.Token, use.Key = h.Token, h.Key
	master, err := hsmDecrypt(&use, h.Wrapped, h.IV, pkcs11AAD(salt))
	if err != nil {
		return nil, err
	}
	if len(master) != MasterKeySize {
		wipe(master)
		return nil, failf(ErrCorrupt, "the PKCS#11 key %q in token %q decrypted a master key of %d bytes", h.Key, h.Token, len(master))
	}
	return master, nil
}

// WrongProtectorError is ErrWrongProtector saying what the file needs:
// File and Given are "passphrase", "master key" or "PKCS#11 key".
type WrongProtectorError struct {
	File, Given string
	msg         string
}

func (e *WrongProtectorError) Error() string        { return e.msg }
func (e *WrongProtectorError) Is(target error) bool { return target == ErrWrongProtector }

// Kinds of protector, as WrongProtectorError names them.
const (
	KindPassphrase = "passphrase"
	KindMasterKey  = "master key"
	KindPKCS11     = "PKCS#11 key"
)
