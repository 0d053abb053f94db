package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// The fan-out benchmarks answer two questions about the 10,000-client
// target of issue 5 ("one upstream EXISTS reaches all of them with p99
// under 50 ms"):
//
//   - BenchmarkFanoutSessions: how long idlemux itself takes to hand one
//     change to N idling sessions, with the sessions' connections in memory
//     (net.Pipe), so no write(2) is made and the figure is idlemux's own
//     work on the ordinary path (the one TLS sessions take; pipes have no
//     socket for the plain-TCP fast path): the watcher, the model, N
//     goroutines waking, encoding through imapserver, locks and deadlines.
//   - BenchmarkLoopbackWrites: the machine's floor for the same fan-out over
//     real sockets: one small write(2) to each of N loopback connections,
//     by GOMAXPROCS goroutines, with nothing else in the way. No proxy can
//     fan out faster than this on the same machine, whatever its design.

// pipeListener is a net.Listener whose connections are in-memory pipes.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial() (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.ch <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// servePipes makes s also serve the connections of a pipeListener, as if it
// were one more configured listener (shut down with the others).
func servePipes(b *testing.B, s *Server) *pipeListener {
	pl := newPipeListener()
	s.mu.Lock()
	l := newListener(s, s.cfg.Listeners[0], pl)
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.acceptLoop()
	}()
	return pl
}

// rawIdler is a minimal IMAP client on one connection: it logs in, selects
// INBOX, IDLEs, and then reports every "* N EXISTS" it reads.
type rawIdler struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *rawIdler) command(tag, cmd string) error {
	if _, err := io.WriteString(c.conn, tag+" "+cmd+"\r\n"); err != nil {
		return err
	}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		switch {
		case tag == "+" && strings.HasPrefix(line, "+ "):
			return nil
		case strings.HasPrefix(line, tag+" OK"):
			return nil
		case strings.HasPrefix(line, tag+" "):
			return fmt.Errorf("%s %s: %s", tag, cmd, strings.TrimSpace(line))
		}
	}
}

func startIdler(conn net.Conn) (*rawIdler, error) {
	c := &rawIdler{conn: conn, r: bufio.NewReaderSize(conn, 512)}
	if _, err := c.r.ReadString('\n'); err != nil { // greeting
		return nil, err
	}
	if err := c.command("a", "LOGIN "+testUser+" "+testPass); err != nil {
		return nil, err
	}
	if err := c.command("b", "SELECT INBOX"); err != nil {
		return nil, err
	}
	// IDLE's tag is answered only at DONE: wait for the continuation.
	if _, err := io.WriteString(conn, "c IDLE\r\n"); err != nil {
		return nil, err
	}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "+ ") {
			return c, nil
		}
	}
}

// exists reads lines until it fails, calling seen with every EXISTS count.
func (c *rawIdler) exists(seen func(n uint32)) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "*" && f[2] == "EXISTS" {
			if n, err := strconv.ParseUint(f[1], 10, 32); err == nil {
				seen(uint32(n))
			}
		}
	}
}

// fanoutRound tracks one change's arrival at every client.
type fanoutRound struct {
	target      atomic.Uint32
	arrived     atomic.Int64
	first, last atomic.Int64 // UnixNano of the first and last arrival
	all         chan struct{}
	n           int64
}

func (r *fanoutRound) seen(n uint32, prev *uint32) {
	t := r.target.Load()
	if n < t || *prev >= t {
		return
	}
	*prev = n
	now := time.Now().UnixNano()
	r.first.CompareAndSwap(0, now)
	for {
		l := r.last.Load()
		if now <= l || r.last.CompareAndSwap(l, now) {
			break
		}
	}
	if r.arrived.Add(1) == r.n {
		close(r.all)
	}
}

func BenchmarkFanoutSessions(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchFanoutSessions(b, n, false) })
	}
}

