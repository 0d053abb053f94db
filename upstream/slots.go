package upstream

import (
	"context"
	"slices"
	"time"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// The per-account cap is shared between command connections, watchers and
// login checks. Callers that find no room wait in one FIFO queue; whoever
// frees something (a released command connection, a closed connection, a
// stopped watcher) hands it to the oldest waiter that can use it, under
// m.mu. A released command connection goes straight to a waiting command,
// still logged in and with its mailbox selected: nothing is logged out only
// to be dialed again (the churn issue 10 measured: 405 LOGINs for 200
// sessions). An idle command connection is logged out only after
// CommandLinger, or when a watcher or login check needs its slot.

// slotKind says who holds an upstream connection. Watchers and login checks
// have their own bounds so that commands always make progress.
type slotKind int

const (
	slotCommand slotKind = iota
	slotWatcher
	slotCheck
	slotNotify // the account's NOTIFY connection (notifier.go)
)

// checkShare is how many login checks of one account may hold upstream
// connections at once: about half of what watchers leave, at least one.
// A wave of wrong passwords (each a real upstream LOGIN, which a server
// like Dovecot answers only after its auth_failure_delay) then waits in
// line instead of taking every slot, and a logged-in session's commands
// still find a connection.
func checkShare(maxConns int) int { return max(1, (maxConns-1)/2) }

// waiter is one caller in the account's queue. It is granted either a
// command connection (conn) or a slot (slot: total and its kind's count are
// already taken for it), or fails with err; done is closed then.
type waiter struct {
	kind    slotKind
	mailbox string // commands: the mailbox they want, to prefer a connection that has it
	conn    *Conn
	slot    bool
	err     error
	done    chan struct{}
}

// wait queues for a connection or a slot of kind and blocks until one is
// granted or ctx ends. For commands, a non-nil *Conn is an idle pooled
// connection; otherwise the caller holds a slot and must dial (and free the
// slot when the connection ends).
func (a *Account) wait(ctx context.Context, kind slotKind, mailbox string) (*Conn, error) {
	w := a.enqueue(kind, mailbox)
	select {
	case <-w.done:
		return w.conn, w.err
	case <-ctx.Done():
	}
	a.cancel(w)
	return nil, unavailable("no upstream connection free for %s: %v", a.user, ctx.Err())
}

// enqueue puts a waiter in line and serves it at once if it can be; its
// done channel says when it was.
func (a *Account) enqueue(kind slotKind, mailbox string) *waiter {
	w := &waiter{kind: kind, mailbox: mailbox, done: make(chan struct{})}
	a.m.mu.Lock()
	a.queue = append(a.queue, w)
	if kind != slotCommand {
		a.queuedOther++
	}
	a.grantLocked()
	a.m.mu.Unlock()
	return w
}

// cancel takes a waiter that gave up out of line; whatever it was granted
// meanwhile goes to the next in line.
func (a *Account) cancel(w *waiter) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	select {
	case <-w.done:
		if w.conn != nil {
			a.idle = append(a.idle, w.conn)
		} else if w.slot {
			a.total--
			a.countLocked(w.kind, -1)
		}
		a.grantLocked()
	default:
		a.dequeueLocked(w)
	}
}

// reserve takes a slot of kind, waiting in line for it.
func (a *Account) reserve(ctx context.Context, kind slotKind) error {
	_, err := a.wait(ctx, kind, "")
	return err
}

// release gives a slot of kind back, to the next in line.
func (a *Account) release(kind slotKind) {
	a.m.mu.Lock()
	a.total--
	a.countLocked(kind, -1)
	a.grantLocked()
	a.m.mu.Unlock()
}

