package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Column states, as in SQL Server's sys.dm_database_encryption_keys.
const (
	StateNone                = 0
	StateUnencrypted         = 1
	StateEncrypting          = 2
	StateEncrypted           = 3
	StateKeyChange           = 4
	StateDecrypting          = 5
	StateProtectionChange    = 6
	stateTableName           = "colcrypt_columns"
	jobTableName             = "colcrypt_job"
	ddlTableName             = "colcrypt_ddl"
	chunkTableName           = "colcrypt_chunks"
	eventTableName           = "colcrypt_events"
	timeLayout               = time.RFC3339Nano
	phaseCopy                = "copy"
	phaseDecrypt             = "decrypt"
	phaseRekey               = "rekey"
	maxEventDetail           = 2000
	ciphertextColumnSuffix   = "__colcrypt"
	restoredColumnSuffix     = "__colcrypt_plain"
	ivColumnSuffix           = "_iv"
	rowIDColumn              = "colcrypt_row_id"
	jobKindEncrypt           = "encrypt"
	jobKindRevert            = "revert"
	jobKindRekey             = "rekey"
	phasePrepared            = "prepare"
	phaseCopied              = "copy"
	phaseVerified            = "verify"
	phaseCutover             = "cutover"
	phasePurged              = "purge"
	phaseDone                = "done"
	defaultPercentForUnknown = 0
)

// StateDesc names a column state as status prints it.
func StateDesc(state int) string {
	switch state {
	case StateNone:
		return "none"
	case StateUnencrypted:
		return "unencrypted"
	case StateEncrypting:
		return "encryption in progress"
	case StateEncrypted:
		return "encrypted"
	case StateKeyChange:
		return "key change in progress"
	case StateDecrypting:
		return "decryption in progress"
	case StateProtectionChange:
		return "protection change in progress"
	}
	return fmt.Sprintf("unknown state %d", state)
}

// store reads and writes colcrypt's own tables in the target database.
// Every operation is idempotent and goes through the retry helper: a
// connection dropped by a failover must not fail a job on its bookkeeping.
type store struct {
	db  *sql.DB
	d   dialect.Dialect
	m   dialect.Mover
	log *slog.Logger
	// bounds seal the chunk bounds of tables whose key the job encrypts
	// (bounds.go); set once the job's keys are loaded.
	bounds *boundKeys
}

func (s *store) logger() *slog.Logger {
	if s.log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s.log
}

// retried runs a store read through the retry helper.
func retried[T any](ctx context.Context, s *store, what string, op func(context.Context) (T, error)) (T, error) {
	var out T
	err := retry(ctx, s.logger(), what, func(ctx context.Context) error {
		var err error
		out, err = op(ctx)
		return err
	})
	return out, err
}

func (s *store) exists(ctx context.Context, name string) (bool, error) {
	return retried(ctx, s, "read the catalog", func(ctx context.Context) (bool, error) { return s.existsOnce(ctx, name) })
}

func (s *store) loadJob(ctx context.Context, id string) (*job, error) {
	return retried(ctx, s, "read the job", func(ctx context.Context) (*job, error) { return s.loadJobOnce(ctx, id) })
}

func (s *store) columns(ctx context.Context) ([]*columnState, error) {
	return retried(ctx, s, "read column states", func(ctx context.Context) ([]*columnState, error) { return s.columnsOnce(ctx) })
}

func (s *store) ddl(ctx context.Context, jobID, table string) ([]ddlRecord, error) {
	return retried(ctx, s, "read recorded DDL", func(ctx context.Context) ([]ddlRecord, error) { return s.ddlOnce(ctx, jobID, table) })
}

func (s *store) chunks(ctx context.Context, jobID, table, phase string) (map[string]chunkRecord, error) {
	return retried(ctx, s, "read checkpoints", func(ctx context.Context) (map[string]chunkRecord, error) {
		return s.chunksOnce(ctx, jobID, table, phase)
	})
}

