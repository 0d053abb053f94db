package upstream

import "sync"

// inbox is a watcher's control mailbox (see the Watcher doc comment): the
// messages other goroutines send its run loop. Sending never blocks on the
// loop, which may be in the middle of an upstream exchange for up to
// ResponseTimeout: a session's Close path (Unwatch) must not wait for it.
// Messages are folded as they arrive, so the mailbox stays a few words
// however many are sent between two takes:
//
//	ref, unref       net count (refs)
//	idling           a flag (idled): the first one asks for a slot (polled.go)
//	nudge            a flag (nudged): the notify connection heard of a change (notifier.go)
//	sync             one channel shared by every request since the last take
//	post             a STORE's reported flags (flagpost.go), each answered
//	                 by the loop; one per session at most, as each waits
//	stop, gone       the first reason (stopped, why)
//
// signal (capacity 1) says there is something to take; the loop's every
// select includes it.
type inbox struct {
	mu      sync.Mutex
	refs    int           // Watch minus Unwatch, sent and not yet taken
	idled   bool          // a session idled on the mailbox since the last take
	nudged  bool          // the upstream reported a change (NOTIFY) since the last take
	sync    chan struct{} // closed once a round that started after the request is applied
	posts   []*flagPost   // reported flags waiting for the loop (flagpost.go)
	stopped bool
	why     error // the stop's reason: nil, ErrMailboxGone, or the loop's permanent failure
	// held is the loop's count of references as of its last take. With
	// refs it gives the account the exact count at any instant (users),
	// for the decisions it makes under m.mu (Watching, stopLingeringLocked,
	// the linger's expiry).
	held   int
	signal chan struct{}
}

func newInbox() *inbox { return &inbox{signal: make(chan struct{}, 1)} }

// poke wakes the loop; a wake-up already pending is enough.
func (in *inbox) poke() {
	select {
	case in.signal <- struct{}{}:
	default:
	}
}

// ref sends d references (1: Watch, -1: Unwatch).
func (in *inbox) ref(d int) {
	in.mu.Lock()
	in.refs += d
	in.mu.Unlock()
	in.poke()
}

// idle says a session started IDLE on the mailbox.
func (in *inbox) idle() {
	in.mu.Lock()
	in.idled = true
	in.mu.Unlock()
	in.poke()
}

// nudge says the upstream reported a change in the mailbox (a NOTIFY
// event): a polled watcher runs a round at once.
func (in *inbox) nudge() {
	in.mu.Lock()
	in.nudged = true
	in.mu.Unlock()
	in.poke()
}

// askSync sends a sync request and returns the channel closed when it is
// answered. Requests made before the loop takes them share a channel, and
// so one upstream round.
func (in *inbox) askSync() <-chan struct{} {
	in.mu.Lock()
	if in.sync == nil {
		in.sync = make(chan struct{})
	}
	ch := in.sync
	in.mu.Unlock()
	in.poke()
	return ch
}

// post sends a STORE's reported flags.
func (in *inbox) post(p *flagPost) {
	in.mu.Lock()
	in.posts = append(in.posts, p)
	in.mu.Unlock()
	in.poke()
}

// stop sends stop with a reason and says whether it was the first.
func (in *inbox) stop(why error) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return false
	}
	in.stopped, in.why = true, why
	in.poke()
	return true
}

// users is the number of references the watcher has now: what the loop
// holds plus what was sent since.
func (in *inbox) users() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.held + in.refs
}

// reason is the stop's reason (nil also when none was sent).
func (in *inbox) reason() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.why
}

// mail is what the loop takes from its inbox at once.
type mail struct {
	refs   int // the loop's references, now
	idled  bool
	nudged bool
	sync   chan struct{}
	posts  []*flagPost
}

// take hands the loop everything sent since the last take. held is the
// loop's reference count before it; the new count is published under the
// same lock, so users is never off by what is in flight.
func (in *inbox) take(held int) mail {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := mail{refs: held + in.refs, idled: in.idled, nudged: in.nudged, sync: in.sync, posts: in.posts}
	in.held = m.refs
	in.refs, in.idled, in.nudged, in.sync, in.posts = 0, false, false, nil, nil
	return m
}
