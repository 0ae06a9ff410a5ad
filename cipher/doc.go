// Package cipher owns everything colcrypt does to a single column value: the
// cipher suites a plan may name, PKCS#7 padding, IVs (random per value or one
// per column), the versioned-key header, the Always Encrypted
// (AEAD_AES_256_CBC_HMAC_SHA256) cell format, and the exact ciphertext sizes
// the planner reports.
//
// Sizes and encryption come from the same code: [CiphertextLen] is defined
// through [Shape], and [Column.Encrypt] allocates exactly CiphertextLen bytes,
// so a column sized by the planner can always hold every value the migration
// writes.
//
// Stored layouts, with ‖ for concatenation:
//
//	CBC suites:  [header] ‖ CBC(key, iv, PKCS7(plaintext))     iv stored apart
//	AEAD suite:  [header] ‖ 0x01 ‖ MAC(32) ‖ IV(16) ‖ AES-256-CBC(encKey, IV, PKCS7(plaintext))
//	header:      0xCC ‖ key version (uint16, big-endian)
//
// Keys arrive here already unwrapped (package keystore owns the hierarchy);
// nothing in this package logs, and no error it returns carries key
// material or plaintext.
package cipher
