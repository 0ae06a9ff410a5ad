package cipher

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Suite names a cipher suite as written in plans.
type Suite string

// The supported suites.
const (
	AES128CBC    Suite = "aes-128-cbc"
	AES192CBC    Suite = "aes-192-cbc"
	AES256CBC    Suite = "aes-256-cbc"
	TripleDESCBC Suite = "3des-cbc" // DES-EDE3, legacy
	// AEADAES256CBCHMACSHA256 is the Always Encrypted cell format
	// (AEAD_AES_256_CBC_HMAC_SHA256); the IV is stored inline.
	AEADAES256CBCHMACSHA256 Suite = "aead-aes-256-cbc-hmac-sha256"
)

// Suites returns every supported suite, the default
// (AEADAES256CBCHMACSHA256) last. The slice is new on every call.
func Suites() []Suite {
	return []Suite{AES128CBC, AES192CBC, AES256CBC, TripleDESCBC, AEADAES256CBCHMACSHA256}
}

// ParseSuite returns the suite a plan names. Case and surrounding spaces are
// ignored; an unknown name is an error listing the valid ones.
func ParseSuite(name string) (Suite, error) {
	want := strings.ToLower(strings.TrimSpace(name))
	for _, s := range Suites() {
		if string(s) == want {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown cipher suite %q (valid: %s)", name, joinNames(Suites()))
}

// KeySize is the length in bytes of the raw data key the suite takes: 16, 24
// or 32 for AES, 24 for 3DES (three independent DES keys), 32 for the AEAD
// suite (the root key the enc/MAC/IV keys are derived from). It is 0 for an
// unknown suite.
func (s Suite) KeySize() int {
	switch s {
	case AES128CBC:
		return 16
	case AES192CBC, TripleDESCBC:
		return 24
	case AES256CBC, AEADAES256CBCHMACSHA256:
		return 32
	}
	return 0
}

// BlockSize is the cipher's block size in bytes: 16 for AES, 8 for 3DES, 0
// for an unknown suite.
func (s Suite) BlockSize() int {
	switch s {
	case AES128CBC, AES192CBC, AES256CBC, AEADAES256CBCHMACSHA256:
		return 16
	case TripleDESCBC:
		return 8
	}
	return 0
}

// Legacy reports whether the suite is allowed only for compatibility (plans
// using it get a warning).
func (s Suite) Legacy() bool { return s == TripleDESCBC }

func (s Suite) aead() bool { return s == AEADAES256CBCHMACSHA256 }

// IVMode says where a column's IVs come from.
type IVMode string

const (
	// IVField uses a fresh random IV for every value: equal plaintexts give
	// different ciphertexts. CBC suites store it in the `<column>_iv` column.
	IVField IVMode = "field"
	// IVColumn is deterministic: one IV for the whole column (CBC suites, kept
	// in colcrypt's metadata) or the HMAC-derived IV of Always Encrypted
	// deterministic encryption (AEAD). Equal plaintexts give equal
	// ciphertexts, which keeps equality lookups, unique constraints and keys
	// working, and reveals which values are equal.
	IVColumn IVMode = "column"
)

// ParseIVMode returns the IV mode a plan names ("field" or "column").
func ParseIVMode(s string) (IVMode, error) {
	switch IVMode(strings.ToLower(strings.TrimSpace(s))) {
	case IVField:
		return IVField, nil
	case IVColumn:
		return IVColumn, nil
	}
	return "", fmt.Errorf("unknown IV mode %q (valid: %s, %s)", s, IVField, IVColumn)
}

// HeaderLen is the length of the versioned header: a format tag byte, then
// the key version as a big-endian uint16.
const HeaderLen = 3

// headerTagBase is the high nibble of every format tag; the low nibble
// names the suite. Naming the suite in the tag lets one column hold values
// of two suites while a rekey moves it from one to the other (3DES to AES),
// and each value still says how to decrypt it.
const headerTagBase = 0xC0

// HeaderTag is the format tag that starts a versioned ciphertext of s.
func (s Suite) HeaderTag() byte {
	for i, x := range Suites() {
		if x == s {
			return headerTagBase | byte(i+1)
		}
	}
	return 0
}

// Header reads the versioned header of a ciphertext: the suite its tag
// names and the key version.
func Header(ciphertext []byte) (Suite, uint16, error) {
	if len(ciphertext) < HeaderLen {
		return "", 0, fmt.Errorf("%w: %d bytes is shorter than the %d-byte versioned header", ErrMalformed, len(ciphertext), HeaderLen)
	}
	tag := ciphertext[0]
	suites := Suites()
	if tag&0xF0 != headerTagBase || int(tag&0x0F) < 1 || int(tag&0x0F) > len(suites) {
		return "", 0, fmt.Errorf("%w: unknown header tag 0x%02x", ErrMalformed, tag)
	}
	return suites[tag&0x0F-1], binary.BigEndian.Uint16(ciphertext[1:HeaderLen]), nil
}

// Always Encrypted cell layout (AEAD suite).
const (
	aeVersion = 0x01 // the cell's algorithm version byte
	aeMACLen  = 32   // HMAC-SHA256 tag
	aeIVLen   = 16   // AES block
	// aeOverhead is everything in a cell before the AES-CBC body.
	aeOverhead = 1 + aeMACLen + aeIVLen
)

// Shape gives the stored ciphertext length as fixed + (n/block + 1)*block
// for a plaintext of n bytes, so the planner can sum it in SQL over
// DATALENGTH. fixed is the versioned header (if any) plus, for the AEAD suite,
// the cell's version byte, MAC and IV; block is the cipher block size, since
// PKCS#7 always adds 1..block bytes. An unknown suite gives (0, 0).
func Shape(s Suite, versioned bool) (fixed, block int) {
	block = s.BlockSize()
	if block == 0 {
		return 0, 0
	}
	if versioned {
		fixed += HeaderLen
	}
	if s.aead() {
		fixed += aeOverhead
	}
	return fixed, block
}

// CiphertextLen is the length of the stored ciphertext (the ciphertext column
// only, not the companion IV column) for a plaintext of n bytes. It returns
// -1 for an unknown suite or a negative n.
func CiphertextLen(s Suite, versioned bool, n int) int {
	fixed, block := Shape(s, versioned)
	if block == 0 || n < 0 {
		return -1
	}
	return fixed + (n/block+1)*block
}

// IVLen is the number of bytes per value in the companion `<column>_iv`
// column: the block size for CBC suites with IVField, 0 otherwise (the AEAD
// suite keeps its IV inline; IVColumn keeps one IV in colcrypt's metadata).
func IVLen(s Suite, mode IVMode) int {
	if s.aead() || mode != IVField {
		return 0
	}
	return s.BlockSize()
}

func joinNames(suites []Suite) string {
	names := make([]string, len(suites))
	for i, s := range suites {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
