package cipher

import (
	"bytes"
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test vector: %v", err)
	}
	return b
}

// The NIST SP 800-38A CBC examples share the IV and plaintext.
const (
	sp80038aIV        = "000102030405060708090a0b0c0d0e0f"
	sp80038aPlaintext = `6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
		30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710`
)

// TestCBCKnownAnswer checks the raw CBC chaining (no padding) over full
// blocks against published vectors, both directions.
func TestCBCKnownAnswer(t *testing.T) {
	newAES := func(k []byte) (stdcipher.Block, error) { return aes.NewCipher(k) }
	tests := []struct {
		name            string
		newBlock        func([]byte) (stdcipher.Block, error)
		key, iv, pt, ct string
	}{
		{
			name:     "SP 800-38A F.2.1 CBC-AES128.Encrypt",
			newBlock: newAES,
			key:      "2b7e151628aed2a6abf7158809cf4f3c",
			iv:       sp80038aIV, pt: sp80038aPlaintext,
			ct: `7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
				73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7`,
		},
		{
			name:     "SP 800-38A F.2.3 CBC-AES192.Encrypt",
			newBlock: newAES,
			key:      "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
			iv:       sp80038aIV, pt: sp80038aPlaintext,
			ct: `4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a
				571b242012fb7ae07fa9baac3df102e0 08b0e27988598881d920a9e64f5615cd`,
		},
		{
			name:     "SP 800-38A F.2.5 CBC-AES256.Encrypt",
			newBlock: newAES,
			key:      "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
			iv:       sp80038aIV, pt: sp80038aPlaintext,
			ct: `f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
				39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b`,
		},
		{
			// NIST CAVP, TDES Multi-block Message Test, TCBCMMT3.rsp [ENCRYPT]
			// COUNT = 9 (tdesmmt.zip, csrc.nist.gov/Projects/Cryptographic-
			// Algorithm-Validation-Program): three distinct keys, ten blocks.
			name:     "CAVP TCBCMMT3 encrypt COUNT=9 (3DES-CBC)",
			newBlock: des.NewTripleDESCipher,
			key:      "9b162a0df8ad9b61 c88676e3d5864345 70b902f12a2046e0",
			iv:       "ebd6fefe029ad54b",
			pt: `f4c1c918e77355c8156f0fd778da52bff121ae5f2f44eaf4d2754946d0e10d1f
				18ce3a0176e69c18b7d20b6e0d0bee5eb5edfe4bd60e4d92adcd86bce72e76f9
				4ee5cbcaa8b01cfddcea2ade575e66ac`,
			ct: `1ff3c8709f403a8eff291aedf50c010df5c5ff64a8b205f1fce68564798897a3
				90db16ee0d053856b75898009731da290fcc119dad987277aacef694872e880c
				4bb41471063fae05c89f25e4bd0cad6a`,
		},
		{
			// NIST SP 800-67 Rev. 2, Appendix B (TDEA example), first block:
			// with a zero IV one CBC block is one ECB block.
			name:     "SP 800-67 App. B first block (3DES)",
			newBlock: des.NewTripleDESCipher,
			key:      "0123456789ABCDEF 23456789ABCDEF01 456789ABCDEF0123",
			iv:       "0000000000000000",
			pt:       "5468652071756663", // "The qufc"
			ct:       "A826FD8CE53B855F",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.newBlock(unhex(t, tt.key))
			if err != nil {
				t.Fatal(err)
			}
			iv, pt, want := unhex(t, tt.iv), unhex(t, tt.pt), unhex(t, tt.ct)

			got := bytes.Clone(pt)
			cbcEncrypt(b, iv, got)
			if !bytes.Equal(got, want) {
				t.Errorf("encrypt:\n got %x\nwant %x", got, want)
			}
			back := make([]byte, len(want))
			cbcDecrypt(b, iv, back, want)
			if !bytes.Equal(back, pt) {
				t.Errorf("decrypt:\n got %x\nwant %x", back, pt)
			}
		})
	}
}

// TestAEKnownCell decrypts an Always Encrypted cell of the NCHAR(10) value
// '12345' and re-creates it byte for byte from the same IV, through the real
// Encrypt path. Vector from the mssql-always-encrypted decryption test
// (github.com/swisscom, vendored as github.com/microsoft/go-mssqldb/internal/
// github.com/swisscom/mssql-always-encrypted/pkg/algorithms).
func TestAEKnownCell(t *testing.T) {
	root := unhex(t, "0ff9e45335df3dec7be0649f741e6ea870e9d49d16fe4be7437ce22489f48ead")
	cell := unhex(t, `01 81c4b77e1c50583c5e83a20afd4c98ce5acb39a636f00247b3a4d78a8be319c8
		40e6970541a66723583def227eb774b4
		234cff209443b0209b75309532b527bdf9b2dfb326b4428840532a20460d06d4`)
	plaintext := unhex(t, "3100320033003400350020002000200020002000") // UTF-16LE "12345     "

	c, err := NewColumn(Params{Suite: AEADAES256CBCHMACSHA256, IV: IVField}, map[uint16][]byte{1: root}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decrypt(cell, nil)
	if err != nil {
		t.Fatalf("decrypt known cell: %v", err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Errorf("decrypt known cell = %x, want %x", got, plaintext)
	}

	// The cell's IV was random; hand the same IV to Encrypt through the
	// column's buffer of random bytes.
	c.rnd = bytes.Clone(cell[1+32 : 1+32+16])
	enc, iv, err := c.Encrypt(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	if iv != nil {
		t.Errorf("AEAD returned a companion IV %x", iv)
	}
	if !bytes.Equal(enc, cell) {
		t.Errorf("encrypt with the cell's IV:\n got %x\nwant %x", enc, cell)
	}
}

// openssl runs the openssl command line tool, independent of Go's crypto,
// and returns its stdout. When openssl is not installed it skips the test,
// or fails it when CI is set, so that CI never passes by skipping.
func openssl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		const msg = "openssl is not installed, so the independent Always Encrypted check cannot run: " +
			"install it (Debian: apt-get install openssl)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v: %s", args[0], err, stderr.String())
	}
	return out
}

