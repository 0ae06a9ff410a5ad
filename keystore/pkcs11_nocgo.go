//go:build !cgo

package keystore

// Without cgo the vendor's PKCS#11 module cannot be loaded: every use of
// a PKCS#11 key fails with ErrNoCgo, and the other protectors work.

func hsmEncrypt(*PKCS11, []byte, []byte, []byte) ([]byte, []byte, error) {
	return nil, nil, ErrNoCgo
}

func hsmDecrypt(*PKCS11, []byte, []byte, []byte) ([]byte, error) {
	return nil, ErrNoCgo
}
