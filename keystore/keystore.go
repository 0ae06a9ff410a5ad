// Package keystore owns colcrypt's key hierarchy (SPEC §3) and the file
// that holds it. A master key — from a passphrase through argon2id, given
// raw for automation, or drawn at random and kept encrypted by an AES key
// in a PKCS#11 HSM — derives a key-encryption key (KEK) that wraps
// each data-encryption key (DEK) individually; the wrapped DEKs, their
// names, versions, statuses, check values and the keystore's timestamps
// live in one file, 0600, written atomically and authenticated as a whole.
// The package also owns rewrap (new master, same DEKs) and backups under a
// separate passphrase.
//
// Key material leaves this package only through Key. No error, log line or
// string this package produces contains a key, a passphrase, a PKCS#11 PIN
// or anything derived from them other than a check value.
package keystore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Sentinel errors, tested with errors.Is. The errors this package returns
// carry a more precise text (e.g. "wrong passphrase") than these.
var (
	// ErrWrongSecret: the passphrase or master key does not open the file.
	ErrWrongSecret = errors.New("wrong passphrase or master key")
	// ErrWrongProtector: a passphrase was given for a file protected by a
	// master key, or the reverse.
	ErrWrongProtector = errors.New("wrong kind of secret")
	// ErrCorrupt: the file is truncated, damaged or was edited.
	ErrCorrupt = errors.New("keystore file is truncated, damaged or was edited")
	// ErrExists: the file to create already exists; it is never overwritten.
	ErrExists = errors.New("file already exists")
	// ErrNoSuchKey: no key of that name, or no such version.
	ErrNoSuchKey = errors.New("no such key")
	// ErrRetired: the key version is retired (or every version of the name is).
	ErrRetired = errors.New("key version is retired")
	// ErrChanged: another process rewrote the keystore since it was opened;
	// saving would lose its change.
	ErrChanged = errors.New("keystore file changed since it was opened")
	// ErrInvalid: a bad argument (secret, key name, KDF parameters).
	ErrInvalid = errors.New("invalid argument")
	// ErrBackupGone: the file of the last backup is missing, unreadable, or
	// no longer holds the bytes written to it.
	ErrBackupGone = errors.New("the last backup's file is missing or changed")
)

// Key statuses.
const (
	StatusActive  = "active"  // encrypts new values and decrypts
	StatusRetired = "retired" // no longer usable; Key refuses it
)

