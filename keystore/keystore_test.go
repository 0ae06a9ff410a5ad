package keystore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// productionKDF keeps the real default before TestMain lowers it.
var productionKDF = defaultKDF

// cheapKDF makes argon2id take well under a millisecond, so tests can open
// files hundreds of times. Production code never uses it.
var cheapKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func TestMain(m *testing.M) {
	// Backup and Restore use the default cost unless given WithKDF; lower it
	// for every test of this package.
	defaultKDF = cheapKDF
	os.Exit(m.Run())
}

var (
	passA  = Secret{Passphrase: []byte("correct horse battery staple")}
	passB  = Secret{Passphrase: []byte("a different passphrase")}
	master = Secret{MasterKey: bytes.Repeat([]byte{0x42}, MasterKeySize)}
)

// newStore creates a keystore in a fresh folder with two versions of "pii"
// and one of "card", saved.
func newStore(t *testing.T, s Secret) (*Keystore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.keystore")
	k, err := Create(path, s, WithKDF(cheapKDF))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, name := range []string{"pii", "card", "pii"} {
		if _, err := k.Add(name); err != nil {
			t.Fatalf("Add(%s): %v", name, err)
		}
	}
	if err := k.Save(); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return k, path
}

// allKeys returns every DEK of k by "name/version".
func allKeys(t *testing.T, k *Keystore) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, info := range k.List() {
		dek, _, err := k.Key(info.Name, info.Version)
		if err != nil {
			t.Fatalf("Key(%s, %d): %v", info.Name, info.Version, err)
		}
		out[keyID(info.Name, int(info.Version))] = dek
	}
	return out
}

func sameKeys(t *testing.T, want, got map[string][]byte) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	for id, w := range want {
		if !bytes.Equal(w, got[id]) {
			t.Errorf("key %s differs", id)
		}
	}
}

func TestCreateOpenRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		secret    Secret
		protector string
	}{
		{"passphrase", passA, "passphrase"},
		{"master key", master, "master key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, path := newStore(t, tc.secret)
			want := allKeys(t, k)
			k2, err := Open(path, tc.secret)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := k2.Protector(); got != tc.protector {
				t.Errorf("Protector() = %q, want %q", got, tc.protector)
			}
			sameKeys(t, want, allKeys(t, k2))
			list := k2.List()
			wantOrder := []string{"card/1", "pii/1", "pii/2"}
			if len(list) != len(wantOrder) {
				t.Fatalf("List() has %d entries, want %d", len(list), len(wantOrder))
			}
			for i, info := range list {
				id := keyID(info.Name, int(info.Version))
				if id != wantOrder[i] {
					t.Errorf("List()[%d] = %s, want %s", i, id, wantOrder[i])
				}
				if info.Status != StatusActive {
					t.Errorf("%s: status %q, want active", id, info.Status)
				}
				if info.CheckValue != CheckValue(want[id]) {
					t.Errorf("%s: check value %s does not match the key", id, info.CheckValue)
				}
				if len(want[id]) != DEKSize {
					t.Errorf("%s: key of %d bytes, want %d", id, len(want[id]), DEKSize)
				}
				if info.Created.IsZero() {
					t.Errorf("%s: no creation time", id)
				}
			}
			if !k2.Created().Equal(k.Created()) || k2.Created().IsZero() {
				t.Errorf("Created() = %v, want %v", k2.Created(), k.Created())
			}
			if !k2.LastKeyChange().Equal(k.LastKeyChange()) || k2.LastKeyChange().IsZero() {
				t.Errorf("LastKeyChange() = %v, want %v", k2.LastKeyChange(), k.LastKeyChange())
			}
			if !k2.LastBackup().IsZero() || !k2.LastRewrap().IsZero() {
				t.Errorf("a new keystore has LastBackup %v, LastRewrap %v", k2.LastBackup(), k2.LastRewrap())
			}
		})
	}
}

