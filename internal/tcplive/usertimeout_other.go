//go:build !linux

package tcplive

import "syscall"

// setUserTimeout does nothing outside Linux, which alone has
// TCP_USER_TIMEOUT: there keepalive bounds the wait for an answer from a
// vanished server, and the kernel's retransmissions the wait for an
// acknowledgement.
func setUserTimeout(syscall.RawConn, int) error { return nil }
