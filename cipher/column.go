package cipher

import (
	"bytes"
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
)

// Params are the per-column choices a plan makes.
type Params struct {
	Suite     Suite
	IV        IVMode
	Versioned bool
}

// randPoolSize is how many random bytes a Column reads from crypto/rand at a
// time for IVField IVs. Each crypto/rand call has a fixed cost (~60 ns here)
// comparable to encrypting a short value; 1 KiB amortises it over 64 AES IVs
// (128 for 3DES) and is small enough to keep per worker.
const randPoolSize = 1024

// keyMaterial is what NewColumn prepares from one key version. Nothing writes
// to it afterwards, so clones share it.
type keyMaterial struct {
	version uint16
	block   stdcipher.Block // the data key (CBC suites) or the derived enc key (AEAD)
	macKey  []byte          // AEAD only
	ivKey   []byte          // AEAD only
}

// keyState is one key version as a Column uses it: the shared material plus
// HMAC states, which are mutable and so belong to one Column.
type keyState struct {
	*keyMaterial
	mac   hash.Hash // AEAD only: the cell MAC
	ivMAC hash.Hash // AEAD only: the deterministic IV
}

func newKeyState(m *keyMaterial) *keyState {
	ks := &keyState{keyMaterial: m}
	if m.macKey != nil {
		ks.mac = hmac.New(sha256.New, m.macKey)
		ks.ivMAC = hmac.New(sha256.New, m.ivKey)
	}
	return ks
}

// Column encrypts and decrypts the values of one column. Build it once per
// column per worker. It is NOT safe for concurrent use: it reuses HMAC states
// and a buffer of random bytes. Clone is cheap and gives another goroutine its
// own.
type Column struct {
	p        Params
	fixed    int // Shape(p.Suite, p.Versioned)
	block    int
	keys     map[uint16]*keyState
	enc      *keyState // the key new values are written under
	columnIV []byte    // CBC + IVColumn only
	sum      [sha256.Size]byte
	rnd      []byte // random bytes not yet used as an IV
}

// NewColumn prepares a column cipher. keys maps key version to raw data key
// (Suite.KeySize bytes; for the AEAD suite the root key, from which the
// enc/MAC/IV keys are derived here, once). encryptVersion is the version new
// values are written under and must be in keys. Without a versioned header,
// Decrypt uses the encryptVersion key. columnIV is required for CBC suites
// with IVColumn (BlockSize bytes) and must be empty otherwise.
//
// 3DES keys whose first and second, or second and third, parts are equal are
// refused: DES-EDE3 then collapses to single DES.
func NewColumn(p Params, keys map[uint16][]byte, encryptVersion uint16, columnIV []byte) (*Column, error) {
	s := p.Suite
	if s.KeySize() == 0 {
		return nil, fmt.Errorf("new column cipher: unknown cipher suite %q (valid: %s)", s, joinNames(Suites()))
	}
	if p.IV != IVField && p.IV != IVColumn {
		return nil, fmt.Errorf("new column cipher: unknown IV mode %q (valid: %s, %s)", p.IV, IVField, IVColumn)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("new column cipher (%s): no keys", s)
	}
	if _, ok := keys[encryptVersion]; !ok {
		return nil, fmt.Errorf("new column cipher (%s): encrypt key version %d: %w", s, encryptVersion, ErrUnknownKeyVersion)
	}
	needIV := !s.aead() && p.IV == IVColumn
	switch {
	case needIV && len(columnIV) != s.BlockSize():
		return nil, fmt.Errorf("new column cipher (%s, iv: %s): column IV is %d bytes, want %d", s, p.IV, len(columnIV), s.BlockSize())
	case !needIV && len(columnIV) != 0:
		return nil, fmt.Errorf("new column cipher (%s, iv: %s): a column IV is only used by CBC suites with iv: %s", s, p.IV, IVColumn)
	}

	c := &Column{p: p, keys: make(map[uint16]*keyState, len(keys))}
	c.fixed, c.block = Shape(s, p.Versioned)
	if needIV {
		c.columnIV = bytes.Clone(columnIV)
	}
	for v, k := range keys {
		m, err := newKeyMaterial(s, v, k)
		if err != nil {
			return nil, err
		}
		c.keys[v] = newKeyState(m)
	}
	c.enc = c.keys[encryptVersion]
	return c, nil
}

