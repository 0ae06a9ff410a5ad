//go:build cgo

package keystore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/internal/softhsmtest"
)

const (
	hsmToken = "colcrypt-test"
	hsmKey   = "colcrypt-master"
	hsmPIN   = "481516"
)

// newHSM gives the test a SoftHSM2 token with one AES key, and the secret
// that uses it.
func newHSM(t *testing.T) (*softhsmtest.Token, Secret) {
	t.Helper()
	tok := softhsmtest.New(t, hsmToken, hsmPIN)
	tok.AddAESKey(t, hsmKey)
	return tok, Secret{PKCS11: &PKCS11{Module: tok.Module, Token: hsmToken, Key: hsmKey, PIN: []byte(hsmPIN)}}
}

// openOnly is the secret that opens an HSM keystore: module and PIN, the
// labels coming from the header.
func openOnly(s Secret) Secret {
	return Secret{PKCS11: &PKCS11{Module: s.PKCS11.Module, PIN: s.PKCS11.PIN}}
}

func TestPKCS11CreateOpen(t *testing.T) {
	_, hsm := newHSM(t)
	k, path := newStore(t, hsm)
	want := allKeys(t, k)
	wantProtector := `PKCS#11 key "colcrypt-master" in token "colcrypt-test"`
	if got := k.Protector(); got != wantProtector {
		t.Errorf("Protector() = %q, want %q", got, wantProtector)
	}
	for name, s := range map[string]Secret{"module and PIN": openOnly(hsm), "every field": hsm} {
		t.Run(name, func(t *testing.T) {
			k2, err := Open(path, s)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			sameKeys(t, want, allKeys(t, k2))
			if got := k2.Protector(); got != wantProtector {
				t.Errorf("Protector() after Open = %q, want %q", got, wantProtector)
			}
		})
	}

	// The header records the labels and the wrapped master key, never the
	// PIN or the module path.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	h := p.hdr.PKCS11
	if p.hdr.Protector != "pkcs11" || h == nil || h.Token != hsmToken || h.Key != hsmKey || h.Mechanism != "CKM_AES_GCM" ||
		len(h.IV) != 12 || len(h.Wrapped) != 48 {
		t.Fatalf("header = %+v, pkcs11 %+v", p.hdr, h)
	}
	for _, secret := range []string{hsmPIN, hsm.PKCS11.Module, "libsofthsm2"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the keystore file contains %q", secret)
		}
	}

	// A backup is under its passphrase alone and restores onto the HSM.
	backup := filepath.Join(t.TempDir(), "backup")
	if err := k.Backup(backup, []byte("backup passphrase")); err != nil {
		t.Fatal(err)
	}
	restored, err := Restore(backup, []byte("backup passphrase"), filepath.Join(t.TempDir(), "restored"), hsm)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, want, allKeys(t, restored))
	if _, err := Open(restored.Path(), openOnly(hsm)); err != nil {
		t.Fatalf("Open the restored keystore: %v", err)
	}
}

// TestPKCS11Rewrap moves a keystore passphrase → HSM → passphrase: the
// data keys stay the same and only the last secret opens it.
func TestPKCS11Rewrap(t *testing.T) {
	_, hsm := newHSM(t)
	k, path := newStore(t, passA)
	want := allKeys(t, k)

	if err := k.Rewrap(hsm); err != nil {
		t.Fatal(err)
	}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, passA); !errors.Is(err, ErrWrongProtector) {
		t.Fatalf("Open with the old passphrase after rewrap onto the HSM: %v, want ErrWrongProtector", err)
	}
	k2, err := Open(path, openOnly(hsm))
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, want, allKeys(t, k2))

	if err := k2.Rewrap(passB, WithKDF(cheapKDF)); err != nil {
		t.Fatal(err)
	}
	if err := k2.Save(); err != nil {
		t.Fatal(err)
	}
	k3, err := Open(path, passB)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, want, allKeys(t, k3))
	if _, err := Open(path, openOnly(hsm)); !errors.Is(err, ErrWrongProtector) {
		t.Fatalf("Open with the HSM after rewrap onto a passphrase: %v, want ErrWrongProtector", err)
	}
}

