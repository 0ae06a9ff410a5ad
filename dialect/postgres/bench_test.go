package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sync/errgroup"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/schema"
)

// benchChunkRows is the engine's default batch_rows.
const benchChunkRows = 5000

// chunkWriter writes one chunk of (id, ciphertext, IV) rows of table t in
// a transaction, with a checkpoint insert as the engine does.
type chunkWriter func(ctx context.Context, db *sql.DB, rows [][]any) error

const benchCheckpoint = `INSERT INTO ckpt (lo, n) VALUES ($1, $2)`

func unnestWriter(d postgres.Dialect) chunkWriter {
	return func(ctx context.Context, db *sql.DB, rows [][]any) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		u := dialect.Update{Table: schema.TableName{Name: "t"}, Key: []string{"id"}, KeyTypes: []string{"bigint"},
			Set: []string{"ct", "iv"}, Rows: rows}
		if err := d.BulkUpdate(ctx, tx, u); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, benchCheckpoint, rows[0][0], len(rows)); err != nil {
			return err
		}
		return tx.Commit()
	}
}

// copyWriter is the alternative the SPEC's table names: COPY into a
// temporary table, then UPDATE ... FROM it. It needs the pgx connection,
// which database/sql only hands out through (*sql.Conn).Raw, not inside a
// *sql.Tx, so the migration engine could not use it as the contract stands.
func copyWriter() chunkWriter {
	return func(ctx context.Context, db *sql.DB, rows [][]any) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			pc := dc.(*stdlib.Conn).Conn()
			tx, err := pc.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS stage (k bigint, ct bytea, iv bytea) ON COMMIT DELETE ROWS`); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, []string{"k", "ct", "iv"}, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE t SET ct = s.ct, iv = s.iv FROM stage s WHERE t.id = s.k`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, benchCheckpoint, rows[0][0], len(rows)); err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
	}
}

// rowWriter is the naive client: one prepared UPDATE per row, in the
// chunk's transaction.
func rowWriter() chunkWriter {
	return func(ctx context.Context, db *sql.DB, rows [][]any) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		stmt, err := tx.PrepareContext(ctx, `UPDATE t SET ct = $1, iv = $2 WHERE id = $3`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, r[1], r[2], r[0]); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, benchCheckpoint, rows[0][0], len(rows)); err != nil {
			return err
		}
		return tx.Commit()
	}
}

