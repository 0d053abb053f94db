package upstream

import (
	"context"
	"sync"
	"time"
)

// Commands that change a mailbox (STORE, APPEND, EXPUNGE) take a write
// slot of that mailbox before their connection: at most
// Options.WritesPerMailbox of them run upstream at once per (account,
// mailbox), the rest queue in arrival order. A server serialises changes
// to one mailbox anyway: Dovecot takes the mailbox's transaction-log lock
// for every change, and with maildir the dotlock of dovecot-uidlist for
// every new message, polled with back-off sleeps when contended. Ten
// sessions writing at once spend their time in those waits; handed to the
// server one (or a few) at a time, each change commits without contention
// (BENCHMARKS.md, issue 11: the 10-session mix). Directly, each client's
// connection contends on its own; a proxy that holds every session of an
// account can queue them instead.
//
// The slot is taken before the pool connection, never while holding one,
// so a slot holder never waits for a connection a slot waiter holds. An
// APPEND's literal is spooled before (proxy/litspool.go): a slow client
// holds no slot while it sends. A wait longer than maxSlotWait (or its
// context) goes on without a slot: the slot eases the server's locks, it
// guards nothing, and a queue that long means the server is slow anyway
// (a far upstream, or one change that takes long): the command is better
// sent than kept waiting.

// maxSlotWait bounds a write's wait for its slot.
const maxSlotWait = 2 * time.Second

// maxSlotHold is how long a write keeps its slot: one still running
// then (a large APPEND to a far or slow server, a STORE over a whole
// large mailbox) gives it to the next. The queue is for short writes
// contending on the server's locks, a few milliseconds each on Dovecot;
// a long one would hold every other write of the mailbox back for its
// whole length, where directly they would have run beside it.
const maxSlotHold = 250 * time.Millisecond

// WriteWait is how a write got to the upstream (Stats.WriteWaits).
type WriteWait int

const (
	WriteAtOnce   WriteWait = iota // a slot was free
	WriteQueued                    // it waited for a slot
	WriteUnqueued                  // it waited maxSlotWait (or its context) and went without
	numWriteWaits
)

func (w WriteWait) String() string {
	return [...]string{"at_once", "queued", "unqueued"}[w]
}

// slotQueue is one mailbox's write slots.
type slotQueue struct {
	ch    chan struct{} // one token per running write; capacity = the limit
	users int           // holders and waiters: at 0 the queue is dropped
}

// writeSlots are an account's slot queues by mailbox, present only while
// used: at most one per session writing.
type writeSlots struct {
	mu sync.Mutex
	by map[string]*slotQueue
}

// WriteSlot waits for a write slot of mailbox and returns its release,
// which the caller must call once the command's upstream exchange is over.
// With no limit configured it returns at once.
func (a *Account) WriteSlot(ctx context.Context, mailbox string) (release func()) {
	limit := a.m.opts.WritesPerMailbox // withDefaults: never 0
	if limit <= 0 {
		return func() {}
	}
	s := &a.slots
	s.mu.Lock()
	q := s.by[mailbox]
	if q == nil {
		if s.by == nil {
			s.by = make(map[string]*slotQueue)
		}
		q = &slotQueue{ch: make(chan struct{}, limit)}
		s.by[mailbox] = q
	}
	q.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if q.users--; q.users == 0 {
			delete(s.by, mailbox)
		}
		s.mu.Unlock()
	}
	held := func(how WriteWait) func() {
		a.m.writeWaits[how].Add(1)
		var once sync.Once
		give := func() {
			once.Do(func() {
				<-q.ch
				leave()
			})
		}
		early := time.AfterFunc(maxSlotHold, give)
		return func() {
			early.Stop()
			give()
		}
	}
	select {
	case q.ch <- struct{}{}:
		return held(WriteAtOnce)
	default:
	}
	t := time.NewTimer(maxSlotWait) // only when the slot is taken: not on every write
	defer t.Stop()
	select {
	case q.ch <- struct{}{}:
		return held(WriteQueued)
	case <-ctx.Done():
	case <-t.C:
	}
	a.m.writeWaits[WriteUnqueued].Add(1)
	leave()
	return func() {}
}

// slotQueues is how many mailboxes have a write queue now (tests).
func (a *Account) slotQueues() int {
	a.slots.mu.Lock()
	defer a.slots.mu.Unlock()
	return len(a.slots.by)
}