func (s *store) saveJob(ctx context.Context, j *job) error {
	return retry(ctx, s.logger(), "save the job", func(ctx context.Context) error { return s.saveJobOnce(ctx, j) })
}

// advanceJob records j's new kind and phase, but only over the kind and
// phase this run found (fromKind, fromPhase): two runs of the same plan
// (a cron job and a person) may overlap, and the one that finishes a phase
// late must not set the job back behind what the other did since (a
// cut-over done, then "copy" recorded again). That run stops instead.
func (s *store) advanceJob(ctx context.Context, j *job, fromKind, fromPhase string) error {
	return retry(ctx, s.logger(), "save the job", func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, "UPDATE "+s.table(jobTableName)+" SET kind = "+s.ph(1)+", phase = "+s.ph(2)+", updated_at = "+s.ph(3)+
			" WHERE job_id = "+s.ph(4)+" AND kind = "+s.ph(5)+" AND phase = "+s.ph(6), j.Kind, j.Phase, now(), j.ID, fromKind, fromPhase)
		if err != nil {
			return fmt.Errorf("save job %s: %w", j.ID, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		now, err := s.loadJobOnce(ctx, j.ID)
		switch {
		case err != nil:
			return err
		case now != nil && now.Kind == j.Kind && now.Phase == j.Phase:
			return nil // this run's own update, whose reply was lost
		case now == nil:
			return fmt.Errorf("job %s is gone from %s: another colcrypt run finished or removed it meanwhile; this run stops", j.ID, jobTableName)
		}
		return fmt.Errorf("job %s moved on to %s phase %q while this run worked on %s phase %q (another colcrypt run of this plan?): "+
			"this run stops; run it again to continue from there", j.ID, now.Kind, now.Phase, fromKind, fromPhase)
	})
}

func (s *store) putColumn(ctx context.Context, c *columnState) error {
	return retry(ctx, s.logger(), "save a column state", func(ctx context.Context) error { return s.putColumnOnce(ctx, c) })
}

func (s *store) recordDDL(ctx context.Context, jobID, table string, defs []ddlRecord) error {
	return retry(ctx, s.logger(), "record DDL", func(ctx context.Context) error { return s.recordDDLOnce(ctx, jobID, table, defs) })
}

// addRecord records one more definition of the table, unless one of its
// kind is recorded already.
func (s *store) addRecord(ctx context.Context, jobID, table string, rec ddlRecord) error {
	return retry(ctx, s.logger(), "record DDL", func(ctx context.Context) error { return s.addRecordOnce(ctx, jobID, table, rec) })
}

// setRecord records rec in place of any record of its kind.
func (s *store) setRecord(ctx context.Context, jobID, table string, rec ddlRecord) error {
	return retry(ctx, s.logger(), "record DDL", func(ctx context.Context) error {
		if err := s.dropRecordOnce(ctx, jobID, table, rec.Kind); err != nil {
			return err
		}
		return s.addRecordOnce(ctx, jobID, table, rec)
	})
}

// dropRecord forgets the records of a kind.
func (s *store) dropRecord(ctx context.Context, jobID, table, kind string) error {
	return retry(ctx, s.logger(), "forget DDL", func(ctx context.Context) error { return s.dropRecordOnce(ctx, jobID, table, kind) })
}

func (s *store) dropRecordOnce(ctx context.Context, jobID, table, kind string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM "+s.table(ddlTableName)+" WHERE job_id = "+s.ph(1)+" AND table_name = "+s.ph(2)+
		" AND kind = "+s.ph(3), jobID, table, kind)
	return err
}

func (s *store) clearChunks(ctx context.Context, jobID, table, phase string) error {
	return retry(ctx, s.logger(), "clear checkpoints", func(ctx context.Context) error { return s.clearChunksOnce(ctx, jobID, table, phase) })
}

func (s *store) clearDDL(ctx context.Context, jobID string) error {
	return retry(ctx, s.logger(), "clear recorded DDL", func(ctx context.Context) error { return s.clearDDLOnce(ctx, jobID) })
}

