// Package migrate runs colcrypt's jobs: encrypting the planned columns
// (prepare → copy → verify → cut-over → purge), verifying at any stage,
// reverting, and reporting per-column state. All job state lives in the
// target database in tables prefixed colcrypt_, every chunk is idempotent
// and checkpointed in the transaction that writes it, so a job killed at
// any instant resumes with nothing lost and nothing encrypted twice.
package migrate

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/planner"
	"github.com/colcrypt/colcrypt/schema"
)

// Phases a job can be stopped after with Options.Until.
var Phases = []string{phasePrepared, phaseCopied, phaseVerified, phaseCutover}

// Options tune one run of a job. Zero values take the plan's settings.
type Options struct {
	Workers   int
	BatchRows int
	// ChunkBytes ends a chunk the copy reads ahead once its values hold
	// about this many bytes, whatever its row count (0: 2 MiB), so the
	// chunks in memory stay bounded on tables of wide rows.
	ChunkBytes    int64
	Until         string // prepare | copy | verify | cutover; "" runs to the end
	NoBackupCheck bool   // waive cut-over's keystore-backup check (logged)
	Log           *slog.Logger
	// Progress receives progress output (stderr); Terminal selects a
	// redrawn bar over periodic log lines.
	Progress io.Writer
	Terminal bool
	// Online runs apply online (as the plan's job.online does): other
	// sessions may update and insert rows while the job runs.
	Online bool
	// InPlace adds the ciphertext columns to the table even where the
	// engine could build its replacement during the copy instead
	// (dialect.Rebuilder); it decides only when the job is prepared.
	InPlace bool
	// PurgeWait bounds how long a purge waits for transactions that can
	// still read the row versions it removes (0: five minutes).
	PurgeWait time.Duration
}

// Engine runs the jobs of one plan against one database.
type Engine struct {
	plan *planner.Plan
	d    dialect.Dialect
	m    dialect.Mover
	db   *sql.DB
	ks   *keystore.Keystore
	st   *store
	opt  Options
	log  *slog.Logger
	// writeMu serializes chunk writes on single-writer engines (nil otherwise).
	writeMu *sync.Mutex
	// digestKey keys the plaintext digests of the job (useJob).
	digestKey []byte
	// alreadyEncrypted lists columns (stateKey) another job encrypted; the
	// planner blocks them.
	alreadyEncrypted []string
}

// New prepares an engine. ks may be nil for commands that need no keys
// (status).
func New(p *planner.Plan, d dialect.Dialect, db *sql.DB, ks *keystore.Keystore, opt Options) (*Engine, error) {
	m, ok := d.(dialect.Mover)
	if !ok {
		return nil, exitcode.Input(fmt.Errorf("engine %s can be planned but not migrated yet", d.Name()))
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Workers <= 0 {
		opt.Workers = p.Job.Workers
	}
	if opt.BatchRows <= 0 {
		opt.BatchRows = p.Job.BatchRows
	}
	if opt.ChunkBytes <= 0 {
		opt.ChunkBytes = defaultChunkBytes
	}
	if opt.Until != "" && !contains(Phases, opt.Until) {
		return nil, exitcode.Input(fmt.Errorf("--until %q: expected one of %s", opt.Until, strings.Join(Phases, ", ")))
	}
	// Every chunk's transaction takes a connection from the pool, and the
	// walker, the workers and the job's own bookkeeping hold some at once.
	// database/sql keeps only two idle by default and closes the others:
	// each one opened again costs the server a new process and the
	// statements their preparation and planning again.
	db.SetMaxIdleConns(opt.Workers + idleConnsBesideWorkers)
	if cc, ok := d.(dialect.CostlyConnections); ok && cc.CostlyConnections() {
		go warmPool(db, opt.Workers+1)
	}
	e := &Engine{plan: p, d: d, m: m, db: db, ks: ks, st: &store{db: db, d: d, m: m, log: opt.Log}, opt: opt, log: opt.Log}
	if sw, ok := d.(dialect.SingleWriter); ok && sw.SingleWriter() {
		e.writeMu = &sync.Mutex{}
	}
	return e, nil
}

// warmPool opens n connections of the pool at once and leaves them idle,
// for the workers and the walker of the first phase that copies: it runs
// while the job reads the catalog and checks the plan, instead of the
// first chunks each waiting for a new server process (50 ms for the first
// chunk on PostgreSQL here). A connection that fails is left to the job,
// which reports the error when it needs one.
func warmPool(db *sql.DB, n int) {
	if limit := db.Stats().MaxOpenConnections; limit > 0 {
		n = min(n, limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmPoolTimeout)
	defer cancel()
	conns := make(chan *sql.Conn, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if c, err := db.Conn(ctx); err == nil {
				conns <- c
			}
		})
	}
	wg.Wait()
	close(conns)
	for c := range conns {
		c.Close()
	}
}

