// Package tcplive makes the dialers of colcrypt's database connections
// notice a server that vanished without a reset (power loss, a network
// partition, a failover whose old address black-holes) in about 30 s, so
// that the migration engine's retry helper reconnects instead of the job
// hanging: keepalive probes notice it while colcrypt waits for an answer
// (15 s idle, then 3 probes 5 s apart), and TCP_USER_TIMEOUT while
// colcrypt's data goes unacknowledged (Linux would otherwise retransmit
// for about 15 minutes). Go's own default, 15 s idle and 9 probes 15 s
// apart, takes 150 s and does nothing for unacknowledged data.
package tcplive

import (
	"net"
	"strings"
	"syscall"
	"time"
)

// Defaults of Settings.
const (
	DefaultIdle        = 15 * time.Second
	DefaultInterval    = 5 * time.Second
	DefaultCount       = 3
	DefaultUserTimeout = 30 * time.Second
)

// Settings are the TCP liveness options of every connection of a pool.
type Settings struct {
	Keepalive   net.KeepAliveConfig // -1 in a field: the OS default
	UserTimeout time.Duration       // 0: the OS default
}

// Defaults gives colcrypt's settings.
func Defaults() Settings {
	return Settings{
		Keepalive:   net.KeepAliveConfig{Enable: true, Idle: DefaultIdle, Interval: DefaultInterval, Count: DefaultCount},
		UserTimeout: DefaultUserTimeout,
	}
}

// Dialer dials TCP with s, and other networks (Unix sockets, the UDP of
// SQL Server's browser) as the standard library does. timeout bounds the
// dial, 0 for none.
func (s Settings) Dialer(timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAliveConfig: s.Keepalive}
	if !s.Keepalive.Enable {
		d.KeepAlive = -1 // with Enable false, what turns the probes off
	}
	if s.UserTimeout > 0 {
		ms := int(s.UserTimeout.Milliseconds())
		d.Control = func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			return setUserTimeout(c, ms)
		}
	}
	return d
}