func TestPKCS11Errors(t *testing.T) {
	tok, hsm := newHSM(t)
	softhsmtest.AddToken(t, "other-token", "1234")
	_, hsmPath := newStore(t, hsm)
	_, passPath := newStore(t, passA)
	_, masterPath := newStore(t, master)
	notModule := filepath.Join(t.TempDir(), "libnot-a-module.so")
	if err := os.WriteFile(notModule, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(change func(p *PKCS11)) Secret {
		p := *hsm.PKCS11
		change(&p)
		return Secret{PKCS11: &p}
	}
	missing := filepath.Join(t.TempDir(), "libmissing.so")

	for _, tc := range []struct {
		name   string
		create bool // Create a new keystore, else Open hsmPath
		path   string
		s      Secret
		is     error
		msg    string
	}{
		{"module missing", false, hsmPath, with(func(p *PKCS11) { p.Module = missing }), ErrPKCS11Module,
			"PKCS#11 module " + missing + ": no such file"},
		{"not a module", true, "", with(func(p *PKCS11) { p.Module = notModule }), ErrPKCS11Module,
			"PKCS#11 module " + notModule + ": not a PKCS#11 module (it cannot be loaded as a shared library, or has no C_GetFunctionList)"},
		{"module is a folder", false, hsmPath, with(func(p *PKCS11) { p.Module = filepath.Dir(missing) }), ErrPKCS11Module,
			"PKCS#11 module " + filepath.Dir(missing) + ": is a directory, not the vendor's PKCS#11 library (.so)"},
		{"no such token", true, "", with(func(p *PKCS11) { p.Token = "prod" }), ErrPKCS11Token,
			`no PKCS#11 token labelled "prod" in module ` + tok.Module + ` (tokens present: "colcrypt-test", "other-token")`},
		{"wrong PIN", false, hsmPath, with(func(p *PKCS11) { p.PIN = []byte("000000") }), ErrPKCS11PIN,
			`PKCS#11 token "colcrypt-test": wrong PIN (CKR_PIN_INCORRECT)`},
		{"no such key", true, "", with(func(p *PKCS11) { p.Key = "nope" }), ErrPKCS11Key,
			`no AES key labelled "nope" in PKCS#11 token "colcrypt-test"`},
		{"key of another token", true, "", with(func(p *PKCS11) { p.Token, p.PIN = "other-token", []byte("1234") }), ErrPKCS11Key,
			`no AES key labelled "colcrypt-master" in PKCS#11 token "other-token"`},
		{"open naming another token", false, hsmPath, with(func(p *PKCS11) { p.Token = "other-token" }), ErrPKCS11Label,
			`protected by a PKCS#11 key in token "colcrypt-test", not in token "other-token"`},
		{"open naming another key", false, hsmPath, with(func(p *PKCS11) { p.Key = "other" }), ErrPKCS11Label,
			`protected by the PKCS#11 key "colcrypt-master" in token "colcrypt-test", not by the key "other"`},
		{"HSM for a passphrase keystore", false, passPath, hsm, ErrWrongProtector,
			"protected by a passphrase, not a PKCS#11 key"},
		{"HSM for a master-key keystore", false, masterPath, hsm, ErrWrongProtector,
			"protected by a master key, not a PKCS#11 key"},
		{"passphrase for an HSM keystore", false, hsmPath, passA, ErrWrongProtector,
			`protected by a PKCS#11 key "colcrypt-master" in token "colcrypt-test", not a passphrase`},
		{"master key for an HSM keystore", false, hsmPath, master, ErrWrongProtector,
			`protected by a PKCS#11 key "colcrypt-master" in token "colcrypt-test", not a master key`},
		{"no module", true, "", with(func(p *PKCS11) { p.Module = "" }), ErrInvalid,
			"no PKCS#11 module: give the path of the HSM vendor's PKCS#11 library"},
		{"no key label to create", true, "", with(func(p *PKCS11) { p.Key = "" }), ErrInvalid, "no PKCS#11 key label"},
		{"HSM and passphrase", true, "", Secret{Passphrase: passA.Passphrase, PKCS11: hsm.PKCS11}, ErrInvalid,
			"give a PKCS#11 key or a passphrase or a master key, only one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			var path string
			if tc.create {
				path = filepath.Join(t.TempDir(), "new.keystore")
				_, err = Create(path, tc.s, WithKDF(cheapKDF))
				if _, statErr := os.Stat(path); statErr == nil {
					t.Errorf("Create failed but wrote %s", path)
				}
			} else {
				path = tc.path
				_, err = Open(path, tc.s)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			verb := "open"
			if tc.create {
				verb = "create"
			}
			if want := verb + " keystore " + path + ": " + tc.msg; err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
			if wpe, ok := errors.AsType[*WrongProtectorError](err); tc.is == ErrWrongProtector && (!ok || wpe.File == "" || wpe.Given == "") {
				t.Errorf("%v is not a WrongProtectorError naming both kinds", err)
			}
			if strings.Contains(err.Error(), hsmPIN) || strings.Contains(err.Error(), "000000") {
				t.Errorf("error contains the PIN: %v", err)
			}
		})
	}
}

// TestPKCS11AnotherKeyOfTheSameLabel: a token with the right labels but
// another AES key (a token re-created, another machine's HSM) is a wrong
// secret, said as such, not a damaged file.
func TestPKCS11AnotherKeyOfTheSameLabel(t *testing.T) {
	_, hsm := newHSM(t)
	_, path := newStore(t, hsm)
	tok := softhsmtest.New(t, hsmToken, hsmPIN) // a new token folder: the same labels, another key
	tok.AddAESKey(t, hsmKey)
	_, err := Open(path, openOnly(hsm))
	if !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("got %v, want ErrWrongSecret", err)
	}
	want := "open keystore " + path + `: the PKCS#11 key "colcrypt-master" in token "colcrypt-test" does not decrypt the keystore's master key (CKR_GENERAL_ERROR): ` +
		"it is not the key that protected this keystore (another key with the same label?)"
	if err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}
