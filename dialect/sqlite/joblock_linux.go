package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/colcrypt/colcrypt/dialect"
)

// lockTables takes one open-file-description lock (F_OFD_SETLK) on one
// byte of the lock file per table, at an offset from the hash of its name:
// plans on different tables of one database run side by side, while two
// runs on one table exclude each other, in one process too (OFD locks
// belong to the open file, not to the process as POSIX record locks do).
// The bytes need not exist; the file stays empty.
func lockTables(path string, names []string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the job lock file: %w", err)
	}
	for _, name := range names {
		h := dialect.JobLockHash(name)
		lk := unix.Flock_t{
			Type:   unix.F_WRLCK,
			Whence: io.SeekStart,
			// 62 bits: Start+Len stays below the largest file offset.
			Start: int64(binary.BigEndian.Uint64(h[:8]) >> 2),
			Len:   1,
		}
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			f.Close()
			return nil, &dialect.LockHeldError{Name: name}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}
