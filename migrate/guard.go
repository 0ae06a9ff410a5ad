package migrate

import (
	"context"
	"fmt"

	"github.com/colcrypt/colcrypt/dialect"
)

// guardWrites makes the table of an offline job that changes it in place
// refuse what the job would lose (dialect.WriteGuard): a new row, or a
// value written to a planned column (on revert, to its ciphertext or IV
// column) after its chunk was copied or decrypted. The cut-over lifts it.
func (e *Engine) guardWrites(ctx context.Context, jobID string, t *tableJob, forward bool) error {
	g, ok := e.d.(dialect.WriteGuard)
	if !ok {
		return nil
	}
	var cols []string
	for _, c := range t.cols {
		cols = append(cols, c.col.Name)
		if !forward && c.state.IVColumn != "" {
			cols = append(cols, c.state.IVColumn)
		}
	}
	refusal := fmt.Sprintf("colcrypt: job %s is encrypting %s in place, offline: a row inserted or an encrypted column written now "+
		"would be lost at its cut-over; run colcrypt apply %s to finish the job, or colcrypt revert %s to stop it",
		jobID, t.name, e.plan.Path, e.plan.Path)
	if !forward {
		refusal = fmt.Sprintf("colcrypt: job %s is decrypting %s in place: a row inserted or an encrypted column written now "+
			"would be lost at its cut-over; run colcrypt revert %s to finish the revert", jobID, t.name, e.plan.Path)
	}
	return e.ddl(ctx, "guard "+t.name+" against lost writes", func(ctx context.Context) error {
		return g.GuardWrites(ctx, e.db, t.tn, cols, refusal)
	})
}

// liftGuard drops the guard of guardWrites (revert before cut-over).
func (e *Engine) liftGuard(ctx context.Context, t *tableJob) error {
	g, ok := e.d.(dialect.WriteGuard)
	if !ok {
		return nil
	}
	return e.ddl(ctx, "lift the guard on "+t.name, func(ctx context.Context) error { return g.DropWriteGuard(ctx, e.db, t.tn) })
}
