package upstream

import (
	"context"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"
)

// scanCounts feeds in to a fresh scanner in pieces of chunk bytes (all
// at once for chunk 0) and returns the counts by name.
func scanCounts(in []byte, chunk int) map[string]uint64 {
	var s cmdScanner
	var c cmdCounts
	if chunk <= 0 {
		chunk = len(in) + 1
	}
	for len(in) > 0 {
		n := min(chunk, len(in))
		s.scan(in[:n], &c)
		in = in[n:]
	}
	return c.snapshot()
}

func TestCmdNames(t *testing.T) {
	if len(cmdNames) != numCmdNames {
		t.Fatalf("len(cmdNames): got %d, want numCmdNames %d", len(cmdNames), numCmdNames)
	}
	if len(cmdIndex) != len(cmdNames) {
		t.Fatalf("distinct names: got %d, want %d", len(cmdIndex), len(cmdNames))
	}
}

// TestCmdScanner: the bytes written upstream, in any split, give the
// commands by name; literal data is never read as a command.
func TestCmdScanner(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]uint64
	}{
		{"login select fetch", "T1 LOGIN u p\r\nT2 SELECT INBOX\r\nT3 FETCH 1:* (FLAGS)\r\n",
			map[string]uint64{"LOGIN": 1, "SELECT": 1, "FETCH": 1}},
		{"uid commands by name", "T1 UID FETCH 1:* (FLAGS)\r\nX1 UID FETCH 5 (BODY[])\r\nT2 UID SEARCH ALL\r\nT3 uid store 1 +FLAGS (\\Seen)\r\n",
			map[string]uint64{"UID FETCH": 2, "UID SEARCH": 1, "UID STORE": 1}},
		{"lower case names", "a noop\r\nb Logout\r\n", map[string]uint64{"NOOP": 1, "LOGOUT": 1}},
		{"idle and done", "T1 IDLE\r\nDONE\r\nT2 NOOP\r\n", map[string]uint64{"IDLE": 1, "DONE": 1, "NOOP": 1}},
		{"done without idle is no command", "DONE\r\n", map[string]uint64{}},
		{"sasl continuation is no command", "T1 AUTHENTICATE PLAIN\r\nAHUAcA==\r\n*\r\n", map[string]uint64{"AUTHENTICATE": 1}},
		{"literal data skipped", "T1 APPEND INBOX {27}\r\nT9 DELETE INBOX\r\nT8 NOOP\r\n\r\nT2 NOOP\r\n",
			map[string]uint64{"APPEND": 1, "NOOP": 1}},
		{"non-synchronizing literal", "T1 APPEND INBOX (\\Seen) {14+}\r\nT9 LOGOUT\r\nxx\r\nT2 CHECK\r\n",
			map[string]uint64{"APPEND": 1, "CHECK": 1}},
		{"literal8", "T1 APPEND INBOX ~{10}\r\nT9 NOOP\r\n\r\nT2 NOOP\r\n", map[string]uint64{"APPEND": 1, "NOOP": 1}},
		{"two literals in one command", "T1 LOGIN {1}\r\nu {12}\r\nT9 SELECT x\r\n\r\nT2 LIST \"\" *\r\n",
			map[string]uint64{"LOGIN": 1, "LIST": 1}},
		{"literal continuation ends in a literal-looking word", "T1 LOGIN {1}\r\nu p{3}x\r\nT2 NOOP\r\n",
			map[string]uint64{"LOGIN": 1, "NOOP": 1}},
		{"zero-length literal", "T1 APPEND INBOX {0}\r\n\r\nT2 NOOP\r\n", map[string]uint64{"APPEND": 1, "NOOP": 1}},
		{"unknown name is OTHER", "T1 XYZZY\r\nT2 UID FROB 1\r\n", map[string]uint64{"OTHER": 2}},
		{"bare LF ends a line", "T1 NOOP\nT2 NOOP\n", map[string]uint64{"NOOP": 2}},
		{"unfinished line not counted", "T1 NOOP\r\nT2 SEL", map[string]uint64{"NOOP": 1}},
		{"long line", "T1 UID FETCH " + strings.Repeat("1,", 5000) + "2 (FLAGS)\r\nT2 NOOP\r\n",
			map[string]uint64{"UID FETCH": 1, "NOOP": 1}},
		{"brace not at the end is no literal", "T1 SEARCH SUBJECT \"{3}\" ALL\r\nT2 NOOP\r\n",
			map[string]uint64{"SEARCH": 1, "NOOP": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 2, 3, 7, 64} {
				if got := scanCounts([]byte(tc.in), chunk); !maps.Equal(got, tc.want) {
					t.Errorf("in pieces of %d: got %v, want %v", chunk, got, tc.want)
				}
			}
		})
	}
}

