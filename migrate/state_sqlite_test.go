package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/sqlite"
)

// TestAdvanceJobNeverGoesBack: two runs of one plan may overlap. The one
// that finishes a phase late must not record it over what the other
// recorded since (a job set back from cut-over to copy would verify, and
// copy, a table that is already swapped): it stops with an error naming
// both phases, and the job keeps the phase it had. A retry of this run's
// own update, whose reply was lost, succeeds.
func TestAdvanceJobNeverGoesBack(t *testing.T) {
	d, err := dialect.Get("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // colcrypt opens, never creates, a database
		t.Fatal(err)
	}
	db, err := d.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := &store{db: db, d: d, m: d.(dialect.Mover)}
	if err := st.ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	j := &job{ID: "j1", Fingerprint: "f", Kind: jobKindEncrypt, Phase: phasePrepared, KeyChecks: map[string]string{}, DigestKey: "k"}
	if err := st.saveJob(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	stale := *j // a second run that read the job at prepare

	for _, to := range []string{phaseCopied, phaseVerified, phaseCutover} {
		from := j.Phase
		j.Phase = to
		if err := st.advanceJob(t.Context(), j, jobKindEncrypt, from); err != nil {
			t.Fatalf("advance %s → %s: %v", from, to, err)
		}
	}
	// This run's update of cut-over again, as a retry after a lost reply.
	if err := st.advanceJob(t.Context(), j, jobKindEncrypt, phaseVerified); err != nil {
		t.Errorf("retry of this run's own update: %v", err)
	}
	stale.Phase = phaseCopied
	err = st.advanceJob(t.Context(), &stale, jobKindEncrypt, phasePrepared)
	if err == nil || !strings.Contains(err.Error(), `moved on to encrypt phase "cutover"`) ||
		!strings.Contains(err.Error(), `encrypt phase "prepare"`) {
		t.Fatalf("the late run recording copy: %v, want a refusal naming both phases", err)
	}
	now, err := st.loadJobOnce(t.Context(), "j1")
	if err != nil || now.Phase != phaseCutover {
		t.Fatalf("job after the late run: %+v, %v; want phase cutover", now, err)
	}
}
