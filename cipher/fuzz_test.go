package cipher

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecrypt feeds arbitrary ciphertexts and IVs to a Column of every suite,
// IV mode and versioning: Decrypt must never panic, must fail only with the
// package's sentinel errors, and whatever it accepts from a deterministic CBC
// column must be exactly what Encrypt would write.
func FuzzDecrypt(f *testing.F) {
	cols := make([]*Column, 0, 20)
	combos := allCombos(f)
	for _, cb := range combos {
		cols = append(cols, newTestColumn(f, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1), 2: testKey(cb.p.Suite, 2)}, 1))
	}
	for _, col := range cols {
		for _, p := range []string{"", "x", "0123456789abcdef", "a value spanning several blocks, 49 bytes long..."} {
			ct, iv, err := col.Encrypt([]byte(p))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(ct, iv)
			f.Add(ct[:len(ct)-1], iv)
		}
	}
	f.Add([]byte{}, []byte{})
	f.Add([]byte{AES256CBC.HeaderTag()}, []byte(nil))
	f.Add([]byte{AEADAES256CBCHMACSHA256.HeaderTag(), 0, 1, aeVersion}, make([]byte, 8))
	f.Add(make([]byte, 16), make([]byte, 16))
	f.Add(make([]byte, 8), make([]byte, 8))

	f.Fuzz(func(t *testing.T, ct, iv []byte) {
		for i, col := range cols {
			got, err := col.Decrypt(ct, iv)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKeyVersion) &&
					!errors.Is(err, ErrAuthentication) && !errors.Is(err, ErrPadding) {
					t.Fatalf("%v: unclassified error %v", combos[i], err)
				}
				continue
			}
			if cb := combos[i]; cb.p.IV == IVColumn && !cb.p.Suite.aead() {
				v := uint16(1)
				if cb.p.Versioned {
					v, _ = KeyVersion(ct)
				}
				if v != 1 {
					continue // Encrypt writes under version 1 only
				}
				again, _, err := col.Encrypt(got)
				if err != nil || !bytes.Equal(again, ct) {
					t.Fatalf("%v: accepted %x, which re-encrypts to %x", cb, ct, again)
				}
			}
		}
	})
}
