package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	osexec "os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/colcrypt/colcrypt/dialect/postgres"
	"github.com/colcrypt/colcrypt/migrate"
)

// blackholePath is a network path to PostgreSQL that the test can cut
// without a reset, as a server's power loss or a partition does: the
// client's packets leave, nothing comes back, and no error says so.
//
// The client dials a relay listening in a network namespace of its own,
// across a veth pair; the relay forwards to the server. Taking the
// namespace's end of the pair down is the black hole: the root end loses
// its carrier and drops every packet, yet sends still succeed locally.
type blackholePath struct {
	t        *testing.T
	ns       string // the namespace
	nsLink   string // its end of the veth pair
	addr     string // the relay's address, host:port
	relay    *relay
	cleanups []func()
}

// blackholeNet is the /16 whose /30 subnets the paths use.
const blackholeNet = "10.213"

// newBlackholePath builds a path to the server at target (host:port) and
// removes it when the test ends. When it may not create network namespaces
// (not root, or no support for them) it skips the test, or fails it when CI
// is set, so that CI never passes by skipping.
func newBlackholePath(t *testing.T, target string) *blackholePath {
	t.Helper()
	if os.Geteuid() != 0 {
		blackholeUnavailable(t, "the black-hole test needs root, to create a network namespace and a veth pair: run the tests as root")
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b[:])
	p := &blackholePath{t: t, ns: "colcrypt-bh-" + id, nsLink: "ccbhn" + id}
	rootLink := "ccbhr" + id // ≤ 15 characters, as interface names must be
	if out, err := osexec.Command("ip", "netns", "add", p.ns).CombinedOutput(); err != nil {
		blackholeUnavailable(t, fmt.Sprintf("the black-hole test cannot create a network namespace (it needs iproute2's ip and a kernel with network namespaces): ip netns add: %v: %s", err, trimOut(out)))
	}
	t.Cleanup(func() { p.ip("netns", "del", p.ns) })
	rootIP, nsIP := freeSubnet(t)
	p.mustIP("link", "add", rootLink, "type", "veth", "peer", "name", p.nsLink, "netns", p.ns)
	// Deleting the namespace deletes the pair; this is in case it cannot.
	t.Cleanup(func() { p.ip("link", "del", rootLink) })
	p.mustIP("addr", "add", rootIP+"/30", "dev", rootLink)
	p.mustIP("link", "set", rootLink, "up")
	p.mustIP("-n", p.ns, "addr", "add", nsIP+"/30", "dev", p.nsLink)
	p.mustIP("-n", p.ns, "link", "set", p.nsLink, "up")
	p.mustIP("-n", p.ns, "link", "set", "lo", "up")
	// A fixed neighbour entry: a server behind a router has none to
	// resolve, and a failed resolution would fail new connections at once
	// with "no route to host", which a real black hole does not.
	mac := "02:cc:" + id[0:2] + ":" + id[2:4] + ":" + id[4:6] + ":02"
	p.mustIP("-n", p.ns, "link", "set", p.nsLink, "address", mac)
	p.mustIP("neigh", "replace", nsIP, "lladdr", mac, "dev", rootLink, "nud", "permanent")

	ln, err := listenInNetns("/var/run/netns/"+p.ns, net.JoinHostPort(nsIP, "0"))
	if err != nil {
		t.Fatalf("listen in namespace %s: %v", p.ns, err)
	}
	p.addr = ln.Addr().String()
	p.relay = startRelay(ln, target)
	t.Cleanup(p.relay.close)
	return p
}

