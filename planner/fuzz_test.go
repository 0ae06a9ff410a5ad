package planner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds the plan parser arbitrary bytes. It must never panic; it
// either returns a complete plan or errors that are all *Error values for
// the file it was given, located whenever the problem has a place.
func FuzzParse(f *testing.F) {
	f.Add([]byte(planOK))
	f.Add([]byte(fingerprintBase))
	f.Add([]byte(""))
	f.Add([]byte("---\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("tables: &t [{name: a, columns: *t}]\n"))
	f.Add([]byte("version: 1\ndatabase: {engine: sqlite, dsn: '$${X}${COLCRYPT_DSN}$'}\n"))
	for _, tc := range badPlanCases(f) {
		f.Add([]byte(tc.yaml))
	}
	for _, p := range examplePlans(f) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePlan(data, "fuzz.yaml", planTestEnv)
		if err == nil {
			checkFuzzedPlan(t, p)
			return
		}
		if p != nil {
			t.Fatalf("returned a plan along with %v", err)
		}
		for _, e := range leafErrors(err) {
			var pe *Error
			if !errors.As(e, &pe) {
				t.Fatalf("error %q (%T) is not a *planner.Error", e, e)
			}
			if pe.File != "fuzz.yaml" {
				t.Fatalf("error %q names file %q", pe, pe.File)
			}
			// Only problems of the whole file may lack a line.
			if pe.Line == 0 && pe.Msg != "plan file is empty" && !strings.HasPrefix(pe.Msg, "invalid YAML") {
				t.Fatalf("error %q has no position", pe)
			}
			if pe.Line < 0 || pe.Column < 0 {
				t.Fatalf("error %q has a negative position", pe)
			}
		}
	})
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// checkFuzzedPlan asserts what every accepted plan guarantees.
func checkFuzzedPlan(t *testing.T, p *Plan) {
	t.Helper()
	if p.Version != 1 || p.Database.DSN == "" || p.Keystore == "" || !filepath.IsAbs(p.Keystore) {
		t.Fatalf("accepted an incomplete plan: %+v", p)
	}
	found := false
	for _, e := range Engines() {
		found = found || e == p.Database.Engine
	}
	if !found {
		t.Fatalf("accepted engine %q", p.Database.Engine)
	}
	if p.Job.Workers < 1 || p.Job.Workers > MaxWorkers || p.Job.BatchRows < 1 ||
		p.Job.LargeObjectLimit < 1 || p.Job.ChunkTarget <= 0 ||
		(p.Job.Plaintext != PlaintextDrop && p.Job.Plaintext != PlaintextNull) {
		t.Fatalf("accepted job options %+v", p.Job)
	}
	if len(p.Tables) == 0 {
		t.Fatal("accepted a plan without tables")
	}
	tables := map[string]bool{}
	for _, tb := range p.Tables {
		if tb.Name == "" || len(tb.Columns) == 0 || tb.Line < 1 || tables[strings.ToLower(tb.Name)] {
			t.Fatalf("accepted table %+v", tb)
		}
		tables[strings.ToLower(tb.Name)] = true
		cols := map[string]bool{}
		for _, c := range tb.Columns {
			if c.Name == "" || c.Key == "" || c.Suite.BlockSize() == 0 || c.IV == "" || c.Line < 1 || cols[strings.ToLower(c.Name)] {
				t.Fatalf("accepted column %+v", c)
			}
			cols[strings.ToLower(c.Name)] = true
		}
	}
	if fp := p.Fingerprint(); len(fp) != 64 || fp != p.Fingerprint() {
		t.Fatalf("fingerprint %q is not stable", fp)
	}
}
