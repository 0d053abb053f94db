package fanout

import (
	"errors"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// ErrNotAscending reports an upstream listing whose new UIDs are not above
// every UID seen before (RFC 3501 section 2.3.1.1 forbids it). The model
// cannot number such a message for existing sessions; the watcher rebuilds.
var ErrNotAscending = errors.New("upstream reported a new UID below one already seen")

// Tx is a set of changes applied under the model's write lock.
type Tx struct {
	m     *Mailbox
	n     int
	wake  bool
	heard time.Time
	// flagsLogged: the messages whose flag change this transaction logged
	// (SetModSeq logs none again for them).
	flagsLogged map[imap.UID]bool
}

// HeardAt says the changes were first read off the upstream's wire at t, so
// UpdatedAt (and the fan-out latency measured from it) starts there rather
// than at the end of the round trips that completed them.
func (tx *Tx) HeardAt(t time.Time) { tx.heard = t }

func (tx *Tx) logChange(ch change) {
	ch.maxBefore = tx.m.maxUID
	tx.m.log = append(tx.m.log, ch)
	tx.n++
}

// Has reports whether uid is in the model.
func (tx *Tx) Has(uid imap.UID) bool {
	_, ok := tx.m.index(uid)
	return ok
}

// Add appends a new message. UIDs must be added in ascending order and above
// every UID seen so far; a UID already present is treated as a flag update.
func (tx *Tx) Add(uid imap.UID, flags []imap.Flag) error {
	m := tx.m
	if _, ok := m.index(uid); ok {
		tx.SetFlags(uid, flags)
		return nil
	}
	if uid <= m.maxUID {
		return ErrNotAscending
	}
	tx.coverFlags(flags)
	m.uids = append(m.uids, uid)
	m.flags = append(m.flags, slices.Clone(flags))
	if m.modseqs != nil {
		m.modseqs = append(m.modseqs, 0)
	}
	// Consecutive adds in one transaction share one log entry.
	if l := len(m.log); l > 0 && tx.n > 0 && m.log[l-1].kind == changeAdd {
		m.log[l-1].uids = append(m.log[l-1].uids, uid)
	} else {
		tx.logChange(change{kind: changeAdd, uids: []imap.UID{uid}})
	}
	m.maxUID = uid
	if m.uidNext <= uid {
		m.uidNext = uid + 1
	}
	return nil
}

// Expunge removes uid; it is a no-op when uid is not in the model, so the
// same expunge heard twice is logged once.
func (tx *Tx) Expunge(uid imap.UID) bool {
	m := tx.m
	i, ok := m.index(uid)
	if !ok {
		return false
	}
	m.uids = slices.Delete(m.uids, i, i+1)
	m.flags = slices.Delete(m.flags, i, i+1)
	if m.modseqs != nil {
		m.modseqs = slices.Delete(m.modseqs, i, i+1)
	}
	tx.logChange(change{kind: changeExpunge, uids: []imap.UID{uid}})
	return true
}

// SetFlags replaces the flags of uid; no change is logged when they are
// equal as sets, so a change heard twice reaches sessions once.
func (tx *Tx) SetFlags(uid imap.UID, flags []imap.Flag) bool {
	m := tx.m
	i, ok := m.index(uid)
	if !ok || FlagsEqual(m.flags[i], flags) {
		return false
	}
	tx.coverFlags(flags)
	m.flags[i] = slices.Clone(flags)
	tx.logChange(change{kind: changeFlags, uids: []imap.UID{uid}})
	if tx.flagsLogged == nil {
		tx.flagsLogged = make(map[imap.UID]bool)
	}
	tx.flagsLogged[uid] = true
	return true
}

// UIDNext is the model's UIDNEXT: no UID at or above it was seen.
func (tx *Tx) UIDNext() imap.UID { return tx.m.uidNext }

// SetUIDNext records the upstream's UIDNEXT (never moving it backwards).
func (tx *Tx) SetUIDNext(uid imap.UID) {
	if uid > tx.m.uidNext {
		tx.m.uidNext = uid
	}
}

// SetMailboxFlags records the mailbox's FLAGS and PERMANENTFLAGS. A FLAGS
// list that differs from the model's (as a set) is logged: every session
// must be told it before a FETCH that uses a new keyword (RFC 3501 7.2.6),
// so the owner applies it before the message flag changes it heard with it.
func (tx *Tx) SetMailboxFlags(flags, permanent []imap.Flag) {
	if permanent != nil {
		tx.m.permFlags = slices.Clone(permanent)
	}
	if flags == nil {
		return
	}
	changed := !FlagsEqual(tx.m.mboxFlags, flags)
	tx.m.mboxFlags = slices.Clone(flags)
	if permanent == nil {
		tx.m.addPermanentLocked(flags)
	}
	if changed {
		tx.logChange(change{kind: changeMailboxFlags})
	}
}

// coverFlags adds to the mailbox's FLAGS (and PERMANENTFLAGS, when it
// allows new keywords) any keyword of flags it lacks, logged before the
// change that uses it: every session is told a keyword in FLAGS before a
// FETCH shows it (RFC 3501 7.2.6), even when the watcher reads the message
// flags (a CHANGEDSINCE listing, say) before the upstream's own FLAGS
// response reaches it. That later FLAGS then changes nothing.
func (tx *Tx) coverFlags(flags []imap.Flag) {
	m := tx.m
	if len(m.mboxFlags) == 0 {
		return // not known yet: nothing to keep consistent
	}
	var add []imap.Flag
	for _, f := range flags {
		if f != `\Recent` && !slices.Contains(m.mboxFlags, f) && !slices.Contains(add, f) {
			add = append(add, f)
		}
	}
	if len(add) == 0 {
		return
	}
	m.mboxFlags = append(slices.Clone(m.mboxFlags), add...)
	m.addPermanentLocked(add)
	tx.logChange(change{kind: changeMailboxFlags})
}

// Resync makes the model equal to a full upstream listing (ascending UIDs
// with their flags) and logs only the net difference: expunges, flag
// changes, then the new messages. It is how the watcher reconciles after a
// reconnect or when it cannot tell which messages a notification was about.
func (tx *Tx) Resync(uids []imap.UID, flags [][]imap.Flag) error {
	m := tx.m
	// Validate before touching anything: new UIDs must be above maxUID.
	for i, uid := range uids {
		if i > 0 && uid <= uids[i-1] {
			return ErrNotAscending
		}
		if _, ok := m.index(uid); !ok && uid <= m.maxUID {
			return ErrNotAscending
		}
	}
	var gone []imap.UID
	j := 0
	for _, uid := range m.uids {
		for j < len(uids) && uids[j] < uid {
			j++
		}
		if j == len(uids) || uids[j] != uid {
			gone = append(gone, uid)
		}
	}
	for _, uid := range gone {
		tx.Expunge(uid)
	}
	for i, uid := range uids {
		var f []imap.Flag
		if i < len(flags) {
			f = flags[i]
		}
		if tx.Has(uid) {
			tx.SetFlags(uid, f)
		}
	}
	for i, uid := range uids {
		if uid > m.maxUID {
			var f []imap.Flag
			if i < len(flags) {
				f = flags[i]
			}
			if err := tx.Add(uid, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// FlagsEqual compares two flag lists as sets: the model logs a flag change
// only when it is one, and sessions use it to skip what they already told.
func FlagsEqual(a, b []imap.Flag) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.Contains(b, f) {
			return false
		}
	}
	return true
}

// addPermanentLocked adds the keywords of flags to PERMANENTFLAGS when it
// allows new ones (\*): Dovecot lists every keyword of FLAGS there, and a
// FLAGS change heard on the watcher's read-only connection comes without
// PERMANENTFLAGS (RFC 3501 7.1). The owner holds the write lock.
func (m *Mailbox) addPermanentLocked(flags []imap.Flag) {
	i := slices.Index(m.permFlags, imap.FlagWildcard)
	if i < 0 {
		return
	}
	var add []imap.Flag
	for _, f := range flags {
		if f != `\Recent` && f != imap.FlagWildcard && !slices.Contains(m.permFlags, f) && !slices.Contains(add, f) {
			add = append(add, f)
		}
	}
	if len(add) == 0 {
		return
	}
	perm := slices.Clone(m.permFlags[:i])
	perm = append(perm, add...)
	m.permFlags = append(perm, m.permFlags[i:]...)
}
