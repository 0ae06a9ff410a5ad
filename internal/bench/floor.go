package bench

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sync/errgroup"
	"modernc.org/sqlite"
)

// The floors are ways of rewriting the column that do less than colcrypt
// and cannot be beaten by it: they show how far a target is reachable at
// all by a job that rewrites the rows in place, as SPEC §4's does.
const (
	// PGClient is SPEC §8's "careful Go client" without any encryption:
	// keyset chunks read by one walker, written by floorWriters
	// connections with one UPDATE … FROM unnest(…) per chunk, each its
	// own transaction. Every in-place client copy does at least this.
	PGClient = "pg.client"
	// PGRebuild is the least an offline job on PostgreSQL does, still
	// without any encryption: the same walker, which also reads the other
	// columns as colcrypt's does (in binary, in one record), and writers, but each chunk goes into a new table
	// (one COPY in binary of the whole rows, its key index in place) and
	// is read back and compared in its transaction before it commits, and
	// the new table is analyzed at the end. colcrypt's copy does all this
	// and more (encryption, decryption, checkpoints, the read-only guard's
	// checks).
	PGRebuild = "pg.rebuild"
	// SQLiteGoCall is the SQLite baseline's UPDATE with one call into Go
	// per row (a registered function returning its argument): the least a
	// value costs to pass through colcrypt's process once. An apply passes
	// each value through at least twice (encrypt, then verify).
	SQLiteGoCall = "sqlite.gocall"
)

const (
	floorChunkRows = 5000
	floorWriters   = 2
	// floorFunction is the SQL name of the pass-through Go function.
	floorFunction = "colcrypt_bench_passthrough"
)

// Client times PGClient on a freshly loaded table.
func (p *Postgres) Client(ctx context.Context, rows int64) (Measurement, error) {
	m := Measurement{ID: PGClient, Rows: rows,
		Label: fmt.Sprintf("floor: client without encryption (chunks of %d, %d writers, UPDATE … FROM unnest)", floorChunkRows, floorWriters)}
	return p.floor(ctx, m, "client", "ALTER TABLE t ADD COLUMN copy bytea", clientCopy)
}

// Rebuild times PGRebuild on a freshly loaded table.
func (p *Postgres) Rebuild(ctx context.Context, rows int64) (Measurement, error) {
	m := Measurement{ID: PGRebuild, Rows: rows,
		Label: fmt.Sprintf("floor: rebuild without encryption (chunks of %d, %d writers, COPY of whole rows into a new table, read back, ANALYZE)", floorChunkRows, floorWriters)}
	return p.floor(ctx, m, "rebuild", rebuildFloorTable, func(ctx context.Context, db *sql.DB) (int64, error) {
		n, err := walkChunks(ctx, db, rebuildCarried, rebuildChunk)
		if err == nil {
			_, err = db.ExecContext(ctx, "ANALYZE t_new")
		}
		return n, err
	})
}

// floor times run, which must write every row, on a freshly loaded table
// of its own database, after setup.
func (p *Postgres) floor(ctx context.Context, m Measurement, name, setup string, run func(context.Context, *sql.DB) (int64, error)) (Measurement, error) {
	_, db, drop, err := p.database(ctx, name)
	if err != nil {
		return m, err
	}
	defer drop()
	if err := p.load(ctx, db, m.Rows, setup); err != nil {
		return m, err
	}
	// The walker's connection and the writers', none ever closed to be
	// opened again.
	db.SetMaxOpenConns(floorWriters + 1)
	db.SetMaxIdleConns(floorWriters + 1)
	cpu0 := p.serverCPU()
	start := time.Now()
	n, err := run(ctx, db)
	m.Elapsed = time.Since(start)
	if err != nil {
		return m, fmt.Errorf("%s: %w", m.Label, err)
	}
	if n != m.Rows {
		return m, fmt.Errorf("%s: wrote %d rows, want %d", m.Label, n, m.Rows)
	}
	m.ServerCPU = p.serverCPU() - cpu0
	return m, nil
}

// rebuildFloorTable is the new table of PGRebuild, email's bytes in place
// of email, with the key's index only, as colcrypt's replacement has
// during the copy.
const rebuildFloorTable = `CREATE TABLE t_new (id bigint PRIMARY KEY, ssn char(11), email bytea, notes text)`

// rebuildCarried reads t's other columns as colcrypt's walker does for a
// rebuilt table: each in binary, as its type's send function gives it.
var rebuildCarried = []string{"pg_catalog.int8send(id)", "pg_catalog.bpcharsend(ssn)", "pg_catalog.textsend(notes)"}