func TestKeysAreDistinctAndCopied(t *testing.T) {
	k, _ := newStore(t, passA)
	keys := allKeys(t, k)
	seen := map[string]string{}
	for id, dek := range keys {
		if other, dup := seen[string(dek)]; dup {
			t.Errorf("%s and %s have the same key", id, other)
		}
		seen[string(dek)] = id
	}
	dek, _, _ := k.Key("pii", 1)
	clear(dek)
	again, _, _ := k.Key("pii", 1)
	if !bytes.Equal(again, keys["pii/1"]) {
		t.Error("changing the slice Key returned changed the stored key")
	}
}

func TestCheckValueKnownAnswer(t *testing.T) {
	// Computed independently: HMAC-SHA256(key, "colcrypt key check value")[:8].
	ascending := make([]byte, 32)
	for i := range ascending {
		ascending[i] = byte(i)
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{make([]byte, 32), "80bc9030d1703ac5"},
		{ascending, "55f60e3db880370b"},
	} {
		if got := CheckValue(tc.key); got != tc.want {
			t.Errorf("CheckValue(%x) = %s, want %s", tc.key, got, tc.want)
		}
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	_, path := newStore(t, passA)
	before, _ := os.ReadFile(path)
	_, err := Create(path, passB, WithKDF(cheapKDF))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("Create over an existing keystore: %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("Create changed the existing file")
	}
	if _, err := Open(path, passA); err != nil {
		t.Fatalf("the existing keystore no longer opens: %v", err)
	}
}

func TestFileModeAndNoTempFilesLeft(t *testing.T) {
	k, path := newStore(t, passA)
	backup := filepath.Join(filepath.Dir(path), "b.backup")
	if err := k.Backup(backup, []byte("backup pass")); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(filepath.Dir(path), "restored.keystore")
	if _, err := Restore(backup, []byte("backup pass"), restored, passB); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, backup, restored} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), mode)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only the 3 files", names)
	}
}

func TestEveryByteFlipFails(t *testing.T) {
	_, path := newStore(t, passA)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range data {
		for _, bit := range []byte{0x01, 0x80} {
			edited := bytes.Clone(data)
			edited[i] ^= bit
			p := filepath.Join(dir, "flip")
			if err := os.WriteFile(p, edited, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p, passA)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d of %d flipped (%#x): Open = %v, want ErrCorrupt", i, len(data), bit, err)
			}
		}
	}
}

// TestEveryEditWithFixedChecksumFails plays an attacker who knows the
// format: each byte is changed and the unkeyed checksum recomputed, so
// only the GCM tag and the verifier stand between the edit and success.
func TestEveryEditWithFixedChecksumFails(t *testing.T) {
	_, path := newStore(t, passA)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content := data[:len(data)-checksumSize]
	versionAt := len(magic)
	dir := t.TempDir()
	for i := range content {
		// 0x20 flips the case of JSON field names, which encoding/json
		// matches case-insensitively: only the GCM additional data catches it.
		for _, bit := range []byte{0x01, 0x20} {
			edited := bytes.Clone(content)
			edited[i] ^= bit
			sum := sha256.Sum256(edited)
			edited = append(edited, sum[:]...)
			p := filepath.Join(dir, "edit")
			if err := os.WriteFile(p, edited, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p, passA)
			switch {
			case err == nil:
				t.Fatalf("byte %d edited (%#x) and checksum fixed: Open succeeded", i, bit)
			case i == versionAt || i == versionAt+1:
				if !strings.Contains(err.Error(), "format version") {
					t.Errorf("byte %d (format version) edited: %v, want a format version error", i, err)
				}
			case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongSecret):
				t.Errorf("byte %d edited (%#x) and checksum fixed: %v, want ErrCorrupt or ErrWrongSecret", i, bit, err)
			}
		}
	}
}

