package migrate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestJobStateHoldsNothingDerivedFromPlaintextAlone: after cut-over the
// database holds ciphertext, and everything colcrypt keeps next to it (its
// colcrypt_* tables) must be useless without the keys (SPEC §3, §7). An
// unkeyed hash of a value is not: an SSN has 10^9 candidates, a card
// number fewer once its issuer is known, an e-mail is in a leaked list, so
// hashing every candidate and matching the stored hashes recovers the
// values, and equal hashes reveal equal values even under iv: field.
//
// The test plays the attacker with the obvious unkeyed constructions of the
// SQLite canonical encoding (storage-class tag, then the UTF-8 bytes) and
// looks for their first 4 bytes anywhere in colcrypt's tables (values hex
// decoded where they are hex). Checkpoint digests and per-value verify
// hashes must be keyed (an HMAC under a key derived from the column's data
// key) to pass.
func TestJobStateHoldsNothingDerivedFromPlaintextAlone(t *testing.T) {
	f := newFixture(t, customersSetup(200)...)
	f.exec(`CREATE TABLE lonely (id INTEGER PRIMARY KEY, ssn TEXT)`, `INSERT INTO lonely VALUES (1, '987-65-4321')`)
	p := f.plan("plan.yaml", planSpec{job: "  drop_defaults: true\n", tables: []planTable{
		{name: "customers", columns: []planColumn{{name: "ssn", iv: "column"}, {name: "email"}}},
		{name: "lonely", columns: []planColumn{{name: "ssn"}}},
	}})
	db := f.raw()
	plaintexts := map[string]bool{"987-65-4321": true}
	rows, err := db.Query(`SELECT ssn, email FROM customers`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ssn string
		var email *string
		if err := rows.Scan(&ssn, &email); err != nil {
			t.Fatal(err)
		}
		plaintexts[ssn] = true
		if email != nil {
			plaintexts[*email] = true
		}
	}
	rows.Close()
	db.Close()

	f.apply(p, migrate.Options{})

	haystack := f.colcryptState()
	// A 4-byte needle turns up by chance about once per 2^32 bytes, so a
	// few stray prefix matches mean nothing; a whole hash, or the prefixes
	// of many values, mean the values can be tested without a key.
	const chanceMatches = 4
	found, whole := 0, false
	matched := map[string]int{} // construction → values it matched
	for v := range plaintexts {
		hit := false
		canon := append([]byte{'t'}, v...)
		var length [8]byte
		binary.BigEndian.PutUint64(length[:], uint64(len(canon)))
		for name, msg := range map[string][]byte{
			"sha256(canonical)":               canon,
			"sha256(0x01 canonical)":          append([]byte{1}, canon...),
			"sha256(0x01 len canonical)":      append(append([]byte{1}, length[:]...), canon...),
			"sha256(value)":                   []byte(v),
			"sha256(0x01 len value) (no tag)": append(append([]byte{1}, binary.BigEndian.AppendUint64(nil, uint64(len(v)))...), v...),
		} {
			sum := sha256.Sum256(msg)
			if bytes.Contains(haystack, sum[:]) {
				matched["whole "+name]++
				hit, whole = true, true
			} else if bytes.Contains(haystack, sum[:4]) {
				matched[name]++
				hit = true
			}
		}
		if hit {
			found++
		}
	}
	if found > chanceMatches || whole {
		t.Errorf("colcrypt's tables hold unkeyed hashes of %d of %d plaintext values (%v): "+
			"anyone who can read the database can test candidate values against them without any key", found, len(plaintexts), matched)
	}
}

// colcryptState is every value of every colcrypt_* table, as bytes, with
// text that is hex also decoded.
func (f *fixture) colcryptState() []byte {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'colcrypt\_%' ESCAPE '\'`)
	if err != nil {
		f.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			f.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var out bytes.Buffer
	for _, table := range tables {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			f.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				f.t.Fatal(err)
			}
			for _, v := range vals {
				switch x := v.(type) {
				case []byte:
					out.Write(x)
				case string:
					out.WriteString(x)
					for _, word := range strings.FieldsFunc(x, func(r rune) bool {
						return !strings.ContainsRune("0123456789abcdefABCDEF", r)
					}) {
						if b, err := hex.DecodeString(word); err == nil {
							out.Write(b)
						}
					}
				}
				out.WriteByte(0)
			}
		}
		rows.Close()
	}
	return out.Bytes()
}