// grantLocked serves the queue in order: each waiter gets what is free for
// it now; one that cannot be served does not hold up those behind it whose
// kind still has room. m.mu must be held.
//
// A command that finds nothing (no idle connection, no slot) means no
// later command can be served in this pass either: what other kinds are
// granted meanwhile only takes more. So later commands are not tried, and
// once no watcher or check is left behind, the pass stops: in a storm of
// N sessions the queue holds N commands, and trying each at every
// hand-over made the storm cost O(N²) under the manager's lock
// (BenchmarkGrantQueue: 52 µs a hand-over with 1,000 queued, 0.5 µs now).
func (a *Account) grantLocked() {
	if a.m.closed {
		for _, w := range a.queue {
			w.err = ErrClosed
			close(w.done)
		}
		clear(a.queue)
		a.queue = a.queue[:0]
		a.queuedOther = 0
		return
	}
	keep := a.queue[:0] // compacted in place: a.queue[i:] is untouched
	commandsBlocked := false
	others := a.queuedOther // watchers and checks not yet tried
	for i, w := range a.queue {
		if commandsBlocked && others == 0 {
			a.keepRestLocked(keep, i)
			return
		}
		if w.kind != slotCommand {
			others--
		} else if commandsBlocked {
			keep = append(keep, w)
			continue
		}
		if a.grantOneLocked(w) {
			if w.kind != slotCommand {
				a.queuedOther--
			}
			close(w.done)
			continue
		}
		if w.kind == slotCommand && !commandsBlocked {
			commandsBlocked = true
			if others == 0 {
				a.keepRestLocked(keep, i) // w among the rest
				return
			}
		}
		keep = append(keep, w)
	}
	clear(a.queue[len(keep):])
	a.queue = keep
}

// keepRestLocked ends a pass of grantLocked at i: the queue becomes the
// waiters kept before i, then a.queue[i:], untried. When the oldest were
// all granted (the common hand-over), the queue is resliced, not copied.
// m.mu must be held.
func (a *Account) keepRestLocked(keep []*waiter, i int) {
	switch len(keep) {
	case i: // nothing granted
		return
	case 0:
		clear(a.queue[:i])
		a.queue = a.queue[i:]
		return
	}
	n := len(keep) + copy(a.queue[len(keep):], a.queue[i:])
	clear(a.queue[n:])
	a.queue = a.queue[:n]
}

// grantOneLocked gives w what is free for it, and says whether it did.
func (a *Account) grantOneLocked(w *waiter) bool {
	if w.kind == slotCommand {
		if c := a.takeIdleLocked(w.mailbox); c != nil {
			w.conn = c
			return true
		}
	}
	fits, watchersFull := a.fitsLocked(w.kind)
	if fits && a.total >= a.m.opts.MaxConns && len(a.idle) > 0 {
		// Only another role gets here (a command takes the connection
		// itself): an idle command connection yields its slot.
		c := a.idle[0]
		a.idle = a.idle[1:]
		a.total--
		a.m.goLogoutLocked(c)
	}
	if fits && a.total < a.m.opts.MaxConns {
		a.total++
		a.countLocked(w.kind, 1)
		w.slot = true
		return true
	}
	if watchersFull {
		// A lingering watcher's slot comes back when its goroutine ends,
		// through release.
		a.stopLingeringLocked()
	}
	return false
}

// takeIdleLocked takes the idle connection with mailbox selected, or else
// the most recently used one (nil if none). m.mu must be held.
func (a *Account) takeIdleLocked(mailbox string) *Conn {
	if len(a.idle) == 0 {
		return nil
	}
	pick := len(a.idle) - 1
	for i := len(a.idle) - 1; i >= 0; i-- {
		if a.idle[i].selected == mailbox {
			pick = i
			break
		}
	}
	c := a.idle[pick]
	a.idle = slices.Delete(a.idle, pick, pick+1)
	return c
}

// dequeueLocked removes a waiter that gave up. m.mu must be held.
func (a *Account) dequeueLocked(w *waiter) {
	for i, q := range a.queue {
		if q == w {
			if w.kind != slotCommand {
				a.queuedOther--
			}
			a.queue = slices.Delete(a.queue, i, i+1)
			return
		}
	}
}

