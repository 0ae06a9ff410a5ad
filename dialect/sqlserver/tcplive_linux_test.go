package sqlserver

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConnectorDialsWithTCPLiveness dials through the dialer Open gives the
// driver, to a local listener (no server runs here), and reads the TCP
// options back from the socket: colcrypt's defaults, or the DSN's
// keepAlive as the idle time. The UDP of SQL Server's browser dials too.
func TestConnectorDialsWithTCPLiveness(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		dsn                                  string
		idle, interval, count, userTimeoutMS int
	}{
		{"sqlserver://colcrypt:secret@db.example:1433?database=app", 15, 5, 3, 30000},
		{"sqlserver://colcrypt:secret@db.example:1433?database=app&keepAlive=30", 15, 5, 3, 30000}, // the driver's default
		{"server=db.example;user id=colcrypt;password=secret;keepAlive=7", 7, 5, 3, 30000},
		{"server=db.example;user id=colcrypt;password=secret;keepAlive=0", -1, -1, -1, 30000}, // no probes
	} {
		c, err := newConnector(tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := c.Dialer.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		rc, err := conn.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		if err := rc.Control(func(fd uintptr) {
			for name, opt := range map[string][2]int{
				"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
				"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
				"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
				"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
				"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
			} {
				v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				got[name] = v
			}
		}); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": tc.idle, "TCP_KEEPINTVL": tc.interval, "TCP_KEEPCNT": tc.count,
			"TCP_USER_TIMEOUT": tc.userTimeoutMS}
		if tc.idle < 0 {
			// Off: the other options are the system's, unchecked.
			want = map[string]int{"SO_KEEPALIVE": 0, "TCP_USER_TIMEOUT": tc.userTimeoutMS}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %d, want %d", tc.dsn, k, got[k], v)
			}
		}
		udp, err := c.Dialer.DialContext(context.Background(), "udp", "127.0.0.1:1434")
		if err != nil {
			t.Errorf("%s: the browser's UDP dial failed: %v", tc.dsn, err)
		} else {
			udp.Close()
		}
	}
}
