package proxy

import (
	"bufio"
	"cmp"
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

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// servePipes makes s also serve in-memory pipes, as if from one more
// configured listener (shut down with the others), and returns how to dial
// one. The listener is the chanListener a listener feeds its imapserver by.
func servePipes(s *Server) (dial func() (net.Conn, error)) {
	cl := newChanListener(pipeAddr{})
	s.mu.Lock()
	l := newListener(s, s.cfg.Listeners[0], cl)
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.acceptLoop()
	}()
	return func() (net.Conn, error) {
		server, client := net.Pipe()
		if !cl.push(server) {
			server.Close()
			client.Close()
			return nil, net.ErrClosed
		}
		return client, nil
	}
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

// begin starts the round for the change that makes the count target.
func (r *fanoutRound) begin(target uint32) {
	r.arrived.Store(0)
	r.first.Store(0)
	r.last.Store(0)
	r.all = make(chan struct{})
	r.target.Store(target)
}

// wait returns once every client saw the round's EXISTS, failing b after
// 30 s.
func (r *fanoutRound) wait(b *testing.B) {
	select {
	case <-r.all:
	case <-time.After(30 * time.Second):
		b.Fatalf("EXISTS %d reached %d of %d clients within 30s", r.target.Load(), r.arrived.Load(), r.n)
	}
}

// startIdlers connects round.n rawIdlers with dial, parallel at a time,
// each reporting its EXISTS to round; their connections close when b ends.
func startIdlers(b *testing.B, parallel int, dial func() (net.Conn, error), round *fanoutRound) {
	n := int(round.n)
	conns := make([]net.Conn, n)
	b.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if conns[i], errs[i] = dial(); errs[i] != nil {
				return
			}
			c, err := startIdler(conns[i])
			if errs[i] = err; err != nil {
				return
			}
			go func() {
				var prev uint32
				c.exists(func(m uint32) { round.seen(m, &prev) })
			}()
		})
	}
	wg.Wait()
	failed, first := 0, error(nil)
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 0 {
		b.Fatalf("%d of %d clients did not get to IDLE; first error: %v", failed, n, first)
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
	// Not startProxyLogging: shutting 10,000 sessions down takes longer
	// than its 10 s bound (the BYEs alone are spread over 5 s).
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
	dial := servePipes(s)
	if overTCP {
		dial = func() (net.Conn, error) { return net.Dial("tcp", s.Addrs()[0]) }
	}

	ac := directClient(b, up.addr) // the appender, on the upstream directly
	sd, err := ac.Select("INBOX", nil).Wait()
	if err != nil {
		b.Fatal(err)
	}
	count := sd.NumMessages
	round := &fanoutRound{n: int64(n)}
	startIdlers(b, 100, dial, round)

	msg := testMessage("fan-out")
	var spans time.Duration
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		count++
		round.begin(count)
		appendMsg(b, ac, "INBOX", msg)
		round.wait(b)
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
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