// warmPoolTimeout bounds warmPool: a server slow to accept connections
// should not keep them from the job for long.
const warmPoolTimeout = 10 * time.Second

// idleConnsBesideWorkers are the connections kept idle for the walker and
// the job's bookkeeping, beyond one per worker.
const idleConnsBesideWorkers = 3

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jobID identifies the plan's job: the same plan always maps to the same
// job, and a changed plan to a different one.
func (e *Engine) jobID() string { return jobIDOf(e.plan) }

// jobIDOf names the job of plan p in colcrypt's tables.
func jobIDOf(p *planner.Plan) string { return p.Fingerprint()[:20] }

// tableJob is one planned table with everything the phases need.
type tableJob struct {
	name  string // as the plan writes it
	tn    schema.TableName
	model *schema.Table // as read before the job changed anything
	// key are the quoted expressions that order and identify rows; keyCols
	// the column names behind them.
	key      []string
	keyCols  []string
	keyTypes []string // declared types of keyCols, "" for a row id
	rowID    string   // added row-id column, "" when none
	keyIsEnc bool     // a key column is itself encrypted
	// fingerprint stands for the value of an encrypted key column in
	// messages (Engine.keyFingerprint).
	fingerprint func(v any) string
	cols        []*colJob
	// rows is the table's exact row count, for progress: from the blocker
	// scan when it read the table, or from the first phase that walked it
	// (walkedRows); 0 when unknown (progressRows then starts from the
	// catalog's estimate, or counts).
	rows int64
	// online: the table has (or had, before cut-over) change capture.
	online bool
	// rebuild: the copy builds the table's replacement (dialect.Rebuilder)
	// instead of filling ciphertext columns added to it.
	rebuild bool
	// revertRebuild: the revert builds a replacement too
	// (dialect.RevertRebuilder), as recorded when it began.
	revertRebuild bool
	// checked are the chunks of a rebuilt table this run verified where it
	// wrote them.
	checked *checkedChunks
}

// colJob is one planned column.
type colJob struct {
	plan   planner.ColumnPlan
	col    *schema.Column
	codec  dialect.Codec
	state  *columnState
	params cipher.Params
	ctType string
	ivType string
}

// cipherKeyTypes gives the key types of a table whose encrypted key
// columns hold ciphertexts (after cut-over: revert, rekey).
func cipherKeyTypes(t *tableJob) []string {
	out := append([]string{}, t.keyTypes...)
	for i, k := range t.keyCols {
		for _, c := range t.cols {
			if strings.EqualFold(c.col.Name, k) {
				out[i] = c.ctType
			}
		}
	}
	return out
}

