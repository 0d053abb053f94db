package proxy

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// pipePair is a deflateConn on one end of a loopback TCP connection and a
// compressing client on the other.
func pipePair(t *testing.T) (*deflateConn, *zClientConn, *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	zw, _ := flate.NewWriter(c, 5)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s.SetDeadline(time.Now().Add(5 * time.Second))
	return newDeflateConn(s, nil, zap.NewNop()), &zClientConn{Conn: c, zw: zw}, bufio.NewReader(flate.NewReader(c))
}

// TestDeflateConnRoundTrips: commands a client compresses reach the
// reader inflated, one at a time, and each answer reaches the client whole
// at once (a stored block, or compressed, each with its sync flush). The
// inflater is parked each time the reader waits for the next command, and
// what the client sends later may refer back to what it sent before.
func TestDeflateConnRoundTrips(t *testing.T) {
	d, c, r := pipePair(t)
	long := "d FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM TO DATE)])\r\n"
	lines := []string{"a NOOP\r\n", "b COMPRESS FOO\r\n", long, long, strings.Repeat("x", 300) + long, "c LOGOUT\r\n"}
	for i, line := range lines {
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		cmd := make([]byte, len(line))
		if _, err := io.ReadFull(d, cmd); err != nil || string(cmd) != line {
			t.Fatalf("command %d: server read %q, %v, want %q", i, cmd, err, line)
		}
		if _, err := d.Write([]byte("* reply " + line)); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != "* reply "+line {
			t.Fatalf("reply %d: got %q, %v", i, got, err)
		}
	}
	if d.src.parks < len(lines)-1 {
		t.Errorf("inflater parked %d times, want %d (before each command but the first)", d.src.parks, len(lines)-1)
	}
}

// compressedSession is a raw client through idlemux (memUpstream) that is
// logged in and has COMPRESS on.
func compressedSession(t *testing.T, addr string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	if got := rc.cmd("z", "COMPRESS DEFLATE"); got[len(got)-1] != "z OK Begin compression" {
		t.Fatalf("COMPRESS: got %q", got)
	}
	rc.compressed()
	return rc
}

// TestCompressBombBounded: a deflate bomb (an 8 MiB command line that
// compresses to about 8 KiB) meets the command reader's line limit on
// the inflated bytes: the client gets the answer an uncompressed client
// gets, the session goes on, and idlemux never holds the line (what the
// process allocates meanwhile stays far below the line's size).
func TestCompressBombBounded(t *testing.T) {
	_, p, _ := setup(t, 1)
	const lineSize = 8 << 20
	send := func(rc *rawConn, w io.Writer) []string {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		io.WriteString(w, "b NOOP ")
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < lineSize/len(chunk); i++ {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		got := rc.cmd("b", "")
		runtime.ReadMemStats(&ms1)
		if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > lineSize/4 {
			t.Errorf("allocated %d bytes while a %d-byte line went by, want under %d", alloc, lineSize, lineSize/4)
		}
		return append(got, rc.cmd("c", "NOOP")...)
	}
	plain := dialRaw(t, p.Addrs()[0])
	plain.cmd("a", "LOGIN "+testUser+" "+testPass)
	want := send(plain, plain.c)
	rc := compressedSession(t, p.Addrs()[0])
	// One compressed stream, flushed only at the end, as a bomb is sent.
	zc := rc.c.(*zClientConn)
	got := send(rc, zc.zw)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("compressed: got %q, want %q (uncompressed)", got, want)
	}
}

