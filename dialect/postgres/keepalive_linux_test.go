package postgres_test

import (
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sys/unix"

	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/internal/pgtest"
)

// tcpOptions are the liveness options of one connection's socket, as the
// kernel holds them.
type tcpOptions struct {
	keepalive, idle, interval, count, userTimeoutMS int
}

// socketOptions reads the options of the socket under one connection of
// db's pool.
func socketOptions(t *testing.T, db *sql.DB) tcpOptions {
	t.Helper()
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var o tcpOptions
	err = c.Raw(func(dc any) error {
		nc := dc.(*stdlib.Conn).Conn().PgConn().Conn()
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			return fmt.Errorf("the connection is a %T, not a TCP connection", nc)
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			return err
		}
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			for _, opt := range []struct {
				level, name int
				into        *int
			}{
				{unix.SOL_SOCKET, unix.SO_KEEPALIVE, &o.keepalive},
				{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, &o.idle},
				{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, &o.interval},
				{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, &o.count},
				{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, &o.userTimeoutMS},
			} {
				v, err := unix.GetsockoptInt(int(fd), opt.level, opt.name)
				if err != nil && gerr == nil {
					gerr = err
				}
				*opt.into = v
			}
		}); err != nil {
			return err
		}
		return gerr
	})
	if err != nil {
		t.Fatalf("read the socket's options: %v", err)
	}
	return o
}

// readSysctlInt reads a number from /proc/sys.
func readSysctlInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// withParams adds query parameters to a URL DSN.
func withParams(dsn, params string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + params
	}
	return dsn + "?" + params
}

// TestOpenSetsTCPLiveness reads the TCP options back from the sockets of
// connections that Open made: colcrypt's defaults, libpq's keywords for
// them (which the server must never see: it would refuse the connection),
// on the first host and on a fallback.
func TestOpenSetsTCPLiveness(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Port() == "" {
		t.Fatalf("the test needs a postgres:// URL DSN with a port: %v", err)
	}
	// Port 1 refuses at once: pgx goes on to the second host.
	fallback := *u
	fallback.Host = "127.0.0.1:1," + u.Host

	const custom = "keepalives_idle=7&keepalives_interval=3&keepalives_count=2&tcp_user_timeout=12000"
	// Linux's own defaults, where a keyword asks for the system's.
	sys := func(name string) int {
		t.Helper()
		v, err := readSysctlInt("/proc/sys/net/ipv4/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		dsn  string
		want tcpOptions
	}{
		{"defaults", dsn, tcpOptions{keepalive: 1, idle: 15, interval: 5, count: 3, userTimeoutMS: 30000}},
		{"libpq keywords", withParams(dsn, custom), tcpOptions{keepalive: 1, idle: 7, interval: 3, count: 2, userTimeoutMS: 12000}},
		{"libpq keywords, fallback host", withParams(fallback.String(), custom), tcpOptions{keepalive: 1, idle: 7, interval: 3, count: 2, userTimeoutMS: 12000}},
		{"system defaults", withParams(dsn, "keepalives_idle=0&keepalives_interval=0&keepalives_count=0&tcp_user_timeout=0"),
			tcpOptions{keepalive: 1, idle: sys("tcp_keepalive_time"), interval: sys("tcp_keepalive_intvl"), count: sys("tcp_keepalive_probes"), userTimeoutMS: 0}},
		// Without keepalive the other options are the system's: only
		// SO_KEEPALIVE is checked, and the user timeout still applies.
		{"keepalives off", withParams(dsn, "keepalives=0"), tcpOptions{keepalive: 0, userTimeoutMS: 30000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := postgres.Dialect{}.Open(t.Context(), tc.dsn)
			if err != nil {
				t.Fatalf("Open refused %s: %v", postgres.RedactDSN(tc.dsn), err)
			}
			defer db.Close()
			// The server accepted the session: no keyword reached it as a
			// run-time setting.
			var one int
			if err := db.QueryRowContext(t.Context(), "SELECT 1").Scan(&one); err != nil {
				t.Fatal(err)
			}
			got := socketOptions(t, db)
			if tc.want.keepalive == 0 {
				got.idle, got.interval, got.count = 0, 0, 0
			}
			if got != tc.want {
				t.Errorf("socket options %+v, want %+v", got, tc.want)
			}
		})
	}

	// A Unix socket has no TCP options: setting them must not fail its
	// connections.
	t.Run("unix socket", func(t *testing.T) {
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		var dirs string
		if err := admin.QueryRowContext(t.Context(), "SELECT current_setting('unix_socket_directories')").Scan(&dirs); err != nil {
			t.Fatal(err)
		}
		dir, _, _ := strings.Cut(dirs, ",")
		if dir = strings.TrimSpace(dir); !strings.HasPrefix(dir, "/") {
			t.Skipf("the server listens on no Unix socket (unix_socket_directories = %q)", dirs)
		}
		local := *u
		local.Host = ""
		q := local.Query()
		q.Set("host", dir)
		q.Set("port", u.Port())
		local.RawQuery = q.Encode()
		db, err := postgres.Dialect{}.Open(t.Context(), withParams(local.String(), custom))
		if err != nil {
			t.Fatalf("Open through the Unix socket in %s: %v", dir, err)
		}
		defer db.Close()
		c, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Raw(func(dc any) error {
			if nc := dc.(*stdlib.Conn).Conn().PgConn().Conn(); nc.RemoteAddr().Network() != "unix" {
				return fmt.Errorf("connected over %s, not a Unix socket", nc.RemoteAddr().Network())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenRefusesBadTCPSettings: a bad value of a libpq TCP keyword is
// refused before any connection, naming the keyword, and never showing
// the password.
func TestOpenRefusesBadTCPSettings(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pa55"
	for _, tc := range []struct{ dsn, keyword string }{
		{"postgres://colcrypt:" + secret + "@127.0.0.1:1/db?sslmode=disable&keepalives_count=x", "keepalives_count"},
		{"postgres://colcrypt:" + secret + "@127.0.0.1:1/db?keepalives=2", "keepalives"},
		{"postgres://colcrypt:" + secret + "@127.0.0.1:1/db?keepalives_idle=-1", "keepalives_idle"},
		{"postgres://colcrypt:" + secret + "@127.0.0.1:1/db?keepalives_interval=40000", "keepalives_interval"},
		{"host=127.0.0.1 port=1 password=" + secret + " tcp_user_timeout=1.5", "tcp_user_timeout"},
	} {
		db, err := postgres.Dialect{}.Open(t.Context(), tc.dsn)
		if err == nil {
			db.Close()
			t.Errorf("Open(%s) succeeded", postgres.RedactDSN(tc.dsn))
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.keyword+"=") {
			t.Errorf("the error does not name %s: %v", tc.keyword, err)
		}
		if strings.Contains(msg, "connect") {
			t.Errorf("Open tried to connect with a bad %s: %v", tc.keyword, err)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