func (s *store) redactBoundaries(ctx context.Context, jobID, table, phase string) error {
	return retry(ctx, s.logger(), "redact chunk boundaries", func(ctx context.Context) error { return s.redactBoundariesOnce(ctx, jobID, table, phase) })
}

func (s *store) ph(n int) string { return s.m.Placeholder(n) }

// placeholders gives "p1, p2, ..., pn" starting at from.
func (s *store) placeholders(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.ph(from + i))
	}
	return b.String()
}

func (s *store) q(name string) string { return s.d.Quote(name) }

func (s *store) table(name string) string {
	return s.d.QuoteTable(schema.TableName{Schema: s.d.DefaultSchema(), Name: name})
}

// ensure creates colcrypt's tables when they are missing. It is safe to run
// again and from several processes: a concurrent creator's table is fine.
func (s *store) ensure(ctx context.Context) error {
	t := s.m.StateTypes()
	ddl := []struct{ name, body string }{
		{jobTableName, fmt.Sprintf(`job_id %[1]s NOT NULL PRIMARY KEY, fingerprint %[1]s NOT NULL, kind %[1]s NOT NULL,
			phase %[1]s NOT NULL, plan_path %[2]s, key_checks %[2]s NOT NULL, digest_key %[1]s NOT NULL,
			created_at %[1]s NOT NULL, updated_at %[1]s NOT NULL`, t.Key, t.Text)},
		{stateTableName, fmt.Sprintf(`table_name %[1]s NOT NULL, column_name %[1]s NOT NULL, job_id %[1]s NOT NULL,
			state %[3]s NOT NULL, percent_complete %[3]s NOT NULL, key_name %[1]s NOT NULL, key_version %[3]s NOT NULL,
			suite %[1]s NOT NULL, iv_mode %[1]s NOT NULL, versioned %[3]s NOT NULL, column_iv %[1]s, source_type %[1]s NOT NULL,
			temp_column %[1]s NOT NULL, iv_column %[1]s, rows_total %[3]s NOT NULL, rows_done %[3]s NOT NULL,
			rekey_target %[2]s, updated_at %[1]s NOT NULL, PRIMARY KEY (table_name, column_name)`, t.Key, t.Text, t.BigInt)},
		{ddlTableName, fmt.Sprintf(`job_id %[1]s NOT NULL, table_name %[1]s NOT NULL, seq %[3]s NOT NULL,
			kind %[1]s NOT NULL, name %[1]s NOT NULL, definition %[2]s NOT NULL, PRIMARY KEY (job_id, table_name, seq)`, t.Key, t.Text, t.BigInt)},
		{chunkTableName, fmt.Sprintf(`job_id %[1]s NOT NULL, table_name %[1]s NOT NULL, phase %[1]s NOT NULL,
			lo_hash %[1]s NOT NULL, lo %[2]s NOT NULL, hi %[2]s, rows_done %[3]s NOT NULL, digest %[1]s NOT NULL, row_hashes %[4]s,
			done_at %[1]s NOT NULL, PRIMARY KEY (job_id, table_name, phase, lo_hash)`, t.Key, t.Text, t.BigInt, t.Blob)},
		{eventTableName, fmt.Sprintf(`job_id %[1]s NOT NULL, seq %[3]s NOT NULL, at %[1]s NOT NULL, event %[1]s NOT NULL,
			detail %[2]s, PRIMARY KEY (job_id, seq)`, t.Key, t.Text, t.BigInt)},
	}
	for _, x := range ddl {
		exists, err := s.exists(ctx, x.name)
		if err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := s.db.ExecContext(ctx, "CREATE TABLE "+s.table(x.name)+" ("+x.body+")"); err != nil {
			if again, err2 := s.exists(ctx, x.name); err2 == nil && again {
				continue
			}
			return fmt.Errorf("create %s: %w", x.name, err)
		}
	}
	return nil
}