// FuzzCmdScanner: any bytes, in any split, give the same counts, and the
// scanner's state stays within its buffers (no panic).
func FuzzCmdScanner(f *testing.F) {
	f.Add([]byte("T1 LOGIN u p\r\nT2 SELECT INBOX\r\nT3 UID FETCH 1:* (FLAGS)\r\n"), 3)
	f.Add([]byte("T1 APPEND INBOX {5+}\r\nT2 X\r\n\r\nT3 IDLE\r\nDONE\r\n"), 1)
	f.Add([]byte("T1 APPEND INBOX ~{99999999999999999999}\r\n"), 2)
	f.Add([]byte("{1}\n}\n{\n+}\r\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if chunk < 1 || chunk > len(in) {
			chunk = 1
		}
		whole := scanCounts(in, 0)
		if got := scanCounts(in, chunk); !maps.Equal(got, whole) {
			t.Fatalf("in pieces of %d: got %v, want %v (all at once)", chunk, got, whole)
		}
		var sum uint64
		for _, n := range whole {
			sum += n
		}
		if lines := uint64(strings.Count(string(in), "\n")); sum > lines {
			t.Fatalf("%d commands counted in %d lines", sum, lines)
		}
	})
}

// TestManagerCountsCommands: a pool connection's imapclient commands and
// a raw command are counted by name in Stats.Commands.
func TestManagerCountsCommands(t *testing.T) {
	addr := memServer(t, 3)
	m, a := testLogin(t, Options{Address: addr, TLS: TLSNone})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := m.Stats().Commands
	c, err := a.Acquire(ctx, "INBOX", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	err = c.Raw("UID FETCH 1:* (FLAGS)", func(r RawReader) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil || strings.HasPrefix(l, r.Tag+" ") {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Release(c, nil)
	after := m.Stats().Commands
	for _, name := range []string{"NOOP", "UID FETCH"} {
		if got := after[name] - before[name]; got != 1 {
			t.Errorf("%s: got %d, want 1 (all: %v)", name, got, after)
		}
	}
	if after["LOGIN"] < 1 {
		t.Errorf("LOGIN: got %d, want at least 1 (all: %v)", after["LOGIN"], after)
	}
}

// BenchmarkCmdCounter: the counting writer against the bare write, for
// one command line per write (imapclient flushes each command) and for a
// write of several commands with a 4 KiB APPEND literal: on a connection
// that discards (the counter's own cost) and on loopback TCP (the floor
// every upstream write pays), in the same run.
func BenchmarkCmdCounter(b *testing.B) {
	msg := strings.Repeat("x", 4094) + "\r\n"
	streams := []struct{ name, data string }{
		{"line", "T1 UID FETCH 451:500 (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)\r\n"},
		{"append", "T1 UID FETCH 1:500 (FLAGS)\r\nT2 NOOP\r\nT3 APPEND INBOX {4096}\r\n" + msg + "T4 NOOP\r\n"},
	}
	var c cmdCounts
	loop := loopbackConn(b)
	for _, st := range streams {
		for _, bc := range []struct {
			name string
			w    net.Conn
		}{
			{"discard-bare", discardConn{}}, {"discard-counted", &cmdCounter{Conn: discardConn{}, counts: &c}},
			{"loopback-bare", loop}, {"loopback-counted", &cmdCounter{Conn: loop, counts: &c}},
		} {
			b.Run(st.name+"/"+bc.name, func(b *testing.B) {
				p := []byte(st.data)
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				for b.Loop() {
					bc.w.Write(p)
				}
			})
		}
	}
	if c[cmdIndex["APPEND"]].Load() == 0 || c[cmdIndex["UID FETCH"]].Load() == 0 {
		b.Fatal("APPEND or UID FETCH not counted")
	}
}

// loopbackConn returns the writing end of a loopback TCP connection whose
// other end is drained until the benchmark ends.
func loopbackConn(b *testing.B) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); io.Copy(io.Discard, r) }()
	b.Cleanup(func() { w.Close(); <-done; r.Close() })
	return w
}

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
