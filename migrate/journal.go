package migrate

import (
	"context"

	"github.com/colcrypt/colcrypt/dialect"
)

// journalRecord holds, for the whole job (table name ""), the journal mode
// the database had before the job switched it (dialect.JournalSwitcher).
const journalRecord = "journal"

// switchJournal puts the database in the mode a job needs, recording the
// mode it had the first time, before anything else of the job runs. It
// returns the recorded mode, for restoreJournal ("" for an engine that
// switches nothing).
func (e *Engine) switchJournal(ctx context.Context, jobID string) (string, error) {
	js, ok := e.d.(dialect.JournalSwitcher)
	if !ok {
		return "", nil
	}
	var was string
	if err := retry(ctx, e.log, "switch the journal mode", func(ctx context.Context) (err error) {
		was, err = js.SwitchJournal(ctx, e.db)
		return err
	}); err != nil {
		return "", err
	}
	if err := e.st.addRecord(ctx, jobID, "", ddlRecord{Kind: journalRecord, Definition: was}); err != nil {
		return "", err
	}
	recs, err := e.records(ctx, jobID, "")
	if err != nil {
		return "", err
	}
	was, _ = recs.definition(journalRecord)
	return was, nil
}

// restoreJournal gives the database back the mode it had before the job
// (was, from switchJournal), once the job (or its revert, or a rekey) is
// done. A database another connection holds keeps the job's mode: the job
// is done all the same, so that is a warning, not an error.
func (e *Engine) restoreJournal(ctx context.Context, was string) {
	js, ok := e.d.(dialect.JournalSwitcher)
	if !ok || was == "" {
		return
	}
	// Leaving SQLite's write-ahead log needs the file to the connection
	// alone: the pool's idle connections are closed first, and come back
	// as the engine needs them.
	e.db.SetMaxIdleConns(0)
	defer e.db.SetMaxIdleConns(e.opt.Workers + idleConnsBesideWorkers)
	if err := js.RestoreJournal(ctx, e.db, was); err != nil {
		e.log.Warn("the job is done, but the database keeps the journal mode it ran in", "err", err)
	}
}