// BenchmarkFanoutSessionsTCP is the same over loopback TCP, where idling
// sessions take the fast path: the readers share this process (and its 2
// cores), as the bench's clients share the machine. Both ends in one
// process keep N under 10,000 (the 20,000-file limit).
func BenchmarkFanoutSessionsTCP(b *testing.B) {
	for _, n := range []int{1000, 9000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchFanoutSessions(b, n, true) })
	}
}

func benchFanoutSessions(b *testing.B, n int, overTCP bool) {
	up := startMemUpstream(b)
	cfg := testConfig(up.addr)
	cfg.Keepalive = 0
	s, err := New(cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := contextWithTimeout(30 * time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	dial := servePipes(b, s).dial
	if overTCP {
		dial = func() (net.Conn, error) { return net.Dial("tcp", s.Addrs()[0]) }
	}

	// The appender, on the upstream directly.
	ac, err := imapclient.DialInsecure(up.addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ac.Close()
	if err := ac.Login(testUser, testPass).Wait(); err != nil {
		b.Fatal(err)
	}
	sd, err := ac.Select("INBOX", nil).Wait()
	if err != nil {
		b.Fatal(err)
	}
	count := sd.NumMessages

	round := &fanoutRound{n: int64(n)}
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	sem := make(chan struct{}, 100)
	conns := make([]net.Conn, n)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := dial()
			if err == nil {
				conns[i] = conn
				var c *rawIdler
				if c, err = startIdler(conn); err == nil {
					go func() {
						var prev uint32
						c.exists(func(m uint32) { round.seen(m, &prev) })
					}()
					return
				}
			}
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d clients did not get to IDLE; first error: %v", failed.Load(), n, firstErr)
	}

	msg := "From: bench@example.org\r\nSubject: fan-out\r\n\r\nbody\r\n"
	var spans time.Duration
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		count++
		round.arrived.Store(0)
		round.first.Store(0)
		round.last.Store(0)
		round.all = make(chan struct{})
		round.target.Store(count)
		cmd := ac.Append("INBOX", int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-round.all:
		case <-time.After(30 * time.Second):
			b.Fatalf("EXISTS %d reached %d of %d clients within 30s", count, round.arrived.Load(), n)
		}
		spans += time.Duration(round.last.Load() - round.first.Load())
	}
	b.StopTimer()
	b.ReportMetric(float64(spans.Microseconds())/1000/float64(b.N), "first-to-last-ms")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkLoopbackWrites measures one 16-byte write(2) to each of N
// loopback TCP connections, made by GOMAXPROCS goroutines as a fan-out
// makes them. The other ends are drained between rounds, with the timer
// stopped, so the figure is the writes alone. Its "all-ms" is the floor any
// fan-out of one change to N sockets has on this machine, whatever the
// program making it.
func BenchmarkLoopbackWrites(b *testing.B) {
	// Both ends are in this process: 2N descriptors under the machine's
	// 20,000-file limit, so the largest N is 9,000.
	for _, n := range []int{1000, 9000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchLoopbackWrites(b, n) })
	}
}

func benchLoopbackWrites(b *testing.B, n int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var servers, clients []net.Conn
	defer func() {
		for _, c := range append(servers, clients...) {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		servers = append(servers, sc)
	}
	msg := []byte("* 12345 EXISTS\r\n")
	buf := make([]byte, 4096)
	workers := max(1, runtime.GOMAXPROCS(0))
	var writing time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					if _, err := servers[i].Write(msg); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		writing += time.Since(t0)
		close(errs)
		if err := errors.Join(<-errs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, c := range clients {
			c.SetReadDeadline(time.Now().Add(time.Second))
			if m, err := c.Read(buf); err != nil || m != len(msg) {
				b.Fatalf("a reader got %d bytes (%v), want %d", m, err, len(msg))
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(writing.Nanoseconds())/float64(b.N*n), "ns/write")
	b.ReportMetric(float64(writing.Microseconds())/1000/float64(b.N), "all-ms")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