func newKeyMaterial(s Suite, version uint16, key []byte) (*keyMaterial, error) {
	if len(key) != s.KeySize() {
		return nil, fmt.Errorf("new column cipher (%s): key version %d is %d bytes, want %d", s, version, len(key), s.KeySize())
	}
	m := &keyMaterial{version: version}
	var err error
	switch s {
	case TripleDESCBC:
		if subtle.ConstantTimeCompare(key[0:8], key[8:16]) == 1 || subtle.ConstantTimeCompare(key[8:16], key[16:24]) == 1 {
			return nil, fmt.Errorf("new column cipher (%s): key version %d has two equal adjacent DES keys, which reduces DES-EDE3 to single DES", s, version)
		}
		m.block, err = des.NewTripleDESCipher(key)
	case AEADAES256CBCHMACSHA256:
		d := deriveAEKeys(key)
		m.macKey, m.ivKey = d.mac, d.iv
		m.block, err = aes.NewCipher(d.enc)
	default:
		m.block, err = aes.NewCipher(key)
	}
	if err != nil {
		// Unreachable with the lengths checked above; the message names no key.
		return nil, fmt.Errorf("new column cipher (%s): key version %d: %w", s, version, err)
	}
	return m, nil
}

// Clone returns a Column with the same keys and parameters for use by another
// goroutine. The block ciphers are shared (they are read-only); HMAC states
// and the random-IV buffer are not.
func (c *Column) Clone() *Column {
	n := &Column{
		p:        c.p,
		fixed:    c.fixed,
		block:    c.block,
		keys:     make(map[uint16]*keyState, len(c.keys)),
		columnIV: c.columnIV, // never written after NewColumn
	}
	for v, ks := range c.keys {
		n.keys[v] = newKeyState(ks.keyMaterial)
	}
	n.enc = n.keys[c.enc.version]
	return n
}

// Encrypt returns the stored ciphertext of plaintext, CiphertextLen bytes,
// and iv, the random IV to store in the companion column (CBC suites with
// IVField; nil otherwise). Both are freshly allocated: they alias neither each
// other nor anything the next call reuses, so callers may keep them until a
// batch is written.
func (c *Column) Encrypt(plaintext []byte) (ciphertext, iv []byte, err error) {
	n := len(plaintext)
	total := c.fixed + (n/c.block+1)*c.block
	ivLen := IVLen(c.p.Suite, c.p.IV)

	// One allocation for both results; the full slice expressions keep an
	// append to one from ever reaching the other.
	buf := make([]byte, total+ivLen)
	out := buf[:total:total]
	if ivLen > 0 {
		iv = buf[total : total+ivLen : total+ivLen]
	}

	h := 0
	if c.p.Versioned {
		out[0] = c.p.Suite.HeaderTag()
		binary.BigEndian.PutUint16(out[1:HeaderLen], c.enc.version)
		h = HeaderLen
	}

	if !c.p.Suite.aead() {
		body := out[h:]
		copy(body, plaintext)
		padPKCS7(body, n)
		useIV := c.columnIV
		if iv != nil {
			if err := c.randomIV(iv); err != nil {
				return nil, nil, err
			}
			useIV = iv
		}
		cbcEncrypt(c.enc.block, useIV, body)
		return out, iv, nil
	}

	// Always Encrypted cell: 0x01 ‖ MAC ‖ IV ‖ AES-256-CBC(encKey, IV, p).
	cell := out[h:]
	cell[0] = aeVersion
	tag := cell[1 : 1+aeMACLen]
	cellIV := cell[1+aeMACLen : aeOverhead]
	body := cell[aeOverhead:]
	if c.p.IV == IVColumn {
		// Deterministic: IV = HMAC-SHA256(ivKey, plaintext), first 128 bits.
		m := c.enc.ivMAC
		m.Reset()
		m.Write(plaintext)
		copy(cellIV, m.Sum(c.sum[:0]))
	} else if err := c.randomIV(cellIV); err != nil {
		return nil, nil, err
	}
	copy(body, plaintext)
	padPKCS7(body, n)
	cbcEncrypt(c.enc.block, cellIV, body)
	copy(tag, c.aeMAC(c.enc, cellIV, body))
	return out, nil, nil
}

