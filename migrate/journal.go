package migrate

import (
	"context"
	"fmt"

	"github.com/colcrypt/colcrypt/dialect"
)

// journalRecord holds, for the whole job (table name ""), the journal mode
// the database had before a command of the job switched it
// (dialect.JournalSwitcher). It lives from the switch to the restore of
// one command, or until a later command, after a kill, restores it.
const journalRecord = "journal"

// switchJournal puts the database in the mode a job needs, once every
// check of the command passed. The mode the file had is recorded first,
// so that a kill between the two leaves it known: a record a killed
// command left holds the mode from before that command, and is kept when
// the file is still in the job's mode. It returns the mode to give back.
func (e *Engine) switchJournal(ctx context.Context, jobID string) (string, error) {
	js, ok := e.d.(dialect.JournalSwitcher)
	if !ok {
		return "", nil
	}
	was, err := js.JournalMode(ctx, e.db)
	if err != nil {
		return "", err
	}
	recs, err := e.records(ctx, jobID, "")
	if err != nil {
		return "", err
	}
	left, ok := recs.definition(journalRecord)
	if ok && was == js.JobJournalMode() {
		was = left
	} else if err := e.st.setRecord(ctx, jobID, "", ddlRecord{Kind: journalRecord, Definition: was}); err != nil {
		return "", err
	}
	if err := retry(ctx, e.log, "switch the journal mode", func(ctx context.Context) error { return js.SwitchJournal(ctx, e.db) }); err != nil {
		return "", err
	}
	return was, nil
}

// restoreJournal gives the database back the mode it had before the
// command (was, from switchJournal; "" restores what a killed command
// recorded, if anything), once the job, its revert or a rekey is done, and
// drops the record. A database another connection holds keeps the job's
// mode: the job is done all the same, so that is a warning, not an error.
func (e *Engine) restoreJournal(ctx context.Context, jobID, was string) {
	js, ok := e.d.(dialect.JournalSwitcher)
	if !ok {
		return
	}
	err := func() error {
		if was == "" {
			recs, err := e.records(ctx, jobID, "")
			if err != nil {
				return err
			}
			if was, ok = recs.definition(journalRecord); !ok {
				return nil
			}
		}
		// Leaving SQLite's write-ahead log needs the file to the
		// connection alone: the pool's idle connections are closed first,
		// and come back as the engine needs them.
		e.db.SetMaxIdleConns(0)
		defer e.db.SetMaxIdleConns(e.opt.Workers + idleConnsBesideWorkers)
		if err := js.RestoreJournal(ctx, e.db, was); err != nil {
			return err
		}
		if err := e.st.dropRecord(ctx, jobID, "", journalRecord); err != nil {
			return fmt.Errorf("forget the recorded journal mode: %w", err)
		}
		return nil
	}()
	if err != nil {
		e.log.Warn("the job is done, but the database keeps the journal mode it ran in", "err", err)
	}
}