// tables builds the table jobs from recorded models (on resume) or from the
// live catalog (first run), in foreign-key group order.
func (e *Engine) tables(ctx context.Context, jobID string, states map[string]*columnState) ([]*tableJob, error) {
	var out []*tableJob
	for _, tp := range e.plan.Tables {
		tn := e.tableName(tp.Name)
		recs, err := e.records(ctx, jobID, tn.String())
		if err != nil {
			return nil, err
		}
		model, err := recs.model()
		if err != nil {
			return nil, err
		}
		var keyCols []string // nil: the engine's row id
		recordedKey := model != nil
		if recordedKey {
			if keyCols, err = recs.key(model); err != nil {
				return nil, err
			}
		}
		if model == nil {
			if model, err = e.d.ReadTable(ctx, e.db, tn); errors.Is(err, dialect.ErrTableNotFound) {
				return nil, exitcode.Input(e.plan.Errorf(tp.Line, tp.Col, "table %s does not exist in the database", tp.Name))
			} else if err != nil {
				return nil, fmt.Errorf("read table %s: %w", tp.Name, err)
			}
		}
		tj := &tableJob{name: tp.Name, tn: tn, model: model, online: recs.has(captureRecord), rebuild: recs.has(rebuildRecord),
			revertRebuild: recs.revertsByReplacement(),
			checked:       &checkedChunks{}, fingerprint: e.keyFingerprint}
		for _, cp := range tp.Columns {
			col := model.Column(cp.Name)
			if col == nil {
				return nil, exitcode.Input(fmt.Errorf("%s:%d:%d: column %s not found in table %s", e.plan.Path, cp.Line, cp.Col, cp.Name, tp.Name))
			}
			codec, err := e.d.Codec(col)
			if err != nil {
				return nil, exitcode.Input(fmt.Errorf("column %s.%s: %w", tp.Name, col.Name, err))
			}
			cj := &colJob{plan: cp, col: col, codec: codec,
				params: cipher.Params{Suite: cp.Suite, IV: cp.IV, Versioned: cp.Versioned}}
			maxCT := int64(0)
			if mp := codec.MaxPlainBytes(); mp > 0 {
				maxCT = int64(cipher.CiphertextLen(cp.Suite, cp.Versioned, int(mp)))
			}
			cj.ctType = e.d.CiphertextType(maxCT)
			if n := cipher.IVLen(cp.Suite, cp.IV); n > 0 {
				cj.ivType = e.d.CiphertextType(int64(n))
			}
			cj.state = states[stateKey(tn.String(), col.Name)]
			tj.cols = append(tj.cols, cj)
		}
		if !recordedKey {
			keyCols = model.UsableKey()
		}
		tj.keyCols = keyCols
		if tj.keyCols == nil {
			expr, mustAdd := e.m.RowID()
			if mustAdd {
				tj.rowID = rowIDColumn
				tj.key = []string{e.d.Quote(rowIDColumn)}
				tj.keyCols = []string{rowIDColumn}
				tj.keyTypes = []string{""}
			} else {
				tj.key = []string{expr}
				tj.keyCols = []string{expr}
				tj.keyTypes = []string{""}
			}
		} else {
			for _, k := range tj.keyCols {
				tj.key = append(tj.key, e.d.Quote(k))
				tj.keyTypes = append(tj.keyTypes, model.Column(k).Declared)
				tj.keyIsEnc = tj.keyIsEnc || tj.encrypts(k)
			}
		}
		out = append(out, tj)
	}
	return orderByGroups(out), nil
}

func (e *Engine) tableName(s string) schema.TableName { return dialect.ResolveTableName(e.d, s) }

// columnKey names a column of table (as a plan or a job record writes it)
// as names compare across plans (dialect.TableKey).
func (e *Engine) columnKey(table, column string) string {
	return stateKey(dialect.TableKey(e.d, schema.ParseTableName(table)), column)
}

func stateKey(table, column string) string {
	return strings.ToLower(table) + "\x00" + strings.ToLower(column)
}