// TestCompressCorruptStreamCloses: bytes that do not inflate end the
// session, with a log line.
func TestCompressCorruptStreamCloses(t *testing.T) {
	up := startMemUpstream(t)
	core, logs := observer.New(zap.InfoLevel)
	p := startProxyLogging(t, testConfig(up.addr), zap.New(core))
	rc := compressedSession(t, p.Addrs()[0])
	raw := rc.c.(*zClientConn).Conn
	raw.Write([]byte{0xff, 0xff, 0xff, 0xff}) // BTYPE 11: reserved (RFC 1951 3.2.3)
	raw.SetReadDeadline(time.Now().Add(waitLong))
	if n, err := rc.r.Read(make([]byte, 100)); err == nil {
		t.Fatalf("read %d bytes after a corrupt stream, want the connection closed", n)
	}
	deadline := time.Now().Add(waitLong)
	for logs.FilterMessageSnippet("does not inflate").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the corrupt stream; got %v", logs.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCompressIdleFastPath: a compressed session idling over plain TCP is
// written to by the fast path (stored blocks), and when a write comes up
// short, would block or fails, the session's goroutine sends the rest
// first and finishes on the ordinary path: the client inflates every
// EXISTS whole and in order, then the answer to DONE.
func TestCompressIdleFastPath(t *testing.T) {
	cases := append(slices.Clone(fastPathCuts), fastPathCuts[0])
	cases[len(cases)-1].name, cases[len(cases)-1].write = "whole", nil
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, p, direct := fastPathSetup(t)
			rc := compressedSession(t, p.Addrs()[0])
			rc.cmd("s", "SELECT INBOX")
			_, writes := cutFirstWrite(t, tt.write)
			fmt.Fprintf(rc.c, "i IDLE\r\n")
			if l := rc.line(); !strings.HasPrefix(l, "+ ") {
				t.Fatalf("IDLE: got %q", l)
			}
			time.Sleep(50 * time.Millisecond) // on the fast path
			var got []string
			for i := 2; i <= 5; i++ {
				appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("after %d", i)))
				want := fmt.Sprintf("* %d EXISTS", i)
				for l := ""; l != want; {
					l = rc.line()
					got = append(got, l)
					if !strings.HasSuffix(l, " EXISTS") && !strings.HasSuffix(l, " RECENT") {
						t.Fatalf("got %q while waiting for %q; all: %q", l, want, got)
					}
				}
			}
			if writes.Load() == 0 {
				t.Fatal("the fast path never wrote: the test did not exercise it")
			}
			fmt.Fprintf(rc.c, "DONE\r\n")
			if l := rc.answer("i"); !strings.HasPrefix(l[len(l)-1], "i OK") {
				t.Fatalf("DONE: got %q", l)
			}
			if l := rc.cmd("n", "NOOP"); l[len(l)-1] != "n OK NOOP completed" {
				t.Errorf("NOOP after IDLE: got %q", l)
			}
		})
	}
}

// TestCompressKeepaliveAndBye: a compressed session idling gets the
// keepalive (RFC 2177 3) and, at shutdown, the BYE through its
// compressor: the client inflates both whole.
func TestCompressKeepaliveAndBye(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Keepalive = 300 * time.Millisecond
	p := startProxy(t, cfg)
	rc := compressedSession(t, p.Addrs()[0])
	rc.cmd("s", "SELECT INBOX")
	fmt.Fprintf(rc.c, "i IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: got %q", l)
	}
	for range 2 {
		if l := rc.line(); l != "* OK Still here" {
			t.Fatalf("while idling: got %q, want * OK Still here", l)
		}
	}
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	go p.Shutdown(ctx)
	for {
		l := rc.line()
		if strings.HasPrefix(l, "* BYE ") {
			break
		}
		if l != "* OK Still here" {
			t.Fatalf("at shutdown: got %q, want * BYE", l)
		}
	}
}

// TestCompressIdleLargeBatch: a batch of updates too large for a stored
// block (a flag change on 30 messages) is handed by the fast path to the
// session's goroutine, which compresses it: the client inflates every
// FETCH, and later small updates still arrive.
func TestCompressIdleLargeBatch(t *testing.T) {
	_, p, direct := setup(t, 30)
	rc := compressedSession(t, p.Addrs()[0])
	rc.cmd("s", "SELECT INBOX")
	fmt.Fprintf(rc.c, "i IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: got %q", l)
	}
	time.Sleep(50 * time.Millisecond) // on the fast path
	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 30}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 30 {
		l := rc.line()
		if !strings.Contains(l, " FETCH (") || !strings.Contains(l, `\Flagged`) {
			t.Fatalf("got %q, want a FETCH with \\Flagged; seen %d", l, len(seen))
		}
		seen[strings.Fields(l)[1]] = true
	}
	appendMsg(t, direct, "INBOX", testMessage("after the batch"))
	for l := rc.line(); l != "* 31 EXISTS"; l = rc.line() {
		if !strings.HasSuffix(l, " RECENT") {
			t.Fatalf("got %q, want * 31 EXISTS", l)
		}
	}
}
