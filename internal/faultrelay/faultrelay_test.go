package faultrelay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startEcho runs an echo server on 127.0.0.1:0 that echoes each connection
// until EOF and then closes it. Cleanup closes everything and waits.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				io.Copy(c, c)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// setup starts an echo server and a relay in front of it.
func setup(t *testing.T) *Relay {
	t.Helper()
	return Start(t, startEcho(t))
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// readFull reads exactly n bytes within timeout.
func readFull(t *testing.T, c net.Conn, n int, timeout time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(buf)
}

// roundTrip writes msg and checks that the same bytes come back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := readFull(t, c, len(msg), 2*time.Second); got != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

// readToEnd reads until an error or timeout and returns the bytes and the
// error that ended the read.
func readToEnd(c net.Conn, timeout time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	var got bytes.Buffer
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			return got.String(), err
		}
	}
}

// isClosed reports whether err means the peer closed or reset the connection
// (as opposed to a timeout).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func waitConns(t *testing.T, r *Relay, want int) {
	t.Helper()
	var got int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got = r.Conns(); got == want {
			return
		}
	}
	t.Fatalf("Conns() = %d, want %d", got, want)
}

func TestPassThrough(t *testing.T) {
	big := make([]byte, 200<<10) // several 32 KiB chunks
	for i := range big {
		big[i] = byte(i * 7)
	}
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"line", []byte("a1 NOOP\r\n")},
		{"binary", []byte{0, 1, 2, 0xff, '\r', '\n', 0}},
		{"multi-chunk", big},
	}
	r := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, r.Addr())
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(tt.payload)
				if err == nil {
					err = c.CloseWrite() // the echo server closes after EOF
				}
				errc <- err
			}()
			got, err := readToEnd(c, 5*time.Second)
			if !errors.Is(err, io.EOF) {
				t.Errorf("read ended with %v, want EOF", err)
			}
			if werr := <-errc; werr != nil {
				t.Fatalf("write: %v", werr)
			}
			if !bytes.Equal([]byte(got), tt.payload) {
				t.Errorf("got %d bytes, want %d bytes unchanged", len(got), len(tt.payload))
			}
		})
	}
	waitConns(t, r, 0)
}

func TestResetAll(t *testing.T) {
	r := setup(t)
	c1, c2 := dial(t, r.Addr()), dial(t, r.Addr())
	roundTrip(t, c1, "ping")
	roundTrip(t, c2, "ping")
	r.ResetAll()
	if got := r.Conns(); got != 0 {
		t.Errorf("Conns() after ResetAll = %d, want 0", got)
	}
	for i, c := range []net.Conn{c1, c2} {
		start := time.Now()
		_, err := readToEnd(c, 2*time.Second)
		if !isClosed(err) {
			t.Errorf("conn %d: read error %v, want connection reset or EOF", i, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("conn %d: read failed after %v, want promptly", i, d)
		}
	}
	// The relay itself keeps working.
	roundTrip(t, dial(t, r.Addr()), "after")
}

func TestFreezeThaw(t *testing.T) {
	r := setup(t)
	old := dial(t, r.Addr())
	roundTrip(t, old, "warm")
	r.Freeze()
	r.Freeze() // idempotent

	// A connection opened while frozen is held too.
	fresh := dial(t, r.Addr())
	msgs := map[net.Conn]string{old: "one\r\ntwo\r\n", fresh: "new\r\n"}
	for c, msg := range msgs {
		for _, part := range bytes.SplitAfter([]byte(msg), []byte("\n")) {
			if _, err := c.Write(part); err != nil {
				t.Fatalf("write while frozen: %v", err)
			}
		}
	}
	for c := range msgs {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(make([]byte, 64))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read while frozen: got %d bytes, err %v; want a timeout", n, err)
		}
	}
	waitConns(t, r, 2) // sockets stay open

	r.Thaw()
	r.Thaw() // idempotent
	for c, msg := range msgs {
		if got := readFull(t, c, len(msg), 2*time.Second); got != msg {
			t.Errorf("after Thaw: got %q, want %q", got, msg)
		}
	}
}

func TestSetDelay(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
	}{
		{"50ms", 50 * time.Millisecond},
		{"150ms", 150 * time.Millisecond},
	}
	r := setup(t)
	c := dial(t, r.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.SetDelay(tt.delay)
			start := time.Now()
			roundTrip(t, c, "ping")
			// The request and the echo are each delayed once.
			if got, want := time.Since(start), 2*tt.delay; got < want {
				t.Errorf("round trip took %v, want at least %v", got, want)
			}
		})
	}
	r.SetDelay(0)
	start := time.Now()
	roundTrip(t, c, "fast")
	if got := time.Since(start); got >= 300*time.Millisecond {
		t.Errorf("round trip with delay 0 took %v, want well under the old delay", got)
	}
}