func TestTruncatedFails(t *testing.T) {
	_, path := newStore(t, passA)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []int{0, 1, 5, len(magic), prefixSize, prefixSize + 10, len(data) / 2, len(data) - checksumSize - 1, len(data) - checksumSize, len(data) - 1} {
		p := filepath.Join(dir, "cut")
		if err := os.WriteFile(p, data[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p, passA)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut to %d of %d bytes: Open = %v, want ErrCorrupt", n, len(data), err)
		}
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name the file", err)
		}
	}
	// Appended bytes break the checksum too.
	p := filepath.Join(dir, "long")
	if err := os.WriteFile(p, append(bytes.Clone(data), 0), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, passA); !errors.Is(err, ErrCorrupt) {
		t.Errorf("one byte appended: Open = %v, want ErrCorrupt", err)
	}
}

func TestSwappedWrappedKeysFail(t *testing.T) {
	// A wrapped DEK is bound to its name and version: re-sealing a body in
	// which two wrapped keys changed places (possible only with the file
	// key) must still fail.
	k, path := newStore(t, passA)
	k.body.Keys[0].Wrapped, k.body.Keys[1].Wrapped = k.body.Keys[1].Wrapped, k.body.Keys[0].Wrapped
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, passA); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped wrapped keys: Open = %v, want ErrCorrupt", err)
	}
}

func TestWrongSecrets(t *testing.T) {
	_, passPath := newStore(t, passA)
	_, masterPath := newStore(t, master)
	otherMaster := Secret{MasterKey: bytes.Repeat([]byte{0x43}, MasterKeySize)}
	for _, tc := range []struct {
		name   string
		path   string
		secret Secret
		want   error
		text   string
	}{
		{"wrong passphrase", passPath, passB, ErrWrongSecret, "wrong passphrase"},
		{"master key for a passphrase keystore", passPath, master, ErrWrongProtector, "protected by a passphrase, not a master key"},
		{"wrong master key", masterPath, otherMaster, ErrWrongSecret, "wrong master key"},
		{"passphrase for a master-key keystore", masterPath, passA, ErrWrongProtector, "protected by a master key, not a passphrase"},
		{"empty secret", passPath, Secret{}, ErrInvalid, "empty passphrase"},
		{"both", passPath, Secret{Passphrase: passA.Passphrase, MasterKey: master.MasterKey}, ErrInvalid, "not both"},
		{"short master key", masterPath, Secret{MasterKey: []byte{1, 2, 3}}, ErrInvalid, "must be 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, tc.secret)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			want := "open keystore " + tc.path + ": "
			if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, tc.text) {
				t.Errorf("error %q, want %q… containing %q", msg, want, tc.text)
			}
		})
	}
}

func TestOpenUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, text string
	}{
		{"missing", filepath.Join(dir, "missing"), "no such file"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, passA)
			if err == nil || !strings.Contains(err.Error(), tc.text) || strings.Count(err.Error(), tc.path) != 1 {
				t.Fatalf("Open(%s) = %v, want an error naming the path once and saying %q", tc.path, err, tc.text)
			}
		})
	}
}

func TestRewrapKeepsKeys(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to Secret
	}{
		{"passphrase to passphrase", passA, passB},
		{"passphrase to master key", passA, master},
		{"master key to passphrase", master, passB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, path := newStore(t, tc.from)
			want := allKeys(t, k)
			kcvs := k.List()
			keyChange := k.LastKeyChange()
			if err := k.Rewrap(tc.to, WithKDF(cheapKDF)); err != nil {
				t.Fatalf("Rewrap: %v", err)
			}
			sameKeys(t, want, allKeys(t, k)) // in memory, before Save
			if err := k.Save(); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if _, err := Open(path, tc.from); err == nil {
				t.Fatal("the old secret still opens the keystore after rewrap")
			}
			k2, err := Open(path, tc.to)
			if err != nil {
				t.Fatalf("Open with the new secret: %v", err)
			}
			sameKeys(t, want, allKeys(t, k2))
			got := k2.List()
			for i := range kcvs {
				if got[i] != kcvs[i] {
					t.Errorf("entry %d changed: %+v, was %+v", i, got[i], kcvs[i])
				}
			}
			if !k2.LastKeyChange().Equal(keyChange) {
				t.Errorf("rewrap moved LastKeyChange from %v to %v", keyChange, k2.LastKeyChange())
			}
			if k2.LastRewrap().IsZero() {
				t.Error("LastRewrap not recorded")
			}
		})
	}
}

