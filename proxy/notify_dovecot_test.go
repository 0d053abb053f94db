package proxy

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/internal/dovecottest"
	"github.com/idlemux/idlemux/internal/faultrelay"
	"github.com/idlemux/idlemux/upstream"
)

// lineWithin reads one line, waiting at most d; ok is false on timeout.
func (rc *rawConn) lineWithin(d time.Duration) (string, bool) {
	rc.c.SetReadDeadline(time.Now().Add(d))
	l, err := rc.r.ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && l == "" {
		return "", false
	}
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n"), true
}

// until reads lines until one equals want once normalised by notifyWire
// (within d), then those that follow within quiet: the unsolicited
// responses one upstream change brings, normalised. ok is false when want
// never came.
func (rc *rawConn) until(want string, d, quiet time.Duration) (lines []string, took time.Duration, ok bool) {
	start := time.Now()
	for deadline := start.Add(d); time.Now().Before(deadline); {
		l, got := rc.lineWithin(time.Until(deadline))
		if !got {
			break
		}
		lines = append(lines, l)
		if n := notifyWire([]string{l}); len(n) == 1 && n[0] == want { // a keepalive normalises to nothing
			took = time.Since(start)
			for {
				l, got := rc.lineWithin(quiet)
				if !got {
					return notifyWire(lines), took, true
				}
				lines = append(lines, l)
			}
		}
	}
	return notifyWire(lines), time.Since(start), false
}

// notifyWire is keywordWire without "* n RECENT": a client idling through
// idlemux and one idling directly on the same mailbox at the same time
// differ there by RFC 3501 section 2.3.2 (\Recent goes to one session
// only, and idlemux's model and the direct session compete for it; what
// idlemux reports is TestDovecotRecent's), and idlemux names the UID in
// unsolicited FETCH (section 7.4.2 allows it). A keepalive ("* OK Still
// here", Dovecot's imap_idle_notify_interval and idlemux's keepalive) is
// left out too: each side sends its own on its own clock, and one fell
// inside a compared window in CI.
func notifyWire(lines []string) []string {
	var out []string
	for _, l := range keywordWire(lines) {
		if !strings.HasSuffix(l, " RECENT") && l != "* OK Still here" {
			out = append(out, l)
		}
	}
	return out
}

// dovecotWithBoxes starts Dovecot with mailboxes W0..W<n-1>, one message
// in each, and returns a client logged in directly.
func dovecotWithBoxes(t testing.TB, n int) (*dovecottest.Server, *imapclient.Client) {
	t.Helper()
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	for i := range n {
		name := fmt.Sprintf("W%d", i)
		if err := direct.Create(name, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		appendMsg(t, direct, name, testMessage("first"))
	}
	return dv, direct
}

// idleOn logs a raw connection in, selects box and starts IDLE.
func idleOn(t testing.TB, addr, box string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	if l := rc.cmd("s", "SELECT "+box); !strings.HasPrefix(l[len(l)-1], "s OK") {
		t.Fatalf("SELECT %s: %q", box, l[len(l)-1])
	}
	fmt.Fprintf(rc.c, "i IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE on %s: got %q", box, l)
	}
	return rc
}