func TestCutAfter(t *testing.T) {
	tests := []struct {
		name string
		n    int64
		send string
		want string
	}{
		{"mid-response", 5, "hello world", "hello"},
		{"exact", 11, "hello world", "hello world"},
		{"across-writes", 7, "abcd|efgh", "abcd|ef"},
		{"zero", 0, "hello", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := setup(t)
			c := dial(t, r.Addr())
			roundTrip(t, c, "warm") // bytes before the call do not count
			r.CutAfter(tt.n)
			later := dial(t, r.Addr()) // opened after the call: not cut
			for _, part := range bytes.SplitAfter([]byte(tt.send), []byte("|")) {
				c.Write(part) // may fail once the cut happened
				time.Sleep(10 * time.Millisecond)
			}
			got, err := readToEnd(c, 2*time.Second)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !isClosed(err) {
				t.Errorf("read ended with %v, want connection reset or EOF", err)
			}
			roundTrip(t, later, tt.send)
			waitConns(t, r, 1)
		})
	}
}

func TestRefuse(t *testing.T) {
	r := setup(t)
	old := dial(t, r.Addr())
	roundTrip(t, old, "before")

	r.Refuse(true)
	refused := dial(t, r.Addr())
	start := time.Now()
	if got, err := readToEnd(refused, 2*time.Second); got != "" || !isClosed(err) {
		t.Errorf("refused conn: got %q, %v; want \"\", EOF or reset", got, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused conn closed after %v, want at once", d)
	}
	roundTrip(t, old, "during")
	if got := r.Conns(); got != 1 {
		t.Errorf("Conns() while refusing = %d, want 1", got)
	}

	r.Refuse(false)
	roundTrip(t, dial(t, r.Addr()), "after")
	waitConns(t, r, 2)
}

func TestConns(t *testing.T) {
	r := setup(t)
	var cs []*net.TCPConn
	for i := range 3 {
		cs = append(cs, dial(t, r.Addr()))
		waitConns(t, r, i+1)
	}
	cs[0].Close() // a clean close propagates and unregisters
	waitConns(t, r, 2)
	r.ResetAll()
	waitConns(t, r, 0)
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := Start(t, addr)
	// The relay resets the client as soon as its dial fails, which can be
	// before net.Dial has even returned.
	var got string
	c, err := net.Dial("tcp", r.Addr())
	if err == nil {
		got, err = readToEnd(c, 2*time.Second)
		c.Close()
	}
	if got != "" || !isClosed(err) {
		t.Errorf("got %q, %v; want \"\", reset or EOF", got, err)
	}
	if n := r.Conns(); n != 0 {
		t.Errorf("Conns() = %d, want 0", n)
	}
}

// TestClose checks that Close unblocks loops held by Freeze and SetDelay and
// is idempotent; TestMain's goleak check proves nothing is left running.
func TestClose(t *testing.T) {
	r := setup(t)
	frozen := dial(t, r.Addr())
	roundTrip(t, frozen, "warm")
	r.Freeze()
	frozen.Write([]byte("held"))
	r.SetDelay(time.Hour)
	delayed := dial(t, r.Addr())
	waitConns(t, r, 2)
	delayed.Write([]byte("slow"))
	time.Sleep(50 * time.Millisecond) // let both loops block

	start := time.Now()
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v, want prompt", d)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	for _, c := range []net.Conn{frozen, delayed} {
		if _, err := readToEnd(c, 2*time.Second); !isClosed(err) {
			t.Errorf("read after Close: %v, want reset or EOF", err)
		}
	}
	if _, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		t.Errorf("dial after Close succeeded, want refused")
	}
}

// fatalTB records the first Fatalf and stops the goroutine, like testing.T.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestTargetMustBeLoopback(t *testing.T) {
	tests := []struct {
		target  string
		wantErr bool
	}{
		{"127.0.0.1:143", false},
		{"127.0.0.2:143", false},
		{"[::1]:143", false},
		{"localhost:143", false},
		{"10.0.0.1:143", true},
		{"[2001:db8::1]:143", true},
		{"0.0.0.0:143", true},
		{"imap.example.com:143", true},
		{"127.0.0.1", true}, // no port
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			f := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Start(f, tt.target)
			}()
			<-done
			if gotErr := f.msg != ""; gotErr != tt.wantErr {
				t.Errorf("Start(%q) failed = %v (%q), want %v", tt.target, gotErr, f.msg, tt.wantErr)
			}
		})
	}
}
