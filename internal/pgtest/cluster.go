package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Cluster is a PostgreSQL cluster a test has to itself, so that it may
// crash and restart it without disturbing the tests that share the
// cluster of COLCRYPT_POSTGRES_DSN.
type Cluster struct {
	DSN  string // the postgres database, as superuser postgres
	bin  string // the folder of initdb and pg_ctl
	dir  string
	port int
	as   []string // runuser -u postgres -- when the test runs as root
}

const noBinaries = "no PostgreSQL server binaries (initdb): run ./scripts/test, which installs Debian's postgresql package"

// NewCluster creates and starts a cluster in a new folder; the test's
// cleanup stops it and deletes the folder. Without PostgreSQL's binaries
// the test is skipped, or fails when CI is set.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := serverBinaries()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(noBinaries)
		}
		t.Skip(noBinaries)
	}
	dir, err := os.MkdirTemp("", "colcrypt-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{bin: bin, dir: dir}
	t.Cleanup(func() {
		_ = c.pgCtl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	// initdb refuses to run as root: the cluster then belongs to postgres.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root, and %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	if c.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if out, err := c.command(filepath.Join(bin, "initdb"), "-D", c.data(), "-U", "postgres", "-A", "trust",
		"--no-sync", "-E", "UTF8", "--locale=C.UTF-8").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	c.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	c.Start(t)
	return c
}

// Start starts the cluster and waits until it accepts connections: after
// a Crash, once its recovery has replayed the write-ahead log. fsync=off
// loses nothing here: a Crash ends the server's processes, not the
// machine, so the operating system still holds every write they made.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.pgCtl("start", "-w", "-l", filepath.Join(c.dir, "server.log"),
		"-o", fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off", c.port, c.dir)); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		t.Fatalf("pgtest: start the cluster: %v\n%s", err, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	db, err := sql.Open("pgx", c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for {
		if err := db.PingContext(ctx); err == nil {
			return
		} else if ctx.Err() != nil {
			t.Fatalf("pgtest: the cluster does not accept connections: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Crash stops the cluster the way a crash would: every server process
// ends at once, without a checkpoint, and the next Start recovers from
// the write-ahead log.
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if err := c.pgCtl("stop", "-m", "immediate"); err != nil {
		t.Fatalf("pgtest: crash the cluster: %v", err)
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) pgCtl(args ...string) error {
	args = append([]string{"-D", c.data()}, args...)
	out, err := c.command(filepath.Join(c.bin, "pg_ctl"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", args[2], err, out)
	}
	return nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	if len(c.as) > 0 {
		return exec.Command(c.as[0], append(append(c.as[1:], name), args...)...)
	}
	return exec.Command(name, args...)
}

// serverBinaries finds the folder of initdb: Debian's versioned folders
// first (their binaries are not on PATH), then PATH.
func serverBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version first
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
