package cipher

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// testKey returns a deterministic key of the suite's size, distinct per seed
// (and valid for 3DES: its three DES keys differ).
func testKey(s Suite, seed byte) []byte {
	k := make([]byte, s.KeySize())
	for i := range k {
		k[i] = seed*31 + byte(i)*7 + 1
	}
	return k
}

type combo struct {
	p        Params
	columnIV []byte
}

func (c combo) String() string {
	return fmt.Sprintf("%s/iv=%s/versioned=%t", c.p.Suite, c.p.IV, c.p.Versioned)
}

// allCombos is every suite × IV mode × versioning.
func allCombos(t testing.TB) []combo {
	t.Helper()
	var out []combo
	for _, s := range Suites() {
		for _, mode := range []IVMode{IVField, IVColumn} {
			for _, versioned := range []bool{false, true} {
				c := combo{p: Params{Suite: s, IV: mode, Versioned: versioned}}
				if mode == IVColumn {
					iv, err := NewColumnIV(s)
					if err != nil {
						t.Fatal(err)
					}
					c.columnIV = iv
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// mustEncrypt encrypts p with col and fails the test if it cannot.
func mustEncrypt(t testing.TB, col *Column, p []byte) (ct, iv []byte) {
	t.Helper()
	ct, iv, err := col.Encrypt(p)
	if err != nil {
		t.Fatalf("Encrypt(%d bytes): %v", len(p), err)
	}
	return ct, iv
}

func newTestColumn(t testing.TB, c combo, keys map[uint16][]byte, encryptVersion uint16) *Column {
	t.Helper()
	col, err := NewColumn(c.p, keys, encryptVersion, c.columnIV)
	if err != nil {
		t.Fatalf("NewColumn(%v): %v", c, err)
	}
	return col
}

func TestParseSuite(t *testing.T) {
	for _, s := range Suites() {
		got, err := ParseSuite(string(s))
		if err != nil || got != s {
			t.Errorf("ParseSuite(%q) = %q, %v", s, got, err)
		}
	}
	if got, err := ParseSuite(" AES-256-CBC "); err != nil || got != AES256CBC {
		t.Errorf("ParseSuite is not lenient about case and spaces: %q, %v", got, err)
	}
	_, err := ParseSuite("aes-256-gcm")
	if err == nil {
		t.Fatal("ParseSuite accepted an unknown suite")
	}
	for _, s := range Suites() {
		if !strings.Contains(err.Error(), string(s)) {
			t.Errorf("error %q does not list valid suite %s", err, s)
		}
	}
}

func TestParseIVMode(t *testing.T) {
	for in, want := range map[string]IVMode{"field": IVField, "column": IVColumn, "Column": IVColumn} {
		if got, err := ParseIVMode(in); err != nil || got != want {
			t.Errorf("ParseIVMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "row", "random"} {
		_, err := ParseIVMode(in)
		if err == nil || !strings.Contains(err.Error(), "field") || !strings.Contains(err.Error(), "column") {
			t.Errorf("ParseIVMode(%q) error = %v, want one listing field and column", in, err)
		}
	}
}

func TestSuiteProperties(t *testing.T) {
	tests := []struct {
		s                Suite
		key, block, ivFD int
		legacy           bool
	}{
		{AES128CBC, 16, 16, 16, false},
		{AES192CBC, 24, 16, 16, false},
		{AES256CBC, 32, 16, 16, false},
		{TripleDESCBC, 24, 8, 8, true},
		{AEADAES256CBCHMACSHA256, 32, 16, 0, false},
		{"rot13", 0, 0, 0, false},
	}
	for _, tt := range tests {
		if got := tt.s.KeySize(); got != tt.key {
			t.Errorf("%s.KeySize() = %d, want %d", tt.s, got, tt.key)
		}
		if got := tt.s.BlockSize(); got != tt.block {
			t.Errorf("%s.BlockSize() = %d, want %d", tt.s, got, tt.block)
		}
		if got := tt.s.Legacy(); got != tt.legacy {
			t.Errorf("%s.Legacy() = %t", tt.s, got)
		}
		if got := IVLen(tt.s, IVField); got != tt.ivFD {
			t.Errorf("IVLen(%s, field) = %d, want %d", tt.s, got, tt.ivFD)
		}
		if got := IVLen(tt.s, IVColumn); got != 0 {
			t.Errorf("IVLen(%s, column) = %d, want 0", tt.s, got)
		}
	}
}

// TestCiphertextLenSpec checks the sizes against SPEC §2 and the Always
// Encrypted layout (1 + 32 + 16 + padded body).
func TestCiphertextLenSpec(t *testing.T) {
	// SPEC §2 table: plaintext bytes → AES, 3DES (unversioned).
	spec := []struct{ n, aes, tdes int }{
		{7, 16, 8}, {8, 16, 16}, {9, 16, 16}, {15, 16, 16}, {16, 32, 24}, {17, 32, 24}, {50, 64, 56},
	}
	for _, row := range spec {
		for _, s := range []Suite{AES128CBC, AES192CBC, AES256CBC} {
			if got := CiphertextLen(s, false, row.n); got != row.aes {
				t.Errorf("CiphertextLen(%s, false, %d) = %d, want %d", s, row.n, got, row.aes)
			}
			if got := CiphertextLen(s, true, row.n); got != row.aes+3 {
				t.Errorf("CiphertextLen(%s, true, %d) = %d, want %d", s, row.n, got, row.aes+3)
			}
		}
		if got := CiphertextLen(TripleDESCBC, false, row.n); got != row.tdes {
			t.Errorf("CiphertextLen(3des, false, %d) = %d, want %d", row.n, got, row.tdes)
		}
		if got := CiphertextLen(TripleDESCBC, true, row.n); got != row.tdes+3 {
			t.Errorf("CiphertextLen(3des, true, %d) = %d, want %d", row.n, got, row.tdes+3)
		}
		if got := CiphertextLen(AEADAES256CBCHMACSHA256, false, row.n); got != 49+row.aes {
			t.Errorf("CiphertextLen(aead, false, %d) = %d, want %d", row.n, got, 49+row.aes)
		}
		if got := CiphertextLen(AEADAES256CBCHMACSHA256, true, row.n); got != 52+row.aes {
			t.Errorf("CiphertextLen(aead, true, %d) = %d, want %d", row.n, got, 52+row.aes)
		}
	}
	// SPEC §2 worked example: 10,000 50-byte values, 3DES, field IVs.
	if got := 10000 * CiphertextLen(TripleDESCBC, false, 50); got != 560000 {
		t.Errorf("worked example ciphertext = %d, want 560000", got)
	}
	if got := 10000 * IVLen(TripleDESCBC, IVField); got != 80000 {
		t.Errorf("worked example IVs = %d, want 80000", got)
	}

	// SPEC §2: ciphertext = header + ((n / block) + 1) × block, the header
	// 3 bytes for versioned keys (format tag, key version as uint16) and 0
	// for unversioned ones; blocks of 16 bytes for AES, 8 for 3DES. The
	// AEAD cell adds 0x01 ‖ MAC(32) ‖ IV(16) before its body (SPEC §3).
	const versionHeader = 3
	spec2 := map[Suite]struct{ cell, block int }{
		AES128CBC:               {0, 16},
		AES192CBC:               {0, 16},
		AES256CBC:               {0, 16},
		TripleDESCBC:            {0, 8},
		AEADAES256CBCHMACSHA256: {1 + 32 + 16, 16},
	}
	for _, s := range Suites() {
		sp, ok := spec2[s]
		if !ok {
			t.Errorf("suite %s has no size in SPEC §2/§3", s)
			continue
		}
		for _, v := range []bool{false, true} {
			header := 0
			if v {
				header = versionHeader
			}
			if fixed, block := Shape(s, v); fixed != header+sp.cell || block != sp.block {
				t.Errorf("Shape(%s, %t) = %d, %d; want %d fixed bytes and %d-byte blocks", s, v, fixed, block, header+sp.cell, sp.block)
			}
			for n := range 100 {
				if got, want := CiphertextLen(s, v, n), header+sp.cell+(n/sp.block+1)*sp.block; got != want {
					t.Fatalf("CiphertextLen(%s, %t, %d) = %d, want %d (SPEC §2)", s, v, n, got, want)
				}
			}
		}
	}
	if f, b := Shape("rot13", true); f != 0 || b != 0 {
		t.Errorf("Shape(unknown) = %d, %d; want 0, 0", f, b)
	}
	if got := CiphertextLen("rot13", false, 5); got != -1 {
		t.Errorf("CiphertextLen(unknown) = %d, want -1", got)
	}
	if got := CiphertextLen(AES128CBC, false, -1); got != -1 {
		t.Errorf("CiphertextLen(n=-1) = %d, want -1", got)
	}
}

// TestRoundTripSizes is the size property: for every plaintext length up to
// 10,000 the ciphertext is exactly CiphertextLen, the IV exactly IVLen, and
// Decrypt gives the plaintext back. The default combination (AEAD, field IVs,
// versioned) runs every n; the others every n up to 300 (every padding case
// many times over) and then a stride coprime to both block sizes.
func TestRoundTripSizes(t *testing.T) {
	const maxN = 10000
	src := make([]byte, maxN)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	def := Params{Suite: AEADAES256CBCHMACSHA256, IV: IVField, Versioned: true}

	for _, cb := range allCombos(t) {
		t.Run(cb.String(), func(t *testing.T) {
			col := newTestColumn(t, cb, map[uint16][]byte{3: testKey(cb.p.Suite, 3)}, 3)
			step := func(n int) int {
				switch {
				case cb.p == def, n < 300:
					return 1
				case n+97 > maxN && n < maxN:
					return maxN - n
				}
				return 97
			}
			count := 0
			for n := 0; n <= maxN; n += step(n) {
				count++
				p := src[:n]
				ct, iv, err := col.Encrypt(p)
				if err != nil {
					t.Fatalf("n=%d: encrypt: %v", n, err)
				}
				if want := CiphertextLen(cb.p.Suite, cb.p.Versioned, n); len(ct) != want {
					t.Fatalf("n=%d: ciphertext %d bytes, CiphertextLen says %d", n, len(ct), want)
				}
				if want := IVLen(cb.p.Suite, cb.p.IV); len(iv) != want {
					t.Fatalf("n=%d: iv %d bytes, IVLen says %d", n, len(iv), want)
				}
				if n >= 16 && bytes.Contains(ct, p[:16]) {
					t.Fatalf("n=%d: ciphertext contains the plaintext", n)
				}
				back, err := col.Decrypt(ct, iv)
				if err != nil {
					t.Fatalf("n=%d: decrypt: %v", n, err)
				}
				if !bytes.Equal(back, p) {
					t.Fatalf("n=%d: round trip differs", n)
				}
			}
			if count < 300 {
				t.Fatalf("only %d lengths tested", count)
			}
		})
	}
}

func TestEncryptEmptyPlaintextIsNotNull(t *testing.T) {
	for _, cb := range allCombos(t) {
		col := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1)}, 1)
		for _, p := range [][]byte{nil, {}} {
			ct, iv, err := col.Encrypt(p)
			if err != nil {
				t.Fatal(err)
			}
			back, err := col.Decrypt(ct, iv)
			if err != nil || back == nil || len(back) != 0 {
				t.Errorf("%v: empty plaintext came back as %v (nil=%t), %v", cb, back, back == nil, err)
			}
		}
	}
}

// TestVersionedRekey: while a rekey runs, a column holds values under two key
// versions and one Column (encrypting under the new one) reads both.
func TestVersionedRekey(t *testing.T) {
	for _, cb := range allCombos(t) {
		if !cb.p.Versioned {
			continue
		}
		t.Run(cb.String(), func(t *testing.T) {
			k1, k2 := testKey(cb.p.Suite, 1), testKey(cb.p.Suite, 2)
			old := newTestColumn(t, cb, map[uint16][]byte{1: k1}, 1)
			both := newTestColumn(t, cb, map[uint16][]byte{1: k1, 2: k2}, 2)
			onlyNew := newTestColumn(t, cb, map[uint16][]byte{2: k2}, 2)

			p := []byte("123-45-6789")
			ct1, iv1, err := old.Encrypt(p)
			if err != nil {
				t.Fatal(err)
			}
			ct2, iv2, err := both.Encrypt(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				ct      []byte
				version uint16
			}{{ct1, 1}, {ct2, 2}} {
				if v, err := KeyVersion(tc.ct); err != nil || v != tc.version {
					t.Errorf("KeyVersion = %d, %v; want %d", v, err, tc.version)
				}
			}
			for i, tc := range []struct{ ct, iv []byte }{{ct1, iv1}, {ct2, iv2}} {
				got, err := both.Decrypt(tc.ct, tc.iv)
				if err != nil || !bytes.Equal(got, p) {
					t.Errorf("value %d under keys {1,2}: %q, %v", i+1, got, err)
				}
			}
			if _, err := onlyNew.Decrypt(ct1, iv1); !errors.Is(err, ErrUnknownKeyVersion) {
				t.Errorf("version 1 value with only key 2: err = %v, want ErrUnknownKeyVersion", err)
			}
			if _, err := old.Decrypt(ct2, iv2); !errors.Is(err, ErrUnknownKeyVersion) {
				t.Errorf("version 2 value with only key 1: err = %v, want ErrUnknownKeyVersion", err)
			}
		})
	}
}

func TestKeyVersion(t *testing.T) {
	if v, err := KeyVersion([]byte{0xC3, 0x12, 0x34, 0xFF}); err != nil || v != 0x1234 {
		t.Errorf("KeyVersion = %#x, %v; want 0x1234 (big-endian)", v, err)
	}
	// Each suite has its own tag, and Header reads it back.
	seen := map[byte]bool{}
	for _, s := range Suites() {
		tag := s.HeaderTag()
		if seen[tag] || tag&0xF0 != 0xC0 {
			t.Errorf("suite %s has tag %#x: tags must be distinct and start with 0xC", s, tag)
		}
		seen[tag] = true
		got, v, err := Header([]byte{tag, 0, 9})
		if err != nil || got != s || v != 9 {
			t.Errorf("Header(%s tag) = %s, %d, %v", s, got, v, err)
		}
	}
	for _, bad := range [][]byte{nil, {0xC3}, {0xC3, 0}, {0xCC, 0, 1}, {0xC0, 0, 1}, {0x01, 0, 1, 2}} {
		if _, err := KeyVersion(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("KeyVersion(%x) err = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestAEADTamper flips every bit position class of every byte of a cell.
func TestAEADTamper(t *testing.T) {
	k1 := testKey(AEADAES256CBCHMACSHA256, 1)
	for _, mode := range []IVMode{IVField, IVColumn} {
		t.Run(string(mode), func(t *testing.T) {
			col := newTestColumn(t, combo{p: Params{Suite: AEADAES256CBCHMACSHA256, IV: mode}}, map[uint16][]byte{1: k1}, 1)
			p := []byte("a note that is longer than one block")
			cell, _, err := col.Encrypt(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := range cell {
				for _, mask := range []byte{0x01, 0x80} {
					bad := bytes.Clone(cell)
					bad[i] ^= mask
					if got, err := col.Decrypt(bad, nil); !errors.Is(err, ErrAuthentication) {
						t.Fatalf("byte %d ^ %#x: got %q, %v; want ErrAuthentication", i, mask, got, err)
					}
				}
			}
			// Dropping or swapping whole blocks keeps the length valid.
			if _, err := col.Decrypt(cell[:len(cell)-16], nil); !errors.Is(err, ErrAuthentication) {
				t.Errorf("truncated by a block: %v, want ErrAuthentication", err)
			}
			swapped := bytes.Clone(cell)
			copy(swapped[49:65], cell[65:81])
			copy(swapped[65:81], cell[49:65])
			if _, err := col.Decrypt(swapped, nil); !errors.Is(err, ErrAuthentication) {
				t.Errorf("blocks swapped: %v, want ErrAuthentication", err)
			}
			// Sanity: the untouched cell still decrypts.
			if got, err := col.Decrypt(cell, nil); err != nil || !bytes.Equal(got, p) {
				t.Fatalf("untampered cell: %q, %v", got, err)
			}
		})
	}
}

// TestAEADTamperVersioned: the header is outside the MAC, yet every change to
// it is caught: a bad tag is malformed, an unknown version is unknown, and a
// known but wrong version fails the MAC under that key.
func TestAEADTamperVersioned(t *testing.T) {
	s := AEADAES256CBCHMACSHA256
	col := newTestColumn(t, combo{p: Params{Suite: s, IV: IVField, Versioned: true}},
		map[uint16][]byte{1: testKey(s, 1), 2: testKey(s, 2)}, 1)
	p := []byte("4111 1111 1111 1111")
	ct, _, err := col.Encrypt(p)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, bad []byte, want error) {
		t.Helper()
		if got, err := col.Decrypt(bad, nil); !errors.Is(err, want) {
			t.Errorf("%s: got %q, %v; want %v", name, got, err, want)
		}
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x04
		switch {
		case i == 0:
			check("tag flipped", bad, ErrMalformed)
		case i < HeaderLen:
			check(fmt.Sprintf("version byte %d flipped", i), bad, ErrUnknownKeyVersion)
		default:
			check(fmt.Sprintf("cell byte %d flipped", i), bad, ErrAuthentication)
		}
	}
	other := bytes.Clone(ct)
	other[2] = 2 // version 2 exists: selects the wrong key
	check("header rewritten to key 2", other, ErrAuthentication)
}

func TestWrongKey(t *testing.T) {
	p := []byte("jane.doe@example.org")
	for _, cb := range allCombos(t) {
		t.Run(cb.String(), func(t *testing.T) {
			right := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1)}, 1)
			wrong := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 9)}, 1)
			paddingErrors := 0
			const tries = 64
			for i := range tries {
				pi := append(bytes.Clone(p), byte(i))
				ct, iv, err := right.Encrypt(pi)
				if err != nil {
					t.Fatal(err)
				}
				got, err := wrong.Decrypt(ct, iv)
				switch {
				case cb.p.Suite.aead():
					if !errors.Is(err, ErrAuthentication) {
						t.Fatalf("AEAD under a wrong key: %q, %v; want ErrAuthentication", got, err)
					}
				case err == nil:
					// Valid-looking padding by chance: must still be garbage.
					if bytes.Equal(got, pi) {
						t.Fatal("a wrong key decrypted the plaintext")
					}
				case errors.Is(err, ErrPadding):
					paddingErrors++
				default:
					t.Fatalf("CBC under a wrong key: %v; want ErrPadding or garbage", err)
				}
			}
			if !cb.p.Suite.aead() && paddingErrors < tries/2 {
				t.Errorf("only %d of %d wrong-key decryptions reported ErrPadding", paddingErrors, tries)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	a, b := []byte("same value"), []byte("other value")
	for _, cb := range allCombos(t) {
		t.Run(cb.String(), func(t *testing.T) {
			col := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1)}, 1)
			ct1, iv1 := mustEncrypt(t, col, a)
			ct2, iv2 := mustEncrypt(t, col, a)
			ct3, _ := mustEncrypt(t, col, b)
			if bytes.Equal(ct1, ct3) {
				t.Error("different plaintexts gave equal ciphertexts")
			}
			if cb.p.IV == IVColumn {
				if !bytes.Equal(ct1, ct2) {
					t.Error("iv: column gave different ciphertexts for equal plaintexts")
				}
				return
			}
			if bytes.Equal(ct1, ct2) {
				t.Error("iv: field gave equal ciphertexts for equal plaintexts")
			}
			if iv1 != nil && bytes.Equal(iv1, iv2) {
				t.Error("iv: field reused an IV")
			}
		})
	}
	// Two CBC columns with different column IVs encrypt the same value differently.
	k := map[uint16][]byte{1: testKey(AES256CBC, 1)}
	p := Params{Suite: AES256CBC, IV: IVColumn}
	x := newTestColumn(t, combo{p, bytes.Repeat([]byte{1}, 16)}, k, 1)
	y := newTestColumn(t, combo{p, bytes.Repeat([]byte{2}, 16)}, k, 1)
	cx, _ := mustEncrypt(t, x, a)
	cy, _ := mustEncrypt(t, y, a)
	if bytes.Equal(cx, cy) {
		t.Error("column IV is not used")
	}
}

func TestRandomIVsAreUnique(t *testing.T) {
	for _, s := range []Suite{TripleDESCBC, AES128CBC, AEADAES256CBCHMACSHA256} {
		col := newTestColumn(t, combo{p: Params{Suite: s, IV: IVField}}, map[uint16][]byte{1: testKey(s, 1)}, 1)
		seen := make(map[string]bool)
		// Several refills of the random buffer.
		for range 3 * randPoolSize / 8 {
			ct, iv, err := col.Encrypt(nil)
			if err != nil {
				t.Fatal(err)
			}
			iv = valueIV(col.p, ct, iv)
			if len(iv) != s.BlockSize() {
				t.Fatalf("%s: IV of %d bytes", s, len(iv))
			}
			if seen[string(iv)] {
				t.Fatalf("%s: IV %x handed out twice", s, iv)
			}
			seen[string(iv)] = true
		}
	}
}

// valueIV returns the IV a value was encrypted under: the companion IV, or
// the IV inside an AEAD cell.
func valueIV(p Params, ct, iv []byte) []byte {
	if !p.Suite.aead() {
		return iv
	}
	h := 0
	if p.Versioned {
		h = HeaderLen
	}
	return ct[h+1+32 : h+1+32+16]
}

// TestResultsDoNotAlias: callers keep ciphertexts and IVs of a whole batch
// while the Column goes on encrypting.
func TestResultsDoNotAlias(t *testing.T) {
	for _, cb := range allCombos(t) {
		col := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1)}, 1)
		ct, iv := mustEncrypt(t, col, []byte("first"))
		keepCT, keepIV := bytes.Clone(ct), bytes.Clone(iv)
		for range 5 {
			mustEncrypt(t, col, []byte("second value, longer"))
			if _, err := col.Decrypt(ct, iv); err != nil {
				t.Fatalf("%v: decrypt a kept ciphertext: %v", cb, err)
			}
		}
		_ = append(ct, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
		if !bytes.Equal(ct, keepCT) || !bytes.Equal(iv, keepIV) {
			t.Errorf("%v: a kept ciphertext or IV changed", cb)
		}
		back, err := col.Decrypt(ct, iv)
		if err != nil {
			t.Fatalf("%v: decrypt a kept ciphertext: %v", cb, err)
		}
		_ = append(back, 'X')
		if got, err := col.Decrypt(ct, iv); err != nil || string(got) != "first" {
			t.Errorf("%v: decrypt after appending to a result = %q, %v", cb, got, err)
		}
	}
}

func TestCloneConcurrent(t *testing.T) {
	for _, cb := range allCombos(t) {
		base := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1), 2: testKey(cb.p.Suite, 2)}, 2)
		// Use the original first, so a clone that shared or copied its buffer
		// of random bytes would repeat (or zero) IVs.
		ct0, iv0 := mustEncrypt(t, base, []byte("x"))
		clone := base.Clone()
		if cb.p.IV == IVField {
			seen := make(map[string]bool)
			for i := range 40 {
				col := base
				if i%2 == 1 {
					col = clone
				}
				ct, iv := mustEncrypt(t, col, []byte("x"))
				iv = valueIV(cb.p, ct, iv)
				if seen[string(iv)] || bytes.Count(iv, []byte{0}) == len(iv) {
					t.Fatalf("%v: clone and original repeat IV %x", cb, iv)
				}
				seen[string(iv)] = true
			}
		}
		if got, err := clone.Decrypt(ct0, iv0); err != nil || string(got) != "x" {
			t.Errorf("%v: clone cannot read the original's value: %q, %v", cb, got, err)
		}

		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			c := base.Clone()
			wg.Go(func() {
				for i := range 50 {
					p := fmt.Appendf(nil, "worker %d value %d", w, i)
					ct, iv, err := c.Encrypt(p)
					if err == nil {
						var got []byte
						got, err = c.Decrypt(ct, iv)
						if err == nil && !bytes.Equal(got, p) {
							err = fmt.Errorf("round trip gave %q", got)
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%v: %v", cb, err)
		}
	}
}

func TestDecryptMalformed(t *testing.T) {
	for _, cb := range allCombos(t) {
		t.Run(cb.String(), func(t *testing.T) {
			col := newTestColumn(t, cb, map[uint16][]byte{1: testKey(cb.p.Suite, 1)}, 1)
			ct, iv, err := col.Encrypt([]byte("hello"))
			if err != nil {
				t.Fatal(err)
			}
			bs := cb.p.Suite.BlockSize()
			type input struct {
				name   string
				ct, iv []byte
			}
			cases := []input{
				{"nil", nil, iv},
				{"empty", []byte{}, iv},
				{"one byte short", ct[:len(ct)-1], iv},
				{"one byte long", append(bytes.Clone(ct), 0), iv},
			}
			if cb.p.Versioned {
				cases = append(cases, input{"header only", ct[:HeaderLen], iv})
			}
			if cb.p.Suite.aead() {
				cases = append(cases,
					input{"cell without body", ct[:len(ct)-16], iv},
					input{"companion IV given", ct, make([]byte, 16)})
			} else if cb.p.IV == IVField {
				cases = append(cases,
					input{"IV missing", ct, nil},
					input{"IV short", ct, iv[:bs-1]},
					input{"IV long", ct, append(bytes.Clone(iv), 0)})
			} else {
				cases = append(cases, input{"companion IV given", ct, make([]byte, bs)})
			}
			for _, in := range cases {
				got, err := col.Decrypt(in.ct, in.iv)
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: got %q, %v; want ErrMalformed", in.name, got, err)
				}
			}
		})
	}
}

func TestPKCS7(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" with ok=false
		ok   bool
	}{
		{"41424344 45464748 0202", "", false}, // not a whole block (10 bytes)
		{"4142434445464702", "", false},       // the last two must both be 02
		{"4142434445460202", "414243444546", true},
		{"0808080808080808", "", true},
		{"4142434445464700", "", false}, // pad 0
		{"4142434445464709", "", false}, // pad > block
		{"0909090909090909", "", false},
		{"4142434445460302", "", false},
		{"4142434445030303", "4142434445", true},
	}
	for _, tt := range tests {
		in := unhex(t, tt.in)
		got, ok := unpadPKCS7(in, 8)
		if ok != tt.ok || (ok && hex.EncodeToString(got) != tt.want) {
			t.Errorf("unpadPKCS7(%s) = %x, %t; want %s, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for n := range 17 {
		buf := make([]byte, (n/8+1)*8)
		padPKCS7(buf, n)
		got, ok := unpadPKCS7(buf, 8)
		if !ok || len(got) != n {
			t.Errorf("pad then unpad %d bytes: %d, %t", n, len(got), ok)
		}
	}
}

func TestNewColumnErrors(t *testing.T) {
	aesKey := testKey(AES256CBC, 1)
	aesIV := make([]byte, 16)
	weak3DES := append(bytes.Repeat([]byte{0x11}, 16), bytes.Repeat([]byte{0x22}, 8)...)
	secretLooking := bytes.Repeat([]byte{0xAB}, 31)
	tests := []struct {
		name     string
		p        Params
		keys     map[uint16][]byte
		version  uint16
		columnIV []byte
		is       error
	}{
		{"unknown suite", Params{Suite: "rc4", IV: IVField}, map[uint16][]byte{1: aesKey}, 1, nil, nil},
		{"unknown IV mode", Params{Suite: AES256CBC, IV: "row"}, map[uint16][]byte{1: aesKey}, 1, nil, nil},
		{"no keys", Params{Suite: AES256CBC, IV: IVField}, nil, 1, nil, nil},
		{"encrypt version missing", Params{Suite: AES256CBC, IV: IVField}, map[uint16][]byte{1: aesKey}, 2, nil, ErrUnknownKeyVersion},
		{"key too short", Params{Suite: AES256CBC, IV: IVField}, map[uint16][]byte{1: secretLooking}, 1, nil, nil},
		{"AES-128 key for AES-256", Params{Suite: AES256CBC, IV: IVField}, map[uint16][]byte{1: testKey(AES128CBC, 1)}, 1, nil, nil},
		{"bad key among several", Params{Suite: AEADAES256CBCHMACSHA256, IV: IVField}, map[uint16][]byte{1: aesKey, 2: secretLooking}, 1, nil, nil},
		{"column IV missing", Params{Suite: AES256CBC, IV: IVColumn}, map[uint16][]byte{1: aesKey}, 1, nil, nil},
		{"column IV wrong size", Params{Suite: TripleDESCBC, IV: IVColumn}, map[uint16][]byte{1: testKey(TripleDESCBC, 1)}, 1, aesIV, nil},
		{"column IV with field IVs", Params{Suite: AES256CBC, IV: IVField}, map[uint16][]byte{1: aesKey}, 1, aesIV, nil},
		{"column IV with AEAD", Params{Suite: AEADAES256CBCHMACSHA256, IV: IVColumn}, map[uint16][]byte{1: aesKey}, 1, aesIV, nil},
		{"3DES degenerate key", Params{Suite: TripleDESCBC, IV: IVField}, map[uint16][]byte{1: weak3DES}, 1, nil, nil},
	}
	for _, tt := range tests {
		c, err := NewColumn(tt.p, tt.keys, tt.version, tt.columnIV)
		if err == nil || c != nil {
			t.Errorf("%s: NewColumn succeeded", tt.name)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.is)
		}
		msg := strings.ToLower(err.Error())
		for _, k := range tt.keys {
			if strings.Contains(msg, hex.EncodeToString(k)[:8]) || strings.Contains(err.Error(), string(k[:4])) {
				t.Errorf("%s: error %q contains key material", tt.name, err)
			}
		}
	}
	// 2-key 3DES (K1 == K3, keying option 2) is still accepted for legacy data.
	opt2 := append(testKey(AES128CBC, 1), testKey(AES128CBC, 1)[:8]...)
	if _, err := NewColumn(Params{Suite: TripleDESCBC, IV: IVField}, map[uint16][]byte{1: opt2}, 1, nil); err != nil {
		t.Errorf("3DES keying option 2 refused: %v", err)
	}
}

func TestNewColumnCopiesInputs(t *testing.T) {
	key := testKey(AES128CBC, 1)
	iv := bytes.Repeat([]byte{7}, 16)
	col := newTestColumn(t, combo{Params{Suite: AES128CBC, IV: IVColumn}, iv}, map[uint16][]byte{1: key}, 1)
	ct, _ := mustEncrypt(t, col, []byte("v"))
	clear(key)
	clear(iv)
	ct2, _ := mustEncrypt(t, col, []byte("v"))
	if !bytes.Equal(ct, ct2) {
		t.Error("the Column depends on the caller's key or IV slices after NewColumn")
	}
}

func TestNewColumnIV(t *testing.T) {
	for _, s := range Suites() {
		iv, err := NewColumnIV(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if s.aead() {
			if iv != nil {
				t.Errorf("%s: column IV %x, want nil", s, iv)
			}
			continue
		}
		iv2, _ := NewColumnIV(s)
		if len(iv) != s.BlockSize() || bytes.Equal(iv, iv2) {
			t.Errorf("%s: column IVs %x, %x: want %d random bytes", s, iv, iv2, s.BlockSize())
		}
	}
	if _, err := NewColumnIV("rc4"); err == nil {
		t.Error("NewColumnIV accepted an unknown suite")
	}
}

func TestColumnIVIsDerivedFromTheKeyAndGroup(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	for i := range k1 {
		k1[i], k2[i] = byte(i*7+1), byte(i*11+2) // distinct DES thirds, so 3DES accepts them
	}
	for _, s := range Suites() {
		a, b, c := ColumnIV(s, k1, "people.ssn"), ColumnIV(s, k1, "people.ssn"), ColumnIV(s, k2, "people.ssn")
		other := ColumnIV(s, k1, "staff.badge")
		if s == AEADAES256CBCHMACSHA256 {
			if a != nil {
				t.Errorf("%s: AEAD derives its IV from the plaintext, got a column IV", s)
			}
			continue
		}
		if len(a) != s.BlockSize() || !bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(a, other) {
			t.Errorf("%s: ColumnIV must be block-sized, stable per key and group, and differ between keys and between groups: %x %x %x %x",
				s, a, b, c, other)
		}
		key := k1[:s.KeySize()]
		p := Params{Suite: s, IV: IVColumn, Versioned: true}
		encrypt := func(group string) []byte {
			t.Helper()
			x, err := NewColumn(p, map[uint16][]byte{1: key}, 1, ColumnIV(s, k1, group))
			if err != nil {
				t.Fatal(err)
			}
			ct, _, err := x.Encrypt([]byte("123-45-6789"))
			if err != nil {
				t.Fatal(err)
			}
			return ct
		}
		// Two columns of one group (a foreign key and the key it
		// references) encrypt equal values equally; unrelated ones do not.
		if !bytes.Equal(encrypt("people.ssn"), encrypt("people.ssn")) {
			t.Errorf("%s: columns of one group encrypt the same SSN differently; a foreign key between them could not be rebuilt", s)
		}
		if bytes.Equal(encrypt("people.ssn"), encrypt("staff.badge")) {
			t.Errorf("%s: unrelated columns under one key encrypt the same SSN to the same ciphertext", s)
		}
	}
}