// exists reports whether one of colcrypt's tables is there.
func (s *store) existsOnce(ctx context.Context, name string) (bool, error) {
	_, err := s.d.ReadTable(ctx, s.db, schema.TableName{Schema: s.d.DefaultSchema(), Name: name})
	if errors.Is(err, dialect.ErrTableNotFound) {
		return false, nil
	}
	return err == nil, err
}

// job is the row of colcrypt_job.
type job struct {
	ID          string
	Fingerprint string
	Kind        string
	Phase       string
	PlanPath    string
	KeyChecks   map[string]string // "name/version" → key check value
	// DigestKey names the data key ("name/version") the plaintext digests
	// are keyed with; the key itself stays in the keystore.
	DigestKey string
}

func now() string { return time.Now().UTC().Format(timeLayout) }

func (s *store) loadJobOnce(ctx context.Context, id string) (*job, error) {
	if ok, err := s.exists(ctx, jobTableName); err != nil || !ok {
		return nil, err
	}
	var j job
	var checks string
	err := s.db.QueryRowContext(ctx, "SELECT job_id, fingerprint, kind, phase, plan_path, key_checks, digest_key FROM "+
		s.table(jobTableName)+" WHERE job_id = "+s.ph(1), id).
		Scan(&j.ID, &j.Fingerprint, &j.Kind, &j.Phase, &j.PlanPath, &checks, &j.DigestKey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(checks), &j.KeyChecks); err != nil {
		return nil, fmt.Errorf("read job %s: key checks: %w", id, err)
	}
	return &j, nil
}

func (s *store) saveJobOnce(ctx context.Context, j *job) error {
	checks, err := json.Marshal(j.KeyChecks)
	if err != nil {
		return err
	}
	ts := now()
	res, err := s.db.ExecContext(ctx, "UPDATE "+s.table(jobTableName)+" SET fingerprint = "+s.ph(1)+", kind = "+s.ph(2)+
		", phase = "+s.ph(3)+", plan_path = "+s.ph(4)+", key_checks = "+s.ph(5)+", digest_key = "+s.ph(6)+", updated_at = "+s.ph(7)+
		" WHERE job_id = "+s.ph(8), j.Fingerprint, j.Kind, j.Phase, j.PlanPath, string(checks), j.DigestKey, ts, j.ID)
	if err != nil {
		return fmt.Errorf("save job %s: %w", j.ID, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO "+s.table(jobTableName)+
		" (job_id, fingerprint, kind, phase, plan_path, key_checks, digest_key, created_at, updated_at) VALUES ("+s.placeholders(1, 9)+")",
		j.ID, j.Fingerprint, j.Kind, j.Phase, j.PlanPath, string(checks), j.DigestKey, ts, ts)
	if err != nil {
		return fmt.Errorf("save job %s: %w", j.ID, err)
	}
	return nil
}

// columnState is a row of colcrypt_columns.
type columnState struct {
	Table      string
	Column     string
	JobID      string
	State      int
	Percent    int
	KeyName    string
	KeyVersion int
	Suite      string
	IVMode     string
	Versioned  bool
	ColumnIV   string // hex; "" when none
	SourceType string
	Temp       string
	IVColumn   string
	RowsTotal  int64
	RowsDone   int64
	// Target is what a rekey in progress (state 4) moves the column to;
	// nil otherwise.
	Target *rekeyTarget
}

// rekeyTarget is the key version, suite and IV mode a rekey writes.
type rekeyTarget struct {
	KeyName    string `json:"key_name"`
	KeyVersion int    `json:"key_version"`
	Suite      string `json:"suite"`
	IVMode     string `json:"iv_mode"`
	Versioned  bool   `json:"versioned"`
	ColumnIV   string `json:"column_iv,omitempty"`
	IVColumn   string `json:"iv_column,omitempty"`
}

const columnStateCols = "table_name, column_name, job_id, state, percent_complete, key_name, key_version, suite, iv_mode, versioned, column_iv, source_type, temp_column, iv_column, rows_total, rows_done, rekey_target"

func (s *store) columnsOnce(ctx context.Context) ([]*columnState, error) {
	ok, err := s.exists(ctx, stateTableName)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+columnStateCols+" FROM "+s.table(stateTableName)+" ORDER BY table_name, column_name")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stateTableName, err)
	}
	defer rows.Close()
	var out []*columnState
	for rows.Next() {
		var c columnState
		var versioned int
		var iv, ivCol, target sql.NullString
		if err := rows.Scan(&c.Table, &c.Column, &c.JobID, &c.State, &c.Percent, &c.KeyName, &c.KeyVersion, &c.Suite,
			&c.IVMode, &versioned, &iv, &c.SourceType, &c.Temp, &ivCol, &c.RowsTotal, &c.RowsDone, &target); err != nil {
			return nil, fmt.Errorf("read %s: %w", stateTableName, err)
		}
		if target.Valid && target.String != "" {
			c.Target = &rekeyTarget{}
			if err := json.Unmarshal([]byte(target.String), c.Target); err != nil {
				return nil, fmt.Errorf("read %s: rekey target of %s.%s: %w", stateTableName, c.Table, c.Column, err)
			}
		}
		c.Versioned = versioned != 0
		c.ColumnIV = iv.String
		c.IVColumn = ivCol.String
		out = append(out, &c)
	}
	return out, rows.Err()
}

