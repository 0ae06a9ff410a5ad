package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
)

// Written by the colcrypt before backups recorded their file; holds key
// "pii" and a backup taken after it (see keystore/testdata).
const (
	beforeBackupFileKeystore = "../../keystore/testdata/before-backup-file.keystore"
	beforeBackupFilePass     = "keystore written before backups recorded their file"
)

const backupPass = "backup passphrase of the fixture"

// backupKeystore backs the fixture's keystore up to file through the
// keystore package, at a cheap KDF cost (the CLI pays the real one).
func backupKeystore(t *testing.T, f *badInputFixture, file string) {
	t.Helper()
	k := openFixtureKeystore(t, f, badInputPass)
	if err := k.Backup(file, []byte(backupPass), cheapKDF); err != nil {
		t.Fatal(err)
	}
}

func openFixtureKeystore(t *testing.T, f *badInputFixture, pass string) *keystore.Keystore {
	t.Helper()
	k, err := keystore.Open(f.keystore, keystore.Secret{Passphrase: []byte(pass)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// status runs `status --format json` on plan.
func status(t *testing.T, plan string) migrate.StatusReport {
	t.Helper()
	r := mustRun(t, "status", plan, "--format", "json")
	var rep migrate.StatusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, r.stdout)
	}
	if len(rep.Columns) != 1 {
		t.Fatalf("status shows %d columns, want 1", len(rep.Columns))
	}
	return rep
}

// emails reads customers.email as stored, in id order.
func emails(t *testing.T, f *badInputFixture) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out string
	if err := db.QueryRow(`SELECT group_concat(coalesce(CAST(email AS TEXT), '∅'), ';') FROM (SELECT email FROM customers ORDER BY id)`).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

const plaintextEmails = "a@example.com;∅"

// expand writes the fixture folder and the keystore's last backup time
// into a wanted message.
func expand(t *testing.T, f *badInputFixture, pass, msg string) string {
	t.Helper()
	taken := openFixtureKeystore(t, f, pass).LastBackup().UTC().Format(time.RFC3339)
	return strings.NewReplacer("$DIR", f.dir, "$TAKEN", taken).Replace(msg)
}

// refusal is cut-over's message for the fixture's keystore when its
// backup file has the problem.
func refusal(backup, problem string) string {
	return "colcrypt: cut-over destroys the plaintext, and the last backup of keystore $DIR/shop.keystore, " + backup +
		" (taken $TAKEN), " + problem + ": take a new backup (colcrypt keys backup $DIR/shop.keystore FILE), or, if the file was moved " +
		"to safekeeping on purpose, pass --no-backup-check to waive this check"
}

// TestCutoverChecksBackupFile: cut-over needs the keystore's last backup
// to be still there as written, not only recorded; a refusal changes
// nothing and names the way on.
func TestCutoverChecksBackupFile(t *testing.T) {
	cases := []struct {
		name  string
		pass  string // the keystore's passphrase; badInputPass when empty
		setup func(t *testing.T, f *badInputFixture)
		flags []string
		code  int
		msg   string // the last colcrypt: line of stderr when refused ($DIR, $TAKEN)
		log   string // what stderr must contain when it passes
	}{
		{name: "backup present", setup: func(t *testing.T, f *badInputFixture) {
			mustRun(t, "keys", "backup", f.keystore, filepath.Join(f.dir, "x.backup"))
		}},
		{name: "backup deleted", setup: func(t *testing.T, f *badInputFixture) {
			backup := filepath.Join(f.dir, "x.backup")
			mustRun(t, "keys", "backup", f.keystore, backup)
			if err := os.Remove(backup); err != nil {
				t.Fatal(err)
			}
		}, code: 2, msg: refusal("$DIR/x.backup", "is missing")},
		{name: "backup replaced by other bytes", setup: func(t *testing.T, f *badInputFixture) {
			backup := filepath.Join(f.dir, "x.backup")
			backupKeystore(t, f, backup)
			if err := os.WriteFile(backup, []byte("something else\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, code: 2, msg: refusal("$DIR/x.backup", "no longer holds the bytes written to it")},
		{name: "backup moved, check waived", setup: func(t *testing.T, f *badInputFixture) {
			backup := filepath.Join(f.dir, "x.backup")
			backupKeystore(t, f, backup)
			if err := os.Rename(backup, filepath.Join(t.TempDir(), "x.backup")); err != nil {
				t.Fatal(err)
			}
		}, flags: []string{"--no-backup-check"}, log: `msg="keystore backup check waived with --no-backup-check"`},
		{name: "no backup at all", code: 2, msg: "colcrypt: cut-over destroys the plaintext, and keystore $DIR/shop.keystore has no backup " +
			"taken after its last key change: run colcrypt keys backup $DIR/shop.keystore FILE first (or pass --no-backup-check to waive this)"},
		{name: "key added after the backup", setup: func(t *testing.T, f *badInputFixture) {
			backupKeystore(t, f, filepath.Join(f.dir, "x.backup"))
			time.Sleep(time.Millisecond)
			k := openFixtureKeystore(t, f, badInputPass)
			if _, err := k.Add("other"); err != nil {
				t.Fatal(err)
			}
			if err := k.Save(); err != nil {
				t.Fatal(err)
			}
		}, code: 2, msg: "colcrypt: cut-over destroys the plaintext, and keystore $DIR/shop.keystore has no backup " +
			"taken after its last key change: run colcrypt keys backup $DIR/shop.keystore FILE first (or pass --no-backup-check to waive this)"},
		{name: "rewrap after the backup", setup: func(t *testing.T, f *badInputFixture) {
			// A rewrap is no key change: the backup still restores every key.
			backupKeystore(t, f, filepath.Join(f.dir, "x.backup"))
			k := openFixtureKeystore(t, f, badInputPass)
			if err := k.Rewrap(keystore.Secret{Passphrase: []byte(badInputPass)}, cheapKDF); err != nil {
				t.Fatal(err)
			}
			if err := k.Save(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "restored from a backup moved since", setup: func(t *testing.T, f *badInputFixture) {
			restoreFromMoved(t, f)
		}},
		{name: "restored, then that backup deleted", setup: func(t *testing.T, f *badInputFixture) {
			if err := os.Remove(restoreFromMoved(t, f)); err != nil {
				t.Fatal(err)
			}
		}, code: 2, msg: refusal("$DIR/moved.backup", "is missing")},
		{name: "keystore from before backup files", pass: beforeBackupFilePass, setup: func(t *testing.T, f *badInputFixture) {
			data, err := os.ReadFile(beforeBackupFileKeystore)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.keystore, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, log: "taken by an older colcrypt, which did not record its file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newBadInputFixture(t)
			if c.pass == "" {
				c.pass = badInputPass
			}
			setSecrets(t, "COLCRYPT_PASSPHRASE", c.pass, "COLCRYPT_BACKUP_PASSPHRASE", backupPass)
			plan := f.plan(t, "plan.yaml", goodPlanBody)
			if c.setup != nil {
				c.setup(t, f)
			}
			keystoreBefore, err := os.ReadFile(f.keystore)
			if err != nil {
				t.Fatal(err)
			}

			r := runCLI(t, append([]string{"apply", plan}, c.flags...)...)
			if r.code != c.code {
				t.Fatalf("apply: exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, c.pass) || strings.Contains(r.stderr+r.stdout, backupPass) {
				t.Errorf("a passphrase appears in the output")
			}
			rep := status(t, plan)
			if c.code == 0 {
				if !strings.Contains(r.stderr, c.log) {
					t.Errorf("stderr lacks %q:\n%s", c.log, r.stderr)
				}
				if rep.Columns[0].State != migrate.StateEncrypted || emails(t, f) == plaintextEmails {
					t.Fatalf("apply passed but customers.email is in state %d, values %q", rep.Columns[0].State, emails(t, f))
				}
				return
			}

			if got, want := lastLine(r.stderr), expand(t, f, c.pass, c.msg); got != want {
				t.Errorf("message\n got: %s\nwant: %s", got, want)
			}
			// Nothing changed: the job stopped before cut-over, the
			// plaintext is in place, the keystore is as it was.
			if rep.Job == nil || rep.Job.Phase != "verify" || rep.Columns[0].State == migrate.StateEncrypted {
				t.Errorf("after the refusal: job %+v, column state %d; want the job verified, not cut over", rep.Job, rep.Columns[0].State)
			}
			if got := emails(t, f); got != plaintextEmails {
				t.Errorf("after the refusal customers.email holds %q, want the plaintext %q", got, plaintextEmails)
			}
			if after, err := os.ReadFile(f.keystore); err != nil || !bytes.Equal(after, keystoreBefore) {
				t.Errorf("the refused apply changed the keystore (%v)", err)
			}

			// The way on the message names: a new backup, then apply.
			backupKeystore(t, f, filepath.Join(f.dir, "new.backup"))
			if r := runCLI(t, "apply", plan); r.code != 0 {
				t.Fatalf("apply after a new backup: exit %d\n%s", r.code, r.stderr)
			}
			if st := status(t, plan).Columns[0].State; st != migrate.StateEncrypted || emails(t, f) == plaintextEmails {
				t.Errorf("apply after a new backup left customers.email in state %d", st)
			}
		})
	}
}

// restoreFromMoved backs the fixture's keystore up, moves the backup to
// $DIR/moved.backup, and restores the keystore from there in place of the
// original; it returns the backup's new path.
func restoreFromMoved(t *testing.T, f *badInputFixture) string {
	t.Helper()
	backup := filepath.Join(f.dir, "x.backup")
	backupKeystore(t, f, backup)
	moved := filepath.Join(f.dir, "moved.backup")
	if err := os.Rename(backup, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.keystore); err != nil {
		t.Fatal(err)
	}
	if _, err := keystore.Restore(moved, []byte(backupPass), f.keystore, keystore.Secret{Passphrase: []byte(badInputPass)}, cheapKDF); err != nil {
		t.Fatal(err)
	}
	return moved
}

// TestRekeyChecksBackupFile: rekey needs the backup taken after the new key
// version to be still there as written; a refusal rewrites nothing.
func TestRekeyChecksBackupFile(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, backup string)
		flags  []string
		code   int
		msg    string
	}{
		{name: "backup present", change: func(*testing.T, string) {}},
		{name: "backup deleted", change: func(t *testing.T, backup string) {
			if err := os.Remove(backup); err != nil {
				t.Fatal(err)
			}
		}, code: 2, msg: "is missing"},
		{name: "backup replaced by other bytes", change: func(t *testing.T, backup string) {
			if err := os.WriteFile(backup, []byte("something else\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, code: 2, msg: "no longer holds the bytes written to it"},
		{name: "backup moved, check waived", change: func(t *testing.T, backup string) {
			if err := os.Rename(backup, filepath.Join(t.TempDir(), "v2.backup")); err != nil {
				t.Fatal(err)
			}
		}, flags: []string{"--no-backup-check"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newBadInputFixture(t)
			setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass)
			plan := f.plan(t, "plan.yaml", goodPlanBody)
			mustRun(t, "apply", plan, "--no-backup-check")
			k := openFixtureKeystore(t, f, badInputPass)
			if _, err := k.Add("pii"); err != nil {
				t.Fatal(err)
			}
			if err := k.Save(); err != nil {
				t.Fatal(err)
			}
			backup := filepath.Join(f.dir, "v2.backup")
			backupKeystore(t, f, backup)
			c.change(t, backup)
			before := snapshotFile(t, filepath.Join(f.dir, "shop.db"))

			r := runCLI(t, append([]string{"rekey", plan, "--all"}, c.flags...)...)
			if r.code != c.code {
				t.Fatalf("rekey: exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			col := status(t, plan).Columns[0]
			if c.code == 0 {
				if col.State != migrate.StateEncrypted || col.KeyVersion != 2 {
					t.Fatalf("rekey passed but customers.email is in state %d under v%d", col.State, col.KeyVersion)
				}
				return
			}
			want := expand(t, f, badInputPass, "colcrypt: rekey of customers.email writes values only key pii v2 decrypts, and the last backup of keystore "+
				"$DIR/shop.keystore, $DIR/v2.backup (taken $TAKEN), "+c.msg+": take a new backup (colcrypt keys backup $DIR/shop.keystore FILE), "+
				"or, if the file was moved to safekeeping on purpose, pass --no-backup-check to waive this check")
			if got := lastLine(r.stderr); got != want {
				t.Errorf("message\n got: %s\nwant: %s", got, want)
			}
			if col.State != migrate.StateEncrypted || col.KeyVersion != 1 {
				t.Errorf("after the refusal customers.email is in state %d under v%d, want 3 under v1", col.State, col.KeyVersion)
			}
			if after := snapshotFile(t, filepath.Join(f.dir, "shop.db")); after != before {
				t.Errorf("the refused rekey changed the table")
			}
		})
	}
}
