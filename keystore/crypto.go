package keystore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Sizes of the key hierarchy.
const (
	// DEKSize is the length of every data key. Suites that need a shorter
	// key (AES-128, AES-192, 3DES) take its first bytes, so one DEK serves
	// any suite and its check value does not depend on the suite.
	DEKSize = 32
	// MasterKeySize is the length of a master key given raw
	// (COLCRYPT_MASTER_KEY: 64 hex characters).
	MasterKeySize = 32

	saltSize     = 16 // argon2id and HKDF salt; RFC 9106 recommends 16 bytes
	verifierSize = 32
	nonceSize    = 12 // AES-GCM standard nonce
	tagSize      = 16 // AES-GCM tag
)

// HKDF info strings: one subkey per purpose, so that no key is used for two
// things. The "v1" ties them to format version 1.
const (
	infoFileKey  = "colcrypt keystore v1 file key"
	infoKEK      = "colcrypt keystore v1 key-encryption key"
	infoVerifier = "colcrypt keystore v1 secret verifier"
)

// kcvLabel is the message whose HMAC under a key is its check value.
const kcvLabel = "colcrypt key check value"

// KDFParams are the argon2id parameters that turn a passphrase into a
// master key. They are stored in the file, so a keystore keeps opening
// after the defaults change.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes over memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // lanes
}

// defaultKDF is the argon2id cost of new passphrases: RFC 9106's second
// recommended setting (64 MiB) with one more pass and two lanes for the
// 2-core machines colcrypt runs on. Measured there as a fresh process it
// takes about 0.2 s, which a person typing a passphrase does not notice
// and which makes each guess of an attacker cost 64 MiB and 0.2 s.
//
// It is a variable only so that this package's tests can lower it; other
// callers choose a cost with WithKDF.
var defaultKDF = KDFParams{Time: 4, MemoryKiB: 64 << 10, Threads: 2}

// Bounds on stored KDF parameters, so that an edited header cannot make
// Open allocate terabytes or run for hours before the checksum or the
// verifier could say anything.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	minKDFMemoryKiB = 8       // argon2's own minimum is 8 KiB per lane
)

func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > maxKDFTime {
		return fmt.Errorf("argon2id time %d outside 1..%d", p.Time, maxKDFTime)
	}
	if p.Threads < 1 {
		return fmt.Errorf("argon2id threads must be at least 1")
	}
	if p.MemoryKiB < minKDFMemoryKiB*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d", p.MemoryKiB, minKDFMemoryKiB*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// CheckValue returns the key check value (KCV) of key: the hex of the first
// 8 bytes of HMAC-SHA256(key, "colcrypt key check value"). It identifies a
// key, so a wrong key is detected before any row is touched, without
// revealing anything about it.
func CheckValue(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kcvLabel))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// randomBytes returns n bytes from the operating system's CSPRNG.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error since Go 1.24; it crashes the
	// program instead if the OS cannot supply randomness.
	_, _ = rand.Read(b)
	return b
}

// masterKey turns a secret into the 32-byte master key: argon2id for a
// passphrase, the bytes themselves for a raw master key.
func masterKey(s Secret, kdf *KDFParams, salt []byte) []byte {
	if s.MasterKey != nil {
		return append([]byte(nil), s.MasterKey...)
	}
	return argon2.IDKey(s.Passphrase, salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, MasterKeySize)
}

// subkeys are what the master key is used for; the master key itself is
// wiped as soon as they are derived.
type subkeys struct {
	file     []byte // seals the whole file body
	kek      []byte // wraps each DEK
	verifier []byte // stored in the header, tells a wrong secret from a damaged file
}

func deriveSubkeys(master, salt []byte) subkeys {
	return subkeys{
		file:     hkdfKey(master, salt, infoFileKey),
		kek:      hkdfKey(master, salt, infoKEK),
		verifier: hkdfKey(master, salt, infoVerifier),
	}
}

func hkdfKey(master, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, master, salt, info, 32)
	if err != nil {
		// Only possible for lengths over 255*32 bytes or in FIPS-only mode
		// with a short key; neither can happen with these constants.
		panic("keystore: hkdf: " + err.Error())
	}
	return k
}

func (s subkeys) wipe() {
	wipe(s.file)
	wipe(s.kek)
	wipe(s.verifier)
}

// verifierMatches compares in constant time, so timing says nothing about
// how close a guess was.
func verifierMatches(stored, derived []byte) bool {
	return subtle.ConstantTimeCompare(stored, derived) == 1
}

// wipe overwrites key material that is no longer needed. Go may have copied
// it elsewhere; this only shortens the time it lies around.
func wipe(b []byte) {
	clear(b)
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("keystore: aes: " + err.Error()) // keys are always 32 bytes here
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("keystore: gcm: " + err.Error())
	}
	return aead
}

// seal encrypts plaintext under key with a fresh random nonce and returns
// nonce ‖ ciphertext ‖ tag.
func seal(key, plaintext, aad []byte) []byte {
	nonce := randomBytes(nonceSize)
	return newGCM(key).Seal(nonce, nonce, plaintext, aad)
}

// open reverses seal; ok is false when the key is wrong or any byte of
// sealed or aad changed.
func open(key, sealed, aad []byte) (plaintext []byte, ok bool) {
	if len(sealed) < nonceSize+tagSize {
		return nil, false
	}
	pt, err := newGCM(key).Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	return pt, err == nil
}

// wrapAAD binds a wrapped DEK to its name and version, so a wrapped key
// moved to another entry no longer unwraps.
func wrapAAD(name string, version uint16) []byte {
	aad := []byte("colcrypt dek\x00" + name + "\x00")
	return binary.BigEndian.AppendUint16(aad, version)
}

func wrapDEK(kek, dek []byte, name string, version uint16) []byte {
	return seal(kek, dek, wrapAAD(name, version))
}

func unwrapDEK(kek, wrapped []byte, name string, version uint16) ([]byte, bool) {
	dek, ok := open(kek, wrapped, wrapAAD(name, version))
	if !ok || len(dek) != DEKSize {
		return nil, false
	}
	return dek, true
}
