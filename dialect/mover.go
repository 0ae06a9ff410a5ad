package dialect

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/colcrypt/colcrypt/schema"
)

// Mover is the write side of an engine, used by the migration engine: the
// types of colcrypt's own tables, paging, the bulk write path, and the
// column swap at cut-over and its reverse. An engine that implements
// Dialect but not Mover can be planned but not migrated.
type Mover interface {
	// StateTypes are the column types for colcrypt's own job tables.
	StateTypes() StateTypes
	// Placeholder is the n-th (1-based) query parameter: "?", "$1", "@p1".
	Placeholder(n int) string
	// FirstRows turns an ordered SELECT into one returning at most n rows
	// after skipping offset rows.
	FirstRows(query string, offset, n int64) string
	// RowID is the expression that identifies a row of a table without a
	// usable key, and whether the engine must add a colcrypt_row_id column
	// for it (SQLite has rowid; the others add an identity column).
	RowID() (expr string, mustAdd bool)

	// AddColumn adds a NULLable column unless it already exists, so that
	// prepare can be run again after a crash.
	AddColumn(ctx context.Context, db *sql.DB, table schema.TableName, column, typ string) error
	// AddRowID adds colcrypt_row_id, filled for every existing row, unless
	// it already exists.
	AddRowID(ctx context.Context, db *sql.DB, table schema.TableName) error
	// DropColumn drops a column if it exists.
	DropColumn(ctx context.Context, db *sql.DB, table schema.TableName, column string) error

	// BulkUpdate sets columns Set of the rows identified by Key, one row of
	// values per entry of Rows (key values first, then the Set values, then
	// the Guard value when there is one), in tx, through the engine's
	// fastest path. tx is a *sql.Tx, or at cut-over whatever the engine's
	// Swap runs its transaction on.
	BulkUpdate(ctx context.Context, tx Querier, u Update) error

	// Swap performs the cut-over of one foreign-key group in short
	// transactions: foreign keys touching the group dropped first, then each
	// table's plaintext column dropped (or renamed and set to NULL) and its
	// ciphertext column renamed to the original name, the recorded keys and
	// indexes rebuilt on it, and the foreign keys recreated last.
	Swap(ctx context.Context, db *sql.DB, group []TableSwap) error
	// Unswap is Swap's reverse for revert: the restored plaintext column
	// takes the original name, type, nullability, default, checks, keys,
	// indexes and foreign keys exactly as recorded.
	Unswap(ctx context.Context, db *sql.DB, group []TableSwap) error
	// Purge rebuilds the table so that no plaintext stays readable in free
	// pages (VACUUM, VACUUM FULL, ALTER TABLE ... REBUILD).
	Purge(ctx context.Context, db *sql.DB, table schema.TableName) error
}

// VersionKeeper is a Mover whose Purge keeps the old row versions that an
// open transaction can still read: PostgreSQL's VACUUM FULL copies every
// row version a snapshot older than its own may see, so a long report, an
// idle session left in a transaction or a standby's feedback would keep
// the old ciphertexts a rekey's purge is there to remove. It writes a
// dropped column as NULL in every version it keeps, so the plaintext
// columns a cut-over dropped go regardless. Before a rekey's purge, the
// engine waits until nothing is listed.
type VersionKeeper interface {
	// VersionHolders returns a function that lists, each time it is
	// called, what can still read row versions replaced before
	// VersionHolders was called (sessions, prepared transactions,
	// replication slots), each described with how to end it.
	VersionHolders(ctx context.Context, db *sql.DB) (func(context.Context) ([]string, error), error)
}

// JournalSwitcher is implemented by engines whose job changes a setting of
// the database file for its duration (SQLite's write-ahead log, which lets
// the copy's readers read beside its writer). Before a command of the job
// switches it, the engine records the mode the file had; it gives it back
// when the command is done. A dry run, or a command refused by its
// checks, changes nothing.
type JournalSwitcher interface {
	// JournalMode reads the database's mode.
	JournalMode(ctx context.Context, db *sql.DB) (string, error)
	// JobJournalMode is the mode SwitchJournal puts the database in.
	JobJournalMode() string
	// SwitchJournal puts the database in the mode a job needs.
	SwitchJournal(ctx context.Context, db *sql.DB) error
	// RestoreJournal gives the database back a mode JournalMode read,
	// with the pool's other connections closed (SQLite leaves the
	// write-ahead log only for a connection alone on the file).
	RestoreJournal(ctx context.Context, db *sql.DB, mode string) error
}

// PlaintextKeptSuffix names the column plaintext: null keeps: the
// original name and this suffix.
const PlaintextKeptSuffix = "_plaintext"