// dovecotCapsWithoutNotify is Dovecot 2.3.19's list without NOTIFY, for
// the upstream.capabilities override that hides it.
var dovecotCapsWithoutNotify = []string{"IMAP4rev1", "IDLE", "ENABLE", "UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT",
	"CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "CONDSTORE", "LITERAL+", "SPECIAL-USE", "ID"}

// TestDovecotNotifyPolledMailboxes: an account whose clients idle on more
// mailboxes than the cap leaves IDLE watchers for (cap 3: one IDLE
// watcher, one NOTIFY connection where Dovecot offers it). With NOTIFY,
// the other five are pushed: a message appended directly on Dovecot, a
// flag change and an expunge reach each idling client within seconds
// although the poll interval is 30 s, as they reach a client idling on
// Dovecot directly (same lines). With NOTIFY hidden (upstream.capabilities)
// the same changes arrive by the poll.
func TestDovecotNotifyPolledMailboxes(t *testing.T) {
	const boxes = 6
	for _, tc := range []struct {
		name       string
		hide       bool
		poll       time.Duration
		within     time.Duration // how long a change may take to arrive
		wantNotify int
		wantPolled int // of which not IDLE-watched
	}{
		{"NOTIFY", false, 30 * time.Second, 5 * time.Second, boxes - 1, boxes - 1},
		{"NOTIFY hidden", true, 3 * time.Second, 3*time.Second + 5*time.Second, 0, boxes - 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dv, direct := dovecotWithBoxes(t, boxes)
			cfg := testConfig(dv.Addr)
			cfg.Upstream.MaxConnectionsPerAccount = 3
			cfg.Upstream.PollInterval = tc.poll
			if tc.hide {
				cfg.Upstream.Capabilities = dovecotCapsWithoutNotify
			}
			cfg.Metrics.Address = "127.0.0.1:0"
			p := startProxy(t, cfg)
			var got []*rawConn
			for i := range boxes {
				got = append(got, idleOn(t, p.Addrs()[0], fmt.Sprintf("W%d", i)))
			}
			last := fmt.Sprintf("W%d", boxes-1)
			want := idleOn(t, dv.Addr, last) // the reference: Dovecot directly
			waitProxyStats(t, p, "mailbox modes", func(st upstream.Stats) bool {
				return st.Watchers == boxes && st.Polled == tc.wantPolled && st.Notify == tc.wantNotify && st.Conns <= 3
			})
			_, body := scrape(t, "http://"+p.MetricsAddr()+"/metrics")
			notifyConns := min(tc.wantNotify, 1)
			for _, want := range []string{
				fmt.Sprintf(`idlemux_mailboxes_by_mode{mode="idle",upstream="default"} %d`, boxes-tc.wantPolled),
				fmt.Sprintf(`idlemux_mailboxes_by_mode{mode="notify",upstream="default"} %d`, tc.wantNotify),
				fmt.Sprintf(`idlemux_mailboxes_by_mode{mode="polled",upstream="default"} %d`, tc.wantPolled-tc.wantNotify),
				fmt.Sprintf(`idlemux_upstream_connections{role="notify",upstream="default"} %d`, notifyConns),
				fmt.Sprintf(`idlemux_upstream_logins_total{reason="notify",upstream="default"} %d`, notifyConns),
			} {
				if !strings.Contains(body, want+"\n") {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			for i := range boxes {
				appendMsg(t, direct, fmt.Sprintf("W%d", i), testMessage("second"))
			}
			var wl []string
			for i, rc := range got {
				lines, took, ok := rc.until("* 2 EXISTS", tc.within, 300*time.Millisecond)
				if !ok {
					t.Fatalf("W%d while idling, after an APPEND directly on Dovecot: got %q within %v, want \"* 2 EXISTS\"", i, lines, tc.within)
				}
				t.Logf("W%d: EXISTS after %v", i, took)
				if i == boxes-1 {
					var ok bool
					if wl, _, ok = want.until("* 2 EXISTS", tc.within, 300*time.Millisecond); !ok || !slices.Equal(lines, wl) {
						t.Errorf("%s after an APPEND: through idlemux %q, directly %q", last, lines, wl)
					}
				}
			}
			if _, err := direct.Select(last, nil).Wait(); err != nil {
				t.Fatal(err)
			}
			for _, step := range []struct{ cmd, want string }{
				{`STORE 1 +FLAGS (\Flagged)`, `* 1 FETCH (FLAGS (\Flagged))`},
				{`STORE 1 +FLAGS (\Deleted)`, `* 1 FETCH (FLAGS (\Flagged \Deleted))`},
				{`EXPUNGE`, `* 1 EXPUNGE`},
			} {
				raw := dialRaw(t, dv.Addr)
				raw.cmd("l", "LOGIN "+testUser+" "+testPass)
				raw.cmd("s", "SELECT "+last)
				if l := raw.cmd("c", step.cmd); !strings.HasPrefix(l[len(l)-1], "c OK") {
					t.Fatalf("%s directly: %q", step.cmd, l)
				}
				wl, _, ok := want.until(step.want, tc.within, 300*time.Millisecond)
				if !ok {
					t.Fatalf("%s: Dovecot directly sent %q, not %q", step.cmd, wl, step.want)
				}
				gl, took, ok := got[boxes-1].until(step.want, tc.within, 300*time.Millisecond)
				if !ok || !slices.Equal(gl, wl) {
					t.Fatalf("%s elsewhere: through idlemux %q (after %v), directly %q", step.cmd, gl, took, wl)
				}
				t.Logf("%s: %q after %v", step.cmd, step.want, took)
			}
		})
	}
}

// waitProxyStats waits until the upstream stats satisfy ok.
func waitProxyStats(t *testing.T, p *Server, what string, ok func(upstream.Stats) bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(p.upStats()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: stats %+v", what, p.upStats())
		}
	}
}

// TestDovecotNotifyConnectionCut: the NOTIFY connection cut (with every
// other upstream connection, by a relay that then refuses new ones) takes
// its mailboxes back to polling at once, logged once; when the upstream
// is reachable again the connection comes back and pushes again.
func TestDovecotNotifyConnectionCut(t *testing.T) {
	const boxes = 3
	dv, direct := dovecotWithBoxes(t, boxes)
	relay := faultrelay.Start(t, dv.Addr)
	cfg := testConfig(relay.Addr())
	cfg.Upstream.MaxConnectionsPerAccount = 3
	cfg.Upstream.PollInterval = 30 * time.Second
	core, logs := observer.New(zapcore.DebugLevel)
	p := startProxyLogging(t, cfg, zap.New(core))
	var got []*rawConn
	for i := range boxes {
		got = append(got, idleOn(t, p.Addrs()[0], fmt.Sprintf("W%d", i)))
	}
	pushed := func(st upstream.Stats) bool { return st.Notify == boxes-1 && st.NotifyConns == 1 }
	waitProxyStats(t, p, "NOTIFY up", pushed)

	relay.Refuse(true)
	relay.ResetAll()
	waitProxyStats(t, p, "polling after the cut", func(st upstream.Stats) bool { return st.Notify == 0 })
	time.Sleep(3 * time.Second) // retries fail meanwhile: still one warning
	relay.Refuse(false)
	waitProxyStats(t, p, "NOTIFY back", pushed)
	if n := logs.FilterMessageSnippet("NOTIFY connection failed;").Len(); n != 1 {
		t.Errorf("warnings about the NOTIFY connection failing: got %d, want 1 per incident", n)
	}
	if n := logs.FilterMessage("NOTIFY connection back; its mailboxes are pushed again").Len(); n != 1 {
		t.Errorf("recovery logs: got %d, want 1", n)
	}
	appendMsg(t, direct, "W2", testMessage("second"))
	if lines, took, ok := got[2].until("* 2 EXISTS", 5*time.Second, 100*time.Millisecond); !ok {
		t.Fatalf("W2 after NOTIFY came back: got %q within %v, want \"* 2 EXISTS\" (poll interval 30 s)", lines, took)
	}
}

// TestDovecotNotifyNotOffered: Dovecot without mailbox list indexes does
// not advertise NOTIFY (and answers NOTIFY SET with NO
// [NOTIFICATIONOVERFLOW]: notes/dovecot.md). idlemux then keeps no slot
// for it: the watchers get MaxConns-1 IDLE connections, the rest are
// polled, no NOTIFY login is made, and changes arrive by the poll.
func TestDovecotNotifyNotOffered(t *testing.T) {
	dv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}, ExtraConf: "mailbox_list_index = no"})
	direct := dv.Dial(t, testUser, testPass)
	const boxes = 3
	for i := range boxes {
		if err := direct.Create(fmt.Sprintf("W%d", i), nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(dv.Addr)
	cfg.Upstream.MaxConnectionsPerAccount = 3
	cfg.Upstream.PollInterval = 2 * time.Second
	p := startProxy(t, cfg)
	var got []*rawConn
	for i := range boxes {
		got = append(got, idleOn(t, p.Addrs()[0], fmt.Sprintf("W%d", i)))
	}
	waitProxyStats(t, p, "two IDLE watchers, one polled", func(st upstream.Stats) bool {
		return st.WatcherConns == 2 && st.Polled == 1
	})
	appendMsg(t, direct, "W2", testMessage("second"))
	if lines, took, ok := got[2].until("* 1 EXISTS", 2*time.Second+5*time.Second, 100*time.Millisecond); !ok {
		t.Fatalf("W2 polled: got %q within %v, want \"* 1 EXISTS\"", lines, took)
	}
	if st := p.upStats(); st.Notify != 0 || st.NotifyConns != 0 || st.LoginsBy[upstream.LoginNotify] != 0 {
		t.Errorf("without NOTIFY offered: got %+v, want no NOTIFY connection nor login", st)
	}
}

// TestDovecotNotifyMailboxNames: mailboxes whose names need quoting or
// modified UTF-7 (RFC 3501 5.1.3) are pushed too: idlemux spells them in
// NOTIFY SET as Dovecot spells them in its STATUS events.
func TestDovecotNotifyMailboxNames(t *testing.T) {
	names := []struct{ utf8, wire string }{
		{"W0", "W0"}, // takes the one IDLE watcher slot
		{"Ünï", `"&ANw-n&AO8-"`},
		{"with space", `"with space"`},
		{"Tom & Jerry", `"Tom &- Jerry"`},
		{`q"uo\te`, `"q\"uo\\te"`},
		{"日本語", `"&ZeVnLIqe-"`},
	}
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	for _, n := range names {
		if err := direct.Create(n.utf8, nil).Wait(); err != nil {
			t.Fatalf("CREATE %q: %v", n.utf8, err)
		}
	}
	cfg := testConfig(dv.Addr)
	cfg.Upstream.MaxConnectionsPerAccount = 3
	cfg.Upstream.PollInterval = 30 * time.Second
	p := startProxy(t, cfg)
	var got []*rawConn
	for _, n := range names {
		got = append(got, idleOn(t, p.Addrs()[0], n.wire))
	}
	waitProxyStats(t, p, "every mailbox but W0 pushed", func(st upstream.Stats) bool { return st.Notify == len(names)-1 })
	for i, n := range names {
		appendMsg(t, direct, n.utf8, testMessage("hello"))
		if lines, took, ok := got[i].until("* 1 EXISTS", 5*time.Second, 0); !ok {
			t.Errorf("%s: got %q within %v, want \"* 1 EXISTS\" pushed (poll interval 30 s)", n.wire, lines, took)
		}
	}
}
