package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/idlemux/idlemux/internal/faultrelay"
)

// cachePair is rawPair that also returns the proxy, with the proxied
// mailbox's watcher idling on its own connection (a client idled there
// once), so FLAGS may come from the model.
func cachePair(t *testing.T, prefix string) (setup *imapclient.Client, direct, proxied *rawConn, p *Server) {
	setup, direct, proxied, p = rawPairProxy(t, prefix, func(setup *imapclient.Client) {
		// The setup client must not claim \Recent of what it appends later.
		if _, err := setup.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	})
	idleOnce(t, proxied, p, prefix+"P")
	return setup, direct, proxied, p
}

// idleOnce runs IDLE until box's watcher idles on a connection of its
// own (a client idling asks for it, upstream/polled.go), then DONE.
func idleOnce(t *testing.T, rc *rawConn, p *Server, box string) {
	t.Helper()
	rc.c.Write([]byte("i IDLE\r\n"))
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: got %q, want a continuation", l)
	}
	a, err := p.routes()[0].mgr.Login(context.Background(), testUser, testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unref()
	waitFor(t, box+"'s watcher idling", func() bool {
		w := a.Watching(box)
		return w != nil && w.Live()
	})
	rc.c.Write([]byte("DONE\r\n"))
	rc.answer("i")
}

// fetchCounts are the figures that tell where a FETCH was answered.
type fetchCounts struct{ local, hits, misses float64 }

func countsOf(p *Server) fetchCounts {
	return fetchCounts{
		local:  testutil.ToFloat64(p.metrics.localAnswers.WithLabelValues("FETCH")),
		hits:   testutil.ToFloat64(p.cache.hits),
		misses: testutil.ToFloat64(p.cache.misses),
	}
}

// checkCounts runs f and checks that it moved the local answers by
// wantLocal and the cache misses by wantMisses (unless negative).
func checkCounts(t *testing.T, p *Server, what string, wantLocal, wantMisses float64, f func()) {
	t.Helper()
	before := countsOf(p)
	f()
	after := countsOf(p)
	local, misses := after.local-before.local, after.misses-before.misses
	if local != wantLocal || (wantMisses >= 0 && misses != wantMisses) {
		t.Errorf("%s: got local answers +%v, cache misses +%v; want +%v, +%v", what, local, misses, wantLocal, max(wantMisses, 0))
	}
}

// sameFetch runs cmd directly and through idlemux and compares the wire.
func sameFetch(t *testing.T, direct, proxied *rawConn, cmd string) {
	t.Helper()
	want := direct.cmd("f", cmd)
	got := proxied.cmd("f", cmd)
	if len(want) < 2 {
		t.Fatalf("%s: no untagged response directly (%q)", cmd, want)
	}
	if !equalUntagged(got, want) || !sameStatus(got[len(got)-1], want[len(want)-1]) {
		t.Errorf("%s:\n got %q\nwant %q", cmd, got, want)
	}
}

// cachedFetches are FETCHes idlemux answers from the model and the cache
// once it has seen them: every item order and spelling Dovecot has its
// own way of writing.
var cachedFetches = []string{
	"UID FETCH 1:* (FLAGS)",
	"FETCH 1:* (FLAGS UID)",
	"FETCH 1:* FLAGS",
	"UID FETCH 1:* (UID FLAGS)",
	"FETCH 2:* (FLAGS)",
	"UID FETCH 2:10 (FLAGS)",
	"FETCH 1:* (UID)",
	"UID FETCH 2:* UID",
	"FETCH *:2 (FLAGS)",
	"UID FETCH 10:* (UID FLAGS)",
	"UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)",
	"FETCH 1:3 (ENVELOPE RFC822.SIZE UID FLAGS)",
	"FETCH 1:* ALL",
	"FETCH 1:* FAST",
	"UID FETCH 1:* FULL",
	"FETCH 1 (BODY.PEEK[TEXT] INTERNALDATE UID)",
	"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject From)])",
	"FETCH 1:* (BODY.PEEK[HEADER] FLAGS)",
	"FETCH 1:* (RFC822.HEADER)",
	"FETCH 1:* (UID BODY.PEEK[])",
	"FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])",
	"FETCH 1:* (BODY)",
	"FETCH 1:* RFC822.SIZE",
}

