package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
)

// Every passphrase the CLI sets pays the real argon2id cost (0.2 s, several
// times that under -race), so these tests use a master key where the
// variable does not matter, and build fixtures through the keystore
// package with a cheap cost, which the file records and the CLI then uses.

const (
	testMasterHex  = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	testPass       = "first passphrase"
	otherMasterHex = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a090807060504030201000"
	testBackup     = "backup passphrase"
)

// cheapKDF is for fixtures only: argon2id in well under a millisecond.
var cheapKDF = keystore.WithKDF(keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})

// mustRun runs a command line that must succeed.
func mustRun(t *testing.T, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != exitcode.OK {
		t.Fatalf("colcrypt %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

type listedKey struct {
	Name       string `json:"name"`
	Version    int    `json:"version"`
	Status     string `json:"status"`
	Created    string `json:"created"`
	CheckValue string `json:"check_value"`
}

// listJSON runs `keys list --format json` and decodes it strictly.
func listJSON(t *testing.T, path string) []listedKey {
	t.Helper()
	r := mustRun(t, "keys", "list", path, "--format", "json")
	var out struct {
		Keys []listedKey `json:"keys"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("keys list --format json printed invalid JSON: %v\n%s", err, r.stdout)
	}
	if out.Keys == nil {
		t.Fatalf("keys list --format json has no \"keys\" array:\n%s", r.stdout)
	}
	return out.Keys
}

// deks returns every data key of the keystore at path, by name/version.
func deks(t *testing.T, path string, s keystore.Secret) map[string][]byte {
	t.Helper()
	k, err := keystore.Open(path, s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, info := range k.List() {
		if info.Status != keystore.StatusActive {
			continue // Key refuses retired versions
		}
		dek, _, err := k.Key(info.Name, info.Version)
		if err != nil {
			t.Fatal(err)
		}
		out[keyID(info.Name, int(info.Version))] = dek
	}
	return out
}

func equalKeys(a, b []listedKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "prod.keystore")
	masterKey, _ := hex.DecodeString(testMasterHex)
	var outputs []string // every stdout and stderr, to search for key material
	record := func(r cliResult) cliResult { outputs = append(outputs, r.stdout, r.stderr); return r }

	setSecrets(t, "COLCRYPT_MASTER_KEY", testMasterHex)
	r := record(mustRun(t, "keys", "init", ks))
	if want := "created keystore " + ks + ", protected by a master key\n"; r.stdout != want {
		t.Errorf("init printed %q, want %q", r.stdout, want)
	}
	if fi, err := os.Stat(ks); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keystore after init: %v, %v; want mode 0600", fi, err)
	}

	for _, tc := range []struct{ name, want string }{
		{"pii", "added key pii version 1 (check value "},
		{"pii", "added key pii version 2 (check value "},
		{"card", "added key card version 1 (check value "},
	} {
		r := record(mustRun(t, "keys", "add", ks, tc.name))
		if !strings.HasPrefix(r.stdout, tc.want) {
			t.Errorf("add %s printed %q, want %q…", tc.name, r.stdout, tc.want)
		}
		if !strings.Contains(r.stderr, `msg="key added"`) || !strings.Contains(r.stderr, "key="+tc.name) {
			t.Errorf("add %s logged %q, want a key added event", tc.name, r.stderr)
		}
	}

	t.Run("list json", func(t *testing.T) {
		keys := listJSON(t, ks)
		want := deks(t, ks, keystore.Secret{MasterKey: masterKey})
		if len(keys) != 3 {
			t.Fatalf("listed %d keys, want 3: %+v", len(keys), keys)
		}
		for i, id := range []string{"card/1", "pii/1", "pii/2"} {
			got := keys[i]
			if keyID(got.Name, int(got.Version)) != id || got.Status != "active" || got.Created == "" {
				t.Errorf("key %d = %+v, want active %s with a creation time", i, got, id)
			}
			if got.CheckValue != keystore.CheckValue(want[id]) {
				t.Errorf("%s: listed check value %s does not match the key", id, got.CheckValue)
			}
		}
	})

	t.Run("list text", func(t *testing.T) {
		r := record(mustRun(t, "keys", "list", ks))
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("list printed %d lines, want a header and 3 keys:\n%s", len(lines), r.stdout)
		}
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME VERSION STATUS CREATED CHECK VALUE" {
			t.Errorf("header %q", lines[0])
		}
		// Aligned: every column starts at the same offset on every line.
		col := strings.Index(lines[0], "CHECK VALUE")
		keys := listJSON(t, ks)
		for i, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) != 5 || f[0] != keys[i].Name || f[2] != "active" || f[4] != keys[i].CheckValue {
				t.Errorf("row %d = %q, want %+v", i, line, keys[i])
			}
			if strings.Index(line, keys[i].CheckValue) != col {
				t.Errorf("row %d is not aligned with the header:\n%s\n%s", i, lines[0], line)
			}
		}
	})

	t.Run("retire", func(t *testing.T) {
		r := record(mustRun(t, "keys", "retire", ks, "pii", "1"))
		if r.stdout != "retired key pii version 1\n" {
			t.Errorf("retire printed %q", r.stdout)
		}
		if !strings.Contains(r.stderr, `msg="key retired"`) {
			t.Errorf("retire logged %q", r.stderr)
		}
		if keys := listJSON(t, ks); keys[1].Status != "retired" || keys[2].Status != "active" {
			t.Errorf("after retiring pii 1: %+v", keys)
		}
	})

	backup := filepath.Join(dir, "prod.backup")
	restored := filepath.Join(dir, "restored.keystore")
	t.Run("backup and restore", func(t *testing.T) {
		setSecrets(t, "COLCRYPT_MASTER_KEY", testMasterHex, "COLCRYPT_BACKUP_PASSPHRASE", testBackup)
		r := record(mustRun(t, "keys", "backup", ks, backup))
		if want := "backed up keystore " + ks + " to " + backup + " (3 keys)\n"; r.stdout != want {
			t.Errorf("backup printed %q, want %q", r.stdout, want)
		}
		k, err := keystore.Open(ks, keystore.Secret{MasterKey: masterKey})
		if err != nil {
			t.Fatal(err)
		}
		if !k.LastBackup().After(k.LastKeyChange()) {
			t.Errorf("after backup, LastBackup %v is not after LastKeyChange %v", k.LastBackup(), k.LastKeyChange())
		}
		original := listJSON(t, ks)

		// The restored keystore is protected by COLCRYPT_PASSPHRASE.
		setSecrets(t, "COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_BACKUP_PASSPHRASE", testBackup)
		r = record(mustRun(t, "keys", "restore", backup, restored))
		if want := "restored keystore " + restored + " from " + backup + " (3 keys)\n"; r.stdout != want {
			t.Errorf("restore printed %q, want %q", r.stdout, want)
		}
		// Equal check values mean equal keys.
		if got := listJSON(t, restored); !equalKeys(got, original) {
			t.Errorf("restored keys %+v, want %+v", got, original)
		}
	})

	t.Run("rewrap", func(t *testing.T) {
		before := func() []listedKey {
			setSecrets(t, "COLCRYPT_MASTER_KEY", testMasterHex)
			return listJSON(t, ks)
		}()
		setSecrets(t, "COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_NEW_MASTER_KEY", otherMasterHex)
		r := record(mustRun(t, "keys", "rewrap", restored))
		if want := "rewrapped keystore " + restored + ": 3 keys, now protected by the new master key\n"; r.stdout != want {
			t.Errorf("rewrap printed %q, want %q", r.stdout, want)
		}
		old := record(runCLI(t, "keys", "list", restored))
		if old.code != exitcode.BadInput || !strings.Contains(old.stderr, "protected by a master key, not a passphrase") {
			t.Errorf("old passphrase after rewrap: exit %d, %q; want exit 2", old.code, old.stderr)
		}
		setSecrets(t, "COLCRYPT_MASTER_KEY", testMasterHex)
		if old := record(runCLI(t, "keys", "list", restored)); old.code != exitcode.BadInput || !strings.Contains(old.stderr, "wrong master key") {
			t.Errorf("another master key after rewrap: exit %d, %q; want exit 2", old.code, old.stderr)
		}
		setSecrets(t, "COLCRYPT_MASTER_KEY", otherMasterHex)
		if after := listJSON(t, restored); !equalKeys(after, before) {
			t.Errorf("rewrap changed the keys: %+v, was %+v", after, before)
		}
	})

	t.Run("no key material in any output", func(t *testing.T) {
		secrets := []string{testMasterHex, otherMasterHex, testPass, testBackup}
		for _, dek := range deks(t, ks, keystore.Secret{MasterKey: masterKey}) {
			secrets = append(secrets, hex.EncodeToString(dek), hex.EncodeToString(dek[:8]))
		}
		for _, out := range outputs {
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
					t.Errorf("output contains a secret:\n%s", out)
				}
			}
		}
	})
}

// TestKeysBadInput checks that every bad input of SPEC §5 exits 2 with one
// line naming the file and what to do, and changes no file.
func TestKeysBadInput(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "prod.keystore")
	backup := filepath.Join(dir, "prod.backup")
	k, err := keystore.Create(ks, keystore.Secret{Passphrase: []byte(testPass)}, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := k.Backup(backup, []byte(testBackup), cheapKDF); err != nil {
		t.Fatal(err)
	}

	good, err := os.ReadFile(ks)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.keystore")
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(dir, "edited.keystore")
	changed := bytes.Clone(good)
	changed[len(changed)/2] ^= 0x01
	if err := os.WriteFile(edited, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.keystore")
	newTarget := filepath.Join(dir, "new.keystore")

	const (
		restoreHint = "restore the keystore from a backup with colcrypt keys restore"
		existsHint  = "choose another path, or move the existing file away first"
	)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string // the whole of stderr, without "colcrypt: " and the newline
	}{
		{
			name: "wrong passphrase",
			env:  []string{"COLCRYPT_PASSPHRASE", "not the passphrase"},
			args: []string{"keys", "list", ks},
			want: "open keystore " + ks + ": wrong passphrase (set COLCRYPT_PASSPHRASE to the keystore's passphrase)",
		},
		{
			name: "master key for a passphrase keystore",
			env:  []string{"COLCRYPT_MASTER_KEY", testMasterHex},
			args: []string{"keys", "add", ks, "x"},
			want: "open keystore " + ks + ": protected by a passphrase, not a master key (set COLCRYPT_PASSPHRASE instead of COLCRYPT_MASTER_KEY)",
		},
		{
			name: "truncated keystore",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "list", truncated},
			want: "open keystore " + truncated + ": checksum mismatch: the file is truncated, damaged or was edited (" + restoreHint + ")",
		},
		{
			name: "edited keystore",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "add", edited, "x"},
			want: "open keystore " + edited + ": checksum mismatch: the file is truncated, damaged or was edited (" + restoreHint + ")",
		},
		{
			name: "backup opened as a keystore",
			env:  []string{"COLCRYPT_PASSPHRASE", testBackup},
			args: []string{"keys", "list", backup},
			want: "open keystore " + backup + ": this is a keystore backup, not a keystore: restore it first",
		},
		{
			name: "wrong backup passphrase",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_BACKUP_PASSPHRASE", "not the backup passphrase"},
			args: []string{"keys", "restore", backup, newTarget},
			want: "open backup " + backup + ": wrong passphrase (set COLCRYPT_BACKUP_PASSPHRASE to the backup's passphrase)",
		},
		{
			name: "keystore is a directory",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "list", dir},
			want: "open keystore " + dir + ": is a directory, not a file",
		},
		{
			name: "missing keystore",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "add", missing, "pii"},
			want: "open keystore " + missing + ": no such file or directory (check the path, or create a keystore with colcrypt keys init)",
		},
		{
			name: "missing backup",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_BACKUP_PASSPHRASE", testBackup},
			args: []string{"keys", "restore", missing, newTarget},
			want: "open backup " + missing + ": no such file or directory",
		},
		{
			name: "existing restore target",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_BACKUP_PASSPHRASE", testBackup},
			args: []string{"keys", "restore", backup, ks},
			want: "restore keystore " + ks + ": file already exists (" + existsHint + ")",
		},
		{
			name: "existing init target",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "init", ks},
			want: "create keystore " + ks + ": file already exists (" + existsHint + ")",
		},
		{
			name: "existing backup target",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_BACKUP_PASSPHRASE", testBackup},
			args: []string{"keys", "backup", ks, backup},
			want: "back up keystore " + ks + " to " + backup + ": file already exists (" + existsHint + ")",
		},
		{
			name: "no passphrase and no terminal",
			args: []string{"keys", "list", ks},
			want: "open keystore " + ks + ": no passphrase: set COLCRYPT_PASSPHRASE (or COLCRYPT_MASTER_KEY), or run on a terminal to be prompted",
		},
		{
			name: "no passphrase for a new keystore",
			args: []string{"keys", "init", newTarget},
			want: "create keystore " + newTarget + ": no passphrase: set COLCRYPT_PASSPHRASE (or COLCRYPT_MASTER_KEY), or run on a terminal to be prompted",
		},
		{
			name: "no backup passphrase",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "restore", backup, newTarget},
			want: "open backup " + backup + ": no passphrase: set COLCRYPT_BACKUP_PASSPHRASE, or run on a terminal to be prompted",
		},
		{
			name: "no new passphrase for rewrap",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass},
			args: []string{"keys", "rewrap", ks},
			want: "rewrap keystore " + ks + ": no passphrase: set COLCRYPT_NEW_PASSPHRASE (or COLCRYPT_NEW_MASTER_KEY), or run on a terminal to be prompted",
		},
		{
			name: "master key not hex",
			env:  []string{"COLCRYPT_MASTER_KEY", "zz" + testMasterHex[2:]},
			args: []string{"keys", "list", ks},
			want: "open keystore " + ks + ": COLCRYPT_MASTER_KEY must be 64 hex characters (32 bytes); it has 64 characters",
		},
		{
			name: "master key too short",
			env:  []string{"COLCRYPT_MASTER_KEY", testMasterHex[:62]},
			args: []string{"keys", "list", ks},
			want: "open keystore " + ks + ": COLCRYPT_MASTER_KEY must be 64 hex characters (32 bytes); it has 62 characters",
		},
		{
			name: "passphrase and master key both set",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_MASTER_KEY", testMasterHex},
			args: []string{"keys", "list", ks},
			want: "open keystore " + ks + ": both COLCRYPT_PASSPHRASE and COLCRYPT_MASTER_KEY are set: set only one",
		},
		{
			name: "retire a version that is not a number",
			args: []string{"keys", "retire", ks, "pii", "one"},
			want: `retire key pii: version "one" is not a number from 1 to 65535`,
		},
		{
			// SPEC §3: a backup is under a separate passphrase.
			name: "backup under the keystore's own passphrase",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_BACKUP_PASSPHRASE", testPass},
			args: []string{"keys", "backup", ks, newTarget},
			want: "back up keystore " + ks + " to " + newTarget + ": the backup passphrase is the keystore's own passphrase; " +
				"a backup must be under a separate one (set COLCRYPT_BACKUP_PASSPHRASE to another)",
		},
		{
			// The plan is read before the keystore changes: it was read
			// after, and the keystore was rewrapped although the command
			// failed.
			name: "rewrap with a plan that cannot be read",
			env:  []string{"COLCRYPT_PASSPHRASE", testPass, "COLCRYPT_NEW_PASSPHRASE", "a new passphrase for the keystore"},
			args: []string{"keys", "rewrap", ks, "--plan", filepath.Join(dir, "nosuch.yaml")},
			want: "read plan: open " + filepath.Join(dir, "nosuch.yaml") + ": no such file or directory",
		},
		{
			name: "unknown list format",
			args: []string{"keys", "list", ks, "--format", "xml"},
			want: `unknown format "xml": use text or json`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setSecrets(t, tc.env...)
			r := runCLI(t, tc.args...)
			if r.code != exitcode.BadInput {
				t.Errorf("exit %d, want %d", r.code, exitcode.BadInput)
			}
			if want := "colcrypt: " + tc.want + "\n"; r.stderr != want {
				t.Errorf("stderr:\n%q\nwant:\n%q", r.stderr, want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if now, _ := os.ReadFile(ks); !bytes.Equal(now, good) {
				t.Fatal("the keystore changed")
			}
			if _, err := os.Stat(newTarget); err == nil {
				t.Fatalf("%s was created", newTarget)
			}
		})
	}

	// Failures found only after the keystore is open still exit 2.
	setSecrets(t, "COLCRYPT_PASSPHRASE", testPass)
	for _, args := range [][]string{
		{"keys", "retire", ks, "pii", "7"},
		{"keys", "add", ks, "bad name"},
		{"keys", "list"},
	} {
		if r := runCLI(t, args...); r.code != exitcode.BadInput || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("colcrypt %s: exit %d, stderr %q; want exit 2 and one line", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// keyID names one version of a key in test maps and messages: "pii/2".
func keyID(name string, version int) string { return name + "/" + strconv.Itoa(version) }

// TestRetireSaysHowToMoveEachColumn: keys retire --plan refuses a version
// that still protects values, and says per column what moves it off: a
// rekey for a versioned column, a revert and a new apply for one that is
// not versioned (it said to rekey those too, which rekey refuses).
func TestRetireSaysHowToMoveEachColumn(t *testing.T) {
	for _, c := range []struct {
		versioned string
		want, not string
	}{
		{"true", "customers.email (1 values): rekey them first (colcrypt rekey PLAN --all); then retire", "not versioned"},
		{"false", "customers.email (state encrypted), not versioned, which rekey cannot move: " +
			"revert the plan (colcrypt revert PLAN) and apply it again; then retire", "rekey them"},
	} {
		t.Run("versioned "+c.versioned, func(t *testing.T) {
			f := newBadInputFixture(t)
			setSecrets(t, "COLCRYPT_PASSPHRASE", badInputPass, "COLCRYPT_BACKUP_PASSPHRASE", "the backup's own passphrase")
			plan := f.plan(t, "plan.yaml", goodPlanBody+"        versioned: "+c.versioned+"\n")
			mustRun(t, "apply", plan, "--no-backup-check")
			mustRun(t, "keys", "add", f.keystore, "pii")
			r := runCLI(t, "keys", "retire", f.keystore, "pii", "1", "--plan", plan)
			want := strings.ReplaceAll(c.want, "PLAN", plan)
			if r.code != exitcode.BadInput || !strings.HasPrefix(r.stderr, "colcrypt: key pii version 1 still protects ") ||
				!strings.HasSuffix(r.stderr, want+"\n") || strings.Contains(r.stderr, c.not) {
				t.Errorf("retire of the version in use: exit %d, %q; want exit 2 ending %q", r.code, r.stderr, want)
			}
			for _, k := range listJSON(t, f.keystore) {
				if k.Status != "active" {
					t.Errorf("after the refused retire, pii v%d is %s", k.Version, k.Status)
				}
			}
		})
	}
}
