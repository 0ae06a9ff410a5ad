package planner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/schema"
)

// Analyze is the dry run of a plan against a live database: it reads every
// planned table from the catalog, applies the rules of SPEC §1, measures the
// data (SPEC §2) and orders the foreign-key groups. It changes nothing.
//
// A planned table or column missing from the database is bad input
// (exitcode.Input) naming the plan entry's file:line:column; every missing
// one is reported at once.
func Analyze(ctx context.Context, p *Plan, d dialect.Dialect, db *sql.DB, opt Options) (*Report, error) {
	targets, err := readTargets(ctx, p, d, db)
	if err != nil {
		return nil, err
	}
	findings := CheckSchema(p, targets, d, opt)
	for i := range targets {
		f, err := replacementConflict(ctx, p, d, db, &targets[i], opt)
		if err != nil {
			return nil, err
		}
		findings[i] = append(findings[i], f...)
	}
	rowID := addsRowID(d)

	rep := &Report{Engine: d.Name(), Tables: make([]*TableReport, len(targets)), Job: opt.Job}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, p.Job.Workers))
	for i := range targets {
		tr := newTableReport(&targets[i], d)
		tr.Table = withoutJobColumns(tr.Table, targets[i].Plan.Name, opt.Job)
		rep.Tables[i] = tr
		g.Go(func() error { return measure(gctx, d, db, tr, rowID, p.Job.LargeObjectLimit, opt.BlockersOnly) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, tr := range rep.Tables {
		rebuildPeak(d, p, tr)
		tr.Findings = append(findings[i], CheckSizing(tr, d.Limits(), p.Job.LargeObjectLimit)...)
		if tr.Findings == nil {
			tr.Findings = []Finding{}
		}
	}
	rep.Groups = Groups(targets)
	rep.total()
	return rep, nil
}

// withoutJobColumns is table t without the columns the plan's job in
// progress added to it (ciphertext, IV, row-id and change-capture
// columns), for sizing: they are the job's, not the table the plan
// measures, and the sizing projects the ciphertext itself.
func withoutJobColumns(t *schema.Table, name string, job *JobInProgress) *schema.Table {
	if job == nil {
		return t
	}
	own := *t
	own.Columns = nil
	for _, c := range t.Columns {
		if !job.ownColumn(name, c.Name) {
			own.Columns = append(own.Columns, c)
		}
	}
	return &own
}

// readTargets reads every planned table from the catalog and checks that
// each planned column exists.
func readTargets(ctx context.Context, p *Plan, d dialect.Dialect, db *sql.DB) ([]Target, error) {
	return ReadTargets(ctx, p, d, db, nil)
}

// ReadTargets is readTargets for a caller that must not read some tables
// (skip; their Target has no Table): status skips the tables its job is
// changing. A table or column the database lacks is an error naming the
// plan's file, line and column (exit 2), all of them at once.
func ReadTargets(ctx context.Context, p *Plan, d dialect.Dialect, db *sql.DB, skip func(*TablePlan) bool) ([]Target, error) {
	targets := make([]Target, len(p.Tables))
	var missing []error
	for i := range p.Tables {
		tp := &p.Tables[i]
		if skip != nil && skip(tp) {
			targets[i] = Target{Plan: tp}
			continue
		}
		t, err := d.ReadTable(ctx, db, schema.ParseTableName(tp.Name))
		switch {
		case errors.Is(err, dialect.ErrTableNotFound):
			missing = append(missing, p.Errorf(tp.Line, tp.Col, "table %s does not exist in the database", tp.Name))
			continue
		case err != nil:
			return nil, fmt.Errorf("read catalog of %s: %w", tp.Name, err)
		}
		for _, cp := range tp.Columns {
			if t.Column(cp.Name) == nil {
				missing = append(missing, p.Errorf(cp.Line, cp.Col, "table %s has no column %s", tp.Name, cp.Name))
			}
		}
		targets[i] = Target{Plan: tp, Table: t}
	}
	if len(missing) > 0 {
		return nil, exitcode.Input(errors.Join(missing...))
	}
	return targets, nil
}

// newTableReport prepares the report of one table before it is measured:
// its key and, per planned column, the source type, the codec and the type
// of the ciphertext column.
func newTableReport(t *Target, d dialect.Dialect) *TableReport {
	tr := &TableReport{Name: t.Plan.Name, Table: t.Table, Key: t.Table.UsableKey(), RowLimit: d.Limits().RowBytes}
	for _, cp := range t.Plan.Columns {
		col := t.Table.Column(cp.Name)
		cr := &ColumnReport{
			Name:       col.Name,
			SourceType: col.Declared,
			Suite:      string(cp.Suite),
			IV:         string(cp.IV),
			Column:     col,
			Plan:       cp,
		}
		if codec, err := d.Codec(col); err == nil {
			cr.Codec = codec
			var declared int64 // 0: unbounded
			if m := codec.MaxPlainBytes(); m > 0 {
				declared = int64(cipher.CiphertextLen(cp.Suite, cp.Versioned, int(m)))
			}
			cr.CiphertextType = d.CiphertextType(declared)
		}
		tr.Columns = append(tr.Columns, cr)
	}
	return tr
}

// rebuildPeak corrects the peak size of a table that exists twice for a
// while: an offline job building the replacement beside the table
// (dialect.Rebuilder), both kept until the cut-over drops the table, or an
// in-place cut-over that rebuilds the table, columns added by the job
// included, into a new one (SQLite).
func rebuildPeak(d dialect.Dialect, p *Plan, tr *TableReport) {
	var planned []string
	for _, c := range tr.Columns {
		planned = append(planned, c.Name)
	}
	if !p.Job.Online && OfflineRebuild(d, tr.Table, planned) {
		tr.BytesPeak = tr.BytesNow + tr.BytesAfter
		return
	}
	if d.Limits().CutoverRebuilds {
		tr.BytesPeak += tr.BytesAfter
	}
}

// replacementConflict blocks an offline job on an engine that builds the
// table's replacement (SQLite) when a table already has the replacement's
// name: the job would take it for its own, fill it, and drop it.
func replacementConflict(ctx context.Context, p *Plan, d dialect.Dialect, db *sql.DB, t *Target, opt Options) ([]Finding, error) {
	r, ok := d.(dialect.Rebuilder)
	if !ok || p.Job.Online {
		return nil, nil
	}
	var planned []string
	for _, c := range t.Plan.Columns {
		planned = append(planned, c.Name)
	}
	if !OfflineRebuild(d, t.Table, planned) {
		return nil, nil
	}
	name := r.RebuildName(t.Table.Name)
	if opt.Job.ownTable(name.String()) {
		return nil, nil // the replacement the plan's own job in progress builds
	}
	_, err := d.ReadTable(ctx, db, name)
	switch {
	case errors.Is(err, dialect.ErrTableNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read catalog of %s: %w", name, err)
	}
	return []Finding{{SeverityBlocker, RuleNameConflict, name.Name, "", fmt.Sprintf(
		"a table %s already exists, the name colcrypt gives the replacement of %s that an offline job builds: rename or drop it "+
			"(if an earlier colcrypt job left it, run colcrypt revert with that job's plan), or run the job online", name.Name, t.Plan.Name)}}, nil
}
