package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// bigListing is a LIST answer over listShareMax: lines of about 100
// bytes, each naming box<i>-xxx...
func bigListing(t testing.TB, boxes int) string {
	var b strings.Builder
	for i := range boxes {
		fmt.Fprintf(&b, "* LIST (\\HasNoChildren) \"/\" box%05d-%s\r\n", i, strings.Repeat("x", 64))
	}
	if b.Len() <= listShareMax {
		t.Fatalf("answer of %d bytes, want over %d", b.Len(), listShareMax)
	}
	return b.String()
}

// bigListUpstream is a fake upstream answering LIST "" * with answer,
// after delay; lists counts the LISTs it got.
func bigListUpstream(t *testing.T, answer string, delay time.Duration) (addr string, lists *atomic.Int32) {
	lists = new(atomic.Int32)
	fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
		if verb != "LIST" || !strings.Contains(args, "*") {
			return false
		}
		lists.Add(1)
		time.Sleep(delay)
		c.Send(answer + tag + " OK done\r\n")
		return true
	})
	return fake.Addr, lists
}

// TestListTooBigToHold: a listing over listShareMax is not held whole:
// the request that asked for it gets it from that one upstream command,
// the start held and then the rest streamed as it comes. Relayed (a
// plain command), the client gets the upstream's bytes; with a literal
// (decoded: imapclient asks upstream, imapserver writes), every mailbox,
// re-encoded by go-imap (names quoted), as before.
func TestListTooBigToHold(t *testing.T) {
	const boxes = 12000 // 12,000 lines of about 100 bytes: over 1 MiB
	answer := bigListing(t, boxes)
	want := strings.Split(strings.TrimSuffix(answer, "\r\n"), "\r\n")
	for _, tc := range []struct {
		name    string
		send    func(rc *rawConn) []string
		relayed bool
	}{
		{"relayed", func(rc *rawConn) []string { return rc.cmd("b", `LIST "" *`) }, true},
		{"decoded", func(rc *rawConn) []string {
			fmt.Fprintf(rc.c, "b LIST \"\" {1}\r\n")
			if l := rc.line(); !strings.HasPrefix(l, "+") {
				t.Fatalf("literal: got %q, want a continuation", l)
			}
			fmt.Fprintf(rc.c, "*\r\n") // the pattern, as a literal
			return rc.answer("b")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, lists := bigListUpstream(t, answer, 0)
			p := startProxy(t, testConfig(addr))
			rc := dialRaw(t, p.Addrs()[0])
			if l := rc.cmd("a", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "a OK") {
				t.Fatalf("LOGIN: got %q", l)
			}
			got := tc.send(rc)
			if len(got) != boxes+1 || !strings.HasPrefix(got[boxes], "b OK") {
				t.Fatalf("LIST: got %d lines ending %q, want %d and b OK", len(got), got[len(got)-1], boxes+1)
			}
			if tc.relayed && !equalUntagged(got, append(want, "")) {
				t.Errorf("LIST: got lines other than the upstream's (first %q, want %q)", got[0], want[0])
			}
			for _, i := range []int{0, boxes - 1} {
				if w := fmt.Sprintf("box%05d-", i); !strings.Contains(got[i], w) {
					t.Errorf("line %d: got %q, want mailbox %s...", i, got[i], w)
				}
			}
			if n := lists.Load(); n != 1 {
				t.Errorf("upstream LISTs: got %d, want 1", n)
			}
		})
	}
}

// TestListTooBigConcurrent: identical requests that arrive while a
// listing too big to share is in flight (the fake answers after a pause)
// each get it whole, from one upstream command each: the leader's own,
// or, for one that joined, its own run after (the answer was not held).
func TestListTooBigConcurrent(t *testing.T) {
	const boxes, clients = 12000, 3
	answer := bigListing(t, boxes)
	want := strings.Split(answer+"b OK", "\r\n")
	addr, lists := bigListUpstream(t, answer, 200*time.Millisecond)
	p := startProxy(t, testConfig(addr))
	conns := make([]*lineConn, clients)
	for i := range conns {
		conns[i] = dialLines(t, p.Addrs()[0])
	}
	got, errs := make([][]string, clients), make([]error, clients)
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Add(1)
		go func() { // read at once: a client not read would stall its spill
			defer wg.Done()
			got[i], errs[i] = rc.do("b", `LIST "" *`)
		}()
	}
	wg.Wait()
	for i, lines := range got {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if !equalUntagged(lines, want) || !strings.HasPrefix(lines[len(lines)-1], "b OK") {
			t.Errorf("client %d: got %d lines (first %q, last %q), want the upstream's %d and b OK", i, len(lines), lines[0], lines[len(lines)-1], boxes)
		}
	}
	if n := lists.Load(); n != clients {
		t.Errorf("upstream LISTs: got %d, want %d (one per request)", n, clients)
	}
}

