//go:build cgo

package softhsmtest

import (
	"testing"

	"github.com/miekg/pkcs11"
)

// AddAESKey makes a 256-bit AES key labelled label in the token, through
// PKCS#11 itself (C_GenerateKey): a token object, sensitive and not
// extractable, that may encrypt and decrypt.
func (tok *Token) AddAESKey(t testing.TB, label string) {
	t.Helper()
	ctx := pkcs11.New(tok.Module)
	if ctx == nil {
		t.Fatalf("softhsmtest: cannot load %s", tok.Module)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		t.Fatalf("softhsmtest: C_Initialize: %v", err)
	}
	defer ctx.Finalize()
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatalf("softhsmtest: C_GetSlotList: %v", err)
	}
	for _, slot := range slots {
		info, err := ctx.GetTokenInfo(slot)
		if err != nil {
			t.Fatalf("softhsmtest: C_GetTokenInfo: %v", err)
		}
		if info.Label != tok.Label {
			continue
		}
		sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatalf("softhsmtest: C_OpenSession: %v", err)
		}
		defer ctx.CloseSession(sh)
		if err := ctx.Login(sh, pkcs11.CKU_USER, tok.PIN); err != nil {
			t.Fatalf("softhsmtest: C_Login: %v", err)
		}
		defer ctx.Logout(sh)
		_, err = ctx.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		})
		if err != nil {
			t.Fatalf("softhsmtest: C_GenerateKey: %v", err)
		}
		return
	}
	t.Fatalf("softhsmtest: no token labelled %q", tok.Label)
}