// fitsLocked says whether kind's own bound leaves room for one more, and
// whether the watchers' share is what stands in the way. Watchers may hold
// at most MaxConns-1 connections, one of them kept for the NOTIFY
// connection where the upstream offers NOTIFY (notifyReserveLocked); login
// checks at most checkShare, and only while watchers and checks together
// leave a slot for commands (one check may always run, or a password could
// never be checked when watchers fill their share). m.mu must be held.
func (a *Account) fitsLocked(kind slotKind) (fits, watchersFull bool) {
	maxConns := a.m.opts.MaxConns
	watching := a.watching + a.notifying
	switch kind {
	case slotWatcher:
		full := a.watching >= maxConns-1-a.notifyReserveLocked()
		return !full, full
	case slotNotify:
		if a.notifying > 0 {
			return false, false
		}
		full := watching >= maxConns-1
		return !full, full
	case slotCheck:
		if a.checking >= checkShare(maxConns) {
			return false, false
		}
		if watching+a.checking < maxConns-1 || a.checking == 0 {
			return true, false
		}
		return false, watching > 0
	}
	return true, false
}

// notifyReserveLocked is the number of watcher slots kept for the NOTIFY
// connection: one where the upstream offers NOTIFY and the cap leaves an
// IDLE watcher besides it (MaxConns >= 3), since that one connection
// serves any number of mailboxes where an IDLE watcher serves one. m.mu
// must be held.
func (a *Account) notifyReserveLocked() int {
	if a.m.opts.NoNotify || a.m.opts.MaxConns < 3 || !quirks.Has(a.caps, quirks.Notify) {
		return 0
	}
	return 1
}

// countLocked adds d to kind's own count. m.mu must be held.
func (a *Account) countLocked(kind slotKind, d int) {
	switch kind {
	case slotWatcher:
		a.watching += d
	case slotCheck:
		a.checking += d
	case slotNotify:
		a.notifying += d
	}
}

// get returns an idle connection (preferring one with mailbox selected,
// handed over still logged in) or dials a new one; reused says which.
func (a *Account) get(ctx context.Context, mailbox string) (*Conn, bool, error) {
	m := a.m
	for {
		c, err := a.wait(ctx, slotCommand, mailbox)
		if err != nil {
			return nil, false, err
		}
		if c != nil {
			select {
			case <-c.Closed(): // the upstream ended it while it was idle
				a.release(slotCommand)
				continue
			default:
			}
			return c, true, nil
		}
		m.mu.Lock()
		pass, mech := a.pass, a.mech
		m.mu.Unlock()
		if pass == "" {
			a.release(slotCommand)
			return nil, false, ErrAuthFailed // forgotten: never log in with nothing
		}
		cl, rc, err := m.dialFramed(ctx, LoginCommand, a.user, pass, mech, nil)
		if err != nil {
			a.release(slotCommand)
			a.forgetIfRejected(pass, err)
			return nil, false, err
		}
		a.confirmed(pass)
		a.noteCaps(cl.Caps())
		return &Conn{Client: cl, acct: a, raw: rc}, false, nil
	}
}

// Release returns a connection to the pool (to the oldest waiting command
// first), or closes it when err says the connection itself failed.
func (a *Account) Release(c *Conn, err error) {
	if err != nil {
		if _, proto := IsProtocol(err); !proto {
			c.Client.Close() // broken: nothing to log out from
			a.m.mu.Lock()
			a.noteWriteLocked(c) // it may have changed the mailbox before it broke
			a.m.mu.Unlock()
			a.release(slotCommand)
			return
		}
	}
	m := a.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.logout()
		a.release(slotCommand)
		return
	}
	if a.staleLocked(c) {
		// Its mailbox may have gone while it ran (lifecycle.go): the
		// upstream would answer its next command with BYE.
		a.total--
		a.m.goLogoutLocked(c)
		a.grantLocked()
		m.mu.Unlock()
		return
	}
	a.noteWriteLocked(c)
	c.lastUsed = time.Now()
	a.idle = append(a.idle, c)
	a.grantLocked()
	m.mu.Unlock()
}
