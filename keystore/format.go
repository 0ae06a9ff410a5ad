package keystore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File layout, format version 1 (keystores and backups alike):
//
//	magic      "colcrypt-keystore\n"  (18 bytes; `head -1 FILE` names the file)
//	version    uint16 big-endian      format version, 1
//	hlen       uint32 big-endian      length of the header
//	header     JSON, cleartext        purpose, protector, kdf parameters, salt, verifier
//	sealed     nonce(12) ‖ AES-256-GCM(file key, body JSON) ‖ tag(16),
//	           additional data = every byte before it (magic … header)
//	checksum   SHA-256 of every byte before it
//
// GCM authenticates the whole file under a key derived from the master key:
// no byte can change without detection by someone who lacks the secret.
// The unkeyed checksum adds no security; it lets Open say "damaged" instead
// of "wrong passphrase" when a header byte was flipped or the file cut, and
// it does so before paying for argon2id.
const (
	magic         = "colcrypt-keystore\n"
	formatVersion = 1

	prefixSize   = len(magic) + 2 + 4
	checksumSize = sha256.Size
	minFileSize  = prefixSize + 2 + nonceSize + tagSize + checksumSize // "{}" header, empty body
	// maxFileSize bounds what Open reads: a keystore of ten thousand keys is
	// about 3 MB, and a wrong path to a device must not read forever.
	maxFileSize   = 64 << 20
	maxHeaderSize = 4 << 10
)

// What a file holds and what protects it, as written in its header.
const (
	purposeKeystore = "keystore"
	purposeBackup   = "backup"

	protectorPassphrase = "passphrase"
	protectorMasterKey  = "master-key"
	protectorPKCS11     = "pkcs11"

	kdfArgon2id = "argon2id"
)

// header is the cleartext part of the file. It is bound to the body as GCM
// additional data, so it cannot be changed either.
type header struct {
	Purpose   string     `json:"purpose"`
	Protector string     `json:"protector"`
	KDF       string     `json:"kdf,omitempty"`
	KDFParams *KDFParams `json:"kdf_params,omitempty"`
	// PKCS11 is set when the protector is "pkcs11": where the HSM's key is
	// and the master key it encrypted (never the PIN or the module path).
	PKCS11   *pkcs11Header `json:"pkcs11,omitempty"`
	Salt     []byte        `json:"salt"`
	Verifier []byte        `json:"verifier"`
}

// body is the sealed part of the file.
type body struct {
	Created       time.Time `json:"created"`
	LastKeyChange time.Time `json:"last_key_change,omitzero"`
	LastRewrap    time.Time `json:"last_rewrap,omitzero"`
	LastBackup    time.Time `json:"last_backup,omitzero"`
	// BackupFile (absolute) and BackupSHA256 are where the last backup was
	// written and the digest of its bytes, so the backup check can tell
	// that it still exists. Both are absent from keystores backed up by an
	// older colcrypt, and from backup files, which cannot hold their own
	// digest and so stay readable by an older colcrypt's restore.
	BackupFile   string  `json:"backup_file,omitempty"`
	BackupSHA256 []byte  `json:"backup_sha256,omitempty"`
	Keys         []entry `json:"keys"`
}

// entry is one version of one data key; the DEK is stored only wrapped.
type entry struct {
	Name       string    `json:"name"`
	Version    uint16    `json:"version"`
	Created    time.Time `json:"created"`
	Status     string    `json:"status"`
	CheckValue string    `json:"check_value"`
	Wrapped    []byte    `json:"wrapped"`
}

// protectorName says what protects the file, for messages: see
// Keystore.Protector.
func (h *header) protectorName() string {
	if h.Protector == protectorPKCS11 && h.PKCS11 != nil {
		return fmt.Sprintf("%s %q in token %q", KindPKCS11, h.PKCS11.Key, h.PKCS11.Token)
	}
	return protectorKind(h.Protector)
}

// protectorKind is the kind of a header's protector, as
// WrongProtectorError names it.
func protectorKind(protector string) string {
	switch protector {
	case protectorMasterKey:
		return KindMasterKey
	case protectorPKCS11:
		return KindPKCS11
	}
	return KindPassphrase
}

// encode lays out a whole file.
func encode(h *header, fileKey []byte, b *body) ([]byte, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	bj, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	defer wipe(bj) // holds wrapped keys only, but no need to keep it
	var out bytes.Buffer
	out.WriteString(magic)
	out.Write(binary.BigEndian.AppendUint16(nil, formatVersion))
	out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(hj))))
	out.Write(hj)
	aad := bytes.Clone(out.Bytes())
	out.Write(seal(fileKey, bj, aad))
	sum := sha256.Sum256(out.Bytes())
	out.Write(sum[:])
	return out.Bytes(), nil
}