// maxNameLen bounds key names; they are stored in database metadata.
const maxNameLen = 64

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Secret is what opens a keystore: exactly one of a passphrase (stretched
// with argon2id), a 32-byte master key (COLCRYPT_MASTER_KEY, for
// automation) or a key in a PKCS#11 HSM.
type Secret struct {
	Passphrase []byte
	MasterKey  []byte
	PKCS11     *PKCS11
}

// protector is the header's name of what s is.
func (s Secret) protector() string {
	switch {
	case s.PKCS11 != nil:
		return protectorPKCS11
	case s.MasterKey != nil:
		return protectorMasterKey
	}
	return protectorPassphrase
}

// validate checks s; creating is true when s is to protect a file (Create,
// Rewrap, Restore), which needs more of a PKCS#11 key than opening does.
func (s Secret) validate(creating bool) error {
	switch {
	case len(s.Passphrase) > 0 && s.MasterKey != nil:
		return fail(ErrInvalid, "give a passphrase or a master key, not both")
	case s.PKCS11 != nil && (len(s.Passphrase) > 0 || s.MasterKey != nil):
		return fail(ErrInvalid, "give a PKCS#11 key or a passphrase or a master key, only one")
	case s.PKCS11 != nil:
		return s.PKCS11.validate(creating)
	case s.MasterKey != nil:
		if len(s.MasterKey) != MasterKeySize {
			return failf(ErrInvalid, "master key must be %d bytes, not %d", MasterKeySize, len(s.MasterKey))
		}
	case len(s.Passphrase) == 0:
		return fail(ErrInvalid, "empty passphrase")
	}
	return nil
}

// Option tunes how a new secret protects a file.
type Option func(*options)

type options struct {
	kdf KDFParams
	now func() time.Time
}

// WithKDF sets the argon2id cost of a new passphrase. Lower than the
// default only in tests: the cost is what slows down guessing.
func WithKDF(p KDFParams) Option { return func(o *options) { o.kdf = p } }

func buildOptions(opts []Option) (options, error) {
	o := options{kdf: defaultKDF, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.kdf.validate(); err != nil {
		return o, failf(ErrInvalid, "%v", err)
	}
	return o, nil
}

// KeyInfo describes one version of a data key, without the key.
type KeyInfo struct {
	Name       string
	Version    uint16
	Created    time.Time
	Status     string
	CheckValue string
}

// Keystore is an open keystore file. Changes stay in memory until Save.
// Its methods are safe for concurrent use.
type Keystore struct {
	mu   sync.RWMutex
	path string
	hdr  header
	keys subkeys
	body body
	// sum is the checksum of the file as last read or written, so that Save
	// notices another process's write instead of silently undoing it.
	sum [sha256.Size]byte
	now func() time.Time
}

// newProtection makes a header and subkeys for s with a fresh salt. Only
// a PKCS#11 key can fail: the HSM encrypts a new master key.
func newProtection(purpose string, s Secret, o options) (header, subkeys, error) {
	h := header{Purpose: purpose, Protector: s.protector(), Salt: randomBytes(saltSize)}
	var master []byte
	switch h.Protector {
	case protectorPKCS11:
		var err error
		if master, h.PKCS11, err = wrapInHSM(s.PKCS11, h.Salt); err != nil {
			return header{}, subkeys{}, err
		}
	case protectorPassphrase:
		h.KDF = kdfArgon2id
		kdf := o.kdf
		h.KDFParams = &kdf
		master = masterKey(s, h.KDFParams, h.Salt)
	default:
		master = masterKey(s, nil, h.Salt)
	}
	keys := deriveSubkeys(master, h.Salt)
	wipe(master)
	h.Verifier = bytes.Clone(keys.verifier)
	return h, keys, nil
}

// Create writes a new, empty keystore at path protected by s. It refuses
// to overwrite an existing file (ErrExists).
func Create(path string, s Secret, opts ...Option) (*Keystore, error) {
	wrap := func(err error) error { return fmt.Errorf("create keystore %s: %w", path, err) }
	if err := s.validate(true); err != nil {
		return nil, wrap(err)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, wrap(err)
	}
	// Checked before paying for argon2id; writeFile checks again atomically.
	if _, err := os.Lstat(path); err == nil {
		return nil, wrap(fail(ErrExists, "already exists"))
	}
	hdr, keys, err := newProtection(purposeKeystore, s, o)
	if err != nil {
		return nil, wrap(err)
	}
	k := &Keystore{
		path: path,
		hdr:  hdr,
		keys: keys,
		body: body{Created: o.now().UTC(), Keys: []entry{}},
		now:  o.now,
	}
	if err := k.write(false); err != nil {
		return nil, wrap(err)
	}
	return k, nil
}

// Open reads the keystore at path and unlocks it with s.
func Open(path string, s Secret) (*Keystore, error) {
	wrap := func(err error) error { return fmt.Errorf("open keystore %s: %w", path, err) }
	if err := s.validate(false); err != nil {
		return nil, wrap(err)
	}
	data, err := readFile(path)
	if err != nil {
		return nil, wrap(err)
	}
	k, err := unlock(data, purposeKeystore, s)
	if err != nil {
		return nil, wrap(err)
	}
	k.path = path
	return k, nil
}

// unlock parses and decrypts a whole file of the given purpose.
func unlock(data []byte, purpose string, s Secret) (*Keystore, error) {
	p, err := parse(data)
	if err != nil {
		return nil, err
	}
	if p.hdr.Purpose != purpose {
		if p.hdr.Purpose == purposeBackup {
			return nil, errors.New("this is a keystore backup, not a keystore: restore it first")
		}
		return nil, errors.New("this is a keystore, not a keystore backup")
	}
	keys, b, err := p.unlock(s)
	if err != nil {
		return nil, err
	}
	return &Keystore{hdr: p.hdr, keys: keys, body: *b, sum: sha256.Sum256(data), now: time.Now}, nil
}

// Path is the file the keystore was opened from or created at.
func (k *Keystore) Path() string { return k.path }

// Protector says what opens the keystore: "passphrase", "master key", or
// `PKCS#11 key "LABEL" in token "LABEL"`.
func (k *Keystore) Protector() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.hdr.protectorName()
}

// Save writes the keystore back to its file, atomically. It fails with
// ErrChanged when another process wrote the file since it was opened or
// last saved, rather than undo that process's change (a lost new key would
// make whatever it encrypted unreadable).
func (k *Keystore) Save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.save(); err != nil {
		return fmt.Errorf("save keystore %s: %w", k.path, err)
	}
	return nil
}

