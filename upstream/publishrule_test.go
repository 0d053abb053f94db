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
			release := make(chan struct{})
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
						<-release
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
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock) // before the fake's own cleanup
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
			unblock()
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
