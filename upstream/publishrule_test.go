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

// TestHighestModSeqHeldBehindExpunge: a watcher round that read new
// messages by sequence number (FETCH n (UID FLAGS MODSEQ)) does not
// publish the HIGHESTMODSEQ its CHANGEDSINCE read found: the server may
// hold an EXPUNGE back to the next command after that FETCH (RFC 3501
// 7.4.1, quirks.ExpungeHeldAfterFetch) while CHANGEDSINCE's highest MODSEQ
// already counts it, and a QRESYNC client given that value as its sync
// point would never be told the expunge (RFC 7162 3.1.2.1, 3.2.5). The
// round that brings the held EXPUNGE publishes it. Likewise a round whose
// reads brought news it has not applied (an EXPUNGE during UID FETCH). A
// round that read no new message and heard nothing after publishes at
// once.
//
// The scripted upstream: a Sync's NOOP hears the round's news; the
// CHANGEDSINCE 4 read answers MODSEQ 7; the NOOP after the round's FETCHes
// (which collects held expunges) is answered only once the test has read
// the model, and brings the held EXPUNGE, if any.
func TestHighestModSeqHeldBehindExpunge(t *testing.T) {
	tests := []struct {
		name       string
		noopNews   string // what the Sync's NOOP hears
		changed    string // the answer to UID FETCH 1:* ... (CHANGEDSINCE 4)
		held       string // what the NOOP after the FETCHes collects
		wantBefore []imap.UID
		hmsBefore  uint64 // HIGHESTMODSEQ after the Sync's round
		wantAfter  []imap.UID
		hmsAfter   uint64 // once the held EXPUNGE's round is done
	}{
		{"new message read by number, EXPUNGE held back: not published until the expunge",
			"* 3 EXISTS\r\n", "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))\r\n* 3 FETCH (UID 3 FLAGS () MODSEQ (6))\r\n",
			"* 1 EXPUNGE\r\n", []imap.UID{1, 2, 3}, 4, []imap.UID{2, 3}, 7},
		// UID FETCH may carry an EXPUNGE (RFC 3501 7.4.1 allows it for
		// the UID versions): news after the round's takeNews, which the
		// next round applies.
		{"EXPUNGE during the CHANGEDSINCE read: not published until its round",
			"", "* 1 EXPUNGE\r\n* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))\r\n",
			"", []imap.UID{1, 2}, 4, []imap.UID{2}, 7},
		{"flag change only: published in its round",
			"", "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))\r\n",
			"", []imap.UID{1, 2}, 7, []imap.UID{1, 2}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			release := newGate()
			var mu sync.Mutex
			noops, idles := 0, 0
			fake := condFake(t, func(c *hostileup.Conn, tag, verb, args string, watcher bool) bool {
				switch {
				case !watcher:
					return false
				case verb == "IDLE":
					mu.Lock()
					idles++
					mu.Unlock()
					return false
				case verb == "NOOP":
					mu.Lock()
					noops++
					n := noops
					mu.Unlock()
					switch n {
					case 1:
						c.Send(tc.noopNews + tag + " OK done\r\n")
					case 2:
						release.wait()
						c.Send(tc.held + tag + " OK done\r\n")
					default:
						return false
					}
				case verb == "FETCH" && strings.HasPrefix(args, "3 "):
					c.Send("* 3 FETCH (UID 3 FLAGS () MODSEQ (6))\r\n" + tag + " OK done\r\n")
				case verb == "UID" && strings.HasSuffix(args, "(CHANGEDSINCE 4)"):
					c.Send(tc.changed + tag + " OK done\r\n")
				default:
					return false // CHANGEDSINCE 7: nothing since
				}
				return true
			})
			t.Cleanup(release.open)
			w := idlingWatcher(t, fake.Addr)
			idleOn(t, w, func() bool { mu.Lock(); defer mu.Unlock(); return idles > 0 })
			if got := w.HighestModSeq(); got != 4 {
				t.Fatalf("HIGHESTMODSEQ after the SELECT: got %d, want 4", got)
			}
			if err := w.Sync(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			// The watcher now waits for the NOOP after its FETCHes.
			if got := w.Mailbox().UIDs(); !slices.Equal(got, tc.wantBefore) {
				t.Errorf("model UIDs after the round: got %v, want %v", got, tc.wantBefore)
			}
			if got := w.HighestModSeq(); got != tc.hmsBefore {
				t.Errorf("HIGHESTMODSEQ after the round: got %d, want %d", got, tc.hmsBefore)
			}
			release.open()
			var gotUIDs []imap.UID
			var gotHMS uint64
			if !eventually(5*time.Second, func() bool {
				gotUIDs, gotHMS = w.Mailbox().UIDs(), w.HighestModSeq()
				return slices.Equal(gotUIDs, tc.wantAfter) && gotHMS == tc.hmsAfter
			}) {
				t.Errorf("after the held EXPUNGE's round: got UIDs %v HIGHESTMODSEQ %d, want %v and %d",
					gotUIDs, gotHMS, tc.wantAfter, tc.hmsAfter)
			}
		})
	}
}

