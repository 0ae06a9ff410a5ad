package tcplive

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT, which the standard library does
// not offer: how long sent data may go unacknowledged (and, with
// keepalive, how long probes may go unanswered) before the kernel drops
// the connection. Set before connect, it bounds the handshake too.
func setUserTimeout(c syscall.RawConn, ms int) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set TCP_USER_TIMEOUT: %w", os.NewSyscallError("setsockopt", serr))
	}
	return nil
}
