package migrate_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// filesContain reports which of the database's files (main, WAL, journal)
// hold the needle anywhere in their bytes, free pages included.
func (f *fixture) filesContain(needle string) []string {
	f.t.Helper()
	var found []string
	for _, suffix := range []string{"", "-wal", "-journal"} {
		data, err := os.ReadFile(f.dbPath + suffix)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			f.t.Fatal(err)
		}
		if bytes.Contains(data, []byte(needle)) {
			found = append(found, filepath.Base(f.dbPath+suffix))
		}
	}
	return found
}

// TestPurgeLeavesNoPlaintextInTheFiles reads the raw database files: with
// purge: true no e-mail address survives anywhere, not even in free pages;
// without it, the old pages still hold them (which is why purge exists).
func TestPurgeLeavesNoPlaintextInTheFiles(t *testing.T) {
	for _, purge := range []bool{false, true} {
		name := "no purge"
		if purge {
			name = "purge"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, customersSetup(500)...)
			const marker = "user123@example.com"
			if len(f.filesContain(marker)) == 0 {
				t.Fatal("the fixture does not hold the marker e-mail in its files")
			}
			job := "  drop_defaults: true\n"
			if purge {
				job += "  purge: true\n"
			}
			p := f.plan("plan.yaml", planSpec{job: job, tables: []planTable{{name: "customers", columns: []planColumn{
				{name: "ssn", iv: "column"}, {name: "email"}, {name: "notes"}}}}})
			f.apply(p, migrate.Options{})
			left := f.filesContain(marker)
			if purge && len(left) > 0 {
				t.Fatalf("after purge the plaintext e-mail is still readable in %s", strings.Join(left, ", "))
			}
			if !purge && len(left) == 0 {
				t.Log("without purge no plaintext was left either (SQLite reused the pages)")
			}
		})
	}
}
