package cipher

import (
	stdcipher "crypto/cipher"
	"crypto/subtle"
)

// CBC is implemented here over a cipher.Block rather than through
// crypto/cipher.NewCBCEncrypter: that constructor allocates a mode (and an IV
// copy) per call, and a fresh IV per value would mean one per value. The
// chaining itself is two lines; the block cipher does the work.

// cbcEncrypt encrypts buf in place under iv. len(buf) must be a multiple of
// the block size and len(iv) the block size.
func cbcEncrypt(b stdcipher.Block, iv, buf []byte) {
	bs := b.BlockSize()
	prev := iv
	for i := 0; i+bs <= len(buf); i += bs {
		blk := buf[i : i+bs : i+bs]
		subtle.XORBytes(blk, blk, prev)
		b.Encrypt(blk, blk)
		prev = blk
	}
}

// cbcDecrypt decrypts src into dst, which must have the same length and must
// not overlap src. len(src) must be a multiple of the block size and len(iv)
// the block size.
func cbcDecrypt(b stdcipher.Block, iv, dst, src []byte) {
	bs := b.BlockSize()
	prev := iv
	for i := 0; i+bs <= len(src); i += bs {
		out := dst[i : i+bs : i+bs]
		in := src[i : i+bs : i+bs]
		b.Decrypt(out, in)
		subtle.XORBytes(out, out, prev)
		prev = in
	}
}

// padPKCS7 fills buf[n:] with PKCS#7 padding: len(buf)-n bytes, each holding
// that count (1..block, as buf is sized by CiphertextLen).
func padPKCS7(buf []byte, n int) {
	p := byte(len(buf) - n)
	for i := n; i < len(buf); i++ {
		buf[i] = p
	}
}

// unpadPKCS7 strips PKCS#7 padding from b, whose length is a positive
// multiple of block. It inspects the same bytes whatever their values, so
// its timing does not say where the padding went wrong.
func unpadPKCS7(b []byte, block int) ([]byte, bool) {
	n := len(b)
	if n == 0 || n%block != 0 {
		return nil, false
	}
	pad := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, block)
	for i := 1; i <= block; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		same := subtle.ConstantTimeByteEq(b[n-i], byte(pad))
		good &= subtle.ConstantTimeSelect(inPad, same, 1)
	}
	if good != 1 {
		return nil, false
	}
	return b[: n-pad : n-pad], true
}