// blackholeUnavailable skips the test with msg, or fails it when CI is
// set, as internal/pgtest does for a missing PostgreSQL.
func blackholeUnavailable(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// freeSubnet picks a /30 of blackholeNet that no interface of the host
// uses and returns its two addresses.
func freeSubnet(t *testing.T) (rootIP, nsIP string) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(256*64))
		if err != nil {
			t.Fatal(err)
		}
		third, fourth := n.Int64()/64, n.Int64()%64*4
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("%s.%d.%d/30", blackholeNet, third, fourth))
		clash := false
		for _, a := range addrs {
			if in, ok := a.(*net.IPNet); ok && (in.Contains(subnet.IP) || subnet.Contains(in.IP)) {
				clash = true
			}
		}
		if !clash {
			return fmt.Sprintf("%s.%d.%d", blackholeNet, third, fourth+1), fmt.Sprintf("%s.%d.%d", blackholeNet, third, fourth+2)
		}
	}
	t.Fatalf("no free /30 in %s.0.0/16", blackholeNet)
	return "", ""
}

func trimOut(out []byte) string { return strings.TrimSpace(string(out)) }

// ip runs ip(8) and reports whether it succeeded; a cleanup's failure is
// logged, not fatal.
func (p *blackholePath) ip(args ...string) bool {
	if out, err := osexec.Command("ip", args...).CombinedOutput(); err != nil {
		p.t.Logf("ip %s: %v: %s", strings.Join(args, " "), err, trimOut(out))
		return false
	}
	return true
}

func (p *blackholePath) mustIP(args ...string) {
	p.t.Helper()
	if !p.ip(args...) {
		p.t.Fatalf("ip %s failed", strings.Join(args, " "))
	}
}

// cut makes the path a black hole, and ends the server's sessions that
// came through it, as on a server that lost power: otherwise the chunk
// transactions cut off in flight would hold their locks until the server
// noticed, and the client's retries would wait for them. Nothing of this
// reaches the client: its packets and the relay's go nowhere.
func (p *blackholePath) cut() {
	p.t.Helper()
	p.mustIP("-n", p.ns, "link", "set", p.nsLink, "down")
	p.relay.cutAll()
}

// mend brings the path back.
func (p *blackholePath) mend() {
	p.t.Helper()
	p.mustIP("-n", p.ns, "link", "set", p.nsLink, "up")
}

// listenInNetns listens on addr in the network namespace at nsPath. A
// socket belongs to the namespace of the thread that created it, so the
// listener is created on a thread locked in that namespace, which then
// returns to its own.
func listenInNetns(nsPath, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Unlocked only once back in its own namespace: a goroutine that
		// ends locked takes its thread with it, so no other goroutine ever
		// runs in the wrong namespace.
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer own.Close()
		ns, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			if ln != nil {
				ln.Close()
			}
			done <- result{err: fmt.Errorf("setns back: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ln, lerr}
	}()
	r := <-done
	return r.ln, r.err
}

// relay forwards each connection it accepts to target.
type relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func startRelay(ln net.Listener, target string) *relay {
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", r.target)
		if err != nil {
			client.Close()
			continue
		}
		r.mu.Lock()
		r.conns[client], r.conns[server] = struct{}{}, struct{}{}
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer r.wg.Done()
			_, _ = io.Copy(dst, src)
			client.Close()
			server.Close()
			r.mu.Lock()
			delete(r.conns, client)
			delete(r.conns, server)
			r.mu.Unlock()
		}
		r.wg.Add(2)
		go pipe(server, client)
		go pipe(client, server)
	}
}

// cutAll closes every relayed connection, both ends.
func (r *relay) cutAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
}

func (r *relay) close() {
	r.ln.Close()
	r.cutAll()
	r.wg.Wait()
}

// Bounds of the black-hole test. colcrypt's TCP settings notice a dead
// server in about 30 s; Go's defaults, in 150 s at best.
const (
	blackholeDetection = 90 * time.Second
	blackholeRecovery  = 3 * time.Minute
)

