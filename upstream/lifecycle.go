package upstream

import (
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// A mailbox's life upstream (RFC 3501 6.3.3 CREATE, 6.3.4 DELETE, 6.3.5
// RENAME) ends what idlemux knows of it: a mailbox created again under
// the same name is a new mailbox with a new UIDVALIDITY (RFC 3501
// 2.3.1.1), and a pool connection or watcher that still has the old one
// selected sees the old messages (Dovecot keeps serving the deleted
// mailbox's index to a session that had it open).

// MailboxGone tells the account that name (and, when delim is not 0,
// every mailbox below it, as RENAME moves them, RFC 3501 6.3.5) is no
// longer the mailbox it knew: deleted, renamed away, created anew, or
// found replaced upstream. Every pool connection selects again before its
// next use (the account's epoch moves), and the watchers of those
// mailboxes stop at once: their models close with ErrMailboxGone, so the
// sessions that have them selected are told on their next command, and
// the next SELECT starts a fresh watcher.
func (a *Account) MailboxGone(name string, delim rune) {
	m := a.m
	m.mu.Lock()
	a.changedLocked(name)
	a.forgetSelectedLocked(name, delim)
	var gone []*Watcher
	for n, w := range a.watchers {
		if under(n, name, delim) {
			gone = append(gone, w)
			a.retireLocked(w, ErrMailboxGone)
		}
	}
	m.mu.Unlock()
	for _, w := range gone {
		w.log.Info("mailbox gone upstream; watcher stopped", zap.Int("sessions", w.in.users()))
		if box := w.box.Load(); box != nil {
			box.Close(ErrMailboxGone)
		}
	}
}

// under reports whether n is name, or below it when delim is not 0.
func under(n, name string, delim rune) bool {
	return n == name || (delim != 0 && strings.HasPrefix(n, name+string(delim)))
}

// forgetSelected is MailboxGone for the pool alone: the watcher of name
// saw it replaced (a new UIDVALIDITY) or gone, and goes on (or stops) by
// itself.
func (a *Account) forgetSelected(name string) {
	a.m.mu.Lock()
	a.forgetSelectedLocked(name, 0)
	a.m.mu.Unlock()
}

// forgetSelectedLocked moves the account's epoch and logs out the idle
// connections that have one of the mailboxes selected: Dovecot answers
// any next command of such a session, whatever it is, with BYE ("IMAP
// session state is inconsistent"), so they cannot even run CREATE. A
// connection in use now is not pooled again (Release sees the old epoch).
// m.mu must be held.
func (a *Account) forgetSelectedLocked(name string, delim rune) {
	a.epoch++
	if len(a.gone) == goneLogMax {
		a.gone = slices.Delete(a.gone, 0, 1)
	}
	a.gone = append(a.gone, goneMark{epoch: a.epoch, name: name, delim: delim})
	keep := a.idle[:0]
	for _, c := range a.idle {
		if c.selected != "" && under(c.selected, name, delim) {
			a.total--
			a.m.goLogoutLocked(c)
			continue
		}
		c.epoch = a.epoch // not that mailbox: still good
		keep = append(keep, c)
	}
	clear(a.idle[len(keep):])
	a.idle = keep
	a.grantLocked()
}

// goneMark is one mailbox gone, in the epoch it went.
type goneMark struct {
	epoch uint64
	name  string
	delim rune
}

// goneLogMax bounds the account's log of gone mailboxes: a connection busy
// across more changes than that is not pooled again, to be safe.
const goneLogMax = 32

// staleLocked reports whether a connection coming back to the pool has a
// mailbox selected that went while it was busy; one that is still good is
// brought to the current epoch. m.mu must be held.
func (a *Account) staleLocked(c *Conn) bool {
	if c.selected == "" || c.epoch == a.epoch {
		return false
	}
	if len(a.gone) == 0 || a.gone[0].epoch > c.epoch+1 {
		return true // changes older than the log: cannot tell
	}
	for _, g := range a.gone {
		if g.epoch > c.epoch && under(c.selected, g.name, g.delim) {
			return true
		}
	}
	c.epoch = a.epoch
	return false
}

// curEpoch is the account's epoch, read before a SELECT so that a change
// during it is not missed.
func (a *Account) curEpoch() uint64 {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.epoch
}

// Watching returns the running watcher of mailbox that sessions use, or
// nil: a command that changed mailbox syncs it so that every session
// with it selected sees the change on its next command. It never starts
// one, and skips a lingering watcher (a later SELECT syncs that itself).
func (a *Account) Watching(mailbox string) *Watcher {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	w := a.watchers[mailbox]
	if w == nil || w.in.users() <= 0 { // a stopped one is no longer in the map
		return nil
	}
	return w
}

// MailboxMissing reports an upstream answer saying the mailbox named by
// the command does not exist (RFC 5530 NONEXISTENT, RFC 3501 TRYCREATE):
// whatever idlemux kept of a mailbox by that name is stale.
func MailboxMissing(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return false
	}
	return quirks.MailboxMissing(ie.Code)
}