func (k *Keystore) save() error {
	current, err := readFile(k.path)
	if err != nil {
		return err
	}
	if sha256.Sum256(current) != k.sum {
		return fail(ErrChanged, "the file changed since it was opened (another colcrypt wrote it?): open it again and repeat the change")
	}
	return k.write(true)
}

func (k *Keystore) write(replace bool) error {
	data, err := encode(&k.hdr, k.keys.file, &k.body)
	if err != nil {
		return err
	}
	if err := writeFile(k.path, data, replace); err != nil {
		return err
	}
	k.sum = sha256.Sum256(data)
	return nil
}

// Add creates a new random data key: version 1 of a new name, or the next
// version of an existing one. The new version is active; older versions
// stay as they are (both decrypt while a rekey runs).
func (k *Keystore) Add(name string) (KeyInfo, error) {
	if err := validName(name); err != nil {
		return KeyInfo{}, fmt.Errorf("add key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var version uint16 = 1
	for _, e := range k.body.Keys {
		if e.Name == name && e.Version >= version {
			if e.Version == ^uint16(0) {
				return KeyInfo{}, fmt.Errorf("add key %s: %w", name, fail(ErrInvalid, "no version left after 65535"))
			}
			version = e.Version + 1
		}
	}
	dek := randomBytes(DEKSize)
	defer wipe(dek)
	now := k.now().UTC()
	e := entry{
		Name:       name,
		Version:    version,
		Created:    now,
		Status:     StatusActive,
		CheckValue: CheckValue(dek),
		Wrapped:    wrapDEK(k.keys.kek, dek, name, version),
	}
	i, _ := slices.BinarySearchFunc(k.body.Keys, e, compareEntries)
	k.body.Keys = slices.Insert(k.body.Keys, i, e)
	k.body.LastKeyChange = now
	return e.info(), nil
}

// List returns every version of every key, sorted by name and version.
func (k *Keystore) List() []KeyInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]KeyInfo, len(k.body.Keys))
	for i, e := range k.body.Keys {
		out[i] = e.info()
	}
	return out
}

// Key returns a copy of the raw 32-byte data key name/version and its
// description. A retired version is still returned, because values written
// under it must stay readable (verify, revert, a rekey in progress); it is
// refused for encryption by EncryptionKey and Latest.
func (k *Keystore) Key(name string, version uint16) ([]byte, KeyInfo, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	e, err := k.find(name, version)
	if err != nil {
		return nil, KeyInfo{}, err
	}
	dek, ok := unwrapDEK(k.keys.kek, e.Wrapped, e.Name, e.Version)
	if !ok { // validated at Open; only memory corruption gets here
		return nil, KeyInfo{}, fmt.Errorf("key %s version %d: %w", name, version, fail(ErrCorrupt, "does not unwrap"))
	}
	return dek, e.info(), nil
}

// EncryptionKey is Key for writing new values: a retired version is
// refused with ErrRetired (its KeyInfo is still returned).
func (k *Keystore) EncryptionKey(name string, version uint16) ([]byte, KeyInfo, error) {
	dek, info, err := k.Key(name, version)
	if err == nil && info.Status == StatusRetired {
		return nil, info, fmt.Errorf("key %s version %d: %w", name, version, ErrRetired)
	}
	return dek, info, err
}

// Latest returns the newest active version of name: the one to encrypt
// new values with.
func (k *Keystore) Latest(name string) (KeyInfo, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	found := false
	for _, e := range slices.Backward(k.body.Keys) {
		if e.Name != name {
			continue
		}
		found = true
		if e.Status == StatusActive {
			return e.info(), nil
		}
	}
	if found {
		return KeyInfo{}, fmt.Errorf("key %s: every version is retired: %w", name, ErrRetired)
	}
	return KeyInfo{}, fmt.Errorf("key %s: %w", name, ErrNoSuchKey)
}

// Retire marks a version retired: EncryptionKey and Latest refuse it from
// then on; Key still returns it so existing values stay readable. Retiring
// counts as a key change (LastKeyChange), so a backup taken before it no
// longer counts as current.
func (k *Keystore) Retire(name string, version uint16) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, err := k.find(name, version)
	if err != nil {
		return err
	}
	if e.Status == StatusRetired {
		return fmt.Errorf("retire key %s version %d: already retired: %w", name, version, ErrRetired)
	}
	e.Status = StatusRetired
	k.body.LastKeyChange = k.now().UTC()
	return nil
}

// find returns the entry name/version; the caller holds k.mu.
func (k *Keystore) find(name string, version uint16) (*entry, error) {
	i, ok := slices.BinarySearchFunc(k.body.Keys, entry{Name: name, Version: version}, compareEntries)
	if !ok {
		return nil, fmt.Errorf("key %s version %d: %w", name, version, ErrNoSuchKey)
	}
	return &k.body.Keys[i], nil
}