func TestBackupRestore(t *testing.T) {
	k, path := newStore(t, passA)
	want := allKeys(t, k)
	dir := filepath.Dir(path)
	backup := filepath.Join(dir, "keys.backup")
	backupPass := []byte("backup passphrase")

	if err := k.Backup(backup, backupPass); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if !k.LastBackup().After(k.LastKeyChange()) {
		t.Errorf("LastBackup %v not after LastKeyChange %v", k.LastBackup(), k.LastKeyChange())
	}
	reopened, err := Open(path, passA)
	if err != nil {
		t.Fatal(err)
	}
	if !reopened.LastBackup().Equal(k.LastBackup()) {
		t.Errorf("LastBackup on disk %v, want %v", reopened.LastBackup(), k.LastBackup())
	}

	t.Run("backup refuses to overwrite", func(t *testing.T) {
		before, _ := os.ReadFile(backup)
		if err := k.Backup(backup, backupPass); !errors.Is(err, ErrExists) {
			t.Fatalf("second Backup to the same file: %v, want ErrExists", err)
		}
		after, _ := os.ReadFile(backup)
		if !bytes.Equal(before, after) {
			t.Fatal("the backup file changed")
		}
	})
	t.Run("a backup is not a keystore", func(t *testing.T) {
		_, err := Open(backup, Secret{Passphrase: backupPass})
		if err == nil || !strings.Contains(err.Error(), "backup, not a keystore") {
			t.Fatalf("Open(backup) = %v", err)
		}
		_, err = Restore(path, passA.Passphrase, filepath.Join(dir, "x"), passB)
		if err == nil || !strings.Contains(err.Error(), "not a keystore backup") {
			t.Fatalf("Restore(keystore) = %v", err)
		}
	})
	t.Run("wrong backup passphrase", func(t *testing.T) {
		target := filepath.Join(dir, "wrong.keystore")
		_, err := Restore(backup, []byte("not it"), target, passB)
		if !errors.Is(err, ErrWrongSecret) {
			t.Fatalf("Restore = %v, want ErrWrongSecret", err)
		}
		if want := "open backup " + backup + ": wrong passphrase"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed restore left %s behind", target)
		}
	})
	t.Run("restore refuses an existing target", func(t *testing.T) {
		before, _ := os.ReadFile(path)
		_, err := Restore(backup, backupPass, path, passB)
		if !errors.Is(err, ErrExists) {
			t.Fatalf("Restore over the keystore: %v, want ErrExists", err)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Fatal("Restore changed the existing keystore")
		}
	})
	t.Run("round trip", func(t *testing.T) {
		target := filepath.Join(dir, "restored.keystore")
		r, err := Restore(backup, backupPass, target, master)
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		sameKeys(t, want, allKeys(t, r))
		r2, err := Open(target, master)
		if err != nil {
			t.Fatalf("Open restored: %v", err)
		}
		sameKeys(t, want, allKeys(t, r2))
		if got, w := r2.List(), k.List(); len(got) != len(w) || got[0] != w[0] {
			t.Errorf("restored list %+v, want %+v", got, w)
		}
		if !r2.LastBackup().After(r2.LastKeyChange()) {
			t.Errorf("restored keystore: LastBackup %v not after LastKeyChange %v", r2.LastBackup(), r2.LastKeyChange())
		}
		if _, err := Open(target, passA); err == nil {
			t.Error("the old master secret opens the restored keystore")
		}
	})
	t.Run("a key added after the backup makes it stale", func(t *testing.T) {
		if _, err := k.Add("late"); err != nil {
			t.Fatal(err)
		}
		if k.LastBackup().After(k.LastKeyChange()) {
			t.Error("LastBackup still after LastKeyChange after Add")
		}
	})
}