// BenchmarkBulkUpdate writes chunks of 5,000 rows (bigint key, 25-byte
// ciphertext, 16-byte IV) into a 100,000-row table, one chunk per
// iteration, and reports rows per second for each way to write.
func BenchmarkBulkUpdate(b *testing.B) {
	const tableRows = 100_000
	d, db := openDB(b,
		`CREATE TABLE t (id bigint PRIMARY KEY, email varchar(64), ct bytea, iv bytea)`,
		`INSERT INTO t (id, email) SELECT g, 'user' || g || '@example.com' FROM generate_series(1, `+strconv.Itoa(tableRows)+`) g`,
		`CREATE TABLE ckpt (lo bigint, n int)`,
		`VACUUM ANALYZE t`)
	chunks := make([][][]any, tableRows/benchChunkRows)
	for c := range chunks {
		for i := range benchChunkRows {
			ct, iv := make([]byte, 25), make([]byte, 16)
			rand.Read(ct) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
			rand.Read(iv) //nolint:errcheck // as above
			chunks[c] = append(chunks[c], []any{int64(c*benchChunkRows + i + 1), ct, iv})
		}
	}
	for _, w := range []struct {
		name  string
		write chunkWriter
	}{
		{"unnest", unnestWriter(d)},
		{"copy-temp-update", copyWriter()},
		{"row-by-row", rowWriter()},
	} {
		b.Run(w.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				if err := w.write(b.Context(), db, chunks[n%len(chunks)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n*benchChunkRows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkCopyPhase measures a whole copy phase the way SPEC §8 does, on
// COLCRYPT_BENCH_ROWS rows (default 200,000; the SPEC uses 1,000,000):
// the plain server-side rewrite A, and the client path (keyset chunks of
// 5,000, 2 workers, read, AES-256-CBC with random IVs, write with a
// checkpoint) through BulkUpdate and through COPY. Run with -benchtime=1x.
func BenchmarkCopyPhase(b *testing.B) {
	total := 200_000
	if s := os.Getenv("COLCRYPT_BENCH_ROWS"); s != "" {
		var err error
		if total, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	d, db := openDB(b,
		`CREATE TABLE base (id bigint PRIMARY KEY, ssn char(11), email varchar(64), notes text)`,
		fmt.Sprintf(`INSERT INTO base SELECT g, lpad(g::text, 11, '0'), 'user' || g || '@example.com',
			repeat(md5(g::text), 6) FROM generate_series(1, %d) g`, total),
		`CREATE TABLE ckpt (lo bigint, n int)`)
	fresh := func(b *testing.B) {
		b.Helper()
		for _, s := range []string{`DROP TABLE IF EXISTS t`, `CREATE TABLE t AS SELECT * FROM base`,
			`ALTER TABLE t ADD PRIMARY KEY (id)`, `ALTER TABLE t ADD COLUMN ct bytea, ADD COLUMN iv bytea`,
			`VACUUM ANALYZE t`, `CHECKPOINT`} {
			if _, err := db.ExecContext(b.Context(), s); err != nil {
				b.Fatalf("%s: %v", s, err)
			}
		}
	}
	b.Run("A-server-update", func(b *testing.B) {
		fresh(b)
		for b.Loop() {
			if _, err := db.ExecContext(b.Context(), `UPDATE t SET ct = convert_to(email, 'UTF8')`); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6/float64(total), "s/1Mrows")
	})
	key := make([]byte, 32)
	rand.Read(key) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	for _, w := range []struct {
		name  string
		write chunkWriter
	}{
		{"unnest-2-workers", unnestWriter(d)},
		{"copy-2-workers", copyWriter()},
	} {
		b.Run(w.name, func(b *testing.B) {
			fresh(b)
			for b.Loop() {
				if err := copyPhase(b.Context(), db, total, key, w.write); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6/float64(total), "s/1Mrows")
		})
	}
}

// copyPhase encrypts email into ct/iv over the whole table in chunks of
// benchChunkRows ids with two workers.
func copyPhase(ctx context.Context, db *sql.DB, total int, key []byte, write chunkWriter) error {
	const workers = 2
	g, ctx := errgroup.WithContext(ctx)
	los := make(chan int, workers)
	g.Go(func() error {
		defer close(los)
		for lo := 0; lo < total; lo += benchChunkRows {
			select {
			case los <- lo:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range workers {
		c, err := cipher.NewColumn(cipher.Params{Suite: cipher.AES256CBC, IV: cipher.IVField, Versioned: true},
			map[uint16][]byte{1: key}, 1, nil)
		if err != nil {
			return err
		}
		g.Go(func() error {
			for lo := range los {
				start := time.Now()
				rows, err := db.QueryContext(ctx, `SELECT id, (email)::text FROM t WHERE id > $1 AND id <= $2 ORDER BY id`, lo, lo+benchChunkRows)
				if err != nil {
					return err
				}
				var out [][]any
				for rows.Next() {
					var id int64
					var email string
					if err := rows.Scan(&id, &email); err != nil {
						rows.Close()
						return err
					}
					ct, iv, err := c.Encrypt([]byte(email))
					if err != nil {
						rows.Close()
						return err
					}
					out = append(out, []any{id, ct, iv})
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return err
				}
				if err := write(ctx, db, out); err != nil {
					return fmt.Errorf("chunk at %d (%v): %w", lo, time.Since(start), err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}
