package upstream

import (
	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// recentMark is where recency stood when a mailbox's last watcher stopped:
// every UID up to claimedTo was told to some session.
//
// The upstream's \Recent cannot say it once idlemux has used the mailbox:
// pool connections SELECT read-write, and a mailbox selected on one of them
// claims new messages upstream for that connection (Dovecot assigns \Recent
// when any read-write session syncs, e.g. at its next command, whatever
// mailbox that command names). So a watcher that starts again for the same
// UIDVALIDITY takes the boundary from the mark, not from its EXAMINE: the
// messages above it arrived after every session was gone and are recent
// for the next one told. One entry per mailbox the account ever watched.
type recentMark struct {
	uidValidity uint32
	claimedTo   imap.UID
}

// markRecentLocked records box's recency as its watcher stops, before a
// new watcher of the mailbox can start. a.m.mu is held.
func (a *Account) markRecentLocked(name string, box *fanout.Mailbox) {
	if box == nil {
		return
	}
	if a.recent == nil {
		a.recent = make(map[string]recentMark)
	}
	a.recent[name] = recentMark{uidValidity: box.UIDValidity(), claimedTo: box.Claimed()}
}

// firstRecent returns where recency starts for a new model of name built
// from an upstream EXAMINE whose lowest \Recent UID was upstream (0: none):
// just above the mark of an earlier watcher of the same UIDVALIDITY, the
// upstream's otherwise (see recentMark).
func (a *Account) firstRecent(name string, uidValidity uint32, upstream imap.UID) imap.UID {
	a.m.mu.Lock()
	mark, ok := a.recent[name]
	a.m.mu.Unlock()
	if !ok || mark.uidValidity != uidValidity {
		return upstream
	}
	return mark.claimedTo + 1
}