// aeMAC returns HMAC-SHA256(macKey, 0x01 ‖ iv ‖ body ‖ 0x01), the trailing
// byte being the length of the version byte. The result lives in c.sum.
func (c *Column) aeMAC(ks *keyState, iv, body []byte) []byte {
	m := ks.mac
	m.Reset()
	m.Write(aeVersionBytes)
	m.Write(iv)
	m.Write(body)
	m.Write(aeVersionBytes) // versionbyte_length = 1
	return m.Sum(c.sum[:0])
}

// aeVersionBytes is both the cell version byte and its length (1); a package
// variable so that writing it to an HMAC does not allocate.
var aeVersionBytes = []byte{aeVersion}

// randomIV fills iv from a buffer of crypto/rand output, refilled when empty.
func (c *Column) randomIV(iv []byte) error {
	if len(c.rnd) < len(iv) {
		if cap(c.rnd) < randPoolSize {
			c.rnd = make([]byte, randPoolSize)
		}
		c.rnd = c.rnd[:randPoolSize]
		if _, err := rand.Read(c.rnd); err != nil {
			c.rnd = c.rnd[:0]
			return fmt.Errorf("encrypt: random IV: %w", err)
		}
	}
	copy(iv, c.rnd)
	// Each random byte is handed out once: wipe it and move past it.
	clear(c.rnd[:len(iv)])
	c.rnd = c.rnd[len(iv):]
	return nil
}

// Decrypt reverses Encrypt. iv is the companion-column value (nil when the
// column has none). With a versioned header the key version is read from the
// header and that key is used; without one, the encrypt key is. Decrypt never
// panics: anything that is not a ciphertext of this column is an error
// wrapping ErrMalformed, ErrUnknownKeyVersion, ErrAuthentication or
// ErrPadding.
func (c *Column) Decrypt(ciphertext, iv []byte) ([]byte, error) {
	ks := c.enc
	data := ciphertext
	if c.p.Versioned {
		suite, v, err := Header(ciphertext)
		if err != nil {
			return nil, err
		}
		if suite != c.p.Suite {
			return nil, fmt.Errorf("%w: a %s ciphertext given to a %s column", ErrMalformed, suite, c.p.Suite)
		}
		if v != ks.version {
			if ks = c.keys[v]; ks == nil {
				return nil, fmt.Errorf("decrypt: key version %d: %w", v, ErrUnknownKeyVersion)
			}
		}
		data = ciphertext[HeaderLen:]
	}
	if c.p.Suite.aead() {
		if len(iv) != 0 {
			return nil, fmt.Errorf("%w: %s keeps its IV in the cell, got a %d-byte companion IV", ErrMalformed, c.p.Suite, len(iv))
		}
		return c.decryptCell(ks, data)
	}

	bs := c.block
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, fmt.Errorf("%w: %d bytes of %s ciphertext is not a whole number of %d-byte blocks", ErrMalformed, len(data), c.p.Suite, bs)
	}
	useIV := c.columnIV
	if c.p.IV == IVField {
		if len(iv) != bs {
			return nil, fmt.Errorf("%w: IV is %d bytes, want %d", ErrMalformed, len(iv), bs)
		}
		useIV = iv
	} else if len(iv) != 0 {
		return nil, fmt.Errorf("%w: iv: %s takes no per-value IV, got %d bytes", ErrMalformed, IVColumn, len(iv))
	}
	out := make([]byte, len(data))
	cbcDecrypt(ks.block, useIV, out, data)
	p, ok := unpadPKCS7(out, bs)
	if !ok {
		return nil, fmt.Errorf("decrypt (%s, key version %d): %w (wrong key or corrupted value)", c.p.Suite, ks.version, ErrPadding)
	}
	return p, nil
}