// Rewrap protects the same DEKs with a new secret (a new master key, a new
// salt, a new KEK): no data key and no check value changes, so no row needs
// re-encrypting. After Save only newSecret opens the file.
func (k *Keystore) Rewrap(newSecret Secret, opts ...Option) error {
	wrap := func(err error) error { return fmt.Errorf("rewrap keystore %s: %w", k.path, err) }
	if err := newSecret.validate(true); err != nil {
		return wrap(err)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return wrap(err)
	}
	hdr, keys, err := newProtection(purposeKeystore, newSecret, o)
	if err != nil {
		return wrap(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rewrapped, err := rewrapEntries(k.body.Keys, k.keys.kek, keys.kek)
	if err != nil {
		keys.wipe()
		return wrap(err)
	}
	k.keys.wipe()
	k.hdr, k.keys, k.body.Keys = hdr, keys, rewrapped
	k.body.LastRewrap = k.now().UTC()
	return nil
}

// rewrapEntries returns copies of entries with each DEK unwrapped under
// from and wrapped under to.
func rewrapEntries(entries []entry, from, to []byte) ([]entry, error) {
	out := slices.Clone(entries)
	for i := range out {
		e := &out[i]
		dek, ok := unwrapDEK(from, e.Wrapped, e.Name, e.Version)
		if !ok {
			return nil, fmt.Errorf("key %s version %d: %w", e.Name, e.Version, fail(ErrCorrupt, "does not unwrap"))
		}
		e.Wrapped = wrapDEK(to, dek, e.Name, e.Version)
		wipe(dek)
	}
	return out, nil
}

// LastKeyChange is when a key was last added or retired (zero if never).
func (k *Keystore) LastKeyChange() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.body.LastKeyChange
}

// LastRewrap is when the master secret last changed (zero if never).
func (k *Keystore) LastRewrap() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.body.LastRewrap
}

// LastBackup is when the last backup was taken (zero if never). A backup
// holds every key that exists when it is taken, so cut-over, which
// destroys the plaintext, requires LastBackup after LastKeyChange, and a
// backup file that is still there (CheckBackupFile).
func (k *Keystore) LastBackup() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.body.LastBackup
}

// LastBackupFile is the absolute path of the last backup: the file Backup
// wrote, or the one Restore read. It is "" when there is no backup, and
// when an older colcrypt took it and recorded only LastBackup.
func (k *Keystore) LastBackupFile() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.body.BackupFile
}

// CheckBackupFile fails with ErrBackupGone, naming the file and when the
// backup was taken, when the last backup's file is missing, cannot be
// read, or no longer holds the bytes written to it: the time alone says a
// backup was taken, not that it still exists. It returns nil when the file
// is intact and when no file is recorded (see LastBackupFile); whether the
// backup is recent enough is LastBackup's question.
func (k *Keystore) CheckBackupFile() error {
	k.mu.RLock()
	path, want, taken := k.body.BackupFile, k.body.BackupSHA256, k.body.LastBackup
	k.mu.RUnlock()
	if path == "" {
		return nil
	}
	what := fmt.Sprintf("the last backup of keystore %s, %s (taken %s),", k.path, path, taken.UTC().Format(time.RFC3339))
	data, err := readFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failf(ErrBackupGone, "%s is missing", what)
	case errors.Is(err, ErrCorrupt): // larger than any keystore: not the backup
	case err != nil:
		return failf(ErrBackupGone, "%s cannot be read: %v", what, err)
	default:
		if sum := sha256.Sum256(data); bytes.Equal(sum[:], want) {
			return nil
		}
	}
	return failf(ErrBackupGone, "%s no longer holds the bytes written to it", what)
}

// Created is when the keystore was created.
func (k *Keystore) Created() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.body.Created
}