// parsed is a file whose structure and checksum are sound but whose
// secret has not been tried yet.
type parsed struct {
	hdr    header
	aad    []byte // magic … header
	sealed []byte
}

// parse checks everything that can be checked without the secret.
func parse(data []byte) (*parsed, error) {
	if !bytes.HasPrefix(data, []byte(magic)) {
		if len(data) < len(magic) && bytes.HasPrefix([]byte(magic), data) {
			return nil, failf(ErrCorrupt, "file is truncated (%d bytes)", len(data))
		}
		return nil, failf(ErrCorrupt, "not a colcrypt keystore file (it does not start with %q)", magic[:len(magic)-1])
	}
	if len(data) < minFileSize {
		return nil, failf(ErrCorrupt, "file is truncated (%d bytes)", len(data))
	}
	content, stored := data[:len(data)-checksumSize], data[len(data)-checksumSize:]
	if sum := sha256.Sum256(content); !bytes.Equal(sum[:], stored) {
		return nil, failf(ErrCorrupt, "checksum mismatch: the file is truncated, damaged or was edited")
	}
	if v := binary.BigEndian.Uint16(data[len(magic):]); v != formatVersion {
		return nil, fmt.Errorf("format version %d is not supported (this colcrypt reads version %d): use a newer colcrypt", v, formatVersion)
	}
	hlen := int(binary.BigEndian.Uint32(data[len(magic)+2:]))
	if hlen > maxHeaderSize || prefixSize+hlen+nonceSize+tagSize > len(content) {
		return nil, failf(ErrCorrupt, "header length %d does not fit the file", hlen)
	}
	p := &parsed{aad: content[:prefixSize+hlen], sealed: content[prefixSize+hlen:]}
	if err := decodeStrict(content[prefixSize:prefixSize+hlen], &p.hdr); err != nil {
		return nil, failf(ErrCorrupt, "header: %v", err)
	}
	if err := p.hdr.validate(); err != nil {
		return nil, failf(ErrCorrupt, "header: %v", err)
	}
	return p, nil
}

func (h *header) validate() error {
	if h.Purpose != purposeKeystore && h.Purpose != purposeBackup {
		return fmt.Errorf("unknown purpose %q", h.Purpose)
	}
	switch h.Protector {
	case protectorPassphrase:
		if h.KDF != kdfArgon2id || h.KDFParams == nil {
			return fmt.Errorf("passphrase protection without argon2id parameters")
		}
		if err := h.KDFParams.validate(); err != nil {
			return err
		}
	case protectorMasterKey:
		if h.KDF != "" || h.KDFParams != nil {
			return fmt.Errorf("master-key protection with kdf parameters")
		}
		if h.Purpose == purposeBackup {
			return fmt.Errorf("a backup protected by a master key")
		}
	case protectorPKCS11:
		if h.KDF != "" || h.KDFParams != nil || h.PKCS11 == nil {
			return fmt.Errorf("PKCS#11 protection without its labels or with kdf parameters")
		}
		if h.Purpose == purposeBackup {
			return fmt.Errorf("a backup protected by a PKCS#11 key")
		}
		if err := h.PKCS11.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown protector %q", h.Protector)
	}
	if h.Protector != protectorPKCS11 && h.PKCS11 != nil {
		return fmt.Errorf("PKCS#11 labels in a file protected by a %s", h.protectorName())
	}
	if len(h.Salt) != saltSize {
		return fmt.Errorf("salt of %d bytes, want %d", len(h.Salt), saltSize)
	}
	if len(h.Verifier) != verifierSize {
		return fmt.Errorf("verifier of %d bytes, want %d", len(h.Verifier), verifierSize)
	}
	return nil
}

