package upstream

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// busyFake is condFake with a mailbox that, once busy, gets a new message
// at every NOOP of the watcher (one every few ms, EXISTS before the
// NOOP's OK): the watcher's loop, which runs a NOOP after each round's
// FETCH (quirks.ExpungeHeldAfterFetch), always has news and never waits.
// Message n has UID n+1 from n = 3: UID 3 is the message APPENDed and
// expunged before the watcher's session saw it.
type busyFake struct {
	*hostileup.Server
	mu     sync.Mutex
	busy   bool
	exists int // the watcher's session's message count
	idles  int
	idleC  *hostileup.Conn // the watcher's connection while it idles
}

func startBusyFake(t *testing.T) *busyFake {
	f := &busyFake{exists: 2}
	f.Server = condFake(t, func(c *hostileup.Conn, tag, verb, args string, watcher bool) bool {
		switch {
		case !watcher:
			return false
		case verb == "IDLE":
			f.mu.Lock()
			f.idles++
			f.idleC = c
			if f.busy {
				f.exists++
				c.Send(fmt.Sprintf("* %d EXISTS\r\n", f.exists))
			}
			f.mu.Unlock()
			return false // "+ idling", then DONE
		case verb == "NOOP":
			f.mu.Lock()
			news := ""
			if f.busy {
				f.exists++
				news = fmt.Sprintf("* %d EXISTS\r\n", f.exists)
			}
			f.mu.Unlock()
			if news != "" {
				time.Sleep(5 * time.Millisecond) // a change every few ms, not a spin
			}
			c.Send(news + tag + " OK done\r\n")
		case verb == "FETCH":
			set, _, _ := strings.Cut(args, " ")
			lo, hi, ok := seqRange(set)
			if !ok {
				return false
			}
			var b strings.Builder
			for n := lo; n <= hi; n++ {
				fmt.Fprintf(&b, "* %d FETCH (UID %d FLAGS () MODSEQ (%d))\r\n", n, n+1, 10+n)
			}
			c.Send(b.String() + tag + " OK done\r\n")
		default:
			return false // CHANGEDSINCE: nothing changed
		}
		return true
	})
	t.Cleanup(func() { f.setBusy(false) })
	return f
}

// setBusy starts or stops the stream of new messages; a start tells an
// idling watcher at once.
func (f *busyFake) setBusy(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && !f.busy && f.idleC != nil {
		f.exists++
		f.idleC.Send(fmt.Sprintf("* %d EXISTS\r\n", f.exists))
	}
	f.busy = on
}

func (f *busyFake) idled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idles > 0
}

// TestBusyWatcherSettlesAppends: a watcher whose mailbox changes all the
// time never waits between rounds (watcher.go session), yet it still
// refuses an APPEND's post parked behind a gap once appendParkDelay has
// passed (its caller Syncs instead of waiting for good), and still runs
// the NOOP round for a message added from its APPEND that its own session
// never reported (appended, then expunged upstream before the session saw
// it: appendpost.go), which expunges the message from the model once
// appendConfirmDelay has passed. Both are checked after every round
// (process), not only while the loop waits.
func TestBusyWatcherSettlesAppends(t *testing.T) {
	tests := []struct {
		name       string
		uid        imap.UID // posted as an APPEND's new message
		busyFirst  bool     // the mailbox is busy before the post
		wantAnswer bool     // the post's answer: added, or refused
		bound      time.Duration
	}{
		{"parked behind a gap: refused", 1 << 20, true, false, 40 * appendParkDelay},
		{"added, never seen by the watcher's session: expunged", 3, false, true, appendConfirmDelay + 5*time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startBusyFake(t)
			w := idlingWatcher(t, f.Addr)
			idleOn(t, w, f.idled)
			busy := func() {
				f.setBusy(true)
				if !eventually(5*time.Second, func() bool { return w.Mailbox().Len() >= 6 }) {
					t.Fatalf("model messages: got %d, want the busy mailbox's new ones (6 or more)", w.Mailbox().Len())
				}
			}
			if tc.busyFirst {
				busy()
			}
			p := &flagPost{states: []FlagState{{UID: tc.uid, ModSeq: 9}}, done: make(chan bool, 1), added: 7}
			w.in.post(p)
			answer := map[bool]string{true: "added", false: "refused"}
			select {
			case got := <-p.done:
				if got != tc.wantAnswer {
					t.Fatalf("post of UID %d: got %s, want %s", tc.uid, answer[got], answer[tc.wantAnswer])
				}
			case <-time.After(tc.bound):
				t.Fatalf("post of UID %d: got no answer within %v, want %s", tc.uid, tc.bound, answer[tc.wantAnswer])
			}
			if !tc.wantAnswer {
				return
			}
			if !modelHas(w, tc.uid) {
				t.Fatalf("model after the post: got no UID %d, want it added", tc.uid)
			}
			busy()
			if !eventually(tc.bound, func() bool { return !modelHas(w, tc.uid) }) {
				t.Errorf("model after %v busy: got UID %d still there, want it expunged (never in the watcher's session)",
					tc.bound, tc.uid)
			}
		})
	}
}
