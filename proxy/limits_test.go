package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// TestLaggingClientGetsBye: a client that never reads its updates (neither
// IDLE nor commands) is closed with BYE once it is fanout.max_lag changes
// behind, instead of holding memory without bound.
func TestLaggingClientGetsBye(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	for i := 0; i < 300; i++ {
		appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	cfg := testConfig(up.addr)
	cfg.Fanout.MaxLag = 50
	p := startProxy(t, cfg)

	lagger := dialRaw(t, p.Addrs()[0])
	lagger.cmd("a", "LOGIN "+testUser+" "+testPass)
	lagger.cmd("b", "SELECT INBOX")
	reader := dialView(t, p.Addrs()[0], "reader")
	reader.login()
	reader.selectBox("INBOX")
	idle := reader.idle()

	// STOREs on 300 messages: 300 changes in the model at once, twice. A
	// big transaction alone fails no one; a client that did not move
	// across two of them is failed, one that reads (IDLE) is not.
	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, op := range []imap.StoreFlagsOp{imap.StoreFlagsAdd, imap.StoreFlagsDel} {
		if err := direct.Store(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		reader.waitFor("300 flag updates", waitLong, func() bool {
			n := 0
			for _, f := range reader.flags {
				if slices.Contains(f, imap.FlagFlagged) == (op == imap.StoreFlagsAdd) {
					n++
				}
			}
			return n == 300
		})
	}
	reader.done(idle)
	reader.checkAgainstServer() // still connected and consistent

	lines := lagger.cmdUntilClose("c", "NOOP")
	for _, l := range lines {
		if strings.HasPrefix(l, "* BYE") {
			if !strings.Contains(l, "behind") {
				t.Fatalf("BYE text: got %q, want it to say the client is too far behind", l)
			}
			return
		}
	}
	t.Fatalf("NOOP from a client 300 changes behind (max_lag 50): got %d lines ending %q, want * BYE", len(lines), lines[len(lines)-1])
}

// TestAuthenticatePlainAndLsub: AUTHENTICATE PLAIN is checked upstream like
// LOGIN, and LSUB answers in LSUB form.
func TestAuthenticatePlainAndLsub(t *testing.T) {
	_, p, _ := setup(t, 1)
	c, err := imapclient.DialInsecure(p.Addrs()[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, "nope")); err == nil {
		t.Fatal("AUTHENTICATE PLAIN with a wrong password succeeded")
	}
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SUBSCRIBE INBOX")
	lines := rc.cmd("c", `LSUB "" "*"`)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "* LSUB") || !strings.Contains(lines[0], "INBOX") {
		t.Fatalf(`LSUB "" "*": got %q, want an LSUB line for INBOX`, lines)
	}
}

// TestKeepaliveWhileIdling: an idling client receives "* OK Still here" on
// time (RFC 2177 section 3), and a change still arrives between them.
func TestKeepaliveWhileIdling(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("first"))
	cfg := testConfig(up.addr)
	cfg.Keepalive = 300 * time.Millisecond
	p := startProxy(t, cfg)

	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SELECT INBOX")
	fmt.Fprintf(rc.c, "c IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: got %q", l)
	}
	start := time.Now()
	var got []time.Duration
	for len(got) < 3 {
		l := rc.line()
		if l != "* OK Still here" {
			t.Fatalf("while idling: got %q, want * OK Still here", l)
		}
		got = append(got, time.Since(start))
	}
	// The first comes within (d/2, d], the next ones every d.
	if got[0] > 600*time.Millisecond || got[2] > 1500*time.Millisecond {
		t.Fatalf("keepalives at %v, want the first by 0.6s and three by 1.5s (d = 0.3s)", got)
	}
	appendMsg(t, direct, "INBOX", testMessage("second"))
	for {
		l := rc.line()
		if l == "* 2 EXISTS" {
			break
		}
		if l != "* OK Still here" {
			t.Fatalf("while idling: got %q, want * 2 EXISTS or a keepalive", l)
		}
	}
	// This session is the first told of the message (RFC 3501 2.3.2).
	if l := rc.line(); l != "* 1 RECENT" {
		t.Fatalf("after * 2 EXISTS: got %q, want * 1 RECENT", l)
	}
	fmt.Fprintf(rc.c, "DONE\r\n")
	for {
		l := rc.line()
		if strings.HasPrefix(l, "c OK") {
			break
		}
		if l != "* OK Still here" {
			t.Fatalf("after DONE: got %q", l)
		}
	}
}

// TestIdleRefreshInvisible: the watcher ends and re-issues its upstream IDLE
// every upstream.idle_refresh; no line of it reaches an idling client.
func TestIdleRefreshInvisible(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("only"))
	cfg := testConfig(up.addr)
	cfg.Upstream.IdleRefresh = 200 * time.Millisecond
	cfg.Keepalive = 0
	p := startProxy(t, cfg)

	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SELECT INBOX")
	fmt.Fprintf(rc.c, "c IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: got %q", l)
	}
	before := up.idles.Load()
	rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 256)
	n, err := rc.c.Read(buf)
	if n > 0 || err == nil {
		t.Fatalf("idling client received %q during upstream IDLE refreshes", buf[:n])
	}
	if refreshes := up.idles.Load() - before; refreshes < 3 {
		t.Fatalf("upstream saw %d new IDLE commands in 2s with idle_refresh 200ms, want at least 3", refreshes)
	}
}
