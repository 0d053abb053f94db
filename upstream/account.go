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
	pass      string // for dialing new connections; dropped with the account
	mech      string // "" (password), MechXOAUTH2 or MechOAUTHBEARER
	cred      verified.Password
	caps      imap.CapSet
	total     int       // open + dialing connections, watchers included
	watching  int       // connections held by watchers
	checking  int       // connections held by login checks (dialing or logging in)
	notifying int       // connections held by the NOTIFY loop (0 or 1)
	idle      []*Conn   // idle command connections, most recently used last
	queue     []*waiter // callers waiting for a connection or a slot, oldest first
	// queuedOther counts the watchers, login checks and NOTIFY loops in queue.
	queuedOther int
	watchers    map[string]*Watcher
	slots       writeSlots // its own lock: writes queue by mailbox (writeslots.go)
	notifier    *notifier  // the NOTIFY connection's loop while it runs (notifier.go)
	// notifyDown: NOTIFY trouble was logged and is not over yet, so that
	// it is logged once per incident, across notifier loops. Only the
	// running loop touches it; one loop ends (under m.mu) before the next
	// starts (under m.mu).
	notifyDown bool
	notifyBack bool                  // its recovery was logged (once per incident too)
	refs       int                   // sessions holding the account
	recent     map[string]recentMark // by mailbox, once a watcher of it stopped
	// epoch moves whenever a mailbox of the account is known to have
	// gone or been replaced (lifecycle.go): a pool connection selected in
	// an older epoch selects again before use.
	epoch uint64
	// writes counts, per mailbox, the changes made through idlemux
	// (writes.go); a mailbox's entry lives as long as the account.
	writes map[string]uint64
	// gen numbers the changes through idlemux; changedAt holds, per
	// mailbox, the latest one's (changes.go). An entry lives as long as
	// the account, as writes' do.
	gen       uint64
	changedAt map[string]uint64
	// unconfirmed holds, per mailbox, the generation of the latest
	// change whose Sync failed (Unconfirmed); entries live as
	// changedAt's do.
	unconfirmed map[string]uint64
	gone        []goneMark // the latest mailboxes gone, for connections busy then
	verify      map[[32]byte]*verifyCall

	listings Listings // its own lock: shared LIST, LSUB, NAMESPACE calls
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
	acct        *Account
	selected    string   // mailbox selected read-write, "" when none
	upTo        imap.UID // every message up to this UID is visible to this session
	epoch       uint64   // the account's epoch when selected was last known good
	uidValidity uint32   // selected's, as its SELECT reported it
	seen        uint64   // the account's write count of selected that this session's view includes (writes.go)
	wrote       bool     // the command running now changed selected
	lastUsed    time.Time
	raw         *respConn // the framing under Client, for raw commands
	rawTags     uint64    // raw commands run, for their tags
	qresync     bool      // QRESYNC enabled (qresync.go)
}

// User returns the account's user name.
func (a *Account) User() string { return a.user }

// Caps returns the upstream's capabilities after login (nil before any).
func (a *Account) Caps() imap.CapSet {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.caps
}

// Acquire returns a command connection, with mailbox selected read-write
// when mailbox is not empty. The caller must Release it.
//
// upTo is the largest UID the caller may name. A server shows a session
// new messages only when that session syncs (RFC 3501 section 7.3.1: a
// message exists for a session once EXISTS told it so), so a connection
// that last synced before upTo was added runs a NOOP first, or a UID FETCH
// would silently miss the message.
//
// uidValidity, when not 0, is the UIDVALIDITY of the caller's view: UIDs
// name the same messages only while it holds (RFC 3501 2.3.1.1). A SELECT
// that finds another, or finds the mailbox gone, ends what the account
// knows of it (MailboxGone) and fails with ErrMailboxGone: the caller's
// UIDs must not run against a different mailbox.
func (a *Account) Acquire(ctx context.Context, mailbox string, upTo imap.UID, uidValidity uint32) (*Conn, error) {
	return a.acquire(ctx, mailbox, upTo, uidValidity, true)
}

// AcquireToStore is Acquire for a STORE: it skips the NOOP that brings a
// connection's view up to others' changes (writes.go). A STORE's outcome
// does not depend on that view: +FLAGS and -FLAGS change each message's
// flags as they are, FLAGS replaces them, a message expunged meanwhile is
// left alone (Dovecot answers OK), and the server syncs the session at the
// end of the command (RFC 3501 5.5), so the answer reports the flags as
// they are, others' changes included. New messages (upTo) still need it.
func (a *Account) AcquireToStore(ctx context.Context, mailbox string, upTo imap.UID, uidValidity uint32) (*Conn, error) {
	return a.acquire(ctx, mailbox, upTo, uidValidity, false)
}

// acquire is Acquire; seeWrites says whether the connection must see
// every change made through idlemux first.
func (a *Account) acquire(ctx context.Context, mailbox string, upTo imap.UID, uidValidity uint32, seeWrites bool) (*Conn, error) {
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
	writes := a.writesOf(mailbox)
	heard := upTo // what the SELECT or NOOP's answer covers at least: the model read before it
	if box := a.Model(mailbox); box != nil {
		heard = max(heard, box.MaxUID())
	}
	if epoch := a.curEpoch(); c.selected != mailbox || c.epoch != epoch || (uidValidity != 0 && c.uidValidity != uidValidity) {
		c.Forget()
		sel, err := c.Select(mailbox, nil).Wait()
		if err != nil {
			a.Release(c, err)
			if uidValidity != 0 && MailboxMissing(err) {
				a.MailboxGone(mailbox, 0)
				return nil, fmt.Errorf("%w: SELECT %q: %w", ErrMailboxGone, mailbox, err)
			}
			return nil, stale(err)
		}
		if uidValidity != 0 && sel.UIDValidity != uidValidity {
			a.Release(c, nil) // selected stays "": the next use selects again
			a.MailboxGone(mailbox, 0)
			return nil, fmt.Errorf("%w: %q has UIDVALIDITY %d upstream, %d in the model", ErrMailboxGone, mailbox, sel.UIDValidity, uidValidity)
		}
		c.selected, c.epoch, c.upTo, c.uidValidity, c.seen = mailbox, epoch, heard, sel.UIDValidity, writes
	} else if c.upTo < upTo || (seeWrites && c.seen < writes) {
		if err := c.Noop().Wait(); err != nil {
			a.Release(c, err)
			return nil, stale(err)
		}
		c.upTo, c.seen = max(c.upTo, heard), writes // upTo may be a command's own bound, below what c heard of
	}
	return c, nil
}

// noteCaps records the post-login capabilities and tells the manager.
func (a *Account) noteCaps(caps imap.CapSet) {
	a.m.mu.Lock()
	a.caps = caps
	a.m.mu.Unlock()
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
// slot now rather than after the linger. Its users count references sent
// and not yet taken by its loop (inbox.go), so one a Watch just took is
// kept. m.mu must be held.
func (a *Account) stopLingeringLocked() bool {
	for _, w := range a.watchers {
		if !w.polled.Load() && w.in.users() <= 0 { // a polled one holds no slot
			a.retireLocked(w, nil)
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
