package postgres

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TCP liveness defaults. A server that vanishes without a reset (power
// loss, a network partition, a failover whose old address black-holes)
// must fail the connection in about 30 s, so that the retry helper
// reconnects instead of the job hanging: keepalive probes notice it while
// colcrypt waits for an answer (15 s idle, then 3 probes 5 s apart), and
// TCP_USER_TIMEOUT while colcrypt's data goes unacknowledged (Linux would
// otherwise retransmit for about 15 minutes). Go's own default, 15 s idle
// and 9 probes 15 s apart, takes 150 s and does nothing for unacknowledged
// data.
const (
	defaultKeepaliveIdle     = 15 * time.Second
	defaultKeepaliveInterval = 5 * time.Second
	defaultKeepaliveCount    = 3
	defaultUserTimeout       = 30 * time.Second
)

// Limits of the keepalive settings (Linux's: the kernel refuses more with
// EINVAL, which would only show at the first dial).
const (
	maxKeepaliveSeconds = 32767
	maxKeepaliveCount   = 127
)

// tcpSettings are the TCP options of every connection of a pool.
type tcpSettings struct {
	keepalive   net.KeepAliveConfig // -1 in a field: the OS default
	userTimeout time.Duration       // 0: the OS default
}

// libpq's DSN keywords for TCP liveness. pgx does not know them and would
// send them to the server as run-time settings, which it rejects with
// "unrecognized configuration parameter".
const (
	kwKeepalives         = "keepalives"
	kwKeepalivesIdle     = "keepalives_idle"
	kwKeepalivesInterval = "keepalives_interval"
	kwKeepalivesCount    = "keepalives_count"
	kwTCPUserTimeout     = "tcp_user_timeout"
)

// takeTCPSettings removes libpq's TCP keywords from params and returns the
// settings they ask for, colcrypt's defaults where absent. As in libpq, 0
// means the operating system's default, and keepalives=0 turns the probes
// off.
func takeTCPSettings(params map[string]string) (tcpSettings, error) {
	s := tcpSettings{
		keepalive: net.KeepAliveConfig{
			Enable:   true,
			Idle:     defaultKeepaliveIdle,
			Interval: defaultKeepaliveInterval,
			Count:    defaultKeepaliveCount,
		},
		userTimeout: defaultUserTimeout,
	}
	var errs []string
	take := func(kw string, limit int64, want string, set func(int64)) {
		v, ok := params[kw]
		if !ok {
			return
		}
		delete(params, kw)
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 || n > limit {
			errs = append(errs, fmt.Sprintf("%s=%q: want %s", kw, v, want))
			return
		}
		set(n)
	}
	upTo := func(unit string, limit int64) string {
		return fmt.Sprintf("a whole number of %s from 0 (the system default) to %d", unit, limit)
	}
	seconds := func(field *time.Duration) func(int64) {
		return func(n int64) {
			*field = time.Duration(n) * time.Second
			if n == 0 {
				*field = -1
			}
		}
	}
	take(kwKeepalives, 1, "0 (off) or 1 (on)", func(n int64) { s.keepalive.Enable = n == 1 })
	take(kwKeepalivesIdle, maxKeepaliveSeconds, upTo("seconds", maxKeepaliveSeconds), seconds(&s.keepalive.Idle))
	take(kwKeepalivesInterval, maxKeepaliveSeconds, upTo("seconds", maxKeepaliveSeconds), seconds(&s.keepalive.Interval))
	take(kwKeepalivesCount, maxKeepaliveCount, upTo("probes", maxKeepaliveCount), func(n int64) {
		s.keepalive.Count = int(n)
		if n == 0 {
			s.keepalive.Count = -1
		}
	})
	take(kwTCPUserTimeout, math.MaxInt32, upTo("milliseconds", math.MaxInt32), func(n int64) {
		s.userTimeout = time.Duration(n) * time.Millisecond
	})
	if len(errs) > 0 {
		return s, fmt.Errorf("invalid %s", strings.Join(errs, "; "))
	}
	return s, nil
}

// dialFunc dials with s. A connect_timeout from the DSN bounds the dial,
// as it does in pgx's own dialer.
func (s tcpSettings) dialFunc(connectTimeout time.Duration) pgconn.DialFunc {
	d := &net.Dialer{Timeout: connectTimeout, KeepAliveConfig: s.keepalive}
	if !s.keepalive.Enable {
		d.KeepAlive = -1 // with Enable false, what turns the probes off
	}
	if s.userTimeout > 0 {
		ms := int(s.userTimeout.Milliseconds())
		d.Control = func(network, _ string, c syscall.RawConn) error {
			// Unix sockets have no TCP options, and need none.
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			return setUserTimeout(c, ms)
		}
	}
	return d.DialContext
}
