package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// selectLines keeps the lines of a SELECT answer that describe the
// mailbox (counts, UIDVALIDITY, UIDNEXT, flags), sorted, without the tag
// and the human-readable text after a response code. RECENT is left to
// TestDovecotRecent, HIGHESTMODSEQ to CONDSTORE (not offered yet).
func selectLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "* ") || strings.Contains(l, "HIGHESTMODSEQ") || strings.HasSuffix(l, " RECENT") {
			continue
		}
		if i := strings.Index(l, "] "); strings.HasPrefix(l, "* OK [") && i > 0 {
			l = l[:i+1]
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// TestDovecotManyMailboxesWatched: one account's clients watch more
// mailboxes than the per-account cap leaves watcher slots for (8 against
// 4, one of them the NOTIFY connection's). Every SELECT answers at once as Dovecot does, every client hears of
// a message delivered to its mailbox while it idles, and idlemux never
// holds more than the cap upstream (issue 10: the fifth mailbox used to
// hang 45 s and fail with NO [UNAVAILABLE]).
func TestDovecotManyMailboxesWatched(t *testing.T) {
	const boxes = 8
	dv, direct := dovecotWithBoxes(t, boxes)
	cfg := testConfig(dv.Addr)
	cfg.Upstream.MaxConnectionsPerAccount = 5
	p := startProxy(t, cfg)
	var clients []*rawConn
	for i := range boxes {
		name := fmt.Sprintf("W%d", i)
		want := dialRaw(t, dv.Addr)
		want.cmd("l", "LOGIN "+testUser+" "+testPass)
		got := dialRaw(t, p.Addrs()[0])
		got.cmd("l", "LOGIN "+testUser+" "+testPass)
		start := time.Now()
		g := got.cmd("s", "SELECT "+name)
		took := time.Since(start)
		w := want.cmd("s", "SELECT "+name)
		if !strings.HasPrefix(g[len(g)-1], "s OK") {
			t.Fatalf("SELECT %s through idlemux (after %v): got %q, want OK", name, took, g[len(g)-1])
		}
		if gl, wl := selectLines(g), selectLines(w); !slices.Equal(gl, wl) {
			t.Errorf("SELECT %s: through idlemux\n%s\nwant (Dovecot directly)\n%s", name, strings.Join(gl, "\n"), strings.Join(wl, "\n"))
		}
		fmt.Fprintf(got.c, "i IDLE\r\n")
		if l := got.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE on %s: got %q", name, l)
		}
		clients = append(clients, got)
	}
	// Dovecot offers NOTIFY: of the 4 watcher slots, one is kept for the
	// NOTIFY connection (upstream/notifier.go), which pushes the 5
	// mailboxes without an IDLE connection of their own.
	st := p.upStats()
	if st.Conns > 5 || st.Watchers != boxes || st.Polled != boxes-3 || st.WatcherConns+st.NotifyConns > 4 {
		t.Fatalf("upstream: got %+v, want at most 5 connections, %d watchers of which %d polled (or pushed by NOTIFY), at most 4 watcher and NOTIFY connections", st, boxes, boxes-3)
	}
	for i := range boxes {
		appendMsg(t, direct, fmt.Sprintf("W%d", i), testMessage("second"))
	}
	for i, rc := range clients {
		// The test config polls every 500 ms; Dovecot's own notify
		// delay is about as long.
		if l := rc.line(); l != "* 2 EXISTS" {
			t.Errorf("W%d while idling: got %q, want \"* 2 EXISTS\"", i, l)
		}
	}
}

// TestDovecotFolderByFolderNoLogins: a client that SELECTs folder after
// folder (offlineimap, mbsync) is served on the command connections: no
// upstream login per folder (each one used to dial a watcher, 35-45 ms),
// and NOOP in a polled folder reports a change made elsewhere at once, as
// Dovecot directly does (the poll interval here is an hour).
func TestDovecotFolderByFolderNoLogins(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	const folders = 12
	for i := range folders {
		name := fmt.Sprintf("F%d", i)
		if err := direct.Create(name, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		appendMsg(t, direct, name, testMessage("first"))
	}
	cfg := testConfig(dv.Addr)
	cfg.Upstream.PollInterval = time.Hour
	p := startProxy(t, cfg)
	got := dialRaw(t, p.Addrs()[0])
	got.cmd("l", "LOGIN "+testUser+" "+testPass)
	want := dialRaw(t, dv.Addr)
	want.cmd("l", "LOGIN "+testUser+" "+testPass)
	logins := p.upStats().Logins
	for i := range folders {
		name := fmt.Sprintf("F%d", i)
		for _, rc := range []*rawConn{got, want} {
			if l := rc.cmd("s", "SELECT "+name); !strings.HasPrefix(l[len(l)-1], "s OK") {
				t.Fatalf("SELECT %s: %q", name, l[len(l)-1])
			}
		}
		appendMsg(t, direct, name, testMessage("second"))
		g, w := got.cmd("n", "NOOP"), want.cmd("n", "NOOP")
		if !slices.Contains(w, "* 2 EXISTS") {
			t.Fatalf("NOOP directly after an APPEND elsewhere: got %q, want * 2 EXISTS", w)
		}
		if !slices.Contains(g, "* 2 EXISTS") {
			t.Errorf("NOOP in %s through idlemux: got %q, want * 2 EXISTS as directly (%q)", name, g, w)
		}
	}
	if n := p.upStats().Logins - logins; n > 1 {
		t.Errorf("upstream logins while selecting %d folders in turn: got %d, want at most 1", folders, n)
	}
}