// TestListRelaySpillBounded: a relayed listing ten times listShareMax
// goes to spill in batches of whole LIST responses (other untagged
// responses dropped, a literal kept whole), and the relay never holds
// more than about listShareMax, whatever the answer's size; a client
// that fails takes nothing more, and the answer is still read to its tag.
func TestListRelaySpillBounded(t *testing.T) {
	const boxes = 120000 // about 12 MiB
	var in, want bytes.Buffer
	big := bigListing(t, boxes)
	in.WriteString("* 3 EXISTS\r\n")
	in.WriteString(big)
	in.WriteString("* 4 EXISTS\r\n* LIST () \"/\" {5}\r\nabcde\r\n")
	in.WriteString("X1 OK done\r\n")
	want.WriteString(big)
	want.WriteString("* LIST () \"/\" {5}\r\nabcde\r\n")
	for _, tc := range []struct {
		name      string
		failAfter int // spill calls that succeed; -1: all
	}{
		{"client takes it all", -1},
		{"client gone at once", 0},
		{"client gone later", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			calls, maxBatch, maxHeld := 0, 0, 0
			rl := &listRelay{name: []byte("LIST")}
			rl.spill = func(b []byte) error {
				calls++
				maxBatch, maxHeld = max(maxBatch, len(b)), max(maxHeld, cap(rl.out))
				if !bytes.HasSuffix(b, []byte("\r\n")) || !bytes.HasPrefix(b, []byte("* LIST ")) {
					t.Errorf("batch %d: not whole LIST responses: starts %q, ends %q", calls, clip(b), b[max(0, len(b)-8):])
				}
				if tc.failAfter >= 0 && calls > tc.failAfter {
					return fmt.Errorf("client gone")
				}
				got.Write(b)
				return nil
			}
			br := bufio.NewReaderSize(bytes.NewReader(in.Bytes()), 4096)
			if err := rl.run(br, "X1"); err != nil {
				t.Fatalf("run: got %v, want nil (OK)", err)
			}
			if br.Buffered() != 0 {
				t.Errorf("got %d bytes left unread, want the answer read to its tag", br.Buffered())
			}
			if !rl.tooBig || maxBatch > listShareMax+200 || max(maxHeld, cap(rl.out)) > 2*listShareMax {
				t.Errorf("got tooBig %v, largest batch %d, most held %d; want true, at most %d, %d",
					rl.tooBig, maxBatch, max(maxHeld, cap(rl.out)), listShareMax+200, 2*listShareMax)
			}
			if tc.failAfter < 0 {
				got.Write(rl.out)
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("got %d bytes spilled and held, want the %d of the LIST responses", got.Len(), want.Len())
				}
				return
			}
			if calls != tc.failAfter+1 || rl.spillErr == nil || len(rl.out) != 0 {
				t.Errorf("got %d spill calls, error %v, %d bytes held; want %d, the client's, 0", calls, rl.spillErr, len(rl.out), tc.failAfter+1)
			}
		})
	}
}

// TestDovecotListOverBound: with the bound lowered under the listing of
// 150 mailboxes (all subscribed), LIST and LSUB through idlemux are
// Dovecot's own answers byte for byte, the start held and the rest
// streamed, each from one upstream command.
func TestDovecotListOverBound(t *testing.T) {
	old := listShareMax
	listShareMax = 4 << 10
	t.Cleanup(func() { listShareMax = old }) // after the proxy's cleanup: registered first
	dv := startDovecot(t)
	c := dv.Dial(t, testUser, testPass)
	for i := range 150 {
		box := fmt.Sprintf("box%03d-%s", i, strings.Repeat("n", 30))
		if err := c.Create(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribe(box).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	p := startProxy(t, testConfig(dv.Addr))
	direct, proxied := dialLines(t, dv.Addr), dialLines(t, p.Addrs()[0])
	for _, tc := range []struct {
		cmd, upstream string
		over          bool // the answer is over the lowered bound
	}{
		{`LIST "" *`, "LIST", true},
		{`LSUB "" *`, "LSUB", true},
		{`LIST "" box1*`, "LIST", false},
	} {
		want, err := direct.do("d", tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Join(want, "\r\n")); (n > listShareMax) != tc.over {
			t.Fatalf("%s: Dovecot's answer is %d bytes; want over %d: %v", tc.cmd, n, listShareMax, tc.over)
		}
		before := p.upStats().Commands[tc.upstream]
		got, err := proxied.do("d", tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !equalUntagged(got, want) || !sameStatus(got[len(got)-1], want[len(want)-1]) {
			t.Errorf("%s: got %d lines (first %q), want Dovecot's %d (first %q)", tc.cmd, len(got), got[0], len(want), want[0])
		}
		if n := p.upStats().Commands[tc.upstream] - before; n != 1 {
			t.Errorf("%s: got %d upstream %s commands, want 1", tc.cmd, n, tc.upstream)
		}
	}
}
