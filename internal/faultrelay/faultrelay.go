// Package faultrelay is a fault-injecting TCP relay for failure tests of the
// IMAP proxy.
//
// Killing the upstream (Dovecot) only ever produces clean closes. The cases
// that break proxies are messier: a connection reset in the middle of IDLE, a
// network that silently stops delivering (half-open), a slow link, a response
// cut in half. A test puts a Relay between the proxy and the upstream and
// injects those faults on the wire while both ends run unchanged.
//
// Each accepted connection is relayed by exactly two goroutines, one per
// direction, and every goroutine stops when the Relay is closed, so tests can
// check for leaks with goleak.
package faultrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bufSize is the copy buffer per direction, as in io.Copy: one Read is one
// chunk, and faults (delay, freeze, cut) apply per chunk.
const bufSize = 32 << 10

// Relay listens on 127.0.0.1 and forwards every accepted connection to a fixed
// target. Its methods are safe for concurrent use.
type Relay struct {
	target string
	ln     *net.TCPListener
	ctx    context.Context // canceled by Close so an in-flight dial cannot delay it
	cancel context.CancelFunc
	delay  atomic.Int64 // time.Duration added before each forwarded chunk
	refuse atomic.Bool
	wg     sync.WaitGroup // accept loop and all copy loops

	mu       sync.Mutex
	conns    map[*pair]struct{}
	thawed   chan struct{} // closed while not frozen; Freeze swaps in an open one
	closed   bool
	closeErr error
}

// pair is one relayed connection: the accepted client side and the dialed
// server side.
type pair struct {
	client, server *net.TCPConn
	done           chan struct{} // closed when the pair is torn down; wakes loops held by Freeze or SetDelay
	once           sync.Once

	mu  sync.Mutex
	cut int64 // server->client bytes left before an abrupt close; <0 means no cut pending
}

// Start starts a relay to target on 127.0.0.1:0 and registers t.Cleanup to
// close it. target must be a loopback address (or localhost): the relay is a
// test tool and must never end up forwarding to a real host.
func Start(t testing.TB, target string) *Relay {
	t.Helper()
	if err := checkLoopback(target); err != nil {
		t.Fatalf("faultrelay: %v", err)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("faultrelay: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*pair]struct{}),
		thawed: make(chan struct{}),
	}
	close(r.thawed)
	r.wg.Go(r.accept)
	t.Cleanup(func() { r.Close() })
	return r
}

// checkLoopback reports an error unless target is host:port with a loopback
// host.
func checkLoopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("target %q: %v", target, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not a loopback address", target)
	}
	return nil
}

// Addr returns the relay's listening address (127.0.0.1:PORT).
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Conns returns the number of relayed connections open right now. A new
// connection counts once its upstream dial succeeded, so tests should poll.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// ResetAll aborts every open connection with a TCP RST on both sides, as a
// crashed middlebox or a rebooted NAT would.
func (r *Relay) ResetAll() {
	for _, p := range r.snapshot() {
		r.drop(p, true)
	}
}

// Freeze stops forwarding in both directions, on existing and new
// connections, while keeping every socket open: the half-open network that
// only a timeout can detect. Each copy loop blocks before its next Write, so
// bytes are held (first in the loop's buffer, then in kernel buffers), never
// dropped. A chunk already past the gate when Freeze is called is still
// written.
func (r *Relay) Freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.thawed:
		r.thawed = make(chan struct{})
	default: // already frozen
	}
}

// Thaw resumes forwarding. Held bytes are delivered in order, because each
// direction is a single goroutine.
func (r *Relay) Thaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.thawed: // not frozen
	default:
		close(r.thawed)
	}
}

// SetDelay adds latency d before every chunk forwarded in either direction,
// so a round trip through the relay takes at least 2*d. 0 (or less) disables
// it.
func (r *Relay) SetDelay(d time.Duration) { r.delay.Store(int64(max(d, 0))) }

// CutAfter arms a one-shot cut on every connection open now: after n more
// bytes server->client, both sides are closed abruptly (RST), leaving the
// client with a truncated response. n == 0 cuts at once; n < 0 disarms a
// pending cut. Connections opened later are not affected.
func (r *Relay) CutAfter(n int64) {
	for _, p := range r.snapshot() {
		if n == 0 {
			r.drop(p, true)
			continue
		}
		p.mu.Lock()
		p.cut = n
		p.mu.Unlock()
	}
}