// orderByGroups orders tables so that every foreign-key-connected group is
// contiguous, groups and members in plan order.
func orderByGroups(tables []*tableJob) []*tableJob {
	groups := groupTables(tables)
	var out []*tableJob
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// groupTables splits planned tables into groups connected by foreign keys
// between them: cut-over drops the group's foreign keys before, and
// rebuilds them after, every table of a group is swapped.
func groupTables(tables []*tableJob) [][]*tableJob {
	linked := func(i, j int) bool {
		t := tables[i].model
		for _, fk := range append(append([]*schema.ForeignKey{}, t.ForeignKeys...), t.ReferencedBy...) {
			if name := tables[j].model.Name; schema.SameTable(fk.Table, name) || schema.SameTable(fk.RefTable, name) {
				return true
			}
		}
		return false
	}
	var out [][]*tableJob
	for _, comp := range schema.Components(len(tables), linked) {
		var group []*tableJob
		for _, i := range comp {
			group = append(group, tables[i])
		}
		out = append(out, group)
	}
	return out
}

// The colcrypt_ddl kinds a job records for each table at prepare.
const (
	// modelRecord holds the table's model as read before the job changed
	// anything (JSON).
	modelRecord = "model"
	// keyRecord holds the key columns the job pages the table by (JSON;
	// null for the engine's row id), so that a resumed job never pages by
	// another key than its checkpoints.
	keyRecord = "key"
)

// knownRecords are the colcrypt_ddl kinds this colcrypt writes and reads.
var knownRecords = map[string]bool{modelRecord: true, keyRecord: true, rebuildRecord: true, captureRecord: true, revertWayRecord: true,
	journalRecord: true}

// tableRecords are what a job recorded for one table, in order.
type tableRecords []ddlRecord

// records reads what the job recorded for the table (nothing before its
// prepare). A record this colcrypt does not know changes how the job must
// go on, and resuming without it could do the wrong thing: it is refused.
func (e *Engine) records(ctx context.Context, jobID, table string) (tableRecords, error) {
	ok, err := e.st.exists(ctx, ddlTableName)
	if err != nil || !ok {
		return nil, err
	}
	recs, err := e.st.ddl(ctx, jobID, table)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if !knownRecords[r.Kind] {
			return nil, exitcode.Input(fmt.Errorf("job %s recorded %q for %s, which this colcrypt does not know: "+
				"it was prepared by a newer colcrypt; resume or revert it with that version", jobID, r.Kind, table))
		}
	}
	return recs, nil
}

// has reports whether a definition of that kind was recorded.
func (rs tableRecords) has(kind string) bool {
	_, ok := rs.definition(kind)
	return ok
}

// definition gives the first definition of that kind recorded.
func (rs tableRecords) definition(kind string) (string, bool) {
	for _, r := range rs {
		if r.Kind == kind {
			return r.Definition, true
		}
	}
	return "", false
}

// model returns the recorded table model, or nil.
func (rs tableRecords) model() (*schema.Table, error) {
	for _, r := range rs {
		if r.Kind == modelRecord {
			var t schema.Table
			if err := json.Unmarshal([]byte(r.Definition), &t); err != nil {
				return nil, fmt.Errorf("recorded model of %s: %w", r.Name, err)
			}
			return &t, nil
		}
	}
	return nil, nil
}

// key gives the recorded key columns of the recorded model. A job
// prepared by an older colcrypt has no key record: it paged by the primary
// key whatever its nullability (schema.Table.UsableKey now skips a key that
// can hold NULL), and resumes that way.
func (rs tableRecords) key(model *schema.Table) ([]string, error) {
	for _, r := range rs {
		if r.Kind == keyRecord {
			var cols []string
			if err := json.Unmarshal([]byte(r.Definition), &cols); err != nil {
				return nil, fmt.Errorf("recorded key of %s: %w", r.Name, err)
			}
			return cols, nil
		}
	}
	if model.PrimaryKey != nil {
		return model.PrimaryKey.Columns, nil
	}
	return model.UsableKey(), nil
}

