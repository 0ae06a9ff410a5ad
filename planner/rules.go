package planner

import (
	"fmt"
	"strings"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// Severity says what a finding means for apply (SPEC §1).
type Severity string

// The severities of SPEC §1.
const (
	// SeverityBlocker: apply refuses to run until the plan or the schema changes.
	SeverityBlocker Severity = "blocker"
	// SeverityAction: the engine does it during apply and undoes it on revert.
	SeverityAction Severity = "action"
	// SeverityWarning: nothing stops the job, but something changes for users.
	SeverityWarning Severity = "warning"
)

// Finding is one rule's verdict on one object. Rule is a stable identifier
// (the Rule* constants); Object names the database object concerned (a
// constraint, index, trigger, view, or table.column); Column is the planned
// column, empty for table-wide findings; Message says what happens and what
// the user can do about it.
type Finding struct {
	Severity Severity `json:"severity"`
	Rule     string   `json:"rule"`
	Object   string   `json:"object"`
	Column   string   `json:"column"`
	Message  string   `json:"message"`
}

// Rule identifiers. They appear in reports and JSON output and never change
// meaning.
const (
	RuleIdentity         = "identity"
	RuleUnsupportedType  = "unsupported-type"
	RuleAlreadyEncrypted = "already-encrypted"
	RulePrimaryKey       = "primary-key"
	RuleForeignKey       = "foreign-key"
	RuleReferencedByFK   = "referenced-by-foreign-key"
	RuleUnique           = "unique"
	RuleIndex            = "index"
	RuleCheckConstraint  = "check-constraint"
	RuleDefault          = "default"
	RuleTrigger          = "trigger"
	RuleDependent        = "dependent"
	RuleComputed         = "computed"
	RuleNameConflict     = "name-conflict"
	RuleRowSize          = "row-size"
	RuleDeclaredRowSize  = "declared-row-size"
	RuleLargeObject      = "large-object"
	RuleValueLimit       = "value-limit"
	RuleNoKey            = "no-key"
	RuleLegacySuite      = "legacy-suite"
	RuleColumnCount      = "column-count"
	RuleReadOnly         = "read-only"
	RuleGuarded          = "guarded"
	RuleSystemVersioned  = "system-versioned"
	RuleBoundObject      = "bound-object"
	RuleIndexKey         = "index-key"
)

const (
	colcryptTriggerPrefix = "colcrypt_" // colcrypt's own (online catch-up) triggers never block
	ivColumnSuffix        = "_iv"       // SPEC §2: the companion column is <column>_iv
	rowIDColumn           = "colcrypt_row_id"
	rowIDBytes            = 8 // colcrypt_row_id is a bigint (identity/bigserial)
	// boundedProbeBytes is any bounded ciphertext size: with 0 (unbounded)
	// it gives both ciphertext column types an engine uses (VARBINARY(n)
	// and VARBINARY(MAX) share the base type varbinary).
	boundedProbeBytes = 1
)

// Engine is the part of a dialect the rules consult. None of it touches a
// database, which is what lets the rules run on schema fixtures (this is how
// SQL Server is tested without a server). Every dialect.Dialect is one.
type Engine interface {
	Codec(col *schema.Column) (dialect.Codec, error)
	CiphertextType(maxBytes int64) string
	Limits() dialect.Limits
}

// Target is one planned table with its catalog entry.
type Target struct {
	Plan  *TablePlan
	Table *schema.Table
}

// Options are what the caller knows beyond the plan and the catalog.
type Options struct {
	// AlreadyEncrypted reports whether colcrypt already encrypted a column,
	// from the migration engine's job state; table and column are named as in
	// the plan. It may be nil.
	AlreadyEncrypted func(table, column string) bool
	// BlockersOnly measures only what the data rules need (values over the
	// large-object and value limits; row sizes only on an engine with a row
	// limit), for apply's check before it changes anything; the report's
	// byte counts are then not filled in, and a table whose declared types
	// rule out every data blocker is not read at all (TableReport.Measured).
	BlockersOnly bool
	// Job is the plan's own unfinished job, from colcrypt's records in the
	// database; nil when there is none. The columns and tables it made are
	// not conflicts of the plan, and the report says the job is under way.
	Job *JobInProgress
}

// JobInProgress is the plan's own job, begun and not finished: apply (or
// revert, or rekey) resumes it from its records without planning again.
type JobInProgress struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`  // encrypt, revert or rekey
	Phase string `json:"phase"` // the last phase it completed, "" for none
	// Resume is the command that finishes the job, and what else the user
	// can do, in a sentence.
	Resume string `json:"resume"`
	// OwnColumn reports whether a column of a planned table (named as in
	// the plan) is one the job added: ciphertext, IV, restore or row-id
	// columns. OwnTable does the same for tables: the replacement an
	// offline job builds. Either may be nil.
	OwnColumn func(table, column string) bool `json:"-"`
	OwnTable  func(table string) bool         `json:"-"`
}

func (j *JobInProgress) ownColumn(table, column string) bool {
	return j != nil && j.OwnColumn != nil && j.OwnColumn(table, column)
}

func (j *JobInProgress) ownTable(table string) bool {
	return j != nil && j.OwnTable != nil && j.OwnTable(table)
}

// CheckSchema applies every rule of SPEC §1 that the plan and the catalog
// decide on their own, and returns the findings of each target, in order.
// Rules that need the data (row size, large objects, value limit) are in
// CheckSizing.
func CheckSchema(p *Plan, targets []Target, e Engine, opt Options) [][]Finding {
	c := &checker{plan: p, targets: targets, engine: e, opt: opt, binary: map[string]bool{}}
	for _, size := range []int64{0, boundedProbeBytes} {
		c.binary[baseType(e.CiphertextType(size))] = true
	}
	out := make([][]Finding, len(targets))
	for i := range targets {
		out[i] = c.table(&targets[i])
	}
	return out
}

// CheckSizing applies the rules that need the measured data of one table:
// rows too long for the engine during migration, values over the plan's
// large-object limit, and ciphertexts over the engine's largest value.
func CheckSizing(tr *TableReport, limits dialect.Limits, largeObjectLimit int64) []Finding {
	var fs []Finding
	if limits.RowBytes > 0 && tr.OffendingRows > 0 {
		fs = append(fs, Finding{SeverityBlocker, RuleRowSize, tr.Name, "", fmt.Sprintf(
			"%s of %s would exceed the engine's %s-byte row limit while plaintext, ciphertext and IV columns coexist (longest: %s bytes during migration): plan fewer or narrower columns per run, or move wide columns to a MAX/unbounded type first",
			plural(tr.OffendingRows, "row"), tr.Name, thousands(limits.RowBytes), thousands(tr.MaxRowBytesDuring))})
	}
	for _, cr := range tr.Columns {
		obj := tr.Name + "." + cr.Name
		if cr.LargeObjects > 0 {
			fs = append(fs, Finding{SeverityBlocker, RuleLargeObject, obj, cr.Name, fmt.Sprintf(
				"%s of %s hold values over the large-object limit of %s bytes (longest: %s bytes): raise job.large_object_limit, or remove %s from the plan",
				plural(cr.LargeObjects, "row"), obj, thousands(largeObjectLimit), thousands(cr.MaxPlainBytes-frameBytes(cr)), cr.Name)})
		}
		if cr.ValueLimitRows > 0 {
			fs = append(fs, Finding{SeverityBlocker, RuleValueLimit, obj, cr.Name, fmt.Sprintf(
				"%s of %s would encrypt to more than the engine's largest value of %s bytes (longest ciphertext: %s bytes): shorten those values, or remove %s from the plan",
				plural(cr.ValueLimitRows, "row"), obj, thousands(limits.ValueBytes), thousands(cr.MaxCiphertextBytes), cr.Name)})
		}
	}
	return fs
}

// checker holds what every rule of one CheckSchema call shares.
type checker struct {
	plan    *Plan
	targets []Target
	engine  Engine
	opt     Options
	// binary holds the base types (lower case) of the engine's ciphertext
	// columns: a planned column of such a type that has a companion IV
	// column is already a ciphertext column.
	binary map[string]bool
}

func (c *checker) table(t *Target) []Finding {
	tbl := t.Table
	name := t.Plan.Name
	var fs []Finding
	add := func(sev Severity, rule, object, column, format string, args ...any) {
		fs = append(fs, Finding{sev, rule, object, column, fmt.Sprintf(format, args...)})
	}

	rowID := tbl.UsableKey() == nil && addsRowID(c.engine)
	if tbl.UsableKey() == nil {
		// A primary key whose columns may hold NULL (SQLite allows it
		// unless they are declared NOT NULL) cannot page the table.
		what := name + " has no primary key and no unique NOT NULL key"
		if tbl.PrimaryKey != nil {
			what = fmt.Sprintf("the primary key of %s (%s) has a column that allows NULL, and %s has no unique NOT NULL key",
				name, strings.Join(tbl.PrimaryKey.Columns, ", "), name)
		}
		if rowID {
			add(SeverityAction, RuleNoKey, name, "",
				"%s: colcrypt adds a %s column to page through it and drops it at cut-over; add a primary key first to avoid the extra column",
				what, rowIDColumn)
		} else {
			add(SeverityAction, RuleNoKey, name, "",
				"%s: colcrypt pages through it by the engine's built-in row id, so no column is added; add such a key to have it batch by key instead",
				what)
		}
	}
	if !c.plan.Job.Online {
		var planned []string
		for _, cp := range t.Plan.Columns {
			planned = append(planned, cp.Name)
		}
		if OfflineRebuild(c.engine, tbl, planned) {
			add(SeverityAction, RuleReadOnly, name, "",
				"an offline job builds the replacement of %s during the copy and swaps it in at cut-over, so the table is read-only from prepare until then "+
					"(a write fails with a message naming the plan); run the job online (apply --online, or job.online: true) if other sessions must keep writing",
				name)
		} else if _, ok := c.engine.(dialect.WriteGuard); ok {
			add(SeverityAction, RuleGuarded, name, "",
				"an offline job encrypts %s in place, so from prepare until cut-over a new row or a new value of a planned column fails with a message naming the plan "+
					"(the cut-over would lose it); other columns and deletes stay writable; run the job online (apply --online, or job.online: true) "+
					"if other sessions must keep inserting",
				name)
		}
	}

	limits := c.engine.Limits()
	added := 0
	var declared int64 // declared row size during migration
	for _, col := range tbl.Columns {
		declared += c.maxPlain(col)
	}
	for i := range t.Plan.Columns {
		cp := &t.Plan.Columns[i]
		added++
		s := cp.Suite
		if cipher.IVLen(s, cp.IV) > 0 {
			added++
		}
		if col := tbl.Column(cp.Name); col != nil {
			if m := c.maxPlain(col); m > 0 {
				declared += int64(cipher.CiphertextLen(s, cp.Versioned, int(m)))
			}
			declared += int64(cipher.IVLen(s, cp.IV))
		}
	}
	if rowID {
		added++
		declared += rowIDBytes
	}
	if limits.Columns > 0 && len(tbl.Columns)+added > limits.Columns {
		add(SeverityBlocker, RuleColumnCount, name, "",
			"%s has %d columns and the job adds %d (ciphertext, IV and row-id columns) while it runs, over the engine's limit of %d: split the plan into runs of fewer columns, or drop unused columns first",
			name, len(tbl.Columns), added, limits.Columns)
	}
	if limits.RowBytes > 0 && declared > limits.RowBytes {
		add(SeverityWarning, RuleDeclaredRowSize, name, "",
			"the declared maximum row of %s during migration is %s bytes, over the engine's %s-byte row limit: a row filled to its declared sizes would fail to update (rule row-size checks today's rows); plan fewer columns per run to be safe",
			name, thousands(declared), thousands(limits.RowBytes))
	}

	fs = append(fs, c.versioning(t)...)
	for i := range t.Plan.Columns {
		fs = append(fs, c.column(t, &t.Plan.Columns[i])...)
		fs = append(fs, c.boundObjects(t, &t.Plan.Columns[i])...)
		fs = append(fs, c.indexKeys(t, &t.Plan.Columns[i])...)
	}
	return fs
}

// versioning blocks a table whose engine keeps the past versions of its
// rows in a history table (SQL Server's system-versioned temporal tables),
// and that history table: every chunk's update would copy plaintext
// versions into the history table, out of reach of the cut-over and the
// purge; the engine applies the column changes there too, where a NOT NULL
// ciphertext column fails on the old versions; and it refuses to change a
// history table's columns at all.
func (c *checker) versioning(t *Target) []Finding {
	v := t.Table.Versioning
	if v == nil {
		return nil
	}
	name := t.Plan.Name
	if schema.SameTable(t.Table.Name, v.History) {
		return []Finding{{SeverityBlocker, RuleSystemVersioned, name, "", fmt.Sprintf(
			"%s is the history table of system-versioned %s, whose columns the engine does not let change while versioning is on: run %s first (turn versioning on again after the job only with a history table whose columns match), or remove %s from the plan",
			name, v.Current, v.Off, name)}}
	}
	return []Finding{{SeverityBlocker, RuleSystemVersioned, name, "", fmt.Sprintf(
		"%s is system-versioned: every row the job updates leaves its plaintext version in history table %s, where neither the cut-over nor the purge reaches, and the column changes would be applied to %s too: run %s before the job and encrypt, move or delete the plaintext in %s yourself, or leave %s's columns out of the plan",
		name, v.History, v.History, v.Off, v.History, name)}}
}

// boundObjects blocks a planned column that a stand-alone default or rule
// is bound to (SQL Server's sp_bindefault, sp_bindrule): the cut-over
// cannot drop a column while one is bound.
func (c *checker) boundObjects(t *Target, cp *ColumnPlan) []Finding {
	col := t.Table.Column(cp.Name)
	if col == nil {
		return nil
	}
	obj := t.Plan.Name + "." + col.Name
	var fs []Finding
	for _, b := range col.Bound {
		fs = append(fs, Finding{SeverityBlocker, RuleBoundObject, b.Name, col.Name, fmt.Sprintf(
			"%s %s is bound to %s, and the cut-over cannot drop a column that a %s is bound to: run %s before the job (and bind it again after a revert if it is still wanted), or remove %s from the plan",
			b.Kind, b.Name, obj, b.Kind, b.Unbind, col.Name)})
	}
	return fs
}

// indexKeys checks that each index on a planned column can be rebuilt on
// the ciphertext, on an engine that limits index keys (SQL Server): its
// unbounded ciphertext type (VARBINARY(MAX)) cannot be a key column at
// all, and a key whose declared size is over the limit fails for every
// row whose key is longer.
func (c *checker) indexKeys(t *Target, cp *ColumnPlan) []Finding {
	limits := c.engine.Limits()
	tbl := t.Table
	col := tbl.Column(cp.Name)
	if limits.IndexKeyBytes <= 0 || col == nil {
		return nil
	}
	if _, err := c.engine.Codec(col); err != nil {
		return nil // unsupported type: a blocker already
	}
	obj := t.Plan.Name + "." + col.Name
	indexes := tbl.Indexes
	if tbl.PrimaryKey != nil {
		indexes = append([]*schema.Index{tbl.PrimaryKey}, indexes...)
	}
	unbounded := c.engine.CiphertextType(0)
	var fs []Finding
	for _, ix := range indexes {
		if !ix.HasColumn(col.Name) {
			continue
		}
		name := nameOr(ix.Name, obj)
		if typ := c.engine.CiphertextType(c.ciphertextMax(col, cp)); typ == unbounded {
			fs = append(fs, Finding{SeverityBlocker, RuleIndexKey, name, col.Name, fmt.Sprintf(
				"index %s covers %s, whose ciphertext needs type %s, which the engine cannot use as an index key, so the index could not be rebuilt at cut-over: narrow %s's declared type, drop the index, or remove %s from the plan",
				name, obj, typ, col.Name, col.Name)})
			continue
		}
		var key int64 // declared key size, ciphertext for planned columns
		for _, k := range ix.Columns {
			kc := tbl.Column(k)
			if kc == nil {
				continue
			}
			if kp := c.planned(tbl.Name, k); kp != nil {
				key += c.ciphertextMax(kc, kp)
			} else {
				key += c.maxPlain(kc)
			}
		}
		limit, kind := limits.IndexKeyBytes, "nonclustered"
		if ix.Clustered && limits.ClusteredKeyBytes > 0 {
			limit, kind = limits.ClusteredKeyBytes, "clustered"
		}
		if key > limit {
			fs = append(fs, Finding{SeverityWarning, RuleIndexKey, name, col.Name, fmt.Sprintf(
				"index %s on %s rebuilt on the ciphertext has a key of up to %s bytes, over the engine's %s-byte limit for a %s index: a row whose key is longer fails to insert or update, and the rebuild at cut-over fails if one exists; narrow the key's declared types, or drop the index",
				name, obj, thousands(key), thousands(limit), kind)})
		}
	}
	return fs
}

// ciphertextMax is the declared maximum ciphertext of a planned column,
// as newTableReport sizes its column; 0 when unbounded.
func (c *checker) ciphertextMax(col *schema.Column, cp *ColumnPlan) int64 {
	m := c.maxPlain(col)
	if m <= 0 {
		return 0
	}
	return int64(cipher.CiphertextLen(cp.Suite, cp.Versioned, int(m)))
}

// column applies the per-column rules to one planned column.
func (c *checker) column(t *Target, cp *ColumnPlan) []Finding {
	tbl := t.Table
	table := t.Plan.Name
	col := tbl.Column(cp.Name)
	if col == nil {
		return nil // Analyze reports a missing column as bad input before the rules run
	}
	name := col.Name
	obj := table + "." + name
	suite := cp.Suite
	deterministic := cp.IV == cipher.IVColumn

	var fs []Finding
	add := func(sev Severity, rule, object, format string, args ...any) {
		fs = append(fs, Finding{sev, rule, object, name, fmt.Sprintf(format, args...)})
	}

	if col.Identity {
		add(SeverityBlocker, RuleIdentity, obj,
			"%s is an identity (serial, autoincrement) column whose values the engine generates, so it cannot be encrypted: remove it from the plan", obj)
	}
	if col.Computed {
		add(SeverityBlocker, RuleComputed, obj,
			"%s is a computed column (%s) whose value the engine derives, so it cannot be encrypted: remove it from the plan, or encrypt the columns it is computed from", obj, col.ComputedExpr)
	}
	if _, err := c.engine.Codec(col); err != nil {
		add(SeverityBlocker, RuleUnsupportedType, obj,
			"%s has type %s, which colcrypt cannot encrypt (%v): remove it from the plan, or convert it to a supported type first", obj, col.Declared, err)
	}

	iv := tbl.Column(name + ivColumnSuffix)
	if iv != nil && c.opt.Job.ownColumn(table, iv.Name) {
		iv = nil // the IV column of the plan's own job in progress
	}
	encrypted := col.Encrypted ||
		(c.opt.AlreadyEncrypted != nil && c.opt.AlreadyEncrypted(table, cp.Name)) ||
		(c.binary[strings.ToLower(col.Type)] && iv != nil && c.binary[strings.ToLower(iv.Type)])
	switch {
	case encrypted:
		add(SeverityBlocker, RuleAlreadyEncrypted, obj,
			"%s is already encrypted (by colcrypt, by the engine, or it is a ciphertext column with its %s column): remove it from the plan; use colcrypt rekey to change its key", obj, name+ivColumnSuffix)
	case iv != nil && cipher.IVLen(suite, cp.IV) > 0:
		add(SeverityBlocker, RuleNameConflict, table+"."+iv.Name,
			"%s already has a column %s, the name colcrypt gives the IV column of %s: rename that column, or use iv: column or the AEAD suite (no IV column) for %s", table, iv.Name, name, name)
	}

	if pk := tbl.PrimaryKey; pk != nil && pk.HasColumn(name) {
		object := nameOr(pk.Name, table)
		if deterministic {
			add(SeverityAction, RulePrimaryKey, object,
				"primary key%s on %s stays in force during the copy, is dropped at cut-over and recreated on the ciphertext column (iv: column keeps equal values equal)", spaced(pk.Name), obj)
		} else {
			add(SeverityBlocker, RulePrimaryKey, object,
				"primary key%s covers %s, and field-level IVs encrypt equal values differently: set iv: column for %s in the plan, or move the primary key to another column", spaced(pk.Name), obj, name)
		}
	}

	for _, fk := range tbl.ReferencedBy {
		i := indexFold(fk.RefColumns, name)
		if i < 0 || i >= len(fk.Columns) {
			continue
		}
		other := fk.Table.String() + "." + fk.Columns[i]
		object := nameOr(fk.Name, other)
		if why, fix := c.fkMismatch(cp, obj, fk.Table, fk.Columns[i]); why == "" {
			add(SeverityAction, RuleReferencedByFK, object,
				"foreign key%s of %s references %s: both columns are encrypted with key %s (iv: column, so equal values stay equal); it is dropped at cut-over and recreated once both are swapped", spaced(fk.Name), other, obj, cp.Key)
		} else {
			add(SeverityBlocker, RuleReferencedByFK, object,
				"foreign key%s of %s references %s, but %s: %s, or drop the foreign key", spaced(fk.Name), other, obj, why, fix)
		}
	}
	for _, fk := range tbl.ForeignKeys {
		i := indexFold(fk.Columns, name)
		if i < 0 || i >= len(fk.RefColumns) {
			continue
		}
		other := fk.RefTable.String() + "." + fk.RefColumns[i]
		object := nameOr(fk.Name, obj)
		if why, fix := c.fkMismatch(cp, obj, fk.RefTable, fk.RefColumns[i]); why == "" {
			add(SeverityAction, RuleForeignKey, object,
				"foreign key%s on %s references %s: both columns are encrypted with key %s (iv: column, so equal values stay equal); it is dropped at cut-over and recreated once both are swapped", spaced(fk.Name), obj, other, cp.Key)
		} else {
			add(SeverityBlocker, RuleForeignKey, object,
				"foreign key%s on %s references %s, but %s: %s, or drop the foreign key", spaced(fk.Name), obj, other, why, fix)
		}
	}

	for _, ix := range tbl.Indexes {
		if !ix.HasColumn(name) {
			continue
		}
		if schema.ContainsFold(ix.ExprColumns, name) {
			// Recreated from its definition, the index would apply the
			// expression or the predicate to ciphertext: a function or an
			// operator for the plaintext type fails on bytea, and one that
			// accepts it indexes, or filters, the wrong values (on SQLite
			// ciphertext <> '' holds for every row).
			add(SeverityBlocker, RuleIndex, ix.Name,
				"index %s uses %s %s (%s), which after the cut-over would be computed on ciphertext and fail or index the wrong rows: drop the index before apply and, after it, create what the application needs on the ciphertext column (a plain index on %s, useful for equality with iv: column), or remove %s from the plan",
				ix.Name, obj, exprPlace(ix), ix.Definition, name, name)
			continue
		}
		kind := "index"
		if ix.Constraint {
			kind = "constraint"
		}
		// A partial index whose WHERE clause uses no planned column, or
		// only tests one for NULL, is recreated with it unchanged, and it
		// holds as before: it selects the same rows, and with iv: column equal plaintexts among them
		// stay equal ciphertexts, so a unique one stays unique.
		var where string
		if ix.Partial {
			where = ", with its WHERE clause unchanged (it uses no planned column but to test it for NULL, which stays NULL)"
		}
		switch {
		case ix.Unique && deterministic:
			add(SeverityAction, RuleUnique, ix.Name,
				"unique %s %s on %s stays in force during the copy, is dropped at cut-over and recreated on the ciphertext column%s (iv: column keeps equal values equal)", kind, ix.Name, obj, where)
		case ix.Unique:
			add(SeverityBlocker, RuleUnique, ix.Name,
				"field-level IVs cannot keep a unique constraint: unique %s %s covers %s; set iv: column for %s in the plan, or drop the unique %s", kind, ix.Name, obj, name, kind)
		default:
			add(SeverityAction, RuleIndex, ix.Name,
				"index %s on %s is dropped at cut-over and rebuilt on the ciphertext column%s", ix.Name, obj, where)
			if deterministic {
				add(SeverityWarning, RuleIndex, ix.Name,
					"index %s on %s will serve equality lookups only (by ciphertext): ordering and range queries on %s stop working; move them to the application, or drop the index", ix.Name, obj, name)
			} else {
				add(SeverityWarning, RuleIndex, ix.Name,
					"index %s on %s will serve no query: with iv: field equal values encrypt differently, and ordering and range queries stop working; set iv: column for %s if equality lookups matter, or drop the index", ix.Name, obj, name)
			}
		}
	}

	for _, ck := range tbl.Checks {
		if !references(ck.Columns, ck.Expr, name) {
			continue
		}
		object := nameOr(ck.Name, obj)
		if c.plan.Job.DropCheckConstraints {
			add(SeverityAction, RuleCheckConstraint, object,
				"check constraint%s (%s) on %s is dropped at cut-over and not recreated, since it cannot hold on ciphertext; it is recorded and restored on revert", spaced(ck.Name), ck.Expr, obj)
		} else {
			add(SeverityBlocker, RuleCheckConstraint, object,
				"check constraint%s (%s) references %s and would be checked against ciphertext: set job.drop_check_constraints: true to have colcrypt drop it (restored on revert), or drop it yourself", spaced(ck.Name), ck.Expr, obj)
		}
	}

	if col.Default != "" {
		if c.plan.Job.DropDefaults {
			add(SeverityAction, RuleDefault, obj,
				"default %s on %s is dropped at cut-over and restored on revert", col.Default, obj)
		} else {
			add(SeverityBlocker, RuleDefault, obj,
				"%s has default %s, and a default writes plaintext into the ciphertext column: set job.drop_defaults: true to have colcrypt drop it (restored on revert), or drop the default", obj, col.Default)
		}
	}

	for _, tr := range tbl.Triggers {
		if strings.HasPrefix(strings.ToLower(tr.Name), colcryptTriggerPrefix) || !references(tr.Columns, tr.Definition, name) {
			continue
		}
		add(SeverityBlocker, RuleTrigger, tr.Name,
			"before executing this operation, you must drop trigger %s defined on %s", tr.Name, table)
	}

	for _, dep := range tbl.Dependents {
		if !schema.ContainsFold(dep.Columns, name) {
			continue
		}
		rule := RuleDependent
		if strings.Contains(strings.ToLower(dep.Kind), "computed") {
			rule = RuleComputed
		}
		if dep.Kind == schema.KindExtendedStatistics {
			// DROP COLUMN drops it rather than failing, and no step of
			// the job records or recreates it.
			add(SeverityWarning, rule, dep.Name,
				"%s %s covers %s: the cut-over drops it with the plaintext column, and colcrypt recreates it neither after the job nor on revert; create it again after the job if it is still wanted (with iv: column its dependencies and distinct counts still hold on ciphertext), and after a revert: %s",
				dep.Kind, dep.Name, obj, nameOr(dep.Definition, "(its definition: pg_get_statisticsobjdef)"))
			continue
		}
		if dep.Kind == schema.KindStatistics {
			add(SeverityBlocker, rule, dep.Name,
				"%s %s covers %s, and the cut-over cannot drop a column such an object covers: drop it before the job (DROP STATISTICS) and create it again after if it is still wanted, or remove %s from the plan", dep.Kind, dep.Name, obj, name)
			continue
		}
		add(SeverityBlocker, rule, dep.Name,
			"%s %s depends on %s and would see ciphertext: drop it before the job (and recreate it after, reading decrypted values), or remove %s from the plan", dep.Kind, dep.Name, obj, name)
	}

	if suite.Legacy() {
		add(SeverityWarning, RuleLegacySuite, obj,
			"%s uses %s, a legacy suite (64-bit blocks): prefer aes-256-cbc or aead-aes-256-cbc-hmac-sha256 unless another system must read these values", obj, suite)
	}
	return fs
}

// fkMismatch says why the column at the other end of a foreign key (table,
// column) cannot keep the key with cp (planned column obj), and what to
// change in the plan, or "" when it can: both planned, with the same suite,
// key and versioning, and both deterministic. The fix names the setting
// that differs: a column already in the plan is not to be added again.
func (c *checker) fkMismatch(cp *ColumnPlan, obj string, table schema.TableName, column string) (why, fix string) {
	other := table.String() + "." + column
	partner := c.planned(table, column)
	switch {
	case partner == nil:
		return other + " is not in the plan",
			fmt.Sprintf("add %s to the plan with the same suite, key and versioned setting as %s and iv: column on both", other, obj)
	case cp.IV != cipher.IVColumn && partner.IV != cipher.IVColumn:
		return fmt.Sprintf("%s uses iv: %s and %s iv: %s", obj, cp.IV, other, partner.IV),
			fmt.Sprintf("set iv: column for both %s and %s in the plan (equal values must encrypt equally on both sides)", obj, other)
	case cp.IV != cipher.IVColumn:
		return obj + " uses iv: " + string(cp.IV),
			fmt.Sprintf("set iv: column for %s in the plan, as %s has (equal values must encrypt equally on both sides)", obj, other)
	case partner.IV != cipher.IVColumn:
		return other + " uses iv: " + string(partner.IV),
			fmt.Sprintf("set iv: column for %s in the plan, as %s has (equal values must encrypt equally on both sides)", other, obj)
	case cp.Suite != partner.Suite:
		return fmt.Sprintf("%s uses suite %s and %s suite %s", obj, cp.Suite, other, partner.Suite),
			fmt.Sprintf("give %s and %s the same suite in the plan", obj, other)
	case cp.Key != partner.Key:
		return fmt.Sprintf("%s uses key %s and %s key %s", obj, cp.Key, other, partner.Key),
			fmt.Sprintf("give %s and %s the same key in the plan", obj, other)
	case cp.Versioned != partner.Versioned:
		return fmt.Sprintf("%s and %s differ in versioned", obj, other),
			fmt.Sprintf("give %s and %s the same versioned setting in the plan", obj, other)
	}
	return "", ""
}

// planned returns the plan entry of a column, or nil when the column is not
// in the plan.
func (c *checker) planned(table schema.TableName, column string) *ColumnPlan {
	for _, t := range c.targets {
		if !schema.SameTable(t.Table.Name, table) {
			continue
		}
		for i := range t.Plan.Columns {
			if strings.EqualFold(t.Plan.Columns[i].Name, column) {
				return &t.Plan.Columns[i]
			}
		}
	}
	return nil
}

// maxPlain is the declared maximum of a column's canonical plaintext, 0 when
// unbounded or unsupported.
func (c *checker) maxPlain(col *schema.Column) int64 {
	codec, err := c.engine.Codec(col)
	if err != nil {
		return 0
	}
	return codec.MaxPlainBytes()
}

// Groups returns the planned tables (as named in the plan) in connected
// groups: two tables are in one group when a foreign key that the job drops
// (one touching a planned column) links them. Constraints of a group are
// dropped before any of its tables is migrated and rebuilt after all of them
// are. Groups come in plan order of their first table, tables within a group
// in plan order, so the order is the same on every run.
func Groups(targets []Target) [][]string {
	isPlanned := func(t *Target, col string) bool {
		for _, cp := range t.Plan.Columns {
			if strings.EqualFold(cp.Name, col) {
				return true
			}
		}
		return false
	}
	// linked: a foreign key of table i references table j and touches a
	// planned column of either.
	linked := func(i, j int) bool {
		for _, fk := range targets[i].Table.ForeignKeys {
			if !schema.SameTable(targets[j].Table.Name, fk.RefTable) {
				continue
			}
			for _, col := range fk.Columns {
				if isPlanned(&targets[i], col) {
					return true
				}
			}
			for _, col := range fk.RefColumns {
				if isPlanned(&targets[j], col) {
					return true
				}
			}
		}
		return false
	}
	var groups [][]string
	for _, comp := range schema.Components(len(targets), linked) {
		var names []string
		for _, i := range comp {
			names = append(names, targets[i].Plan.Name)
		}
		groups = append(groups, names)
	}
	return groups
}

// addsRowID reports whether the engine adds a colcrypt_row_id column to a
// table without a usable key; engines with a built-in row id (SQLite's
// rowid) say so through dialect.Mover.
func addsRowID(e any) bool {
	if m, ok := e.(interface{ RowID() (string, bool) }); ok {
		_, mustAdd := m.RowID()
		return mustAdd
	}
	return true
}

// references reports whether a constraint or trigger uses column: from the
// columns the catalog reader found, or, when it found none, from the text
// of the definition, erring on the side of a finding.
func references(columns []string, definition, column string) bool {
	if len(columns) > 0 {
		return schema.ContainsFold(columns, column)
	}
	return mentions(definition, column)
}

// mentions reports whether text holds name as a whole identifier, ignoring
// case.
func mentions(text, name string) bool {
	text, name = strings.ToLower(text), strings.ToLower(name)
	if name == "" {
		return false
	}
	for i := 0; ; {
		j := strings.Index(text[i:], name)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(name)
		if (start == 0 || !identChar(text[start-1])) && (end == len(text) || !identChar(text[end])) {
			return true
		}
		i = start + 1
	}
}

func identChar(b byte) bool {
	return b == '_' || b == '$' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 0x80
}

// exprPlace says where an index uses its ExprColumns.
func exprPlace(ix *schema.Index) string {
	switch {
	case ix.Expression && ix.Partial:
		return "in a key expression or its WHERE clause"
	case ix.Partial:
		return "in its WHERE clause"
	default:
		return "in a key expression"
	}
}

// nameOr returns name, or fallback when name is empty (an unnamed constraint).
func nameOr(name, fallback string) string {
	if name == "" {
		return fallback
	}
	return name
}

// spaced puts a space before a constraint name, so that messages read
// "primary key pk_x on t.c" or, unnamed, "primary key on t.c".
func spaced(name string) string {
	if name == "" {
		return ""
	}
	return " " + name
}

func indexFold(names []string, name string) int {
	for i, n := range names {
		if strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

// baseType is the lower-case type name without length: "VARBINARY(MAX)" → "varbinary".
func baseType(declared string) string {
	if i := strings.IndexByte(declared, '('); i >= 0 {
		declared = declared[:i]
	}
	return strings.ToLower(strings.TrimSpace(declared))
}

// frameBytes is what the column's codec adds to each value
// (dialect.FrameBytes), 0 without a codec.
func frameBytes(cr *ColumnReport) int64 {
	if cr.Codec == nil {
		return 0
	}
	return dialect.FrameBytes(cr.Codec)
}