func TestRetireAndLatest(t *testing.T) {
	k, path := newStore(t, passA)
	latest, err := k.Latest("pii")
	if err != nil || latest.Version != 2 {
		t.Fatalf("Latest(pii) = %+v, %v; want version 2", latest, err)
	}
	before := k.LastKeyChange()
	time.Sleep(time.Millisecond)
	if err := k.Retire("pii", 2); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if !k.LastKeyChange().After(before) {
		t.Error("Retire did not move LastKeyChange")
	}
	if latest, err = k.Latest("pii"); err != nil || latest.Version != 1 {
		t.Fatalf("after retiring 2, Latest(pii) = %+v, %v; want version 1", latest, err)
	}
	if _, info, err := k.EncryptionKey("pii", 2); !errors.Is(err, ErrRetired) || info.Status != StatusRetired {
		t.Errorf("EncryptionKey(pii, 2) = %+v, %v; want ErrRetired with its info", info, err)
	}
	if dek, info, err := k.Key("pii", 2); err != nil || len(dek) != DEKSize || info.Status != StatusRetired {
		t.Errorf("Key(pii, 2) = %d bytes, %+v, %v; a retired key must still decrypt", len(dek), info, err)
	}
	if err := k.Retire("pii", 2); !errors.Is(err, ErrRetired) {
		t.Errorf("retiring twice: %v, want ErrRetired", err)
	}
	if err := k.Retire("pii", 9); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("Retire(pii, 9) = %v, want ErrNoSuchKey", err)
	}
	if _, err := k.Latest("nope"); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("Latest(nope) = %v, want ErrNoSuchKey", err)
	}
	if _, _, err := k.Key("nope", 1); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("Key(nope, 1) = %v, want ErrNoSuchKey", err)
	}
	if err := k.Retire("pii", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Latest("pii"); !errors.Is(err, ErrRetired) {
		t.Errorf("every version retired: Latest = %v, want ErrRetired", err)
	}
	// A new version after retirement is active and is the latest.
	info, err := k.Add("pii")
	if err != nil || info.Version != 3 || info.Status != StatusActive {
		t.Fatalf("Add(pii) = %+v, %v; want active version 3", info, err)
	}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	k2, err := Open(path, passA)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, i := range k2.List() {
		statuses = append(statuses, keyID(i.Name, int(i.Version))+"="+i.Status)
	}
	if got, want := strings.Join(statuses, " "), "card/1=active pii/1=retired pii/2=retired pii/3=active"; got != want {
		t.Errorf("after reopening: %s, want %s", got, want)
	}
}

func TestAddRejectsBadNames(t *testing.T) {
	k, _ := newStore(t, passA)
	for _, name := range []string{"", "-x", "a b", "a/b", "ключ", strings.Repeat("a", maxNameLen+1)} {
		if _, err := k.Add(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%q) = %v, want ErrInvalid", name, err)
		}
	}
	for _, name := range []string{"a", "pii.v2", "card_numbers-2024", strings.Repeat("a", maxNameLen)} {
		if _, err := k.Add(name); err != nil {
			t.Errorf("Add(%q) = %v", name, err)
		}
	}
}