// TestJobStateHoldsNoPlaintextKeys: when the key that pages through a
// table is itself encrypted (a primary key or the only unique key, with
// iv: column), nothing colcrypt keeps or says may hold its plaintext
// values: not the chunk checkpoints (after cut-over their bounds would be
// the only plaintext left in the database), nor their hashes, nor verify's
// message naming a row that differs, nor the job's events. The
// checkpoints still do their work: a copy resumed after a lost chunk
// writes that chunk again and no other.
func TestJobStateHoldsNoPlaintextKeys(t *testing.T) {
	var numbers, values []string
	// Enough rows for 7 chunks however the chunker sizes them: it grows a
	// fast chunk up to 4 × batch_rows (160).
	for i := 0; i < 1000; i++ {
		n := fmt.Sprintf("4%03d-%04d-%04d-%04d", i, i*7%10000, i*13%10000, i*31%10000)
		numbers = append(numbers, n)
		values = append(values, fmt.Sprintf("('%s', 'holder %d')", n, i))
	}
	// SQLite pages through such a table by rowid, in every mode, so its
	// bounds hold no number (TestJobStateHoldsNoPlaintextKeysPostgres is
	// the case of an engine that pages by the key).
	for _, mode := range []string{"rebuilt", "in place", "online"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, `CREATE TABLE cards (number TEXT PRIMARY KEY, holder TEXT)`,
				`INSERT INTO cards VALUES `+strings.Join(values, ", "))
			original := f.snapshot()
			p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "cards", columns: []planColumn{{name: "number", iv: "column"}, {name: "holder"}}}}})
			opt := migrate.Options{BatchRows: 40, Workers: 2, InPlace: mode == "in place", Online: mode == "online"}
			leaks := func(when string, text []byte) {
				t.Helper()
				var leaked []string
				for _, n := range numbers {
					// The number itself, and the unkeyed hash an earlier
					// version keyed its checkpoints by: SHA-256 of the
					// encoded bound.
					h := sha256.Sum256([]byte(`["s` + n + `"]`))
					if bytes.Contains(text, []byte(n)) || bytes.Contains(text, h[:16]) {
						leaked = append(leaked, n)
					}
				}
				if len(leaked) > 0 {
					t.Errorf("%s: %d of %d card numbers can be read (e.g. %s)", when, len(leaked), len(numbers), leaked[0])
				}
			}

			until := opt
			until.Until = "copy"
			f.apply(p, until)
			chunks := f.chunkCount()
			if chunks < 7 {
				t.Fatalf("the copy recorded %d chunks, want at least 7 (1000 rows, at most 160 a chunk)", chunks)
			}
			leaks("after the copy, colcrypt's tables", f.colcryptState())
			// A lost checkpoint: the next apply writes that chunk again,
			// and only it.
			f.exec(`DELETE FROM colcrypt_chunks WHERE rowid = (SELECT rowid FROM colcrypt_chunks WHERE phase = 'copy' ORDER BY rowid LIMIT 1 OFFSET 3)`,
				`UPDATE colcrypt_job SET phase = 'prepare'`)
			f.apply(p, until)
			// The hole is filled by chunks of the resumed run's size, which
			// may be smaller than the lost one: the rows recorded, not the
			// chunks, must come out the same.
			if n, rows := f.chunkCount(), f.chunkRows(); n < chunks || rows != len(numbers) {
				t.Fatalf("after a lost checkpoint the copy recorded %d chunks of %d rows, want at least %d chunks of %d rows", n, rows, chunks, len(numbers))
			}

			// Verify names a row that differs without its number.
			table, column := "cards__colcrypt_new", "holder"
			if mode != "rebuilt" {
				table, column = "cards", "holder__colcrypt"
			}
			f.flipByte(table, column, 1, 20)
			err := f.verify(p).Err()
			if !errors.Is(err, migrate.ErrVerify) || !strings.Contains(err.Error(), "cards.holder at ") {
				t.Fatalf("verify of a changed value: %v, want a failure naming the row", err)
			}
			t.Logf("verify: %v", err)
			leaks("verify's message", []byte(err.Error()))
			leaks("the job's events", f.colcryptState())
			f.flipByte(table, column, 1, 20)

			f.apply(p, opt)
			f.wantEncrypted("cards", "number", "holder")
			leaks("after cut-over, colcrypt's tables", f.colcryptState())
			f.wantVerifiedAndReverted(p, original, int64(2*len(numbers)))
		})
	}
}

// chunkRows sums the rows of the copy's chunk checkpoints.
func (f *fixture) chunkRows() int {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT coalesce(sum(rows_done), 0) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// chunkCount counts the copy's chunk checkpoints.
func (f *fixture) chunkCount() int {
	f.t.Helper()
	db := f.raw()
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}
