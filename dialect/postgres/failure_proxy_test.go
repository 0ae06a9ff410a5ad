package postgres_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// commitCutter is a TCP proxy in front of PostgreSQL that loses the
// answer to one COMMIT: it passes the COMMIT on, so the server commits,
// and closes the client's connection before the answer comes back. The
// client cannot tell a lost answer from a lost COMMIT — what a network
// failure at that instant does — so whatever it retries must cope with
// work that is already committed.
type commitCutter struct {
	ln     net.Listener
	target string
	// cutAt is the number of the COMMIT to cut, counted over every
	// connection from when it is set; 0 cuts nothing.
	cutAt   atomic.Int64
	commits atomic.Int64
	cut     atomic.Int64 // COMMITs cut so far
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// startCommitCutter proxies to the server of dsn and returns the proxy and
// a DSN for the same database through it.
func startCommitCutter(t *testing.T, dsn string) (*commitCutter, string) {
	t.Helper()
	target, proxied, err := proxyDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitCutter{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p, proxied(ln.Addr().String())
}

// proxyDSN finds the server address of a URL DSN and returns a function
// giving the same DSN for another address.
func proxyDSN(dsn string) (target string, with func(addr string) string, err error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", nil, errors.New("the proxy needs a postgres:// URL DSN with a host")
	}
	target = u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	return target, func(addr string) string {
		v := *u
		v.Host = addr
		return v.String()
	}, nil
}

// cutCommit makes the proxy cut the n-th COMMIT from now.
func (p *commitCutter) cutCommit(n int64) {
	p.commits.Store(0)
	p.cutAt.Store(n)
}

func (p *commitCutter) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *commitCutter) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer server.Close()
			// Once the client is cut off, the server's answer to the COMMIT
			// has nowhere to go and the copy ends.
			_, _ = io.Copy(client, server)
		}()
		go func() {
			defer p.wg.Done()
			defer client.Close()
			p.forward(client, server)
		}()
	}
}

// Codes of the requests a client may send before its startup message.
const (
	sslRequestCode = 80877103
	gssEncRequest  = 80877104
)

// forward copies the client's messages to the server one by one, and cuts
// the client off at the COMMIT it was asked to.
func (p *commitCutter) forward(client, server net.Conn) {
	// Startup: untyped messages (length, code, body) until the startup
	// message itself; SSL and GSS requests come before it.
	for {
		var head [8]byte
		if _, err := io.ReadFull(client, head[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head[:4])
		code := binary.BigEndian.Uint32(head[4:])
		if n < 8 {
			return
		}
		msg := make([]byte, n)
		copy(msg, head[:])
		if _, err := io.ReadFull(client, msg[8:]); err != nil {
			return
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
		if code != sslRequestCode && code != gssEncRequest {
			break
		}
	}
	// Then typed messages: a type byte, then the length of the rest.
	for {
		var head [5]byte
		if _, err := io.ReadFull(client, head[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n < 4 {
			return
		}
		msg := make([]byte, 1+n)
		copy(msg, head[:])
		if _, err := io.ReadFull(client, msg[5:]); err != nil {
			return
		}
		if head[0] == 'Q' && isCommit(msg[5:]) {
			if at := p.cutAt.Load(); at > 0 && p.commits.Add(1) == at {
				// Cut the client off first, so no byte of the answer
				// reaches it, then let the server commit.
				client.Close()
				p.cut.Add(1)
				_, _ = server.Write(msg)
				return
			}
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
}

// isCommit reports whether a simple-query body (text and a NUL) is COMMIT.
func isCommit(body []byte) bool {
	q := strings.TrimSpace(string(bytes.TrimRight(body, "\x00")))
	q = strings.TrimSuffix(q, ";")
	return strings.EqualFold(q, "commit") || strings.EqualFold(q, "end")
}