// rebuildChunk writes one chunk into t_new with one COPY in binary and
// reads it back, in one transaction.
func rebuildChunk(ctx context.Context, db *sql.DB, c floorChunk) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	lo, hi := c.ids[0], c.ids[len(c.ids)-1]
	buf := []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	for i, v := range c.vals {
		buf = binary.BigEndian.AppendUint16(buf, 4)
		for _, f := range c.carried[i] {
			if f == nil {
				buf = binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(f)))
			buf = append(buf, f...)
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
		buf = append(buf, v...)
	}
	buf = append(buf, 0xFF, 0xFF)
	var written int64
	err = conn.Raw(func(dc any) error {
		tag, err := dc.(*stdlib.Conn).Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), "COPY t_new (id, ssn, notes, email) FROM STDIN (FORMAT binary)")
		written = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	rs, err := tx.QueryContext(ctx, `SELECT id, email FROM t_new WHERE id BETWEEN $1 AND $2 ORDER BY id`, lo, hi)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	i := 0
	for ; rs.Next(); i++ {
		var id int64
		var v []byte
		if err := rs.Scan(&id, &v); err != nil {
			return 0, err
		}
		if i >= len(c.ids) || id != c.ids[i] || !bytes.Equal(v, c.vals[i]) {
			return 0, fmt.Errorf("row %d of the chunk at id %d reads back other than written", i+1, lo)
		}
	}
	if err := rs.Err(); err != nil {
		return 0, err
	}
	if i != len(c.ids) {
		return 0, fmt.Errorf("the chunk at id %d reads back %d rows, %d written", lo, i, len(c.ids))
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return written, nil
}

type floorChunk struct {
	ids     []int64
	vals    [][]byte
	carried [][][]byte // each row's other columns (rebuildCarried)
}

// clientCopy walks t by id and writes each chunk's bytes back into copy.
func clientCopy(ctx context.Context, db *sql.DB) (int64, error) {
	return walkChunks(ctx, db, nil, func(ctx context.Context, db *sql.DB, c floorChunk) (int64, error) {
		res, err := db.ExecContext(ctx, `UPDATE t SET copy = v.c FROM unnest($1::bigint[], $2::bytea[]) AS v(k, c)
WHERE t.id = v.k AND t.id BETWEEN $3 AND $4`, c.ids, c.vals, c.ids[0], c.ids[len(c.ids)-1])
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// walkChunks walks t by id, in chunks of the e-mail's bytes (and of
// carried: expressions read with each row), and has floorWriters writers
// write them; it returns the rows they wrote.
func walkChunks(ctx context.Context, db *sql.DB, carried []string, write func(context.Context, *sql.DB, floorChunk) (int64, error)) (int64, error) {
	g, ctx := errgroup.WithContext(ctx)
	chunks := make(chan floorChunk, floorWriters)
	extra := ""
	for _, c := range carried {
		extra += ", " + c
	}
	g.Go(func() error {
		defer close(chunks)
		last := int64(0)
		for {
			rs, err := db.QueryContext(ctx, `SELECT id, convert_to(email, 'UTF8')`+extra+` FROM t WHERE id > $1 ORDER BY id LIMIT $2`, last, floorChunkRows)
			if err != nil {
				return err
			}
			var c floorChunk
			for rs.Next() {
				var id int64
				var v []byte
				more := make([][]byte, len(carried))
				dest := []any{&id, &v}
				for i := range more {
					dest = append(dest, &more[i])
				}
				if err := rs.Scan(dest...); err != nil {
					rs.Close()
					return err
				}
				c.ids, c.vals, c.carried = append(c.ids, id), append(c.vals, v), append(c.carried, more)
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return err
			}
			if len(c.ids) == 0 {
				return nil
			}
			last = c.ids[len(c.ids)-1]
			select {
			case chunks <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	var mu sync.Mutex
	var done int64
	for range floorWriters {
		g.Go(func() error {
			for c := range chunks {
				n, err := write(ctx, db, c)
				if err != nil {
					return err
				}
				mu.Lock()
				done += n
				mu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	return done, err
}

var registerFloor = sync.OnceValue(func() error {
	return sqlite.RegisterDeterministicScalarFunction(floorFunction, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		if s, ok := args[0].(string); ok {
			return []byte(s), nil
		}
		return args[0], nil
	})
})

// GoCall times SQLiteGoCall on a fresh copy of the table.
func (s *SQLite) GoCall(ctx context.Context, rows int64) (Measurement, error) {
	m := Measurement{ID: SQLiteGoCall, Label: "floor: B with one Go call per row, SET copy = " + floorFunction + "(email)", Rows: rows}
	if err := registerFloor(); err != nil {
		return m, err
	}
	return s.timeUpdate(ctx, m, "gocall", "UPDATE t SET copy = "+floorFunction+"(email)")
}
