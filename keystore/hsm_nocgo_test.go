//go:build !cgo

package keystore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPKCS11WithoutCgo: a colcrypt built without cgo says so, and writes
// nothing.
func TestPKCS11WithoutCgo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hsm.keystore")
	s := Secret{PKCS11: &PKCS11{Module: "/usr/lib/softhsm/libsofthsm2.so", Token: "t", Key: "k", PIN: []byte("1234")}}
	_, err := Create(path, s)
	if !errors.Is(err, ErrNoCgo) {
		t.Fatalf("Create: %v, want ErrNoCgo", err)
	}
	if want := "create keystore " + path + ": this colcrypt was built without cgo; PKCS#11 needs a cgo build"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
	if _, statErr := os.Stat(path); statErr == nil {
		t.Errorf("Create failed but wrote %s", path)
	}
}
