package migrate_test

import (
	"bytes"
	"context"
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
	eachPurge(t, func(t *testing.T, purge bool, job string) {
		f := newFixture(t, customersSetup(500)...)
		const marker = "user123@example.com"
		if len(f.filesContain(marker)) == 0 {
			t.Fatal("the fixture does not hold the marker e-mail in its files")
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

// TestPurgeRefusesWhileAReaderHoldsTheOldPages: VACUUM writes the rebuilt
// pages into the write-ahead log, and only the checkpoint copies them over
// the old ones in the database file; a connection reading since before the
// purge keeps that checkpoint from finishing, which SQLite reports without
// an error. The purge must fail then, saying why, rather than report the
// plaintext gone while the file still holds it; once the reader has ended,
// apply run again purges and nothing is left.
func TestPurgeRefusesWhileAReaderHoldsTheOldPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, customersSetup(500)...)
	const marker = "user123@example.com"
	p := f.plan("plan.yaml", planSpec{job: "  drop_defaults: true\n  purge: true\n", dsnQuery: "?_pragma=busy_timeout(300)",
		tables: []planTable{{name: "customers", columns: []planColumn{{name: "ssn", iv: "column"}, {name: "email"}, {name: "notes"}}}}})
	ctx := t.Context()
	// As colcrypt leaves it: in WAL mode, where readers and the one writer
	// do not wait for each other.
	if _, err := f.raw().ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
		t.Fatal(err)
	}
	reader, err := f.raw().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var n int
	if _, err := reader.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 500 {
		t.Fatalf("the reader counts %d rows, %v", n, err)
	}
	_, err = f.engine(p, f.ks, migrate.Options{}).Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "another connection has been reading the database since before the purge") {
		t.Fatalf("apply with purge beside an open reader: %v; want the purge to fail, saying why", err)
	}
	if left := f.filesContain(marker); len(left) == 0 {
		t.Error("the purge failed, yet no plaintext is left in the files: this test no longer shows what the reader keeps")
	}
	if _, err := reader.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	f.apply(p, migrate.Options{})
	if left := f.filesContain(marker); len(left) > 0 {
		t.Errorf("after the purge ran again the plaintext e-mail is still readable in %s", strings.Join(left, ", "))
	}
	f.wantEncrypted("customers", "ssn", "email", "notes")
}

// eachPurge runs test twice, as subtests: without and with purge: true,
// job being the plan's job lines for each.
func eachPurge(t *testing.T, test func(t *testing.T, purge bool, job string)) {
	for _, purge := range []bool{false, true} {
		name, job := "no purge", "  drop_defaults: true\n"
		if purge {
			name, job = "purge", job+"  purge: true\n"
		}
		t.Run(name, func(t *testing.T) { test(t, purge, job) })
	}
}

// TestRekeyPurgeLeavesNoOldCiphertextInTheFiles: a rekey rewrites every
// value, and the values under the old key version stay in the file's free
// pages, readable by whoever holds that version, unless the plan says
// purge: true; then none of them is left anywhere in the files.
func TestRekeyPurgeLeavesNoOldCiphertextInTheFiles(t *testing.T) {
	eachPurge(t, func(t *testing.T, purge bool, job string) {
		f := newFixture(t, customersSetup(500)...)
		p := f.plan("plan.yaml", planSpec{job: job, tables: []planTable{{name: "customers", columns: []planColumn{{name: "email"}}}}})
		f.apply(p, migrate.Options{})
		old := f.sample(`SELECT email FROM customers WHERE id % 25 = 0 AND email IS NOT NULL`) // values under v1
		if len(old) < 10 {
			t.Fatalf("only %d sampled ciphertexts", len(old))
		}
		if _, err := f.ks.Add("pii"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.engine(p, f.ks, migrate.Options{BatchRows: 100, NoBackupCheck: true}).Rekey(context.Background(), nil); err != nil {
			t.Fatalf("rekey: %v", err)
		}
		for h := range f.headers("customers", "email") {
			if !strings.HasSuffix(h, "/v2") {
				t.Fatalf("customers.email holds values under %s after the rekey", h)
			}
		}
		left := 0
		for _, ct := range old {
			if len(f.filesContain(ct)) > 0 {
				left++
			}
		}
		t.Logf("%d of %d sampled v1 ciphertexts still in the files", left, len(old))
		if purge && left > 0 {
			t.Fatalf("after a rekey with purge %d of %d values under key version 1 are still readable in the files", left, len(old))
		}
		if !purge && left == 0 {
			t.Fatal("without purge no old ciphertext was left: this test no longer shows what purge removes")
		}
	})
}

// sample returns the first column of a query's rows as strings.
func (f *fixture) sample(query string) []string {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, string(v))
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}