func opensslHMAC(t *testing.T, key, data []byte) []byte {
	t.Helper()
	return openssl(t, data, "dgst", "-sha256", "-binary", "-mac", "HMAC", "-macopt", "hexkey:"+hex.EncodeToString(key))
}

func opensslAES256CBC(t *testing.T, key, iv, plaintext []byte) []byte {
	t.Helper()
	// openssl enc pads with PKCS#7 by default.
	return openssl(t, plaintext, "enc", "-aes-256-cbc", "-K", hex.EncodeToString(key), "-iv", hex.EncodeToString(iv))
}

// asciiUTF16LE spells an ASCII string the way .NET's Encoding.Unicode does,
// written out here rather than shared with the code under test.
func asciiUTF16LE(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return b
}

type opensslAEKeys struct{ enc, mac, iv []byte }

// opensslDeriveAE derives the Always Encrypted keys with openssl alone.
func opensslDeriveAE(t *testing.T, root []byte) opensslAEKeys {
	t.Helper()
	const alg = "AEAD_AES_256_CBC_HMAC_SHA256"
	salt := func(kind string) []byte {
		return asciiUTF16LE("Microsoft SQL Server cell " + kind + " key with encryption algorithm:" + alg + " and key length:256")
	}
	return opensslAEKeys{
		enc: opensslHMAC(t, root, salt("encryption")),
		mac: opensslHMAC(t, root, salt("MAC")),
		iv:  opensslHMAC(t, root, salt("IV")),
	}
}

// opensslCell builds 0x01 ‖ MAC ‖ IV ‖ AES-256-CBC(enc, IV, p) with openssl.
func opensslCell(t *testing.T, k opensslAEKeys, iv, plaintext []byte) []byte {
	t.Helper()
	body := opensslAES256CBC(t, k.enc, iv, plaintext)
	macInput := append(append(append([]byte{0x01}, iv...), body...), 0x01)
	tag := opensslHMAC(t, k.mac, macInput)
	cell := append([]byte{0x01}, tag...)
	cell = append(cell, iv...)
	return append(cell, body...)
}

func TestAEKeyDerivationMatchesOpenSSL(t *testing.T) {
	root := unhex(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	want := opensslDeriveAE(t, root)
	got := deriveAEKeys(root)
	for _, k := range []struct {
		name      string
		got, want []byte
	}{{"encryption", got.enc, want.enc}, {"MAC", got.mac, want.mac}, {"IV", got.iv, want.iv}} {
		if len(k.got) != 32 || !bytes.Equal(k.got, k.want) {
			t.Errorf("%s key:\n got %x\nwant %x (openssl)", k.name, k.got, k.want)
		}
	}
	if bytes.Equal(got.enc, got.mac) || bytes.Equal(got.mac, got.iv) {
		t.Error("derived keys are not distinct")
	}
}

func TestAECellMatchesOpenSSL(t *testing.T) {
	root := unhex(t, "5a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70717273747576777879")
	k := opensslDeriveAE(t, root)
	keys := map[uint16][]byte{7: root}

	for _, plaintext := range [][]byte{
		{},
		[]byte("alice@example.com"),
		[]byte("0123456789abcdef"), // exactly one block: a whole block of padding
		bytes.Repeat([]byte{0xA5}, 50),
	} {
		// Deterministic: every byte is predictable, including the IV.
		det, err := NewColumn(Params{Suite: AEADAES256CBCHMACSHA256, IV: IVColumn}, keys, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := det.Encrypt(plaintext)
		if err != nil {
			t.Fatal(err)
		}
		iv := opensslHMAC(t, k.iv, plaintext)[:16]
		if want := opensslCell(t, k, iv, plaintext); !bytes.Equal(got, want) {
			t.Errorf("deterministic cell of %d bytes:\n got %x\nwant %x (openssl)", len(plaintext), got, want)
		}

		// Randomized and versioned: header, then a cell openssl agrees with
		// for the IV the column chose.
		rnd, err := NewColumn(Params{Suite: AEADAES256CBCHMACSHA256, IV: IVField, Versioned: true}, keys, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err = rnd.Encrypt(plaintext)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < HeaderLen+1+32+16 {
			t.Fatalf("cell of %d bytes is too short", len(got))
		}
		if !bytes.Equal(got[:HeaderLen], []byte{0xC5, 0x00, 0x07}) {
			t.Errorf("header = %x, want c50007 (AEAD's tag, key version 7)", got[:HeaderLen])
		}
		iv = got[HeaderLen+1+32 : HeaderLen+1+32+16]
		if want := opensslCell(t, k, iv, plaintext); !bytes.Equal(got[HeaderLen:], want) {
			t.Errorf("randomized cell of %d bytes:\n got %x\nwant %x (openssl)", len(plaintext), got[HeaderLen:], want)
		}

		// And a cell made by openssl alone, under an IV we pick, decrypts.
		mine := opensslCell(t, k, bytes.Repeat([]byte{0x3C}, 16), plaintext)
		back, err := det.Decrypt(mine, nil)
		if err != nil || !bytes.Equal(back, plaintext) {
			t.Errorf("decrypt openssl cell = %x, %v; want %x", back, err, plaintext)
		}
	}
}
