package cipher

import "errors"

// Errors returned by [Column.Decrypt], [KeyVersion] and friends. They are
// sentinels: callers test them with errors.Is, since each one drives a
// different decision (a corrupt row, a missing key version, tampering, a
// wrong key). Returned errors wrap them with details that never include key
// material or plaintext.
var (
	// ErrMalformed reports a value that cannot be a ciphertext of this column:
	// wrong length, not a whole number of blocks, a bad header, or an IV that
	// is missing or present when it should not be.
	ErrMalformed = errors.New("cipher: malformed ciphertext")

	// ErrUnknownKeyVersion reports a versioned header naming a key version the
	// column was not given.
	ErrUnknownKeyVersion = errors.New("cipher: unknown key version")

	// ErrAuthentication reports an AEAD cell whose MAC does not verify: the
	// value was tampered with or the key is wrong.
	ErrAuthentication = errors.New("cipher: authentication failed")

	// ErrPadding reports CBC output without valid PKCS#7 padding: the key is
	// wrong or the ciphertext is corrupted. Unlike ErrAuthentication it is not
	// a guarantee: a wrong key yields valid-looking padding about 1 time in 256,
	// and then garbage is returned.
	ErrPadding = errors.New("cipher: invalid padding")
)