// TestDovecotFetchCached: each FETCH of cachedFetches through idlemux is
// what Dovecot answers directly, the first time (from the upstream) and
// the second (from the cache and the model, with no upstream command:
// the local-answer counter moves, the cache misses do not), and from a
// second session.
func TestDovecotFetchCached(t *testing.T) {
	_, direct, proxied, p := cachePair(t, "Cache")
	for _, cmd := range cachedFetches {
		t.Run(cmd, func(t *testing.T) {
			sameFetch(t, direct, proxied, cmd) // first: fills the cache
			checkCounts(t, p, "second "+cmd, 1, 0, func() { sameFetch(t, direct, proxied, cmd) })
		})
	}
	// The same items in orders never asked: each answer's order is
	// derived (fetchlayout.go), the first time already.
	for _, cmd := range []string{
		"FETCH 1:* (RFC822.SIZE ENVELOPE FLAGS UID)",
		"UID FETCH 1:* (BODYSTRUCTURE INTERNALDATE ENVELOPE)",
		"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject From)] UID)",
		"FETCH 1:* (FLAGS BODY.PEEK[HEADER])",
		"FETCH 2 (BINARY.SIZE[1] UID BINARY.PEEK[1])",
		"FETCH 1 (INTERNALDATE UID FLAGS BODY.PEEK[TEXT] RFC822.SIZE)",
	} {
		checkCounts(t, p, cmd, 1, 0, func() { sameFetch(t, direct, proxied, cmd) })
	}

	// Never local: a body without PEEK sets \Seen, a partial is not kept,
	// RFC822 has no PEEK form; each goes upstream, and the wire is still
	// Dovecot's, \Seen included.
	for _, cmd := range []string{
		"FETCH 1 (BODY[TEXT])",
		"FETCH 2 (BODY.PEEK[]<0.20>)",
		"FETCH 3 (RFC822)",
		"UID FETCH 2 (BINARY[1] FLAGS)",
	} {
		checkCounts(t, p, cmd, 0, -1, func() { sameFetch(t, direct, proxied, cmd) })
		// Local again, with the \Seen the FETCH set.
		checkCounts(t, p, cmd+", then FLAGS", 1, 0, func() { sameFetch(t, direct, proxied, "FETCH 1:* (FLAGS)") })
	}

	second := dialRaw(t, p.Addrs()[0])
	second.cmd("l", "LOGIN "+testUser+" "+testPass)
	second.cmd("s", "EXAMINE CacheP")
	direct.cmd("s", "EXAMINE CacheD")
	for _, cmd := range []string{"UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)", "FETCH 1:* (UID BODY.PEEK[])"} {
		checkCounts(t, p, "second session: "+cmd, 1, 0, func() { sameFetch(t, direct, second, cmd) })
	}
}