// TestApplySurvivesBlackholedServer cuts the path to the server in the
// middle of the copy without a reset, as a power loss, a partition or a
// failover whose old address black-holes does. The job must notice within
// about 30 s — the kernel alone would wait 150 s for an answer, 15
// minutes for an acknowledgement — retry, and once the path is back,
// finish the copy with each row once, verify, and revert to the original.
func TestApplySurvivesBlackholedServer(t *testing.T) {
	t.Parallel()
	const rows = 20_000
	r := newFailureRun(t, rows)
	target, via, err := proxyDSN(r.dsn)
	if err != nil {
		t.Fatal(err)
	}
	path := newBlackholePath(t, target)
	catalog := catalogSnapshot(t, r.admin, "accounts")
	r.apply(migrate.Options{Until: "prepare"})
	exec(t, r.admin, slowChunkWrites(false)...)

	// The engine goes through the path; the test's own session does not.
	db, err := postgres.Dialect{}.Open(t.Context(), via(path.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := newRetryLog()
	e, err := migrate.New(r.plan, postgres.Dialect{}, db, r.ks, migrate.Options{Log: log.logger(), Until: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var (
		res      *migrate.Result
		applyErr error
	)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		res, applyErr = e.Apply(ctx)
	}()
	// A failed test must not leave the job running into the cleanups. The
	// path comes back first: a job cancelled behind a black hole can wait
	// for the kernel on a statement that no context bounds.
	t.Cleanup(func() {
		path.ip("-n", path.ns, "link", "set", path.nsLink, "up")
		cancel()
		select {
		case <-finished:
		case <-time.After(blackholeRecovery):
			t.Errorf("apply did not return within %v of its cancellation", blackholeRecovery)
		}
	})

	// Cut the path once the copy is under way.
	for {
		if chunks, _, _ := r.chunkTotals(); chunks > 0 {
			break
		}
		select {
		case <-finished:
			t.Fatalf("apply ended before recording a chunk: %v", applyErr)
		case <-time.After(5 * time.Millisecond):
		}
	}
	for len(log.notify) > 0 {
		<-log.notify
	}
	if rr := log.all(); len(rr) > 0 {
		t.Logf("retries before the path was cut: %v", rr)
	}
	path.cut()
	cutAt := time.Now()
	if _, done, _ := r.chunkTotals(); done >= rows {
		t.Fatalf("the copy was over before the path was cut: make the chunks slower")
	}

	select {
	case rr := <-log.notify:
		detected := time.Since(cutAt)
		t.Logf("the engine noticed the dead server after %v: retried %s after: %s", detected.Round(time.Millisecond), rr.op, rr.err)
		if detected < 5*time.Second {
			t.Errorf("the engine failed %v after the cut: the path was not a black hole", detected)
		}
	case <-finished:
		t.Fatalf("apply ended during the black hole without retrying: %+v, %v", res, applyErr)
	case <-time.After(blackholeDetection):
		t.Fatalf("the engine did not notice within %v that the server was gone", blackholeDetection)
	}
	path.mend()

	select {
	case <-finished:
	case <-time.After(blackholeRecovery):
		t.Fatalf("the copy did not finish within %v of the path's return", blackholeRecovery)
	}
	for _, rr := range log.all() {
		t.Logf("retried %s after: %s", rr.op, rr.err)
	}
	t.Logf("apply ended %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	if applyErr != nil {
		t.Fatalf("the copy failed after a black hole: %v", applyErr)
	}
	if res.Phase != "copy" {
		t.Errorf("apply --until copy ended at phase %q", res.Phase)
	}
	r.wantCopied(rows)

	exec(t, r.admin, `DROP TRIGGER slow_chunk_writes ON accounts__colcrypt_new`)
	if res := r.apply(migrate.Options{}); res.Phase != "done" || res.Verify == nil || !res.Verify.OK() {
		t.Fatalf("apply after the copy: phase %q, verify %+v", res.Phase, res.Verify)
	}
	r.wantJob("done", migrate.StateEncrypted)
	r.wantVerified("after cut-over")
	r.wantRevertedToOriginal(catalog)
}