// StateTypes are portable column types for colcrypt's own tables.
type StateTypes struct {
	Text   string // unbounded text
	Key    string // short indexed text (names)
	Blob   string
	BigInt string
}

// Update is one bulk write.
type Update struct {
	Table schema.TableName
	Key   []string // key column names (or the row-id expression's column)
	// KeyTypes are the declared types of the key columns, "" for the
	// engine's own row-id column, for engines that stage keys in typed
	// arrays or temporary tables.
	KeyTypes []string
	Set      []string // columns written
	// SetExpr optionally wraps the value written into Set[i] (a Codec's
	// RestoreExpr on revert); nil or "" means the value as bound.
	SetExpr []func(expr string) string
	Rows    [][]any
	// Guard, when set, names a column compared with the last value of each
	// row: the row is written only where the column still holds that value
	// (compare-and-set), and left alone otherwise. An online job guards on
	// colcrypt_version so that a row another writer changed after it was
	// read never gets the ciphertext of its old value.
	Guard string
	// Lo and Hi, when set, are the key values bounding the rows: every row
	// has Lo < key <= Hi (nil: unbounded). An engine may add the range to
	// its join so the key index is searched only there; it must not rely
	// on it for correctness.
	Lo, Hi []any
	// Carry, when set, holds for each row of Rows the values of the
	// expressions a Carrier's CarryExprs gave, read with the row: a
	// RebuildChunk then writes whole rows from them instead of reading the
	// table again.
	Carry [][]any
}

// Querier is what both a *sql.Tx and a *sql.Conn offer: the chunk writes
// run in a *sql.Tx, while a cut-over's catch-up runs in whatever the
// engine's Swap holds its transaction on (SQLite's is a *sql.Conn inside
// BEGIN IMMEDIATE).
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// TableSwap describes the cut-over (or its reverse) of one table.
type TableSwap struct {
	// Table is the table as read before the job changed anything.
	Table   *schema.Table
	Columns []SwapColumn
	// RowID is the row-id column to drop at cut-over, "" when none.
	RowID string
	// KeepPlaintext keeps the plaintext column, renamed to
	// <column>_plaintext and set to NULL (plan option plaintext: null).
	KeepPlaintext bool
	// DropChecks and DropDefaults are the constraints the plan allowed to
	// drop; they are not recreated on the ciphertext column but are
	// restored by Unswap.
	DropChecks   bool
	DropDefaults bool
	// Online says the table has the change capture of an online job
	// (ChangeCapture): Swap drops its trigger and version columns in the
	// same transaction, after the swap.
	Online bool
	// Rebuilt says the job built the table's replacement during the copy
	// (Rebuilder): Swap drops the table and renames the rebuilt one in its
	// place instead of copying every row again. On Unswap it says the
	// revert built it (RevertRebuilder).
	Rebuilt bool
	// Reverse says the swap is a revert's: the table holds ciphertext, and
	// a replacement built for it (Rebuilt) has the table's recorded
	// definition, with no IV columns.
	Reverse bool
	// CatchUp, when set, runs in Swap's transaction once the group's tables
	// are locked against every other writer and before any plaintext is
	// dropped: the migration engine re-encrypts there the rows other
	// writers changed since they were copied.
	CatchUp func(ctx context.Context, q Querier) error
}

// SwapColumn is one encrypted column of a TableSwap.
type SwapColumn struct {
	Name      string // the original column name
	Temp      string // the added column: ciphertext on Swap, restored plaintext on Unswap
	TempType  string // its type: the ciphertext type on Swap
	IV        string // companion IV column, "" when none (kept on Swap, dropped by Unswap)
	Plaintext string // on Swap with KeepPlaintext: the name the plaintext column gets
}