// TestHighestModSeqResyncHeldBehindExpunge: the resync after a reconnect
// (openAs: UID SEARCH ALL, then FETCH CHANGEDSINCE, RFC 7162 3.1.4.1) does
// not publish the HIGHESTMODSEQ it read when news came in during its reads
// (here an EXPUNGE within the UID FETCH, which RFC 3501 7.4.1 allows): the
// value may count a change the resynced model lacks until the first round
// applies the news, and that round publishes it.
//
// The scripted upstream breaks the watcher's first connection at a Sync's
// NOOP; the second connection's CHANGEDSINCE 4 read brings "* 1 EXPUNGE"
// and MODSEQ 7; its first NOOP (the requeued Sync's round) is answered
// only once the test has read the model.
func TestHighestModSeqResyncHeldBehindExpunge(t *testing.T) {
	fake, reached, release, idled := resyncFake(t)
	w := idlingWatcher(t, fake.Addr)
	idleOn(t, w, idled)
	synced := make(chan error, 1)
	go func() { synced <- w.Sync(testCtx(t)) }()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the second connection's first NOOP: got none within 10 s, want the requeued Sync's round")
	}
	// Resynced; the EXPUNGE heard during the reads waits for this round.
	if got, want := w.Mailbox().UIDs(), []imap.UID{1, 2}; !slices.Equal(got, want) {
		t.Errorf("model UIDs after the resync: got %v, want %v", got, want)
	}
	if got := w.HighestModSeq(); got != 4 {
		t.Errorf("HIGHESTMODSEQ after the resync: got %d, want 4 (7 counts the EXPUNGE the model lacks)", got)
	}
	release.open()
	if err := <-synced; err != nil {
		t.Fatalf("Sync: got %v, want nil", err)
	}
	var gotUIDs []imap.UID
	var gotHMS uint64
	if !eventually(5*time.Second, func() bool {
		gotUIDs, gotHMS = w.Mailbox().UIDs(), w.HighestModSeq()
		return slices.Equal(gotUIDs, []imap.UID{2}) && gotHMS == 7
	}) {
		t.Errorf("after the EXPUNGE's round: got UIDs %v HIGHESTMODSEQ %d, want [2] and 7", gotUIDs, gotHMS)
	}
}

// resyncFake is TestHighestModSeqResyncHeldBehindExpunge's upstream: it
// returns the fake, a channel closed when the second connection's first
// NOOP arrives, the gate that lets that NOOP be answered, and
// whether the watcher idled.
func resyncFake(t *testing.T) (fake *hostileup.Server, reached chan struct{}, release *gate, idled func() bool) {
	reached, release = make(chan struct{}), newGate()
	var mu sync.Mutex
	var conns []*hostileup.Conn // the watcher's connections, in order
	idles, noops2 := 0, 0
	fake = condFake(t, func(c *hostileup.Conn, tag, verb, args string, watcher bool) bool {
		if !watcher {
			return false
		}
		mu.Lock()
		if !slices.Contains(conns, c) {
			conns = append(conns, c)
		}
		n := slices.Index(conns, c) + 1
		mu.Unlock()
		switch {
		case verb == "IDLE":
			mu.Lock()
			idles++
			mu.Unlock()
			return false
		case verb == "NOOP" && n == 1:
			c.Close() // the connection breaks: the Sync waits for the next one
		case verb == "NOOP" && n == 2:
			mu.Lock()
			noops2++
			first := noops2 == 1
			mu.Unlock()
			if !first {
				return false
			}
			close(reached)
			release.wait()
			c.Send(tag + " OK done\r\n")
		case verb == "UID" && strings.HasPrefix(args, "SEARCH"):
			c.Send("* SEARCH 1 2\r\n" + tag + " OK done\r\n")
		case verb == "UID" && n == 2 && strings.HasSuffix(args, "(CHANGEDSINCE 4)"):
			c.Send("* 1 EXPUNGE\r\n* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))\r\n" + tag + " OK done\r\n")
		default:
			return false
		}
		return true
	})
	t.Cleanup(release.open)
	return fake, reached, release, func() bool { mu.Lock(); defer mu.Unlock(); return idles > 0 }
}