// decryptCell verifies and decrypts an Always Encrypted cell.
//
// The versioned header, when present, sits before the cell and is not covered
// by the MAC: Always Encrypted defines the MAC input, and keeping it intact
// keeps the cell byte-compatible with other AE implementations once the
// header is stripped. Nothing is lost: the header only selects a key, and a
// wrong selection (tampered or not) fails the MAC under that key.
func (c *Column) decryptCell(ks *keyState, cell []byte) ([]byte, error) {
	if len(cell) < aeOverhead+aeIVLen || (len(cell)-aeOverhead)%aeIVLen != 0 {
		return nil, fmt.Errorf("%w: a %d-byte %s cell cannot be version ‖ MAC ‖ IV ‖ whole AES blocks", ErrMalformed, len(cell), c.p.Suite)
	}
	tag := cell[1 : 1+aeMACLen]
	cellIV := cell[1+aeMACLen : aeOverhead]
	body := cell[aeOverhead:]
	// The version byte is authenticated data: any other value than the one a
	// writer could have MACed is tampering, so it is reported as such.
	if cell[0] != aeVersion {
		return nil, fmt.Errorf("decrypt: cell version byte 0x%02x, want 0x%02x: %w", cell[0], aeVersion, ErrAuthentication)
	}
	if !hmac.Equal(tag, c.aeMAC(ks, cellIV, body)) {
		return nil, fmt.Errorf("decrypt (%s, key version %d): %w (tampered value or wrong key)", c.p.Suite, ks.version, ErrAuthentication)
	}
	out := make([]byte, len(body))
	cbcDecrypt(ks.block, cellIV, out, body)
	p, ok := unpadPKCS7(out, aeIVLen)
	if !ok {
		// Authentic but badly padded: written by a broken encryptor.
		return nil, fmt.Errorf("decrypt (%s, key version %d): %w in an authenticated cell", c.p.Suite, ks.version, ErrPadding)
	}
	return p, nil
}

// KeyVersion reports the key version in a versioned ciphertext's header.
func KeyVersion(ciphertext []byte) (uint16, error) {
	_, v, err := Header(ciphertext)
	return v, err
}

// NewColumnIV returns a random IV for a CBC suite with IVColumn, to be kept in
// colcrypt's metadata; nil, nil for the AEAD suite, whose deterministic IV is
// derived per value.
func NewColumnIV(s Suite) ([]byte, error) {
	switch {
	case s.aead():
		return nil, nil
	case s.BlockSize() == 0:
		return nil, fmt.Errorf("new column IV: unknown cipher suite %q (valid: %s)", s, joinNames(Suites()))
	}
	iv := make([]byte, s.BlockSize())
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("new column IV: %w", err)
	}
	return iv, nil
}

// columnIVLabel separates the column-IV derivation from every other use of
// a data key. (v1 derived one IV per key, for every column under it.)
const columnIVLabel = "colcrypt column IV v2"

// ColumnIV derives the one IV of an IVColumn CBC column from its data key
// and the column's group: HMAC-SHA256(key, label, 0, group) cut to the
// block size; nil for AEAD, whose deterministic IV comes from the
// plaintext. group names the columns that must encrypt equal values to
// equal ciphertexts: a primary key and the foreign keys referencing it,
// so the foreign key can be rebuilt on them. Every other column has a
// group of its own, so equal values in unrelated columns under one key (an
// SSN in two tables) do not show as equal ciphertexts.
func ColumnIV(s Suite, key []byte, group string) []byte {
	if s.aead() || s.BlockSize() == 0 {
		return nil
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(columnIVLabel))
	m.Write([]byte{0})
	m.Write([]byte(group))
	return m.Sum(nil)[:s.BlockSize()]
}
