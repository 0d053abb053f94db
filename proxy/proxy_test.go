package proxy

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitLong = 10 * time.Second

// TestSharedIdleFanout: several clients IDLE on one mailbox through the
// proxy; changes made by a direct upstream session reach every one of them
// in its own numbering, over a single upstream watcher.
func TestSharedIdleFanout(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	for i := 0; i < 3; i++ {
		appendMsg(t, direct, "INBOX", testMessage("seed "+string(rune('a'+i))))
	}
	p := startProxy(t, testConfig(up.addr))
	addr := p.Addrs()[0]

	var clients []*viewClient
	for i := 0; i < 5; i++ {
		vc := dialView(t, addr, "client"+string(rune('0'+i)))
		vc.login()
		if got := vc.selectBox("INBOX").NumMessages; got != 3 {
			t.Fatalf("%s: SELECT says %d messages, want 3", vc.name, got)
		}
		clients = append(clients, vc)
	}
	if st := p.Stats(); st.MailboxesWatched != 1 || st.UpstreamConns > 5 || st.Sessions != 5 {
		t.Fatalf("stats: got %+v, want 1 mailbox watched, <= 5 upstream connections, 5 sessions", st)
	}
	idles := make([]*imapclient.IdleCommand, len(clients))
	for i, vc := range clients {
		idles[i] = vc.idle()
	}

	newUID := appendMsg(t, direct, "INBOX", testMessage("pushed"))
	for _, vc := range clients {
		vc.waitFor("EXISTS 4", waitLong, func() bool { return len(vc.uids) == 4 })
	}

	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Store(imap.UIDSetNum(newUID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	for _, vc := range clients {
		vc.waitFor("FETCH FLAGS \\Flagged", waitLong, func() bool { return slices.Contains(vc.flags[newUID], imap.FlagFlagged) })
	}

	// Expunge the first message: every client must see "* 1 EXPUNGE".
	first, err := direct.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(first) != 1 {
		t.Fatalf("fetch first: %v", err)
	}
	if err := direct.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	for _, vc := range clients {
		vc.waitFor("EXPUNGE 1", waitLong, func() bool { return len(vc.uids) == 3 && !slices.Contains(vc.uids, first[0].UID) })
	}
	for i, vc := range clients {
		vc.done(idles[i])
	}
	for _, vc := range clients {
		vc.checkAgainstServer()
	}
}

// TestIdleFastPathHandOff: when the fast path's one non-blocking write comes
// up short (a slow client's full socket buffer) or fails, the session's own
// goroutine writes the rest first and finishes the IDLE on the ordinary
// path: the client still sees every update once, in order, whole lines.
func TestIdleFastPathHandOff(t *testing.T) {
	for _, tt := range fastPathCuts {
		t.Run(tt.name, func(t *testing.T) {
			_, p, direct := fastPathSetup(t)
			vc := dialView(t, p.Addrs()[0], "slow")
			vc.login()
			vc.selectBox("INBOX")

			cut, _ := cutFirstWrite(t, tt.write)

			idle := vc.idle()
			time.Sleep(50 * time.Millisecond) // on the fast path
			for i := range 3 {
				appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("after %d", i)))
			}
			vc.waitFor("EXISTS 4", waitLong, func() bool { return len(vc.uids) == 4 })
			if !cut.Load() {
				t.Fatal("the fast path never wrote: the test did not exercise it")
			}
			appendMsg(t, direct, "INBOX", testMessage("on the ordinary path"))
			vc.waitFor("EXISTS 5", waitLong, func() bool { return len(vc.uids) == 5 })
			vc.done(idle)
			vc.mu.Lock()
			events := slices.Clone(vc.events)
			vc.mu.Unlock()
			for _, ev := range events {
				if strings.HasPrefix(ev, "BAD") {
					t.Errorf("client saw %s; all events: %v", ev, events)
				}
			}
			vc.checkAgainstServer()
		})
	}
}

// fastPathCuts are the ways the fast path's first write can go wrong.
var fastPathCuts = []struct {
	name  string
	write func(n int, err error) (int, error) // what the first cut write returns
}{
	{"cut mid-line", func(n int, err error) (int, error) { return min(n, 5), err }},
	{"would block", func(int, error) (int, error) { return 0, nil }},
	{"failed", func(int, error) (int, error) { return 0, syscall.EPIPE }},
}

// fastPathSetup is an upstream with one message and idlemux in front.
func fastPathSetup(t *testing.T) (*memUpstream, *Server, *imapclient.Client) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("seed"))
	return up, startProxy(t, testConfig(up.addr)), direct
}

// cutFirstWrite makes the idle fast path's first write return what cut
// says (after writing that much for real; nil: no cut) until the test
// ends; it reports whether the cut happened and counts the writes.
func cutFirstWrite(t *testing.T, cut func(n int, err error) (int, error)) (*atomic.Bool, *atomic.Int32) {
	var done atomic.Bool
	var writes atomic.Int32
	hook := func(raw syscall.RawConn, b []byte) (int, error) {
		writes.Add(1)
		if cut != nil && done.CompareAndSwap(false, true) {
			n, err := cut(len(b), nil)
			if n > 0 {
				rawWriteOnce(raw, b[:n])
			}
			return n, err
		}
		return rawWriteOnce(raw, b)
	}
	rawWriteHook.Store(&hook)
	t.Cleanup(func() { rawWriteHook.Store(nil) })
	return &done, &writes
}

// TestIdleFastPathBusySession: a change that reaches an idling session
// while its write lock is held (a keepalive being written, say) is
// delivered as soon as the lock is let go, not at the next change.
func TestIdleFastPathBusySession(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("seed"))
	cfg := testConfig(up.addr)
	cfg.Keepalive = 0 // nothing else would wake the session
	p := startProxy(t, cfg)
	vc := dialView(t, p.Addrs()[0], "busy")
	vc.login()
	vc.selectBox("INBOX")
	idle := vc.idle()
	time.Sleep(50 * time.Millisecond) // on the fast path

	p.mu.Lock()
	var sess *session
	for s := range p.live {
		sess = s
	}
	p.mu.Unlock()
	sess.writeMu.Lock()
	appendMsg(t, direct, "INBOX", testMessage("while busy"))
	time.Sleep(300 * time.Millisecond) // the dispatcher's round finds the lock held
	sess.writeMu.Unlock()
	vc.waitFor("EXISTS 2", waitLong, func() bool { return len(vc.uids) == 2 })
	vc.done(idle)
	vc.checkAgainstServer()
}