func TestSaveRefusesToLoseAnotherWrite(t *testing.T) {
	k1, path := newStore(t, passA)
	k2, err := Open(path, passA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k1.Add("first"); err != nil {
		t.Fatal(err)
	}
	if err := k1.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Add("second"); err != nil {
		t.Fatal(err)
	}
	if err := k2.Save(); !errors.Is(err, ErrChanged) {
		t.Fatalf("saving over another writer's change: %v, want ErrChanged", err)
	}
	k3, err := Open(path, passA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k3.Latest("first"); err != nil {
		t.Errorf("the first writer's key was lost: %v", err)
	}
}

func TestBadKDFOption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	for _, p := range []KDFParams{{}, {Time: 1, MemoryKiB: 1, Threads: 1}, {Time: 1000, MemoryKiB: 64, Threads: 1}} {
		if _, err := Create(path, passA, WithKDF(p)); !errors.Is(err, ErrInvalid) {
			t.Errorf("WithKDF(%+v): %v, want ErrInvalid", p, err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	k, _ := newStore(t, passA)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, _, err := k.Key("pii", 1); err != nil {
					t.Error(err)
					return
				}
				_ = k.List()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := k.Add("busy"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}

// TestErrorsNeverContainKeyMaterial runs every failure path it can and
// checks that no error text contains a data key, the master key or a
// passphrase, in any common encoding.
func TestErrorsNeverContainKeyMaterial(t *testing.T) {
	k, path := newStore(t, master)
	dir := filepath.Dir(path)
	backupPass := []byte("backup passphrase")
	backup := filepath.Join(dir, "b")
	if err := k.Backup(backup, backupPass); err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{master.MasterKey, passA.Passphrase, passB.Passphrase, backupPass}
	for _, dek := range allKeys(t, k) {
		secrets = append(secrets, dek)
	}
	data, _ := os.ReadFile(path)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	flippedPath := filepath.Join(dir, "flipped")
	os.WriteFile(flippedPath, flipped, 0o600)
	truncatedPath := filepath.Join(dir, "truncated")
	os.WriteFile(truncatedPath, data[:len(data)/3], 0o600)
	otherMaster := Secret{MasterKey: bytes.Repeat([]byte{0x17}, MasterKeySize)}
	secrets = append(secrets, otherMaster.MasterKey)

	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Errorf("failure path %d succeeded", len(errs))
		}
		errs = append(errs, err)
	}
	_, err := Open(path, otherMaster)
	collect(err)
	_, err = Open(path, passA)
	collect(err)
	_, err = Open(flippedPath, master)
	collect(err)
	_, err = Open(truncatedPath, master)
	collect(err)
	_, err = Open(path, Secret{MasterKey: master.MasterKey[:31]})
	collect(err)
	_, err = Open(path, Secret{Passphrase: passA.Passphrase, MasterKey: master.MasterKey})
	collect(err)
	_, err = Create(path, master)
	collect(err)
	_, err = Restore(backup, passB.Passphrase, filepath.Join(dir, "r"), passA)
	collect(err)
	_, err = Restore(backup, backupPass, path, passA)
	collect(err)
	collect(k.Backup(backup, backupPass))
	_, _, err = k.Key("pii", 7)
	collect(err)
	collect(k.Retire("nope", 1))
	_, err = k.Add("bad name")
	collect(err)

	for i, err := range errs {
		if err == nil {
			continue
		}
		msg := err.Error()
		for _, s := range secrets {
			for _, enc := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), hex.EncodeToString(s[:8])} {
				if strings.Contains(msg, enc) {
					t.Errorf("error %d %q contains key material", i, msg)
				}
			}
		}
	}
}

// TestDefaultKDFCost measures the production argon2id parameters, so a
// change of defaults shows its price. It fails only if they are absurdly
// slow; the target is 0.2–0.5 s on the 2-core machines colcrypt runs on.
func TestDefaultKDFCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the real argon2id cost")
	}
	start := time.Now()
	masterKey(passA, &productionKDF, make([]byte, saltSize))
	elapsed := time.Since(start)
	t.Logf("argon2id %+v took %v", productionKDF, elapsed)
	if elapsed > 10*time.Second {
		t.Errorf("default KDF took %v", elapsed)
	}
}

// keyID names one version of a key in test maps and messages: "pii/2".
func keyID(name string, version int) string { return name + "/" + strconv.Itoa(version) }