func (s *store) putColumnOnce(ctx context.Context, c *columnState) error {
	versioned := 0
	if c.Versioned {
		versioned = 1
	}
	var target any
	if c.Target != nil {
		b, err := json.Marshal(c.Target)
		if err != nil {
			return err
		}
		target = string(b)
	}
	res, err := s.db.ExecContext(ctx, "UPDATE "+s.table(stateTableName)+" SET job_id = "+s.ph(1)+", state = "+s.ph(2)+
		", percent_complete = "+s.ph(3)+", key_name = "+s.ph(4)+", key_version = "+s.ph(5)+", suite = "+s.ph(6)+
		", iv_mode = "+s.ph(7)+", versioned = "+s.ph(8)+", column_iv = "+s.ph(9)+", source_type = "+s.ph(10)+
		", temp_column = "+s.ph(11)+", iv_column = "+s.ph(12)+", rows_total = "+s.ph(13)+", rows_done = "+s.ph(14)+
		", rekey_target = "+s.ph(15)+", updated_at = "+s.ph(16)+" WHERE table_name = "+s.ph(17)+" AND column_name = "+s.ph(18),
		c.JobID, c.State, c.Percent, c.KeyName, c.KeyVersion, c.Suite, c.IVMode, versioned, nullString(c.ColumnIV),
		c.SourceType, c.Temp, nullString(c.IVColumn), c.RowsTotal, c.RowsDone, target, now(), c.Table, c.Column)
	if err != nil {
		return fmt.Errorf("save state of %s.%s: %w", c.Table, c.Column, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO "+s.table(stateTableName)+" ("+columnStateCols+", updated_at) VALUES ("+
		s.placeholders(1, 18)+")", c.Table, c.Column, c.JobID, c.State, c.Percent, c.KeyName, c.KeyVersion, c.Suite,
		c.IVMode, versioned, nullString(c.ColumnIV), c.SourceType, c.Temp, nullString(c.IVColumn), c.RowsTotal, c.RowsDone, target, now())
	if err != nil {
		return fmt.Errorf("save state of %s.%s: %w", c.Table, c.Column, err)
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// recordDDL stores the definition of something the job will drop, once:
// running prepare again after a crash must not record it twice.
func (s *store) recordDDLOnce(ctx context.Context, jobID, table string, defs []ddlRecord) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+s.table(ddlTableName)+" WHERE job_id = "+s.ph(1)+
		" AND table_name = "+s.ph(2), jobID, table).Scan(&n); err != nil {
		return fmt.Errorf("read recorded DDL of %s: %w", table, err)
	}
	if n > 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for i, d := range defs {
		if err := s.insertRecord(ctx, tx, jobID, table, i+1, d); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// insertRecord writes one recorded definition, number seq of the table's.
func (s *store) insertRecord(ctx context.Context, tx *sql.Tx, jobID, table string, seq int, d ddlRecord) error {
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+s.table(ddlTableName)+" (job_id, table_name, seq, kind, name, definition) VALUES ("+
		s.placeholders(1, 6)+")", jobID, table, seq, d.Kind, d.Name, d.Definition); err != nil {
		return fmt.Errorf("record DDL of %s: %w", table, err)
	}
	return nil
}

func (s *store) addRecordOnce(ctx context.Context, jobID, table string, rec ddlRecord) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var n, last int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(CASE WHEN kind = "+s.ph(1)+" THEN 1 END), COALESCE(MAX(seq), 0) FROM "+s.table(ddlTableName)+
		" WHERE job_id = "+s.ph(2)+" AND table_name = "+s.ph(3), rec.Kind, jobID, table).Scan(&n, &last); err != nil {
		return fmt.Errorf("read recorded DDL of %s: %w", table, err)
	}
	if n > 0 {
		return nil
	}
	if err := s.insertRecord(ctx, tx, jobID, table, last+1, rec); err != nil {
		return err
	}
	return tx.Commit()
}

// ddlRecord is one recorded definition.
type ddlRecord struct {
	Kind       string
	Name       string
	Definition string
}

func (s *store) ddlOnce(ctx context.Context, jobID, table string) ([]ddlRecord, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT kind, name, definition FROM "+s.table(ddlTableName)+" WHERE job_id = "+s.ph(1)+
		" AND table_name = "+s.ph(2)+" ORDER BY seq", jobID, table)
	if err != nil {
		return nil, fmt.Errorf("read recorded DDL of %s: %w", table, err)
	}
	defer rows.Close()
	var out []ddlRecord
	for rows.Next() {
		var d ddlRecord
		if err := rows.Scan(&d.Kind, &d.Name, &d.Definition); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *store) clearDDLOnce(ctx context.Context, jobID string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM "+s.table(ddlTableName)+" WHERE job_id = "+s.ph(1), jobID)
	return err
}

// moveJob re-keys every record of a job to a new job id, in one
// transaction: a rekey that applies a changed plan (a new suite) makes the
// job the new plan's, so that apply, verify and revert find it by the plan.
func (s *store) moveJob(ctx context.Context, from, to, fingerprint string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, t := range []string{jobTableName, stateTableName, ddlTableName, chunkTableName, eventTableName} {
		if _, err := tx.ExecContext(ctx, "UPDATE "+s.table(t)+" SET job_id = "+s.ph(1)+" WHERE job_id = "+s.ph(2), to, from); err != nil {
			return fmt.Errorf("move job %s to %s: %w", from, to, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE "+s.table(jobTableName)+" SET fingerprint = "+s.ph(1)+" WHERE job_id = "+s.ph(2), fingerprint, to); err != nil {
		return err
	}
	return tx.Commit()
}

// chunkRecord is a finished chunk of one phase.
type chunkRecord struct {
	Lo, Hi string // encoded keys; Hi "" means to the end of the table
	Rows   int64
	Digest string
	// RowHashes holds valueHashLen bytes per value, row by row in key order.
	RowHashes []byte
}

func (s *store) chunksOnce(ctx context.Context, jobID, table, phase string) (map[string]chunkRecord, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT lo, hi, rows_done, digest, row_hashes FROM "+s.table(chunkTableName)+" WHERE job_id = "+s.ph(1)+
		" AND table_name = "+s.ph(2)+" AND phase = "+s.ph(3), jobID, table, phase)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]chunkRecord{}
	for rows.Next() {
		var c chunkRecord
		var hi sql.NullString
		if err := rows.Scan(&c.Lo, &hi, &c.Rows, &c.Digest, &c.RowHashes); err != nil {
			return nil, err
		}
		if c.Lo, err = s.openBound(c.Lo); err != nil {
			return nil, err
		}
		if c.Hi, err = s.openBound(hi.String); err != nil {
			return nil, err
		}
		out[c.Lo] = c
	}
	return out, rows.Err()
}

// checkpointSQL is the insert of a chunk checkpoint, run in the same
// transaction as the chunk's writes so that both happen or neither does.
func (s *store) checkpointSQL() string {
	return "INSERT INTO " + s.table(chunkTableName) + " (job_id, table_name, phase, lo_hash, lo, hi, rows_done, digest, row_hashes, done_at) VALUES (" +
		s.placeholders(1, 10) + ")"
}

// clearCheckpointSQL deletes one chunk's checkpoint, inside the chunk's
// transaction, before it is written again. It takes two hashes of the
// lower bound: boundHash's, and loHash's, under which an earlier version
// of colcrypt recorded every chunk.
func (s *store) clearCheckpointSQL() string {
	return "DELETE FROM " + s.table(chunkTableName) + " WHERE job_id = " + s.ph(1) + " AND table_name = " + s.ph(2) +
		" AND phase = " + s.ph(3) + " AND lo_hash IN (" + s.ph(4) + ", " + s.ph(5) + ")"
}

// loHash keys a chunk record: the encoded lower key can be long (text and
// composite keys), too long for an index key on SQL Server, so the primary
// key holds its hash and the text sits beside it.
func loHash(lo string) string {
	h := sha256.Sum256([]byte(lo))
	return hex.EncodeToString(h[:16])
}

func (s *store) clearChunksOnce(ctx context.Context, jobID, table, phase string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM "+s.table(chunkTableName)+" WHERE job_id = "+s.ph(1)+
		" AND table_name = "+s.ph(2)+" AND phase = "+s.ph(3), jobID, table, phase)
	return err
}