// unlock derives the subkeys of p from s and decrypts the body. The caller
// owns the returned subkeys and wipes them when done.
func (p *parsed) unlock(s Secret) (subkeys, *body, error) {
	if gave := s.protector(); gave != p.hdr.Protector {
		return subkeys{}, nil, &WrongProtectorError{
			File:  protectorKind(p.hdr.Protector),
			Given: protectorKind(gave),
			msg:   fmt.Sprintf("protected by a %s, not a %s", p.hdr.protectorName(), protectorKind(gave)),
		}
	}
	var master []byte
	if p.hdr.Protector == protectorPKCS11 {
		var err error
		if master, err = unwrapInHSM(s.PKCS11, p.hdr.PKCS11, p.hdr.Salt); err != nil {
			return subkeys{}, nil, err
		}
	} else {
		master = masterKey(s, p.hdr.KDFParams, p.hdr.Salt)
	}
	keys := deriveSubkeys(master, p.hdr.Salt)
	wipe(master)
	if !verifierMatches(p.hdr.Verifier, keys.verifier) {
		keys.wipe()
		return subkeys{}, nil, failf(ErrWrongSecret, "wrong %s", p.hdr.protectorName())
	}
	plain, ok := open(keys.file, p.sealed, p.aad)
	if !ok {
		keys.wipe()
		return subkeys{}, nil, failf(ErrCorrupt, "authentication failed: the file was edited")
	}
	defer wipe(plain)
	var b body
	if err := decodeStrict(plain, &b); err != nil {
		keys.wipe()
		return subkeys{}, nil, failf(ErrCorrupt, "body: %v", err)
	}
	if err := b.validate(keys.kek); err != nil {
		keys.wipe()
		return subkeys{}, nil, failf(ErrCorrupt, "%v", err)
	}
	return keys, &b, nil
}

// validate checks what a writer of this package always guarantees: entries
// sorted and unique, known statuses, and every DEK unwrapping to its check
// value. An authenticated file can only fail this if it was written by a
// broken colcrypt, but then it is better to refuse than to guess.
func (b *body) validate(kek []byte) error {
	if (b.BackupFile == "") != (b.BackupSHA256 == nil) || (b.BackupSHA256 != nil && len(b.BackupSHA256) != sha256.Size) ||
		(b.BackupFile != "" && (!filepath.IsAbs(b.BackupFile) || b.LastBackup.IsZero())) {
		return errors.New("invalid record of the last backup file")
	}
	for i, e := range b.Keys {
		if err := validName(e.Name); err != nil || e.Version == 0 {
			return fmt.Errorf("entry %d: invalid name or version", i)
		}
		if i > 0 && !less(b.Keys[i-1], e) {
			return fmt.Errorf("entry %d: keys out of order or duplicated", i)
		}
		if e.Status != StatusActive && e.Status != StatusRetired {
			return fmt.Errorf("key %s version %d: unknown status %q", e.Name, e.Version, e.Status)
		}
		dek, ok := unwrapDEK(kek, e.Wrapped, e.Name, e.Version)
		if !ok {
			return fmt.Errorf("key %s version %d does not unwrap", e.Name, e.Version)
		}
		kcv := CheckValue(dek)
		wipe(dek)
		if kcv != e.CheckValue {
			return fmt.Errorf("key %s version %d does not match its check value", e.Name, e.Version)
		}
	}
	return nil
}

func less(a, b entry) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Version < b.Version
}

// decodeStrict refuses unknown fields and trailing data: a file of this
// format version has exactly these fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// readFile reads at most maxFileSize bytes of path. Errors name no path:
// the caller's wrap does.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathless(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, pathless(err)
	}
	switch {
	case fi.IsDir():
		return nil, errors.New("is a directory, not a file")
	case !fi.Mode().IsRegular():
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, pathless(err)
	}
	if len(data) > maxFileSize {
		return nil, failf(ErrCorrupt, "larger than %d MiB: not a keystore", maxFileSize>>20)
	}
	return data, nil
}

// pathless drops the path from an *fs.PathError, whose text would repeat
// the path the caller already names.
func pathless(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// writeFile writes data to path atomically with mode 0600: a temporary file
// in the same folder, fsync, then rename over path (replace) or hard-link
// to path (no replace, so an existing file is never overwritten even by a
// concurrent writer), then fsync of the folder so the new name survives a
// crash. A reader sees the old file or the new one, never a mix.
func writeFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return pathless(err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		os.Remove(tmpName) // after a rename this fails harmlessly
	}()
	if err := tmp.Chmod(0o600); err != nil { // CreateTemp uses 0600 already; say it anyway
		return pathless(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return pathless(err)
	}
	if err := tmp.Sync(); err != nil {
		return pathless(err)
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return pathless(err)
	}
	if replace {
		if err := os.Rename(tmpName, path); err != nil {
			return pathless(err)
		}
	} else if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(ErrExists, "already exists")
		}
		// Some file systems have no hard links; fall back to a check and a
		// rename, which leaves only a narrow race with another writer.
		if _, statErr := os.Lstat(path); statErr == nil {
			return fail(ErrExists, "already exists")
		}
		if err := os.Rename(tmpName, path); err != nil {
			return pathless(err)
		}
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable. It is best effort: some systems
// (Windows, some network file systems) cannot fsync a folder, and the data
// itself is already on disk.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}
