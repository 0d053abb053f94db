package upstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/verified"
)

// Account is one upstream account (address + user): its pool of command
// connections and its watchers. It never holds more than MaxConns upstream
// connections in all, counting connections being dialed and watchers.
//
// Its state is guarded by Manager.mu: accounts are small and their
// operations short, and one lock keeps the cross-account bookkeeping
// (eviction, stats) simple.
type Account struct {
	m    *Manager
	user string
	log  *zap.Logger

	// guarded by m.mu
	pass     string // for dialing new connections; dropped with the account
	mech     string // "" (password), MechXOAUTH2 or MechOAUTHBEARER
	cred     verified.Password
	caps     imap.CapSet
	total    int     // open + dialing connections, watchers included
	watching int     // connections held by watchers
	checking int     // connections held by login checks (dialing or logging in)
	idle     []*Conn // idle command connections, most recently used last
	avail    chan struct{}
	watchers map[string]*Watcher
	refs     int // sessions holding the account
	verify   map[[32]byte]*verifyCall
}

// verifyCall lets concurrent logins with the same password share one
// upstream login.
type verifyCall struct {
	done chan struct{}
	err  error
}

// Conn is a pooled command connection.
type Conn struct {
	*imapclient.Client
	acct     *Account
	selected string   // mailbox selected read-write, "" when none
	upTo     imap.UID // every message up to this UID is visible to this session
	lastUsed time.Time
	raw      *respConn // the framing under Client, for raw commands
	rawTags  uint64    // raw commands run, for their tags
}

// User returns the account's user name.
func (a *Account) User() string { return a.user }

// Caps returns the upstream's capabilities after login (nil before any).
func (a *Account) Caps() imap.CapSet {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.caps
}

// broadcastLocked wakes everyone waiting for a connection or a slot.
func (a *Account) broadcastLocked() {
	close(a.avail)
	a.avail = make(chan struct{})
}

// slotKind says who holds an upstream connection: the per-account cap is
// shared between command connections, watchers and login checks, and the
// last two have their own bounds so that commands always make progress.
type slotKind int

const (
	slotCommand slotKind = iota
	slotWatcher
	slotCheck
)

// checkShare is how many login checks of one account may hold upstream
// connections at once: about half of what watchers leave, at least one.
// A wave of wrong passwords (each a real upstream LOGIN, which a server
// like Dovecot answers only after its auth_failure_delay) then waits in
// line instead of taking every slot, and a logged-in session's commands
// still find a connection.
func checkShare(maxConns int) int { return max(1, (maxConns-1)/2) }

// takeSlot reserves room for one more upstream connection for a command
// (watcher false) or a watcher.
func (a *Account) takeSlot(ctx context.Context, watcher bool) error {
	if watcher {
		return a.reserve(ctx, slotWatcher)
	}
	return a.reserve(ctx, slotCommand)
}

// reserve reserves room for one more upstream connection of kind,
// closing an idle command connection if that is the only way. It waits
// while the account is full or kind is at its own bound. Watchers may
// hold at most MaxConns-1 connections; login checks at most checkShare,
// and only while watchers and checks together leave a slot for commands
// (one check may always run, or a password could never be checked when
// watchers fill their share).
func (a *Account) reserve(ctx context.Context, kind slotKind) error {
	m := a.m
	m.mu.Lock()
	for {
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		fits, watchersFull := a.fitsLocked(kind)
		if fits && a.total < m.opts.MaxConns {
			break
		}
		if watchersFull {
			// A lingering watcher's slot comes back when its goroutine
			// ends; the wait below sees it.
			a.stopLingeringLocked()
		}
		if fits && len(a.idle) > 0 {
			c := a.idle[0]
			a.idle = a.idle[1:]
			a.total--
			a.m.goLogoutLocked(c)
			continue
		}
		ch := a.avail
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return unavailable("no upstream connection free for %s: %v", a.user, ctx.Err())
		}
		m.mu.Lock()
	}
	a.total++
	a.countLocked(kind, 1)
	m.mu.Unlock()
	return nil
}

// fitsLocked says whether kind's own bound leaves room for one more, and
// whether the watchers' share is what stands in the way. m.mu must be held.
func (a *Account) fitsLocked(kind slotKind) (fits, watchersFull bool) {
	maxConns := a.m.opts.MaxConns
	switch kind {
	case slotWatcher:
		full := a.watching >= maxConns-1
		return !full, full
	case slotCheck:
		if a.checking >= checkShare(maxConns) {
			return false, false
		}
		if a.watching+a.checking < maxConns-1 || a.checking == 0 {
			return true, false
		}
		return false, a.watching > 0
	}
	return true, false
}

// countLocked adds d to kind's own count. m.mu must be held.
func (a *Account) countLocked(kind slotKind, d int) {
	switch kind {
	case slotWatcher:
		a.watching += d
	case slotCheck:
		a.checking += d
	}
}

// freeSlot gives a slot back.
func (a *Account) freeSlot(watcher bool) {
	if watcher {
		a.release(slotWatcher)
	} else {
		a.release(slotCommand)
	}
}

// release gives a slot of kind back.
func (a *Account) release(kind slotKind) {
	a.m.mu.Lock()
	a.total--
	a.countLocked(kind, -1)
	a.broadcastLocked()
	a.m.mu.Unlock()
}