// eventAttempts bounds the retries of an event append that lost a race
// for its sequence number to another process (a verify run from another
// terminal while apply runs).
const eventAttempts = 5

// event appends to the event log. Details never hold keys or values. Two
// processes may pick the same next sequence number; the loser picks again.
func (s *store) event(ctx context.Context, jobID, name, detail string) error {
	if len(detail) > maxEventDetail {
		detail = detail[:maxEventDetail]
	}
	var err error
	for attempt := 0; attempt < eventAttempts; attempt++ {
		var seq int64
		if err = s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM "+s.table(eventTableName)+" WHERE job_id = "+s.ph(1), jobID).
			Scan(&seq); err != nil {
			break
		}
		if _, err = s.db.ExecContext(ctx, "INSERT INTO "+s.table(eventTableName)+" (job_id, seq, at, event, detail) VALUES ("+
			s.placeholders(1, 5)+")", jobID, seq+1, now(), name, detail); err == nil {
			return nil
		}
	}
	return fmt.Errorf("append event %s: %w", name, err)
}

// redactBoundaries replaces the recorded chunk boundaries of a phase by
// their hashes. When the paging key is itself encrypted, the boundaries
// are plaintext key values, which must not outlive the plaintext column.
func (s *store) redactBoundariesOnce(ctx context.Context, jobID, table, phase string) error {
	_, err := s.db.ExecContext(ctx, "UPDATE "+s.table(chunkTableName)+" SET lo = lo_hash, hi = NULL WHERE job_id = "+s.ph(1)+
		" AND table_name = "+s.ph(2)+" AND phase = "+s.ph(3), jobID, table, phase)
	if err != nil {
		return fmt.Errorf("redact the chunk boundaries of %s: %w", table, err)
	}
	return nil
}

// Event is one entry of the job's event log.
type Event struct {
	At     string `json:"at"`
	Event  string `json:"event"`
	Detail string `json:"detail,omitempty"`
}

func (s *store) events(ctx context.Context, jobID string, last int) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT at, event, detail FROM "+s.table(eventTableName)+" WHERE job_id = "+s.ph(1)+
		" ORDER BY seq DESC", jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() && len(out) < last {
		var e Event
		var d sql.NullString
		if err := rows.Scan(&e.At, &e.Event, &d); err != nil {
			return nil, err
		}
		e.Detail = d.String
		out = append(out, e)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rows.Err()
}
