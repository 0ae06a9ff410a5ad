package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// benchTable is the table every scenario rewrites: SPEC §8's shape.
const benchTable = "t"

// pgCreateTable and pgLoadRows build SPEC §8's table server-side: id bigint
// primary key, ssn char(11), email varchar(64) of 20–27 bytes (26 on
// average at 1M rows), notes text of 200 bytes. md5 makes the values
// deterministic and incompressible enough that no value is compressed.
const (
	pgCreateTable = `CREATE TABLE t (id bigint PRIMARY KEY, ssn char(11), email varchar(64), notes text)`
	pgLoadRows    = `INSERT INTO t (id, ssn, email, notes)
SELECT i,
       to_char(i % 1000, 'FM000') || '-' || to_char((i / 1000) % 100, 'FM00') || '-' || to_char(i % 10000, 'FM0000'),
       'u' || i || '.' || left(md5(i::text), 6) || '@example.com',
       repeat(md5(i::text), 6) || left(md5((-i)::text), 8)
FROM generate_series(1, $1::bigint) AS i`
	// pgBenchKeyHex is pgcrypto's AES-256 key: a fixed benchmark value.
	pgBenchKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	// Baselines of SPEC §8, each run as one statement in autocommit.
	pgUpdateSQL   = `UPDATE t SET copy = convert_to(email, 'UTF8')`
	pgPgcryptoSQL = `UPDATE t SET copy = encrypt_iv(convert_to(email, 'UTF8'), decode('` + pgBenchKeyHex +
		`', 'hex'), gen_random_bytes(16), 'aes-cbc/pad:pkcs')`
)

// Postgres runs the PostgreSQL scenarios, each in a database of its own
// on the cluster of the admin DSN, dropped afterwards.
type Postgres struct {
	AdminDSN string
	admin    *sql.DB
	// postmaster is the server's main process when it runs on this
	// machine, for reading the server's CPU time; 0 when unknown.
	postmaster int
}

// OpenPostgres connects to the cluster.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	p := &Postgres{AdminDSN: dsn, admin: db}
	var pid int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err == nil {
		p.postmaster = parentPID(pid)
	}
	return p, nil
}

// Close closes the admin connection.
func (p *Postgres) Close() error { return p.admin.Close() }

// Settings describes the server for the report.
func (p *Postgres) Settings(ctx context.Context) (string, error) {
	var version string
	if err := p.admin.QueryRowContext(ctx, "SHOW server_version").Scan(&version); err != nil {
		return "", err
	}
	var parts []string
	for _, name := range []string{"fsync", "synchronous_commit", "max_wal_size", "shared_buffers", "checkpoint_timeout"} {
		var v string
		if err := p.admin.QueryRowContext(ctx, "SHOW "+name).Scan(&v); err != nil {
			return "", err
		}
		parts = append(parts, name+"="+v)
	}
	return "PostgreSQL " + version + ": " + strings.Join(parts, ", "), nil
}

// database creates an empty database for one scenario and returns its DSN
// and a connection; drop removes it.
func (p *Postgres) database(ctx context.Context, name string) (dsn string, db *sql.DB, drop func(), err error) {
	name = "colcrypt_bench_" + name
	if _, err := p.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", nil, nil, err
	}
	if _, err := p.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, nil, err
	}
	if dsn, err = withDatabase(p.AdminDSN, name); err != nil {
		return "", nil, nil, err
	}
	if db, err = sql.Open("pgx", dsn); err != nil {
		return "", nil, nil, err
	}
	drop = func() {
		db.Close()
		_, _ = p.admin.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return dsn, db, drop, nil
}

