package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
)

func init() { register(newKeysCmd) }

// newKeysCmd builds `colcrypt keys …`: the keystore's life cycle (SPEC §3, §5).
func newKeysCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create and manage the keystore: master secret, data keys, backups",
		Long: `Create and manage the keystore that holds the data-encryption keys.

The master passphrase comes from COLCRYPT_PASSPHRASE (or a 32-byte master key
as 64 hex characters in COLCRYPT_MASTER_KEY), the new one of a rewrap from
COLCRYPT_NEW_PASSPHRASE (or COLCRYPT_NEW_MASTER_KEY), a backup passphrase from
COLCRYPT_BACKUP_PASSPHRASE; otherwise colcrypt asks on the terminal.

A keystore may instead be protected by an AES key in a PKCS#11 HSM:
COLCRYPT_PKCS11_MODULE (the vendor's library), COLCRYPT_PKCS11_TOKEN and
COLCRYPT_PKCS11_KEY (labels; recorded in the keystore, so opening needs only
the module and the PIN) and COLCRYPT_PKCS11_PIN (the user PIN). The new
protector of a rewrap comes from COLCRYPT_NEW_PKCS11_TOKEN, _KEY and _PIN
(and _MODULE, which defaults to COLCRYPT_PKCS11_MODULE).`,
	}
	cmd.AddCommand(
		newKeysInitCmd(a),
		newKeysAddCmd(a),
		newKeysListCmd(a),
		newKeysRewrapCmd(a),
		newKeysBackupCmd(a),
		newKeysRestoreCmd(a),
		newKeysRetireCmd(a),
	)
	return cmd
}

func newKeysInitCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "init KEYSTORE",
		Short: "Create a new, empty keystore",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path := args[0]
			purpose := "create keystore " + path
			if err := mustNotExist(purpose, path); err != nil {
				return err
			}
			s, err := a.newMasterSecret(purpose)
			if err != nil {
				return err
			}
			k, err := keystore.Create(path, s)
			if s.PKCS11 != nil {
				clear(s.PKCS11.PIN)
			}
			if err != nil {
				return keystoreError(err, s, masterVars)
			}
			a.log.Info("keystore created", "keystore", path, "protector", k.Protector())
			fmt.Fprintf(a.stdout, "created keystore %s, protected by a %s\n", path, k.Protector())
			return nil
		},
	}
}

func newKeysAddCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "add KEYSTORE NAME",
		Short: "Add a data key: version 1 of a new name, or the next version of an existing one",
		Args:  exactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			path, name := args[0], args[1]
			k, err := a.openKeystore(path)
			if err != nil {
				return err
			}
			info, err := k.Add(name)
			if err != nil {
				return exitcode.Input(err)
			}
			if err := k.Save(); err != nil {
				return keystoreError(err, keystore.Secret{}, masterVars)
			}
			a.log.Info("key added", "keystore", path, "key", info.Name, "version", info.Version, "check_value", info.CheckValue)
			fmt.Fprintf(a.stdout, "added key %s version %d (check value %s)\n", info.Name, info.Version, info.CheckValue)
			return nil
		},
	}
}

// keyJSON is one entry of `keys list --format json`; these names are the
// contract.
type keyJSON struct {
	Name       string    `json:"name"`
	Version    uint16    `json:"version"`
	Status     string    `json:"status"`
	Created    time.Time `json:"created"`
	CheckValue string    `json:"check_value"`
}

func newKeysListCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list KEYSTORE",
		Short: "List every version of every data key, with status and check value",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return exitcode.Input(fmt.Errorf("unknown format %q: use text or json", format))
			}
			k, err := a.openKeystore(args[0])
			if err != nil {
				return err
			}
			keys := k.List()
			if format == "json" {
				out := struct {
					Keys []keyJSON `json:"keys"`
				}{Keys: make([]keyJSON, len(keys))}
				for i, info := range keys {
					out.Keys[i] = keyJSON{Name: info.Name, Version: info.Version, Status: info.Status, Created: info.Created, CheckValue: info.CheckValue}
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tSTATUS\tCREATED\tCHECK VALUE")
			for _, info := range keys {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", info.Name, info.Version, info.Status, info.Created.UTC().Format(time.RFC3339), info.CheckValue)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func newKeysRewrapCmd(a *app) *cobra.Command {
	var planPath string
	cmd := &cobra.Command{
		Use:   "rewrap KEYSTORE [--plan PLAN]",
		Short: "Protect the same data keys with a new master passphrase; no row changes",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			k, err := a.openKeystore(path)
			if err != nil {
				return err
			}
			// The plan, when given, is read and its database reached
			// before the keystore changes: a bad plan changes nothing.
			var e *migrate.Engine
			if planPath != "" {
				var closeDB func()
				if e, closeDB, err = a.engine(cmd.Context(), planPath, false, jobFlags{}); err != nil {
					return err
				}
				defer closeDB()
			}
			s, err := a.replacementSecret("rewrap keystore " + path)
			if err != nil {
				return err
			}
			before := k.Protector()
			err = k.Rewrap(s)
			if s.PKCS11 != nil {
				clear(s.PKCS11.PIN)
			}
			if err != nil {
				return keystoreError(err, s, newMasterVars)
			}
			if err := k.Save(); err != nil {
				return keystoreError(err, keystore.Secret{}, masterVars)
			}
			a.log.Info("keystore rewrapped", "keystore", path, "protector", k.Protector(), "keys", len(k.List()))
			fmt.Fprintf(a.stdout, "rewrapped keystore %s: %d keys, now protected by the new %s\n", path, len(k.List()), k.Protector())
			if e != nil {
				// The protection change is part of the job's history, as
				// SQL Server's state 6 is for TDE.
				detail := fmt.Sprintf("keystore %s rewrapped: %s → new %s; data keys and check values unchanged", path, before, k.Protector())
				if err := e.RecordProtectionChange(cmd.Context(), detail); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&planPath, "plan", "", "record the protection change in this plan's job log")
	return cmd
}

func newKeysBackupCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "backup KEYSTORE FILE",
		Short: "Write an encrypted copy of the keystore under a separate backup passphrase",
		Long: `Write an encrypted copy of the keystore under a separate backup passphrase.

The keystore records when the backup was taken, the file's absolute path and
the SHA-256 of its bytes. Cut-over and rekey refuse to run when that file is
gone or no longer holds those bytes, unless --no-backup-check waives the check
(for a backup moved to safekeeping on purpose).`,
		Args: exactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			path, file := args[0], args[1]
			purpose := "back up keystore " + path + " to " + file
			if err := mustNotExist(purpose, file); err != nil {
				return err
			}
			k, master, err := a.openKeystoreSecret(path)
			if err != nil {
				return err
			}
			pass, err := a.backupPassphrase(purpose, true)
			if err != nil {
				return err
			}
			if master.Passphrase != nil && subtle.ConstantTimeCompare(master.Passphrase, pass) == 1 {
				return exitcode.Input(fmt.Errorf("%s: the backup passphrase is the keystore's own passphrase; "+
					"a backup must be under a separate one (set %s to another)", purpose, backupVars.passphrase))
			}
			if err := k.Backup(file, pass); err != nil {
				return keystoreError(err, keystore.Secret{}, masterVars)
			}
			a.log.Info("keystore backed up", "keystore", path, "backup", file, "keys", len(k.List()))
			fmt.Fprintf(a.stdout, "backed up keystore %s to %s (%d keys)\n", path, file, len(k.List()))
			return nil
		},
	}
}

func newKeysRestoreCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE KEYSTORE",
		Short: "Write a new keystore from a backup, protected by the master passphrase",
		Args:  exactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			file, path := args[0], args[1]
			purpose := "restore keystore " + path
			if err := mustNotExist(purpose, path); err != nil {
				return err
			}
			if err := checkReadable("open backup "+file, file, backupVars); err != nil {
				return err
			}
			pass, err := a.backupPassphrase("open backup "+file, false)
			if err != nil {
				return err
			}
			s, err := a.newMasterSecret(purpose)
			if err != nil {
				return err
			}
			k, err := keystore.Restore(file, pass, path, s)
			if s.PKCS11 != nil {
				clear(s.PKCS11.PIN)
			}
			if err != nil {
				if isPKCS11Error(err) {
					return keystoreError(err, s, masterVars)
				}
				return keystoreError(err, keystore.Secret{Passphrase: pass}, backupVars)
			}
			a.log.Info("keystore restored", "keystore", path, "backup", file, "keys", len(k.List()))
			fmt.Fprintf(a.stdout, "restored keystore %s from %s (%d keys)\n", path, file, len(k.List()))
			return nil
		},
	}
}

func newKeysRetireCmd(a *app) *cobra.Command {
	var planPath string
	cmd := &cobra.Command{
		Use:   "retire KEYSTORE NAME VERSION [--plan PLAN]",
		Short: "Mark a data key version retired: it no longer encrypts new values (existing ones stay readable)",
		Args:  exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, name := args[0], args[1]
			version, err := strconv.ParseUint(args[2], 10, 16)
			if err != nil || version == 0 {
				return exitcode.Input(fmt.Errorf("retire key %s: version %q is not a number from 1 to 65535", name, args[2]))
			}
			k, err := a.openKeystore(path)
			if err != nil {
				return err
			}
			if planPath != "" {
				e, closeDB, err := a.engine(cmd.Context(), planPath, false, jobFlags{})
				if err != nil {
					return err
				}
				uses, err := e.VersionInUse(cmd.Context(), name, int(version))
				closeDB()
				if err != nil {
					return err
				}
				if len(uses) > 0 {
					return exitcode.Input(fmt.Errorf("key %s version %d still protects %s; then retire", name, version, retireAdvice(uses, planPath)))
				}
			}
			if err := k.Retire(name, uint16(version)); err != nil {
				return exitcode.Input(fmt.Errorf("retire in keystore %s: %w", path, err))
			}
			if err := k.Save(); err != nil {
				return keystoreError(err, keystore.Secret{}, masterVars)
			}
			var checkValue string
			for _, info := range k.List() {
				if info.Name == name && info.Version == uint16(version) {
					checkValue = info.CheckValue
				}
			}
			a.log.Info("key retired", "keystore", path, "key", name, "version", version, "check_value", checkValue)
			if planPath == "" {
				a.log.Warn("retired without --plan: no database was checked for values still under this version; they stay readable, "+
					"but rekey them before relying on the retirement", "key", name, "version", version)
			}
			fmt.Fprintf(a.stdout, "retired key %s version %d\n", name, version)
			return nil
		},
	}
	cmd.Flags().StringVar(&planPath, "plan", "", "refuse when this plan's database still holds values under the version")
	return cmd
}

// retireAdvice lists the columns a key version still protects, each with
// what moves it off that version: a rekey for versioned columns, a revert
// and a new apply for the others, which rekey refuses.
func retireAdvice(uses []migrate.VersionUse, planPath string) string {
	var rekey, reapply []string
	for _, u := range uses {
		if u.Versioned {
			rekey = append(rekey, u.String())
		} else {
			reapply = append(reapply, u.String())
		}
	}
	var parts []string
	if len(rekey) > 0 {
		parts = append(parts, fmt.Sprintf("%s: rekey them first (colcrypt rekey %s --all)", strings.Join(rekey, ", "), planPath))
	}
	if len(reapply) > 0 {
		parts = append(parts, fmt.Sprintf("%s, not versioned, which rekey cannot move: revert the plan (colcrypt revert %s) and apply it again",
			strings.Join(reapply, ", "), planPath))
	}
	return strings.Join(parts, "; and ")
}
