package migrate_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/migrate"
)

// TestCopyEndsWithSmallChunks: the copy's recorded chunks, walked from the
// start of the table, end small: each holds at most the rows left shared
// among the workers (or a quarter of batch_rows), so the workers finish
// together, and together they hold every row once. At debug level (-v)
// the log has a line per chunk with its rows and time, and no value.
func TestCopyEndsWithSmallChunks(t *testing.T) {
	const rows, batch, workers = 4000, 400, 2
	f := newFixture(t, customersSetup(rows)...)
	p := customersPlan(f, "plan.yaml", "")
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, err := f.engine(p, f.ks, migrate.Options{Until: "copy", Workers: workers, BatchRows: batch, Log: log}).Apply(t.Context()); err != nil {
		t.Fatal(err)
	}

	db := f.raw()
	defer db.Close()
	byLo := map[string][2]any{}
	rs, err := db.Query(`SELECT lo, COALESCE(hi, ''), rows_done FROM colcrypt_chunks WHERE phase = 'copy'`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var lo, hi string
		var n int64
		if err := rs.Scan(&lo, &hi, &n); err != nil {
			t.Fatal(err)
		}
		byLo[lo] = [2]any{hi, n}
	}
	rs.Close()

	var sizes []string
	left, lo, last := int64(rows), "", int64(0)
	for range len(byLo) {
		c, ok := byLo[lo]
		if !ok {
			t.Fatalf("no recorded chunk starts at %q", lo)
		}
		n := c[1].(int64)
		sizes = append(sizes, strconv.FormatInt(n, 10))
		if limit := max(left/workers, batch/4); n > limit {
			t.Errorf("a chunk holds %d rows with %d left; want at most %d", n, left, limit)
		}
		left -= n
		last = n
		if lo = c[0].(string); lo == "" {
			break
		}
	}
	if left != 0 || lo != "" {
		t.Errorf("the chunks hold %d rows and end at %q; want %d rows to the end of the table", rows-left, lo, rows)
	}
	if last > batch/4 {
		t.Errorf("the last chunk holds %d rows; want at most %d", last, batch/4)
	}
	t.Logf("chunk sizes in walk order: %s", strings.Join(sizes, " "))

	var lines, logRows int64
	for _, line := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		var rec struct {
			Msg, Table string
			Rows       int64
			Took       int64
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "chunk done" {
			lines++
			logRows += rec.Rows
			if rec.Table != "customers" || rec.Took <= 0 {
				t.Errorf("chunk line %s: want the table and the chunk's time", line)
			}
		}
	}
	if lines != int64(len(byLo)) || logRows != rows {
		t.Errorf("the debug log has %d chunk lines for %d rows; want %d lines for %d rows", lines, logRows, len(byLo), rows)
	}
	if strings.Contains(logged.String(), "@example.com") {
		t.Error("the debug log holds an e-mail address of the table")
	}
}

// TestChunksEndAtChunkBytes: on a table of wide rows, a chunk read ahead
// ends once its values hold Options.ChunkBytes, whatever batch_rows says,
// and the chunks still hold every row once.
func TestChunksEndAtChunkBytes(t *testing.T) {
	const rows, batch, chunkBytes = 300, 200, 10_000
	f := newFixture(t, `CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)`,
		`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < `+strconv.Itoa(rows)+`)
		INSERT INTO docs SELECT i, printf('%.1000c', 'x') FROM s`)
	p := f.plan("plan.yaml", planSpec{tables: []planTable{{name: "docs", columns: []planColumn{{name: "body"}}}}})
	if _, err := f.engine(p, f.ks, migrate.Options{Until: "copy", Workers: 1, BatchRows: batch, ChunkBytes: chunkBytes}).Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	db := f.raw()
	defer db.Close()
	var chunks, most, total int64
	if err := db.QueryRow(`SELECT COUNT(*), MAX(rows_done), SUM(rows_done) FROM colcrypt_chunks WHERE phase = 'copy'`).Scan(&chunks, &most, &total); err != nil {
		t.Fatal(err)
	}
	// Each row's body is 1,000 bytes: the tenth row of a chunk reaches
	// 10,000.
	if most > chunkBytes/1000 {
		t.Errorf("a chunk holds %d rows of 1,000 bytes; want at most %d with ChunkBytes %d", most, chunkBytes/1000, chunkBytes)
	}
	if total != rows {
		t.Errorf("the chunks hold %d rows; want %d", total, rows)
	}
	t.Logf("%d chunks, the largest of %d rows", chunks, most)
}
