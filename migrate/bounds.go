package migrate

import (
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A chunk checkpoint records the chunk's bounds: the keys of rows of the
// table (encodeKey). Where the table's key is one of the columns the job
// encrypts, those are that column's plaintext (before cut-over), which
// must not stay behind in colcrypt's own tables once the column is
// encrypted, nor be found there through an unkeyed hash (an SSN has a few
// billion values to try). So such a table's bounds are stored sealed, with
// AES-GCM under a key derived from the job's digest key, and the record is
// found by a keyed hash of its lower bound. Other tables' bounds are key
// values the table shows anyway, and stay readable.

// boundPrefix marks a sealed bound; an encoded key starts with '['.
const boundPrefix = "~1:"

// boundKeysLabel derives the bounds' keys from the digest key.
const boundKeysLabel = "colcrypt chunk bounds v1"

// boundKeys seal bounds and key their hashes.
type boundKeys struct {
	aead stdcipher.AEAD
	mac  []byte
}

func newBoundKeys(digestKey []byte) (*boundKeys, error) {
	k, err := hkdf.Key(sha256.New, digestKey, nil, boundKeysLabel, 64)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, err
	}
	aead, err := stdcipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &boundKeys{aead: aead, mac: k[32:]}, nil
}

// errNoBoundKeys is an engine that reached a sealed bound before the job's
// keys were loaded (useJob).
var errNoBoundKeys = errors.New("internal error: the job's keys are not loaded, so its sealed chunk bounds cannot be read or written")

// storedBound gives the text a checkpoint stores for the encoded bound
// enc of a chunk of a table whose bounds are sealed or not. "" (the
// table's start or end) is stored as it is.
func (s *store) storedBound(sealed bool, enc string) (string, error) {
	if !sealed || enc == "" {
		return enc, nil
	}
	if s.bounds == nil {
		return "", errNoBoundKeys
	}
	nonce := make([]byte, s.bounds.aead.NonceSize())
	rand.Read(nonce)
	return boundPrefix + base64.RawStdEncoding.EncodeToString(s.bounds.aead.Seal(nonce, nonce, []byte(enc), nil)), nil
}

// openBound gives the encoded bound a checkpoint stored: a sealed one
// opened, any other as it is (a table whose bounds are not sealed, or a
// checkpoint of an earlier version of colcrypt).
func (s *store) openBound(stored string) (string, error) {
	rest, ok := strings.CutPrefix(stored, boundPrefix)
	if !ok {
		return stored, nil
	}
	if s.bounds == nil {
		return "", errNoBoundKeys
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	n := s.bounds.aead.NonceSize()
	if err == nil && len(b) < n {
		err = errors.New("too short")
	}
	if err == nil {
		b, err = s.bounds.aead.Open(nil, b[:n], b[n:], nil)
	}
	if err != nil {
		return "", fmt.Errorf("a sealed chunk bound does not open with the job's keys (%v): the checkpoints were changed, or the keystore is not the job's", err)
	}
	return string(b), nil
}

// boundHash keys a chunk record by its encoded lower bound (loHash): with
// a keyed hash where the table's bounds are sealed.
func (s *store) boundHash(sealed bool, lo string) (string, error) {
	if !sealed {
		return loHash(lo), nil
	}
	if s.bounds == nil {
		return "", errNoBoundKeys
	}
	m := hmac.New(sha256.New, s.bounds.mac)
	m.Write([]byte(lo))
	return hex.EncodeToString(m.Sum(nil)[:16]), nil
}
