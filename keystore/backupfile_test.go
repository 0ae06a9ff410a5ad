package keystore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// backedUp returns a saved keystore and the absolute path of its backup.
func backedUp(t *testing.T) (*Keystore, string) {
	t.Helper()
	k, path := newStore(t, passA)
	backup := filepath.Join(filepath.Dir(path), "keys.backup")
	if err := k.Backup(backup, []byte("backup passphrase")); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return k, backup
}

// TestCheckBackupFile: the check passes while the backup file holds the
// bytes Backup wrote, and fails with ErrBackupGone, naming the file and
// when the backup was taken, once it does not.
func TestCheckBackupFile(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, backup string)
		want   string // the end of the error; "" for none
	}{
		{"intact", func(*testing.T, string) {}, ""},
		{"deleted", func(t *testing.T, backup string) { must(t, os.Remove(backup)) }, "is missing"},
		{"replaced by other bytes", func(t *testing.T, backup string) {
			must(t, os.WriteFile(backup, []byte("not the backup"), 0o600))
		}, "no longer holds the bytes written to it"},
		{"one byte appended", func(t *testing.T, backup string) {
			data, err := os.ReadFile(backup)
			must(t, err)
			must(t, os.WriteFile(backup, append(data, '\n'), 0o600))
		}, "no longer holds the bytes written to it"},
		{"replaced by a folder", func(t *testing.T, backup string) {
			must(t, os.Remove(backup))
			must(t, os.Mkdir(backup, 0o700))
		}, "cannot be read: is a directory, not a file"},
		{"replaced by a larger file than any keystore", func(t *testing.T, backup string) {
			must(t, os.Truncate(backup, maxFileSize+1))
		}, "no longer holds the bytes written to it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, backup := backedUp(t)
			if got := k.LastBackupFile(); got != backup {
				t.Fatalf("LastBackupFile %q, want %q", got, backup)
			}
			c.change(t, backup)
			// The record is in the file, not only in memory.
			reopened, err := Open(k.Path(), passA)
			must(t, err)
			for _, k := range []*Keystore{k, reopened} {
				err := k.CheckBackupFile()
				if c.want == "" {
					if err != nil {
						t.Fatalf("CheckBackupFile: %v", err)
					}
					continue
				}
				want := "the last backup of keystore " + k.Path() + ", " + backup + " (taken " +
					k.LastBackup().Format(time.RFC3339) + "), " + c.want
				if !errors.Is(err, ErrBackupGone) || err.Error() != want {
					t.Fatalf("CheckBackupFile:\n got: %v\nwant: %s (ErrBackupGone)", err, want)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBackupFileRecord: what each operation does to the record of the last
// backup's file.
func TestBackupFileRecord(t *testing.T) {
	t.Run("no backup yet", func(t *testing.T) {
		k, _ := newStore(t, passA)
		if k.LastBackupFile() != "" || k.CheckBackupFile() != nil {
			t.Fatalf("a keystore never backed up: LastBackupFile %q, CheckBackupFile %v", k.LastBackupFile(), k.CheckBackupFile())
		}
	})
	t.Run("a relative path is recorded absolute", func(t *testing.T) {
		k, path := newStore(t, passA)
		t.Chdir(filepath.Dir(path))
		if err := k.Backup("relative.backup", []byte("backup passphrase")); err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(k.LastBackupFile()) || filepath.Base(k.LastBackupFile()) != "relative.backup" {
			t.Fatalf("LastBackupFile %q, want the absolute path of relative.backup", k.LastBackupFile())
		}
		t.Chdir(t.TempDir())
		if err := k.CheckBackupFile(); err != nil {
			t.Fatalf("CheckBackupFile from another folder: %v", err)
		}
	})
	t.Run("a newer backup replaces the record", func(t *testing.T) {
		k, first := backedUp(t)
		second := filepath.Join(filepath.Dir(first), "second.backup")
		must(t, k.Backup(second, []byte("backup passphrase")))
		must(t, os.Remove(first))
		if k.LastBackupFile() != second || k.CheckBackupFile() != nil {
			t.Fatalf("after a second backup: LastBackupFile %q, CheckBackupFile %v", k.LastBackupFile(), k.CheckBackupFile())
		}
	})
	t.Run("rewrap keeps the record", func(t *testing.T) {
		// A rewrap changes the master secret, not the keys: the backup,
		// under its own passphrase, still restores every key.
		k, backup := backedUp(t)
		must(t, k.Rewrap(passB))
		must(t, k.Save())
		r, err := Open(k.Path(), passB)
		must(t, err)
		if r.LastBackupFile() != backup || r.CheckBackupFile() != nil || !r.LastBackup().After(r.LastKeyChange()) {
			t.Fatalf("after rewrap: LastBackupFile %q, CheckBackupFile %v, LastBackup %v, LastKeyChange %v",
				r.LastBackupFile(), r.CheckBackupFile(), r.LastBackup(), r.LastKeyChange())
		}
	})
	t.Run("a key change keeps the record; the time makes the backup stale", func(t *testing.T) {
		k, backup := backedUp(t)
		time.Sleep(time.Millisecond)
		if _, err := k.Add("late"); err != nil {
			t.Fatal(err)
		}
		if k.LastBackupFile() != backup || k.CheckBackupFile() != nil || !k.LastBackup().Before(k.LastKeyChange()) {
			t.Fatalf("after Add: LastBackupFile %q, CheckBackupFile %v, LastBackup %v, LastKeyChange %v",
				k.LastBackupFile(), k.CheckBackupFile(), k.LastBackup(), k.LastKeyChange())
		}
	})
	t.Run("restore records the file it read", func(t *testing.T) {
		k, backup := backedUp(t)
		moved := filepath.Join(t.TempDir(), "moved.backup")
		must(t, os.Rename(backup, moved))
		target := filepath.Join(filepath.Dir(backup), "restored.keystore")
		r, err := Restore(moved, []byte("backup passphrase"), target, passB)
		must(t, err)
		if r.LastBackupFile() != moved || r.CheckBackupFile() != nil || !r.LastBackup().Equal(k.LastBackup()) {
			t.Fatalf("restored: LastBackupFile %q, CheckBackupFile %v, LastBackup %v (want %v)",
				r.LastBackupFile(), r.CheckBackupFile(), r.LastBackup(), k.LastBackup())
		}
		must(t, os.Remove(moved))
		if err := r.CheckBackupFile(); !errors.Is(err, ErrBackupGone) {
			t.Fatalf("restored keystore, its backup deleted: %v, want ErrBackupGone", err)
		}
	})
	t.Run("a backup file holds no record", func(t *testing.T) {
		// So that an older colcrypt, whose decoder refuses unknown fields,
		// still restores it.
		_, backup := backedUp(t)
		data, err := os.ReadFile(backup)
		must(t, err)
		src, err := unlock(data, purposeBackup, Secret{Passphrase: []byte("backup passphrase")})
		must(t, err)
		if src.body.BackupFile != "" || src.body.BackupSHA256 != nil || src.body.LastBackup.IsZero() {
			t.Fatalf("backup body: file %q, digest %x, time %v", src.body.BackupFile, src.body.BackupSHA256, src.body.LastBackup)
		}
	})
	t.Run("a keystore that cannot record it keeps the previous one", func(t *testing.T) {
		k, first := backedUp(t)
		other, err := Open(k.Path(), passA)
		must(t, err)
		if _, err := other.Add("elsewhere"); err != nil {
			t.Fatal(err)
		}
		must(t, other.Save())
		second := filepath.Join(filepath.Dir(first), "second.backup")
		if err := k.Backup(second, []byte("backup passphrase")); !errors.Is(err, ErrChanged) {
			t.Fatalf("Backup over another writer's change: %v, want ErrChanged", err)
		}
		if k.LastBackupFile() != first || k.CheckBackupFile() != nil {
			t.Fatalf("after a failed record: LastBackupFile %q, CheckBackupFile %v", k.LastBackupFile(), k.CheckBackupFile())
		}
	})
	t.Run("an invalid record is refused", func(t *testing.T) {
		for _, bad := range []body{
			{BackupFile: "/x.backup"},                                                         // no digest
			{BackupSHA256: make([]byte, 32), LastBackup: time.Now()},                          // no file
			{BackupFile: "x.backup", BackupSHA256: make([]byte, 32), LastBackup: time.Now()},  // relative
			{BackupFile: "/x.backup", BackupSHA256: make([]byte, 31), LastBackup: time.Now()}, // short digest
			{BackupFile: "/x.backup", BackupSHA256: make([]byte, 32)},                         // no time
		} {
			k, path := newStore(t, passA)
			k.body.BackupFile, k.body.BackupSHA256, k.body.LastBackup = bad.BackupFile, bad.BackupSHA256, bad.LastBackup
			must(t, k.write(true))
			if _, err := Open(path, passA); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "last backup file") {
				t.Errorf("record %q %x %v: Open = %v, want ErrCorrupt", bad.BackupFile, bad.BackupSHA256, bad.LastBackup, err)
			}
		}
	})
}

// TestKeystoreBeforeBackupFiles opens files written by the colcrypt before
// backups recorded their file (testdata, made with that version): the
// keystore opens, its backup time counts as before with nothing to check,
// a new backup adds the record, and its backup restores.
func TestKeystoreBeforeBackupFiles(t *testing.T) {
	const (
		fixturePass = "keystore written before backups recorded their file"
		backupPass  = "fixture backup passphrase"
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "old.keystore")
	copyFile(t, filepath.Join("testdata", "before-backup-file.keystore"), path)
	k, err := Open(path, Secret{Passphrase: []byte(fixturePass)})
	must(t, err)
	if k.LastBackup().IsZero() || !k.LastBackup().After(k.LastKeyChange()) {
		t.Fatalf("fixture: LastBackup %v, LastKeyChange %v; want a backup after the key change", k.LastBackup(), k.LastKeyChange())
	}
	if k.LastBackupFile() != "" || k.CheckBackupFile() != nil {
		t.Fatalf("fixture: LastBackupFile %q, CheckBackupFile %v; want none recorded, and nothing to check", k.LastBackupFile(), k.CheckBackupFile())
	}
	backup := filepath.Join(dir, "new.backup")
	must(t, k.Backup(backup, []byte(backupPass)))
	reopened, err := Open(path, Secret{Passphrase: []byte(fixturePass)})
	must(t, err)
	if reopened.LastBackupFile() != backup || reopened.CheckBackupFile() != nil {
		t.Fatalf("after a new backup: LastBackupFile %q, CheckBackupFile %v", reopened.LastBackupFile(), reopened.CheckBackupFile())
	}

	oldBackup := filepath.Join(dir, "old.backup")
	copyFile(t, filepath.Join("testdata", "before-backup-file.keystore.backup"), oldBackup)
	r, err := Restore(oldBackup, []byte(backupPass), filepath.Join(dir, "restored.keystore"), passA)
	must(t, err)
	if _, err := r.Latest("pii"); err != nil {
		t.Fatalf("restored from the old backup: %v", err)
	}
	if r.LastBackupFile() != oldBackup || r.CheckBackupFile() != nil {
		t.Fatalf("restored from the old backup: LastBackupFile %q, CheckBackupFile %v", r.LastBackupFile(), r.CheckBackupFile())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, data, 0o600))
}
