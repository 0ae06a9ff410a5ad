package sqlite

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect/dialecttest"
)

// lockHolderVariable makes the test binary a child that takes the job
// lock of one table, says so, and waits to be killed
// (TestJobLockHolderProcess).
const lockHolderVariable = "COLCRYPT_TEST_JOBLOCK_HOLDER"

func openLockDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Dialect{}.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestJobLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	first, second := openLockDB(t, path), openLockDB(t, path)
	const people, orders = "\x00people", "\x00orders"

	release := dialecttest.MustLock(t, Dialect{}, first, people)
	dialecttest.MustBeHeld(t, Dialect{}, second, people)
	// All or none: with people held, a lock of both leaves orders free.
	dialecttest.MustBeHeld(t, Dialect{}, second, orders, people)
	dialecttest.MustLock(t, Dialect{}, second, orders)()
	// Two locks in one process exclude each other too, on one *sql.DB.
	dialecttest.MustBeHeld(t, Dialect{}, first, people)
	release()
	release() // a second release is harmless
	dialecttest.MustLock(t, Dialect{}, second, people, orders)()

	if _, err := os.Stat(path + lockFileSuffix); err != nil {
		t.Errorf("the lock file: %v", err)
	}
	if st, err := os.Stat(path + lockFileSuffix); err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("the lock file has mode %v, want 0600", st.Mode().Perm())
	}
}

func TestJobLockInMemory(t *testing.T) {
	db, err := Dialect{}.Open(t.Context(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	release := dialecttest.MustLock(t, Dialect{}, db, "\x00people")
	release()
}

// TestJobLockFreedWhenTheHolderIsKilled: a process killed with SIGKILL
// while it holds the lock leaves none behind, so the next run resumes at
// once.
func TestJobLockFreedWhenTheHolderIsKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	db := openLockDB(t, path)
	cmd := exec.Command(os.Args[0], "-test.run=^TestJobLockHolderProcess$")
	cmd.Env = append(os.Environ(), lockHolderVariable+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "locked" {
			t.Fatalf("the child holding the lock said %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not take the lock within 30s")
	}
	dialecttest.MustBeHeld(t, Dialect{}, db, "\x00people")
	dialecttest.MustLock(t, Dialect{}, db, "\x00orders")()

	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	dialecttest.MustLock(t, Dialect{}, db, "\x00people")()
}

// TestJobLockHolderProcess is the child of
// TestJobLockFreedWhenTheHolderIsKilled; it does nothing in a normal run.
func TestJobLockHolderProcess(t *testing.T) {
	path := os.Getenv(lockHolderVariable)
	if path == "" {
		t.Skip("the child process of TestJobLockFreedWhenTheHolderIsKilled")
	}
	db := openLockDB(t, path)
	dialecttest.MustLock(t, Dialect{}, db, "\x00people")
	fmt.Println("locked")
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}
