//go:build unix && !linux

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/colcrypt/colcrypt/dialect"
)

// lockTables takes flock(2) on the whole lock file, where the kernel has
// no locks on byte ranges that belong to an open file (Linux's OFD locks):
// one job at a time per database file there, whatever its tables. The
// held error names no table (LockHeldError.Name ""): the other run may be
// working on any.
func lockTables(path string, _ []string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the job lock file: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, &dialect.LockHeldError{}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}
