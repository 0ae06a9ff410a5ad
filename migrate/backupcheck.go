package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/colcrypt/colcrypt/internal/exitcode"
)

// checkBackupFile refuses, unless NoBackupCheck waives it, a step that
// relies on the keystore's last backup (what names the step and why) when
// that backup's file is missing or changed: the keystore records that a
// backup was taken, which says nothing of whether it still exists. A
// keystore backed up by an older colcrypt recorded no file; it passes as
// before, with a warning.
func (e *Engine) checkBackupFile(ctx context.Context, jobID, what string) error {
	err := e.ks.CheckBackupFile()
	switch {
	case err == nil:
		if e.ks.LastBackupFile() == "" && !e.ks.LastBackup().IsZero() && !e.opt.NoBackupCheck {
			e.log.Warn("the keystore's last backup was taken by an older colcrypt, which did not record its file, so it could not be checked: "+
				"take a new backup with colcrypt keys backup", "keystore", e.plan.Keystore, "backup_taken", e.ks.LastBackup().UTC().Format(time.RFC3339))
		}
		return nil
	case !e.opt.NoBackupCheck:
		return exitcode.Input(fmt.Errorf("%s, and %w: take a new backup (colcrypt keys backup %s FILE), or, if the file was moved to safekeeping "+
			"on purpose, pass --no-backup-check to waive this check", what, err, e.plan.Keystore))
	}
	e.log.Warn("keystore backup check waived with --no-backup-check", "keystore", e.plan.Keystore, "problem", err.Error())
	e.note(ctx, jobID, "backup check waived", "--no-backup-check given; "+err.Error())
	return nil
}
