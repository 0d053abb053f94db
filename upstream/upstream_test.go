package upstream

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestBackoff(t *testing.T) {
	b := newBackoff(500*time.Millisecond, 2*time.Minute)
	var prevCap time.Duration
	for i := 0; i < 20; i++ {
		d := b.next()
		if d < b.cur/2 || d > b.cur {
			t.Fatalf("attempt %d: got %v, want within [%v, %v]", i, d, b.cur/2, b.cur)
		}
		if b.cur < prevCap {
			t.Fatalf("attempt %d: cap shrank from %v to %v", i, prevCap, b.cur)
		}
		prevCap = b.cur
	}
	if b.cur != 2*time.Minute {
		t.Fatalf("after 20 failures the cap is %v, want 2m", b.cur)
	}
	b.reset()
	if d := b.next(); d > time.Second {
		t.Fatalf("first retry after reset: got %v, want within 1s", d)
	}
}

func TestEventQueueDropsOldGenerations(t *testing.T) {
	q := newEventQueue()
	gen := q.reset()
	h := q.handler(gen)
	h.Expunge(3)
	n := uint32(7)
	h.Mailbox(&imapclient.UnilateralDataMailbox{NumMessages: &n})
	newGen := q.reset()
	h.Expunge(1) // from the old connection: dropped
	q.handler(newGen).Expunge(2)
	before := time.Now()
	evs, dirty, heard := q.takeNews()
	if len(evs) != 1 || evs[0] != (event{kind: evExpunge, n: 2}) || dirty {
		t.Fatalf("got %+v, dirty %v; want only the new connection's EXPUNGE 2", evs, dirty)
	}
	if heard.IsZero() || heard.After(before) {
		t.Errorf("heard at %v, want the time the EXPUNGE was pushed (before %v)", heard, before)
	}
	if _, _, heard := q.takeNews(); !heard.IsZero() {
		t.Errorf("second take: heard at %v, want zero (nothing new)", heard)
	}
}

func TestStripRecent(t *testing.T) {
	in := []imap.Flag{imap.FlagSeen, "\\Recent", imap.FlagFlagged}
	got := StripRecent(in)
	if len(got) != 2 || got[0] != imap.FlagSeen || got[1] != imap.FlagFlagged {
		t.Fatalf("got %v", got)
	}
	if len(in) != 3 || in[1] != "\\Recent" {
		t.Fatalf("input modified: %v", in)
	}
}
