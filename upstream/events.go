package upstream

import (
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/fanout"
)

type eventKind uint8

const (
	evExists  eventKind = iota + 1 // "* n EXISTS"
	evExpunge                      // "* n EXPUNGE"
	evFlags                        // a FETCH: some message's flags changed
	evMailbox                      // FLAGS or PERMANENTFLAGS changed
)

type event struct {
	kind eventKind
	n    uint32
}

// eventQueue turns the watcher connection's unilateral responses into typed
// events. The imapclient reader calls Expunge and Mailbox synchronously and
// in wire order, so EXISTS/EXPUNGE keep their order; FETCH arrives on a
// goroutine of its own (its sequence number may be stale by then), so it is
// only a signal that flags must be re-read, by UID.
//
// The queue is bounded by what one upstream session can send between two
// drains; a connection that floods it without limit is cut.
type eventQueue struct {
	mu     sync.Mutex
	gen    uint64 // events of older connections are dropped
	events []event
	dirty  bool          // flags must be re-read
	lost   bool          // events were dropped: the mirror cannot be trusted
	noop   bool          // ask the upstream for news (polling without IDLE)
	signal chan struct{} // capacity 1: "look at the queue"
	// heard is when the oldest news not yet taken was read off the wire:
	// fan-out latency counts from there, the upstream round trips the
	// watcher makes before the model learns the change included.
	heard time.Time
}

// maxQueued bounds the events buffered for one drain.
const maxQueued = 1 << 20

func newEventQueue() *eventQueue {
	return &eventQueue{signal: make(chan struct{}, 1)}
}

func (q *eventQueue) poke() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) push(gen uint64, ev event) {
	q.mu.Lock()
	if gen == q.gen && len(q.events) < maxQueued {
		q.events = append(q.events, ev)
		q.hear()
	} else if gen == q.gen {
		q.lost = true // overflow: only a reconnect and resync recovers
	}
	q.mu.Unlock()
	q.poke()
}

// handler returns the unilateral data handler for connection generation gen.
func (q *eventQueue) handler(gen uint64) *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { q.push(gen, event{kind: evExpunge, n: seq}) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				q.push(gen, event{kind: evExists, n: *d.NumMessages})
			}
			if d.Flags != nil || d.PermanentFlags != nil {
				q.push(gen, event{kind: evMailbox})
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			// Consume the message (the reader waits for it), then signal.
			for msg.Next() != nil {
			}
			q.mu.Lock()
			if gen == q.gen {
				q.dirty = true
				q.hear()
			}
			q.mu.Unlock()
			q.poke()
		},
	}
}

// hear notes that news arrived now, unless older news is still queued.
// The caller holds q.mu.
func (q *eventQueue) hear() {
	if q.heard.IsZero() {
		q.heard = time.Now()
	}
}

// reset starts a new connection generation and drops everything queued.
func (q *eventQueue) reset() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.gen++
	q.events = nil
	q.dirty = false
	q.lost = false
	q.heard = time.Time{}
	return q.gen
}

// takeNews returns what arrived since take, and when the oldest of it was
// read (zero when nothing was).
func (q *eventQueue) takeNews() ([]event, bool, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lost {
		return nil, false, time.Time{}
	}
	evs, dirty, heard := q.events, q.dirty, q.heard
	q.events, q.dirty, q.heard = nil, false, time.Time{}
	return evs, dirty, heard
}

// takeNoop returns and clears the polling request.
func (q *eventQueue) takeNoop() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.noop
	q.noop = false
	return n
}

// requestNoop asks the watcher to poll the upstream.
func (q *eventQueue) requestNoop() {
	q.mu.Lock()
	q.noop = true
	q.mu.Unlock()
	q.poke()
}

// pending reports whether anything waits to be processed.
func (q *eventQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events) > 0 || q.dirty || q.noop
}

// listing is a mailbox as the watcher's own upstream session numbers it.
type listing struct {
	uids  []imap.UID // by sequence number; 0 while not yet fetched
	flags [][]imap.Flag
	// modseqs holds each message's MODSEQ, aligned with uids, when the
	// listing was read with them (CONDSTORE, flagpost.go); nil otherwise.
	modseqs []uint64
	// firstRecent is the lowest UID the upstream flagged \Recent, 0 when
	// none: where recency starts for a new model (fanout/recent.go).
	firstRecent imap.UID
}

// noteRecent records uid's upstream \Recent in firstRecent.
func (l *listing) noteRecent(uid imap.UID, flags []imap.Flag) {
	if slices.Contains(flags, fanout.FlagRecent) && (l.firstRecent == 0 || uid < l.firstRecent) {
		l.firstRecent = uid
	}
}

// markDirty asks for the flags to be re-read.
func (q *eventQueue) markDirty() {
	q.mu.Lock()
	q.dirty = true
	q.mu.Unlock()
}

// overflowed reports whether events were dropped since the last reset.
func (q *eventQueue) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lost
}