// Rebuilder is implemented by engines for which writing a new table costs
// less than changing every row of the old one: SQLite, whose cut-over must
// rebuild the table anyway (it cannot change a column's type in place), and
// PostgreSQL, where an UPDATE writes a new version of the row and of its
// index entries. An offline job then builds the rebuilt table during the
// copy, chunk by chunk, and the cut-over only drops the old table and
// renames the new one: every row is written once instead of twice, and the
// cut-over's transaction is short.
type Rebuilder interface {
	// RebuildName names the table built beside table.
	RebuildName(table schema.TableName) schema.TableName
	// PrepareRebuild creates the rebuilt table of ts (the swapped
	// definition, without its indexes and triggers) unless it exists, and
	// makes ts.Table read-only until the cut-over: triggers refuse every
	// write with the message refusal, since a row changed after its chunk
	// was copied would be lost by the swap.
	PrepareRebuild(ctx context.Context, db *sql.DB, ts TableSwap, refusal string) error
	// DropRebuild drops whatever exists of what PrepareRebuild created.
	DropRebuild(ctx context.Context, db *sql.DB, table schema.TableName) error
	// FinishRebuild runs once the copy has filled the rebuilt table and
	// before verify reads it: what was cheaper to build after the rows than
	// during the copy (PostgreSQL: the table's indexes other than the
	// key's, and statistics). It does nothing already done.
	FinishRebuild(ctx context.Context, db *sql.DB, table schema.TableName) error
	// RebuildChunk copies, in tx, every row of the table with
	// Lo < key <= Hi (nil: unbounded) into the rebuilt table: the columns
	// named in Set (the rebuilt table's names: encrypted columns and their
	// IV columns) take the values of u.Rows, every other column its value
	// as it is. A row of the range missing from u.Rows is an error, and
	// rows of the range already copied by an earlier attempt are replaced.
	RebuildChunk(ctx context.Context, tx Querier, ts TableSwap, u Update) error
}

// RebuiltColumns lists the columns a RebuildChunk of ts writes, in the
// rebuilt table's order: every stored column of the table (computed ones
// the rebuilt table computes itself), then the IV columns, which a
// revert's replacement does not have (ts.Reverse). from[i] is the
// index in set of the value column i takes, or -1 where it keeps the
// table's value. key gives the form in which the engine compares column
// names. Every IV column must be written, and every written column must be
// one of the table's.
func RebuiltColumns(ts TableSwap, set []string, key func(string) string) (cols []string, from []int, err error) {
	at := map[string]int{}
	for i, c := range set {
		at[key(c)] = i
	}
	used := 0
	add := func(col string) bool {
		i, ok := at[key(col)]
		if !ok {
			i = -1
		} else {
			used++
		}
		cols, from = append(cols, col), append(from, i)
		return ok
	}
	for _, col := range ts.Table.Columns {
		if !col.Computed {
			add(col.Name)
		}
	}
	for _, sc := range ts.Columns {
		if sc.IV != "" && !ts.Reverse && !add(sc.IV) {
			return nil, nil, fmt.Errorf("no values for IV column %s", sc.IV)
		}
	}
	if used != len(set) {
		return nil, nil, fmt.Errorf("%d of the %d columns written are not in the table", len(set)-used, len(set))
	}
	return cols, from, nil
}

// RevertRebuilder is a Rebuilder whose revert builds the table's
// replacement too, for a table the job encrypted through one: the restored
// rows go into a new table of the recorded definition instead of a new
// version of every row in place (which on PostgreSQL leaves the table at
// twice its size). PrepareRebuild, RebuildChunk (with Update.SetExpr,
// without Update.Carry), FinishRebuild and Unswap then take a TableSwap
// with Reverse and Rebuilt set.
type RevertRebuilder interface {
	Rebuilder
	// RebuildsRevert marks the engine; it does nothing.
	RebuildsRevert()
}

// WriteGuard is implemented by engines that can refuse, while an offline
// job changes a table in place, the writes the job would lose: a value of
// a planned column written after its chunk was copied (or, on revert,
// decrypted) would be dropped at the cut-over, and a row inserted then
// would have none. Other columns, and deletes, stay writable. The
// engine's Swap and Unswap drop the guard in their transaction.
type WriteGuard interface {
	// GuardWrites makes the table refuse, with the refusal message, every
	// INSERT and every UPDATE that sets one of columns, unless it does
	// already.
	GuardWrites(ctx context.Context, db *sql.DB, table schema.TableName, columns []string, refusal string) error
	// DropWriteGuard lifts the guard, if there is one.
	DropWriteGuard(ctx context.Context, db *sql.DB, table schema.TableName) error
}

// GuardPrefix begins the names of the objects a WriteGuard creates; the
// catalog readers leave them out of a table's triggers.
const GuardPrefix = "colcrypt_guard_"

// Carrier is a Rebuilder that can write a chunk's rows whole into the
// rebuilt table from values read with the chunk (Update.Carry), in one
// bulk load, instead of joining the table to the chunk's values on the
// server (PostgreSQL: COPY in binary, which reads the table once instead
// of twice).
type Carrier interface {
	// CarryExprs gives the select expressions whose values, read with
	// each row, RebuildChunk writes back as the row's columns that keep
	// the table's value (those of RebuiltColumns(ts, set) not in set). It
	// gives nil when some column cannot be carried; the chunks then join
	// on the server.
	CarryExprs(ctx context.Context, db *sql.DB, ts TableSwap, set []string) ([]string, error)
}