// Backup writes a self-contained copy of the keystore to path, protected
// by backupPassphrase alone (its own salt, argon2id and KEK), so it opens
// without the master secret. It refuses to overwrite path. It then records
// the time in LastBackup, and the file's absolute path and the SHA-256 of
// its bytes for CheckBackupFile, and saves the keystore, with any change
// not yet saved, since the backup holds those changes too.
func (k *Keystore) Backup(path string, backupPassphrase []byte, opts ...Option) error {
	wrap := func(err error) error { return fmt.Errorf("back up keystore %s to %s: %w", k.path, path, err) }
	s := Secret{Passphrase: backupPassphrase}
	if err := s.validate(true); err != nil {
		return wrap(err)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return wrap(err)
	}
	if _, err := os.Lstat(path); err == nil {
		return wrap(fail(ErrExists, "already exists"))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return wrap(err)
	}
	hdr, keys, err := newProtection(purposeBackup, s, o)
	if err != nil {
		return wrap(err)
	}
	defer keys.wipe()
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, err := rewrapEntries(k.body.Keys, k.keys.kek, keys.kek)
	if err != nil {
		return wrap(err)
	}
	b := k.body
	b.Keys = entries
	b.LastBackup = k.now().UTC()
	b.BackupFile, b.BackupSHA256 = "", nil // see body
	data, err := encode(&hdr, keys.file, &b)
	if err != nil {
		return wrap(err)
	}
	if err := writeFile(path, data, false); err != nil {
		return wrap(err)
	}
	sum := sha256.Sum256(data)
	previous := k.body
	k.body.LastBackup, k.body.BackupFile, k.body.BackupSHA256 = b.LastBackup, abs, sum[:]
	if err := k.save(); err != nil {
		k.body.LastBackup, k.body.BackupFile, k.body.BackupSHA256 = previous.LastBackup, previous.BackupFile, previous.BackupSHA256
		return wrap(fmt.Errorf("the backup was written but the keystore could not record it: %w", err))
	}
	return nil
}

// Restore writes a new keystore at target from the backup at backupPath,
// protected by s. It refuses an existing target (ErrExists). The restored
// keystore has the backup's keys, statuses and timestamps, and records
// backupPath, as it is now, as its last backup's file: the backup it was
// restored from is still its backup, wherever it was first written.
func Restore(backupPath string, backupPassphrase []byte, target string, s Secret, opts ...Option) (*Keystore, error) {
	wrap := func(err error) error { return fmt.Errorf("restore keystore %s: %w", target, err) }
	if err := s.validate(true); err != nil {
		return nil, wrap(err)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, wrap(err)
	}
	if _, err := os.Lstat(target); err == nil {
		return nil, wrap(fail(ErrExists, "already exists"))
	}
	backupAbs, err := filepath.Abs(backupPath)
	if err != nil {
		return nil, fmt.Errorf("open backup %s: %w", backupPath, err)
	}
	bs := Secret{Passphrase: backupPassphrase}
	if err := bs.validate(false); err != nil {
		return nil, fmt.Errorf("open backup %s: %w", backupPath, err)
	}
	data, err := readFile(backupPath)
	if err != nil {
		return nil, fmt.Errorf("open backup %s: %w", backupPath, err)
	}
	src, err := unlock(data, purposeBackup, bs)
	if err != nil {
		return nil, fmt.Errorf("open backup %s: %w", backupPath, err)
	}
	defer src.keys.wipe()
	hdr, keys, err := newProtection(purposeKeystore, s, o)
	if err != nil {
		return nil, wrap(err)
	}
	entries, err := rewrapEntries(src.body.Keys, src.keys.kek, keys.kek)
	if err != nil {
		keys.wipe()
		return nil, wrap(err)
	}
	k := &Keystore{path: target, hdr: hdr, keys: keys, body: src.body, now: o.now}
	k.body.Keys = entries
	if !k.body.LastBackup.IsZero() { // always set by Backup
		sum := sha256.Sum256(data)
		k.body.BackupFile, k.body.BackupSHA256 = backupAbs, sum[:]
	}
	if err := k.write(false); err != nil {
		return nil, wrap(err)
	}
	return k, nil
}

func (e *entry) info() KeyInfo {
	return KeyInfo{Name: e.Name, Version: e.Version, Created: e.Created, Status: e.Status, CheckValue: e.CheckValue}
}

func compareEntries(a, b entry) int {
	switch {
	case less(a, b):
		return -1
	case less(b, a):
		return 1
	}
	return 0
}

func validName(name string) error {
	if len(name) > maxNameLen || !namePattern.MatchString(name) {
		return failf(ErrInvalid, "invalid key name %q: use at most %d letters, digits, '.', '_' or '-', starting with a letter or digit", name, maxNameLen)
	}
	return nil
}

// failure is an error with a precise text for the user that still matches
// its sentinel with errors.Is.
type failure struct {
	sentinel error
	msg      string
}

func (f *failure) Error() string        { return f.msg }
func (f *failure) Is(target error) bool { return target == f.sentinel }

func fail(sentinel error, msg string) error { return &failure{sentinel: sentinel, msg: msg} }

func failf(sentinel error, format string, args ...any) error {
	return &failure{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}