// loadStates reads colcrypt_columns keyed by table and column.
func (e *Engine) loadStates(ctx context.Context) (map[string]*columnState, error) {
	list, err := e.st.columns(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*columnState{}
	for _, c := range list {
		out[stateKey(c.Table, c.Column)] = c
	}
	return out, nil
}

// keyChecks gives the key check values of the keys the columns use, and
// fails when a key is missing or retired.
func (e *Engine) keyChecks(tables []*tableJob) (map[string]string, error) {
	out := map[string]string{}
	for _, t := range tables {
		for _, c := range t.cols {
			name, version := c.plan.Key, 0
			if c.state != nil {
				name, version = c.state.KeyName, c.state.KeyVersion
			}
			if version == 0 {
				info, err := e.ks.Latest(name)
				if err != nil {
					return nil, exitcode.Input(fmt.Errorf("key %q for %s.%s: %w (add it with: colcrypt keys add %s %s)",
						name, t.name, c.col.Name, err, e.plan.Keystore, name))
				}
				version = int(info.Version)
			}
			_, info, err := e.ks.Key(name, uint16(version))
			if err != nil {
				return nil, exitcode.Input(fmt.Errorf("key %s version %d for %s.%s: %w", name, version, t.name, c.col.Name, err))
			}
			out[name+"/"+strconv.Itoa(version)] = info.CheckValue
		}
	}
	return out, nil
}

// columnCipher builds the cipher of a column from its recorded state. Every
// version of the column's key is loaded, so values under any of them
// decrypt; encrypt refuses a retired encryption version.
func (e *Engine) columnCipher(c *colJob, encrypt bool) (*cipher.Column, error) {
	st := c.state
	p, err := recordedParams(st)
	if err != nil {
		return nil, fmt.Errorf("recorded state of %s.%s: %w", st.Table, st.Column, err)
	}
	if encrypt {
		if _, _, err := e.ks.EncryptionKey(st.KeyName, uint16(st.KeyVersion)); err != nil {
			return nil, exitcode.Input(fmt.Errorf("encrypt %s.%s: %w", st.Table, st.Column, err))
		}
	}
	keys := map[uint16][]byte{}
	for _, info := range e.ks.List() {
		if info.Name != st.KeyName {
			continue
		}
		k, _, err := e.ks.Key(info.Name, info.Version)
		if err != nil {
			return nil, err
		}
		keys[info.Version] = k[:p.Suite.KeySize()]
	}
	if _, ok := keys[uint16(st.KeyVersion)]; !ok {
		return nil, exitcode.Input(fmt.Errorf("key %s version %d is not in keystore %s", st.KeyName, st.KeyVersion, e.plan.Keystore))
	}
	var iv []byte
	if st.ColumnIV != "" {
		var err error
		if iv, err = hex.DecodeString(st.ColumnIV); err != nil {
			return nil, fmt.Errorf("column IV of %s.%s: %w", st.Table, st.Column, err)
		}
	}
	return cipher.NewColumn(p, keys, uint16(st.KeyVersion), iv)
}

// recordedParams are the cipher parameters a column's values were written
// with, as recorded: the plan may since have moved on (a rekey to another
// suite reads the old values with these).
func recordedParams(st *columnState) (cipher.Params, error) {
	suite, err := cipher.ParseSuite(st.Suite)
	if err != nil {
		return cipher.Params{}, err
	}
	iv, err := cipher.ParseIVMode(st.IVMode)
	if err != nil {
		return cipher.Params{}, err
	}
	return cipher.Params{Suite: suite, IV: iv, Versioned: st.Versioned}, nil
}

// note appends to the job's event log. The log is a record for people, not
// state the job depends on: a failure to write it is logged, and never
// fails a phase that did its work.
func (e *Engine) note(ctx context.Context, jobID, name, detail string) {
	if err := e.st.event(context.WithoutCancel(ctx), jobID, name, detail); err != nil {
		e.log.Warn("could not append to the event log", "event", name, "err", err)
	}
}

// useJob loads the job's digest key from the keystore. Every command that
// reads or writes digests calls it once the job is known.
func (e *Engine) useJob(j *job) error {
	if e.ks == nil {
		return nil
	}
	name, version, ok := strings.Cut(j.DigestKey, "/")
	v, err := strconv.Atoi(version)
	if !ok || err != nil {
		return fmt.Errorf("job %s records no usable digest key (%q)", j.ID, j.DigestKey)
	}
	dek, _, err := e.ks.Key(name, uint16(v))
	if err != nil {
		return exitcode.Input(fmt.Errorf("key %s, which keys the job's digests, is not in keystore %s: %w", j.DigestKey, e.plan.Keystore, err))
	}
	e.digestKey = digestKeyFor(dek)
	if e.st.bounds, err = newBoundKeys(e.digestKey); err != nil {
		return err
	}
	return nil
}

// ErrVerify is wrapped by verify failures (exit 1).
var ErrVerify = errors.New("verification failed")