// RawQuerier is a Querier on one connection that also reaches the
// driver's own connection, for a bulk path database/sql does not offer
// (PostgreSQL's COPY). f runs with the connection the transaction holds.
type RawQuerier interface {
	Querier
	Raw(f func(driverConn any) error) error
}

// SingleWriter is implemented by engines that allow one writing transaction
// at a time (SQLite). The migration engine then serializes chunk writes in
// the process, so workers queue on a mutex instead of sleeping in the
// database's busy handler, while encryption still runs in parallel.
type SingleWriter interface {
	SingleWriter() bool
}

// CostlyConnections is implemented by engines whose every new connection
// costs the server a process or a login (PostgreSQL, SQL Server): the
// migration engine then opens the connections its workers will take while
// the job starts. Not SQLite: a connection there is an open file, and each
// keeps its own page cache, so connections opened early only add memory
// (10 MB of peak RSS on 4M rows).
type CostlyConnections interface {
	CostlyConnections() bool
}

// Slicer is implemented by engines that can cut bytes out of a binary
// value in SQL, so status can count the values under each key version from
// the versioned headers without reading the ciphertexts into the client.
type Slicer interface {
	// Substr gives the SQL for n bytes of the binary expression starting at
	// the 1-based position from.
	Substr(expr string, from, n int) string
}

// PhysicalSlicer is implemented by engines that can read a table in slices
// of its storage without an index (PostgreSQL's TID range scans). A pass
// over every row that needs no key order, such as verify before the
// cut-over of an offline job, reads less that way than by key ranges.
type PhysicalSlicer interface {
	// PhysicalSlices returns at most n conditions (SQL without parameters)
	// that together select every row of the table once, as long as no one
	// moves rows meanwhile; nil when the server cannot read that way.
	PhysicalSlices(ctx context.Context, q Querier, table schema.TableName, n int) ([]string, error)
}

// KeyReader is implemented by engines whose driver would turn key values
// into another Go type than the one that binds back to the same key (the
// SQLite driver reads text in DATETIME-declared columns as time.Time): the
// engine selects keys through KeySelect but still orders and compares on
// the bare column, so the index serves the keyset walk.
type KeyReader interface {
	KeySelect(quotedCol string) string
}

// KeyBinder is implemented by engines whose driver would send a key value
// back as another type than its column's (go-mssqldb reads decimal and
// money as their text in a []byte and sends a []byte as VARBINARY, and
// sends every string as NVARCHAR). KeyArg gives the SQL that stands for
// v, read from the key column col and bound at placeholder, where the walk
// compares that column with it, and the value to bind; col is nil for the
// engine's row id.
type KeyBinder interface {
	KeyArg(col *schema.Column, v any, placeholder string) (string, any)
}

// Online change capture: the columns prepare adds to each table of an
// online job, and the trigger that keeps the first current.
const (
	// VersionColumn (BIGINT NOT NULL DEFAULT 0) changes whenever a planned
	// column of the row does: the capture trigger adds one on every update
	// of one, and gives every inserted row a random version, so that a row
	// deleted and inserted again under the same key never shows a version
	// its earlier self had (a compare-and-set on it would otherwise write
	// the old row's ciphertext into the new one).
	VersionColumn = "colcrypt_version"
	// EncVersionColumn (BIGINT NULL) is the VersionColumn value the row's
	// ciphertext was made from: NULL (an inserted row) or a different value
	// (an updated one) marks a stale row.
	EncVersionColumn = "colcrypt_enc_version"
	// CapturePrefix starts the name of every capture object (trigger,
	// trigger function): the planner never blocks on colcrypt_ triggers.
	CapturePrefix = "colcrypt_capture_"
)

// ChangeCapture is implemented by engines that can run a job online, while
// other sessions keep updating and inserting rows. An engine without it
// refuses --online.
type ChangeCapture interface {
	// AddCapture adds VersionColumn and EncVersionColumn to the table and
	// the trigger(s) named CapturePrefix+<table> that give inserted rows a
	// random version and change the version of a row whenever one of the
	// planned columns is updated. key are the columns (or the row-id
	// expression) identifying a row. It does nothing that is already
	// there, so prepare can run again after a crash.
	AddCapture(ctx context.Context, db *sql.DB, table schema.TableName, planned, key []string) error
	// DropCapture drops what AddCapture added, whatever of it exists
	// (revert before cut-over; Swap drops it itself).
	DropCapture(ctx context.Context, db *sql.DB, table schema.TableName) error
}
