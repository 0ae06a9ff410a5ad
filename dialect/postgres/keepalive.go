package postgres

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/colcrypt/colcrypt/internal/tcplive"
)

// Limits of the keepalive settings (Linux's: the kernel refuses more with
// EINVAL, which would only show at the first dial).
const (
	maxKeepaliveSeconds = 32767
	maxKeepaliveCount   = 127
)

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
func takeTCPSettings(params map[string]string) (tcplive.Settings, error) {
	s := tcplive.Defaults()
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
	take(kwKeepalives, 1, "0 (off) or 1 (on)", func(n int64) { s.Keepalive.Enable = n == 1 })
	take(kwKeepalivesIdle, maxKeepaliveSeconds, upTo("seconds", maxKeepaliveSeconds), seconds(&s.Keepalive.Idle))
	take(kwKeepalivesInterval, maxKeepaliveSeconds, upTo("seconds", maxKeepaliveSeconds), seconds(&s.Keepalive.Interval))
	take(kwKeepalivesCount, maxKeepaliveCount, upTo("probes", maxKeepaliveCount), func(n int64) {
		s.Keepalive.Count = int(n)
		if n == 0 {
			s.Keepalive.Count = -1
		}
	})
	take(kwTCPUserTimeout, math.MaxInt32, upTo("milliseconds", math.MaxInt32), func(n int64) {
		s.UserTimeout = time.Duration(n) * time.Millisecond
	})
	if len(errs) > 0 {
		return s, fmt.Errorf("invalid %s", strings.Join(errs, "; "))
	}
	return s, nil
}
