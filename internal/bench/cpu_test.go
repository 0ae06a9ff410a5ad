package bench

import (
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// TestServerCPUNeverLosesAReapedChild measures this test's process as if it
// were the postmaster while its children burn CPU, exit and are reaped at
// random moments. CPU time used can only grow, so any reading lower than
// the one before it lost a child that was reaped during the reading.
func TestServerCPUNeverLosesAReapedChild(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here: serverCPU reads the process tree from it")
	}
	p := &Postgres{postmaster: os.Getpid()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A child that burns about 30 ms of CPU, then is reaped.
				cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
				if err := cmd.Run(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	last, drops, readings := p.serverCPU(), 0, 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); readings++ {
		now := p.serverCPU()
		if now < last {
			drops++
			t.Logf("reading %d: %v after %v", readings, now, last)
		}
		last = max(last, now)
	}
	close(stop)
	wg.Wait()
	if last == 0 {
		t.Fatal("serverCPU read nothing")
	}
	if drops > 0 {
		t.Fatalf("%d of %d readings went backwards: children reaped during a reading were lost", drops, readings)
	}
}