// Acquire returns a command connection, with mailbox selected read-write
// when mailbox is not empty. The caller must Release it.
//
// upTo is the largest UID the caller may name. A server shows a session
// new messages only when that session syncs (RFC 3501 section 7.3.1: a
// message exists for a session once EXISTS told it so), so a connection
// that last synced before upTo was added runs a NOOP first, or a UID FETCH
// would silently miss the message.
func (a *Account) Acquire(ctx context.Context, mailbox string, upTo imap.UID) (*Conn, error) {
	c, reused, err := a.get(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	stale := func(err error) error {
		err = Classify(err)
		if _, proto := IsProtocol(err); reused && !proto {
			return &UnavailableError{Err: fmt.Errorf("%w: %v", ErrStaleConn, err)}
		}
		return err
	}
	if mailbox == "" {
		return c, nil
	}
	g := c.Guard(a.m.opts.ResponseTimeout)
	defer g.Stop()
	if c.selected != mailbox {
		c.selected = ""
		if _, err := c.Select(mailbox, nil).Wait(); err != nil {
			a.Release(c, err)
			return nil, stale(err)
		}
		c.selected = mailbox
		c.upTo = upTo
	} else if c.upTo < upTo {
		if err := c.Noop().Wait(); err != nil {
			a.Release(c, err)
			return nil, stale(err)
		}
		c.upTo = upTo
	}
	return c, nil
}

// get takes an idle connection (preferring one with mailbox selected) or
// dials a new one; reused says which.
func (a *Account) get(ctx context.Context, mailbox string) (*Conn, bool, error) {
	m := a.m
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, false, ErrClosed
		}
		pick := -1
		for i := len(a.idle) - 1; i >= 0; i-- {
			if a.idle[i].selected == mailbox {
				pick = i
				break
			}
		}
		if pick < 0 && len(a.idle) > 0 {
			pick = len(a.idle) - 1
		}
		if pick >= 0 {
			c := a.idle[pick]
			a.idle = append(a.idle[:pick], a.idle[pick+1:]...)
			m.mu.Unlock()
			select {
			case <-c.Closed():
				a.freeSlot(false)
				continue
			default:
			}
			return c, true, nil
		}
		pass, mech := a.pass, a.mech
		m.mu.Unlock()
		if pass == "" {
			return nil, false, ErrAuthFailed // forgotten: never log in with nothing
		}
		if err := a.takeSlot(ctx, false); err != nil {
			return nil, false, err
		}
		// A connection may have been released while we waited for a slot.
		m.mu.Lock()
		if len(a.idle) > 0 {
			a.total--
			a.broadcastLocked()
			m.mu.Unlock()
			continue
		}
		m.mu.Unlock()
		cl, rc, err := m.dialFramed(ctx, a.user, pass, mech, nil)
		if err != nil {
			a.freeSlot(false)
			a.forgetIfRejected(pass, err)
			return nil, false, err
		}
		a.confirmed(pass)
		a.noteCaps(cl.Caps())
		return &Conn{Client: cl, acct: a, raw: rc}, false, nil
	}
}

// Release returns a connection to the pool, or closes it when err says the
// connection itself failed.
func (a *Account) Release(c *Conn, err error) {
	if err != nil {
		if _, proto := IsProtocol(err); !proto {
			c.Client.Close() // broken: nothing to log out from
			a.freeSlot(false)
			return
		}
	}
	m := a.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.logout()
		a.freeSlot(false)
		return
	}
	c.lastUsed = time.Now()
	a.idle = append(a.idle, c)
	a.broadcastLocked()
	m.mu.Unlock()
}

// noteCaps records the post-login capabilities and tells the manager.
func (a *Account) noteCaps(caps imap.CapSet) {
	a.m.mu.Lock()
	a.caps = caps
	a.m.mu.Unlock()
	a.m.learnCaps(caps)
}

// logout ends a connection politely, bounded by the response timeout.
func (c *Conn) logout() {
	t := time.AfterFunc(c.acct.m.opts.ResponseTimeout, func() { c.Client.Close() })
	defer t.Stop()
	c.Client.Logout().Wait()
	c.Client.Close()
}

// closeIdleLocked closes idle command connections unused for the linger.
func (a *Account) closeIdleLocked(now time.Time) {
	keep := a.idle[:0]
	for _, c := range a.idle {
		if now.Sub(c.lastUsed) >= a.m.opts.CommandLinger {
			a.total--
			a.m.goLogoutLocked(c)
			continue
		}
		keep = append(keep, c)
	}
	clear(a.idle[len(keep):])
	a.idle = keep
}

// Classify turns a command error into what the proxy needs: the upstream's
// own NO/BAD as it is, anything else as UnavailableError.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := IsProtocol(err); ok {
		return err
	}
	var ue *UnavailableError
	if errors.As(err, &ue) || errors.Is(err, ErrClosed) {
		return err
	}
	return &UnavailableError{Err: err}
}

// Forget marks the connection as having no mailbox selected, for commands
// (DELETE, RENAME) after which the selection may no longer be valid.
func (c *Conn) Forget() { c.selected, c.upTo = "", 0 }

// stopLingeringLocked stops a watcher that no session uses any more (it
// lingers in case one comes back), so a watcher that is needed gets its
// slot now rather than after the linger. m.mu must be held.
func (a *Account) stopLingeringLocked() bool {
	for _, w := range a.watchers {
		if w.refs == 0 && !w.stopped {
			if w.linger != nil {
				w.linger.Stop()
			}
			w.stopLocked()
			return true
		}
	}
	return false
}

// forgetIfRejected drops the cached credential when the upstream now
// rejects the password it was built from: the next login is checked
// upstream instead of accepted from the cache.
func (a *Account) forgetIfRejected(pass string, err error) {
	if !definitelyRejected(err) {
		return
	}
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	if a.pass == pass {
		a.pass = ""
		a.cred = verified.Password{}
		a.log.Warn("upstream rejects the cached password; it is forgotten")
	}
}

// confirmed renews the cached credential's lifetime: a login with it just
// succeeded upstream.
func (a *Account) confirmed(pass string) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	if a.pass == pass {
		a.cred.Renew()
	}
}
