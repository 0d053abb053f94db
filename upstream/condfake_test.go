package upstream

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// condCaps are the capabilities of condFake: enough for a watcher that
// idles with CONDSTORE (RFC 7162) and takes posts (flagpost.go).
const condCaps = "IMAP4rev1 IDLE LITERAL+ CONDSTORE"

// condFake starts a scripted upstream with CONDSTORE whose INBOX holds
// UIDs 1 and 2 (MODSEQ 3 and 4, HIGHESTMODSEQ 4, UIDNEXT 3, UIDVALIDITY
// 7), as Dovecot words its SELECT, and answers the watcher's first
// listing (FETCH 1:*, selectlisting.go, or 1:2 after it). script
// handles every other command first (hostileup.Script); watcher is the
// connection that EXAMINEd (the watcher's own; a poll SELECTs on a pool
// connection, polled.go), for scripts that answer it alone.
func condFake(t *testing.T, script func(c *hostileup.Conn, tag, verb, args string, watcher bool) bool) *hostileup.Server {
	t.Helper()
	var mu sync.Mutex
	var wc *hostileup.Conn
	return hostileup.StartGreeting(t, "* OK [CAPABILITY "+condCaps+"] ready\r\n", func(c *hostileup.Conn, tag, verb, args string) bool {
		switch {
		case verb == "CAPABILITY":
			c.Send("* CAPABILITY " + condCaps + "\r\n" + tag + " OK done\r\n")
		case verb == "LOGIN":
			c.Send(tag + " OK [CAPABILITY " + condCaps + "] logged in\r\n")
		case verb == "EXAMINE" || verb == "SELECT":
			if verb == "EXAMINE" {
				mu.Lock()
				wc = c
				mu.Unlock()
			}
			c.Send("* FLAGS (\\Seen \\Flagged)\r\n* OK [PERMANENTFLAGS ()] ok\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" +
				"* OK [UIDNEXT 3] ok\r\n* OK [HIGHESTMODSEQ 4] ok\r\n" + tag + " OK [READ-ONLY] opened\r\n")
		case verb == "FETCH" && (strings.HasPrefix(args, "1:* ") || strings.HasPrefix(args, "1:2 ")):
			c.Send("* 1 FETCH (UID 1 FLAGS () MODSEQ (3))\r\n* 2 FETCH (UID 2 FLAGS () MODSEQ (4))\r\n" + tag + " OK done\r\n")
		default:
			mu.Lock()
			watcher := c == wc
			mu.Unlock()
			return script(c, tag, verb, args, watcher)
		}
		return true
	})
}

// seqRange parses a FETCH's sequence set "n" or "n:m" (RFC 3501 9,
// sequence-set; the watcher asks for one range of new messages).
func seqRange(set string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(set, ":")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err = strconv.Atoi(b)
	return lo, hi, err == nil && hi >= lo
}

// eventually polls cond every 5 ms until it holds or bound passes; it
// returns whether it held. No speed is asserted: bound is generous.
func eventually(bound time.Duration, cond func() bool) bool {
	for end := time.Now().Add(bound); ; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// idleOn waits until w idles on its own connection and the upstream has
// seen its IDLE (idled, counted by the fake's script): until then a Sync
// may be answered by a poll on a pool connection (polled.go).
func idleOn(t *testing.T, w *Watcher, idled func() bool) {
	t.Helper()
	if !eventually(5*time.Second, func() bool { return w.live.Load() && idled() }) {
		t.Fatal("watcher not idling on its own connection within 5 s")
	}
}

// gate holds a scripted answer back until the test has read the model
// between two watcher rounds. Its open goes to t.Cleanup after the fake
// starts, so it runs before the fake's cleanup waits for its handlers.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) wait() { <-g.ch }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// modelHas says whether the watcher's model holds uid.
func modelHas(w *Watcher, uid imap.UID) bool {
	for _, u := range w.Mailbox().UIDs() {
		if u == uid {
			return true
		}
	}
	return false
}