// Refuse, while on, makes the relay accept and immediately close new
// connections, as a client sees an upstream that is down behind a load
// balancer. Existing connections keep working.
func (r *Relay) Refuse(on bool) { r.refuse.Store(on) }

// Close stops the listener, aborts every connection and waits for all
// goroutines to exit. It is idempotent; later calls return nil.
func (r *Relay) Close() error {
	r.mu.Lock()
	first := !r.closed
	if first {
		r.closed = true
		r.closeErr = r.ln.Close()
		r.cancel()
	}
	r.mu.Unlock()
	r.ResetAll()
	r.wg.Wait()
	if !first {
		return nil
	}
	return r.closeErr
}

// accept runs until the listener is closed.
func (r *Relay) accept() {
	for {
		c, err := r.ln.AcceptTCP()
		if err != nil {
			return // closed by Close; any other error also ends the relay
		}
		if r.refuse.Load() {
			c.Close()
			continue
		}
		r.wg.Go(func() { r.serve(c) })
	}
}

// serve dials the target for client and relays until both directions are
// done. It runs the server->client loop itself and one more goroutine for
// client->server.
func (r *Relay) serve(client *net.TCPConn) {
	var d net.Dialer
	sc, err := d.DialContext(r.ctx, "tcp", r.target)
	if err != nil {
		// The upstream is unreachable: the client sees a reset, not a hang.
		client.SetLinger(0)
		client.Close()
		return
	}
	p := &pair{client: client, server: sc.(*net.TCPConn), done: make(chan struct{}), cut: -1}
	if !r.add(p) {
		r.drop(p, true)
		return
	}
	c2s := make(chan struct{})
	r.wg.Go(func() {
		defer close(c2s)
		r.forward(p, p.server, p.client, false)
	})
	r.forward(p, p.client, p.server, true)
	<-c2s
	r.drop(p, false)
}

// forward copies src to dst chunk by chunk, applying delay, freeze and (for
// server->client) cut. On EOF it half-closes dst so a clean close propagates
// as a clean close; any other failure aborts the pair so resets propagate as
// resets.
func (r *Relay) forward(p *pair, dst, src *net.TCPConn, toClient bool) {
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !r.hold(p) {
				return
			}
			chunk, cut := buf[:n], false
			if toClient {
				chunk, cut = p.take(chunk)
			}
			if _, werr := dst.Write(chunk); werr != nil || cut {
				r.drop(p, true)
				return
			}
		}
		if errors.Is(err, io.EOF) {
			dst.CloseWrite()
			return
		}
		if err != nil {
			r.drop(p, true)
			return
		}
	}
}

// hold waits for the configured delay and then for the freeze gate. It
// returns false if the pair was torn down meanwhile.
func (r *Relay) hold(p *pair) bool {
	if d := time.Duration(r.delay.Load()); d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-p.done:
			tm.Stop()
			return false
		}
	}
	r.mu.Lock()
	gate := r.thawed
	r.mu.Unlock()
	select {
	case <-gate:
		return true
	case <-p.done:
		return false
	}
}

// take trims chunk to the pending cut budget and reports whether the pair
// must be cut after writing it.
func (p *pair) take(chunk []byte) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut < 0 {
		return chunk, false
	}
	if int64(len(chunk)) < p.cut {
		p.cut -= int64(len(chunk))
		return chunk, false
	}
	chunk = chunk[:p.cut]
	p.cut = -1
	return chunk, true
}

// add registers p unless the relay is closed.
func (r *Relay) add(p *pair) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[p] = struct{}{}
	return true
}

// snapshot returns the open pairs, so callers can tear them down without
// holding r.mu.
func (r *Relay) snapshot() []*pair {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]*pair, 0, len(r.conns))
	for p := range r.conns {
		ps = append(ps, p)
	}
	return ps
}

// drop tears p down once: it unregisters it (so Conns is exact as soon as a
// fault returns), wakes its held loops and closes both sockets, with RST if
// rst is set (SO_LINGER 0 discards unsent data and resets the peer).
func (r *Relay) drop(p *pair, rst bool) {
	p.once.Do(func() {
		r.mu.Lock()
		delete(r.conns, p)
		r.mu.Unlock()
		close(p.done)
		for _, c := range []*net.TCPConn{p.client, p.server} {
			if rst {
				c.SetLinger(0)
			}
			c.Close()
		}
	})
}