// TestDovecotFetchCachedChanges: after changes made directly on Dovecot
// (a new message, a flag, an expunge) and reported by the watcher, the
// same FETCH through idlemux is still Dovecot's answer: the new message
// alone goes upstream, the flags are current, the expunged message is
// gone. A mailbox deleted and created again (a new UIDVALIDITY) with
// other messages under the same UIDs gets no stale bytes.
func TestDovecotFetchCachedChanges(t *testing.T) {
	setup, direct, proxied, p := cachePair(t, "Chg")
	listing := "FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"
	sameFetch(t, direct, proxied, listing)

	for _, box := range []string{"ChgD", "ChgP"} {
		appendMsg(t, setup, box, testMessage("fourth"))
	}
	syncBoth(t, direct, proxied, "EXISTS")
	before := countsOf(p)
	sameFetch(t, direct, proxied, listing)
	if after := countsOf(p); after.hits != before.hits+3 || after.misses != before.misses+1 {
		t.Errorf("after APPEND: got cache hits +%v, misses +%v; want +3, +1", after.hits-before.hits, after.misses-before.misses)
	}

	for _, step := range []struct {
		name, shows, cmd string
		change           func()
	}{
		{"STORE", "\\Flagged $Work)", "FETCH 1:* (FLAGS)", func() { storeBoth(t, setup, 1, false, imap.FlagFlagged, "$Work") }},
		{"EXPUNGE", "EXPUNGE", "UID FETCH 1:* (UID FLAGS)", func() { storeBoth(t, setup, 2, true, imap.FlagDeleted) }},
	} {
		step.change()
		syncBoth(t, direct, proxied, step.shows)
		checkCounts(t, p, "after "+step.name, 2, 0, func() {
			sameFetch(t, direct, proxied, listing)
			sameFetch(t, direct, proxied, step.cmd)
		})
	}

	// A new UIDVALIDITY: the messages in another order under UIDs 1-3.
	proxied.cmdUntilClose("u", "UNSELECT")
	direct.cmd("u", "UNSELECT")
	for _, box := range []string{"ChgD", "ChgP"} {
		if err := setup.Delete(box).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := setup.Create(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		for i := len(rawItemsMessages) - 1; i >= 0; i-- {
			appendMsg(t, setup, box, rawItemsMessages[i].body)
		}
	}
	fresh := dialRaw(t, p.Addrs()[0])
	fresh.cmd("l", "LOGIN "+testUser+" "+testPass)
	fresh.cmd("s", "EXAMINE ChgP")
	direct.cmd("s", "EXAMINE ChgD")
	sameFetch(t, direct, fresh, "FETCH 1:* (UID RFC822.SIZE ENVELOPE)")
	sameFetch(t, direct, fresh, "FETCH 1:* (UID BODY.PEEK[])")
}

// syncBoth runs NOOP on both sessions until each has seen a response
// holding what (the watcher reports a change made directly on Dovecot
// after its notify delay).
func syncBoth(t *testing.T, direct, proxied *rawConn, what string) {
	t.Helper()
	for _, rc := range []*rawConn{direct, proxied} {
		waitFor(t, "NOOP showing "+what, func() bool {
			got := rc.cmd("n", "NOOP")
			return strings.Contains(strings.Join(got, "\n"), what)
		})
	}
}

// storeBoth adds flags to message seq of both mailboxes, directly, and
// expunges it after if expunge.
func storeBoth(t *testing.T, setup *imapclient.Client, seq uint32, expunge bool, flags ...imap.Flag) {
	t.Helper()
	for _, box := range []string{"ChgD", "ChgP"} {
		if _, err := setup.Select(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := setup.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if expunge {
			if err := setup.Expunge().Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := setup.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestDovecotFetchPolled: in a mailbox whose watcher polls (no client
// idled there), FLAGS come from the model only right after a poll round
// begun since the session's previous command (the SELECT's:
// searchlocal.go modelCurrent), else from the upstream: a flag set
// directly on Dovecot just before is in the answer, as directly. Items
// the cache holds without FLAGS are answered from it.
func TestDovecotFetchPolled(t *testing.T) {
	setup, direct, proxied, p := rawPairProxy(t, "Poll", nil)
	// Right after SELECT, whose round read the mailbox: the model answers.
	checkCounts(t, p, "FETCH FLAGS right after SELECT", 1, -1, func() { sameFetch(t, direct, proxied, "FETCH 1:* (FLAGS)") })
	for _, tc := range []struct {
		cmd       string
		wantLocal float64 // the second time
	}{
		{"FETCH 1:* (FLAGS)", 0},
		{"FETCH 1:* (UID FLAGS ENVELOPE)", 0},
		{"FETCH 1:* (UID ENVELOPE)", 1},
	} {
		sameFetch(t, direct, proxied, tc.cmd)
		checkCounts(t, p, "second "+tc.cmd, tc.wantLocal, -1, func() { sameFetch(t, direct, proxied, tc.cmd) })
	}
	if w := p.upStats(); w.Polled == 0 {
		t.Fatalf("got %d polled mailboxes, want the session's polled", w.Polled)
	}
	for _, box := range []string{"PollD", "PollP"} {
		if _, err := setup.Select(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := setup.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Fresh"}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, rc := range []*rawConn{direct, proxied} {
		got := strings.Join(rc.cmd("f", "FETCH 1 (FLAGS)"), "\n")
		if !strings.Contains(got, "$Fresh") {
			t.Errorf("FETCH 1 (FLAGS) right after a STORE made directly: got %q, want $Fresh shown", got)
		}
	}
}

// TestDovecotFetchCachedShared: sessions that FETCH the same missing
// messages at the same time share one upstream FETCH (fetchCache.join):
// the upstream answers slowly, the first session's FETCH goes upstream,
// the others wait for it and are answered from the cache; every session
// gets Dovecot's answer.
func TestDovecotFetchCachedShared(t *testing.T) {
	const sessions = 4
	dv := startDovecot(t)
	relay := faultrelay.Start(t, dv.Addr)
	p := startProxy(t, testConfig(relay.Addr()))
	setup := dv.Dial(t, testUser, testPass)
	fillRawItems(t, setup, "Share")
	direct := dialRaw(t, dv.Addr)
	direct.cmd("l", "LOGIN "+testUser+" "+testPass)
	direct.cmd("s", "EXAMINE Share")
	var rcs []*rawConn
	for range sessions {
		rc := dialRaw(t, p.Addrs()[0])
		rc.cmd("l", "LOGIN "+testUser+" "+testPass)
		rc.cmd("s", "EXAMINE Share")
		rcs = append(rcs, rc)
	}
	const cmd = "FETCH 1:* (UID ENVELOPE BODY.PEEK[HEADER])"
	want := direct.cmd("f", cmd)
	relay.SetDelay(300 * time.Millisecond)
	before := countsOf(p)
	for _, rc := range rcs {
		fmt.Fprintf(rc.c, "f %s\r\n", cmd)
	}
	for i, rc := range rcs {
		if got := rc.answer("f"); !equalUntagged(got, want) {
			t.Errorf("session %d: %s:\n got %q\nwant %q", i, cmd, got, want)
		}
	}
	after := countsOf(p)
	n := float64(len(rawItemsMessages))
	if after.misses-before.misses != n || after.hits-before.hits != n*(sessions-1) {
		t.Errorf("got cache misses +%v, hits +%v; want +%v (one upstream FETCH), +%v",
			after.misses-before.misses, after.hits-before.hits, n, n*(sessions-1))
	}
}