// load creates and fills the table, then settles it: VACUUM (FREEZE,
// ANALYZE) sets every hint bit and the visibility map, and CHECKPOINT
// writes every dirty page, so that each scenario starts from the same
// state and none pays for the load.
func (p *Postgres) load(ctx context.Context, db *sql.DB, rows int64, extra ...string) error {
	if _, err := db.ExecContext(ctx, pgCreateTable); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if _, err := db.ExecContext(ctx, pgLoadRows, rows); err != nil {
		return fmt.Errorf("load %d rows: %w", rows, err)
	}
	for _, s := range append(extra, "VACUUM (FREEZE, ANALYZE) t", "CHECKPOINT") {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// Statement times one server-side UPDATE of the whole table on a freshly
// loaded copy of it. setup runs before loading settles (not timed).
func (p *Postgres) Statement(ctx context.Context, id, label string, rows int64, stmt string, setup ...string) (Measurement, error) {
	m := Measurement{ID: id, Label: label, Rows: rows, Baseline: id == PGUpdate}
	_, db, drop, err := p.database(ctx, strings.TrimPrefix(id, "pg."))
	if err != nil {
		return m, err
	}
	defer drop()
	if err := p.load(ctx, db, rows, setup...); err != nil {
		return m, err
	}
	cpu0 := p.serverCPU()
	start := time.Now()
	res, err := db.ExecContext(ctx, stmt)
	m.Elapsed = time.Since(start)
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	if n, _ := res.RowsAffected(); n != rows {
		return m, fmt.Errorf("%s: updated %d rows, want %d", label, n, rows)
	}
	m.ServerCPU = p.serverCPU() - cpu0
	return m, nil
}

// Colcrypt runs `colcrypt apply` (with args, e.g. --until copy) on a
// freshly loaded table.
func (p *Postgres) Colcrypt(ctx context.Context, cc *Colcrypt, fx *Fixture, ps PlanSettings, name string, rows int64, args ...string) (*RunResult, error) {
	dsn, db, drop, err := p.database(ctx, name)
	if err != nil {
		return nil, err
	}
	defer drop()
	if err := p.load(ctx, db, rows); err != nil {
		return nil, err
	}
	plan, err := fx.WritePlan("pg-"+name, "postgres", "public."+benchTable, ps)
	if err != nil {
		return nil, err
	}
	cpu0 := p.serverCPU()
	res, err := cc.Apply(ctx, "pg-"+name, plan, dsn, args...)
	if res != nil {
		res.ServerCPU = p.serverCPU() - cpu0
	}
	return res, err
}

// serverCPU is the CPU time the server's processes have used so far (the
// postmaster, its children, and its reaped children), or 0 when the
// server is not a local process this user can read.
//
// A child the postmaster reaps while the others are read would be counted
// in neither its reaped children nor the live ones: whole backends went
// missing that way (a 1M-row copy measured at 2.5 s of server CPU against
// its usual 7 to 9). So the reaped total is read before and after the
// children, and all of it again until the two agree.
func (p *Postgres) serverCPU() time.Duration {
	if p.postmaster == 0 {
		return 0
	}
	for range 20 {
		own, reaped, ok := procCPU(p.postmaster)
		if !ok {
			return 0
		}
		live, ok := childrenCPU(p.postmaster)
		if !ok {
			return 0
		}
		if _, again, ok := procCPU(p.postmaster); ok && again == reaped {
			return own + reaped + live
		}
	}
	return 0
}

// childrenCPU is the CPU time the live children of a process have used.
func childrenCPU(parent int) (time.Duration, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != parent {
			continue
		}
		if c, _, ok := procCPU(pid); ok {
			total += c
		}
	}
	return total, true
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// parentPID is the parent of a local process, 0 when unknown.
func parentPID(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procCPU returns a process's own CPU time and that of its reaped children.
func procCPU(pid int) (own, children time.Duration, ok bool) {
	f := procStat(pid)
	// Fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	if len(f) < 15 {
		return 0, 0, false
	}
	var v [4]int64
	for i := range v {
		n, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil {
			return 0, 0, false
		}
		v[i] = n
	}
	tick := time.Second / clockTicks
	return time.Duration(v[0]+v[1]) * tick, time.Duration(v[2]+v[3]) * tick, true
}

// withDatabase returns dsn, in URL or keyword/value form, naming another
// database.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("the PostgreSQL DSN is not a valid URL")
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}
