package cipher

import (
	"crypto/hmac"
	"crypto/sha256"
	"unicode/utf16"
)

// Always Encrypted derives three keys from the 256-bit column encryption key
// (the "root key") as HMAC-SHA256(root, UTF-16LE(salt)), with these salts.
// Source: Microsoft Learn, "Always Encrypted cryptography", and the reference
// drivers (Microsoft.Data.SqlClient SqlAeadAes256CbcHmac256EncryptionKey,
// mssql-jdbc SQLServerAeadAes256CbcHmac256EncryptionKey).
const (
	aeEncKeySalt = "Microsoft SQL Server cell encryption key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256"
	aeMACKeySalt = "Microsoft SQL Server cell MAC key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256"
	aeIVKeySalt  = "Microsoft SQL Server cell IV key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256"
)

// aeKeys are the keys derived from one root key.
type aeKeys struct {
	enc, mac, iv []byte
}

func deriveAEKeys(root []byte) aeKeys {
	return aeKeys{
		enc: aeDerive(root, aeEncKeySalt),
		mac: aeDerive(root, aeMACKeySalt),
		iv:  aeDerive(root, aeIVKeySalt),
	}
}

func aeDerive(root []byte, salt string) []byte {
	m := hmac.New(sha256.New, root)
	m.Write(utf16LE(salt))
	return m.Sum(nil)
}

// utf16LE encodes s as .NET's Encoding.Unicode does.
func utf16LE(s string) []byte {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(units))
	for _, u := range units {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}
