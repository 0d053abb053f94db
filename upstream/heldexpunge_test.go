package upstream

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestWatcherCollectsHeldExpunge: a server that holds an EXPUNGE back
// while it answers FETCH and sends it only at the next command, not when
// IDLE starts (quirks.ExpungeHeldAfterFetch; go-imap's imapserver does),
// still gets the EXPUNGE into the model at once: after fetching a new
// message the watcher runs a NOOP before it idles again.
//
// The fake's mailbox holds UID 1; the watcher's first IDLE hears of
// message 2, and the NOOP after its FETCH hears that message 1 is gone.
// Without the NOOP the model would keep UID 1 until the next change.
func TestWatcherCollectsHeldExpunge(t *testing.T) {
	var mu sync.Mutex
	phase := map[*hostileup.Conn]int{} // 0 before its IDLE, 1 after, 2 once told of the EXPUNGE
	fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
		mu.Lock()
		p := phase[c]
		mu.Unlock()
		set := func(n int) { mu.Lock(); phase[c] = n; mu.Unlock() }
		switch {
		case verb == "SELECT" || verb == "EXAMINE":
			c.Send("* FLAGS (\\Seen)\r\n* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n" + tag + " OK [READ-ONLY] opened\r\n")
		case verb == "IDLE" && p == 0:
			set(1)
			c.Send("* 2 EXISTS\r\n") // before "+ idling", which the default sends
			return false
		case verb == "FETCH" || (verb == "UID" && strings.HasPrefix(strings.ToUpper(args), "FETCH ")):
			var out string
			if p == 1 && !strings.HasPrefix(strings.TrimPrefix(strings.ToUpper(args), "FETCH "), "1") {
				out = "* 2 FETCH (UID 2 FLAGS ())\r\n"
			} else {
				out = "* 1 FETCH (UID 1 FLAGS ())\r\n"
				if p == 1 {
					out += "* 2 FETCH (UID 2 FLAGS ())\r\n"
				}
			}
			c.Send(out + tag + " OK done\r\n")
		case verb == "NOOP" && p == 1:
			set(2)
			c.Send("* 1 EXPUNGE\r\n" + tag + " OK done\r\n")
		default:
			return false
		}
		return true
	})
	w := idlingWatcher(t, fake.Addr)
	want := []imap.UID{2}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got []imap.UID
		if box := w.Mailbox(); box != nil {
			got = box.UIDs()
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("model UIDs: got %v, want %v (the EXPUNGE the NOOP collects)", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idlingWatcher logs in to the upstream at addr and watches INBOX as a
// client idling there would: the watcher dials a connection of its own.
func idlingWatcher(t *testing.T, addr string) *Watcher {
	t.Helper()
	_, a := testLogin(t, Options{Address: addr, TLS: TLSNone, MaxConns: 3, PollInterval: time.Hour})
	w, err := a.Watch(testCtx(t), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Unwatch)
	w.Idling(true)
	return w
}
