package fanout

import (
	"errors"
	"slices"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
)

// ErrBadSeq is returned for a sequence number the session was never told of
// (RFC 3501 section 6.4.5: it is a BAD command). Message carries the text.
var ErrBadSeq = errors.New("invalid message sequence number")

// View is one session's numbering of a Mailbox: a cursor into its log.
// A View is used by one session at a time (its command and IDLE goroutines
// never run Pending/Commit concurrently).
type View struct {
	m        *Mailbox
	cursor   atomic.Uint64 // only moves forward; read under m.mu
	err      error         // guarded by m.mu
	readOnly bool          // EXAMINE: claims no recent message

	active atomic.Bool // once rec holds anything: the fast paths skip recency
	rec    viewRecency // guarded by m.recentMu

	// flagsTold: the mailbox FLAGS changes logged before this position
	// were told (besides those before the cursor), by TakeMailboxFlags or
	// ahead of the cursor by Pending; flagsOwed is what the last Pending
	// tells, recorded by Commit. Only the view's session uses them.
	flagsTold, flagsOwed uint64

	// synced is the model's HIGHESTMODSEQ when the session was last told
	// everything (highest.go); syncOwed is what the last Pending would
	// make it, recorded by Commit. Atomic: the idle fast path commits on
	// a dispatcher's goroutine.
	synced, syncOwed atomic.Uint64
}

// SelectData is what a session reports when it selects the mailbox.
type SelectData struct {
	NumMessages    uint32
	UIDValidity    uint32
	UIDNext        imap.UID
	Flags          []imap.Flag
	PermanentFlags []imap.Flag
	FirstUnseen    uint32 // 0 when every message is \Seen
	NumRecent      uint32 // RFC 3501 section 7.3.2
	// HighestModSeq is the model's HIGHESTMODSEQ with the view's
	// numbering: read under the same lock (RFC 7162 3.1.2.1).
	HighestModSeq uint64
}

// NewView opens a read-write view at the model's head.
func (m *Mailbox) NewView() (*View, SelectData, error) { return m.OpenView(false) }

// OpenView opens a view at the model's head. A read-write view claims the
// messages no session was told of yet: they are recent in it alone (RFC
// 3501 section 2.3.2). A read-only one (EXAMINE) sees them recent without
// claiming them, as Dovecot does.
func (m *Mailbox) OpenView(readOnly bool) (*View, SelectData, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, SelectData{}, m.err
	}
	v := &View{m: m, readOnly: readOnly}
	v.cursor.Store(m.head())
	v.synced.Store(m.highest)
	m.views[v] = struct{}{}
	m.recentMu.Lock()
	m.takeInLocked(v, m.maxUID)
	recent := m.recentCountLocked(v, numbering{prefix: len(m.uids)})
	v.rec.told = recent
	m.recentMu.Unlock()
	sd := SelectData{
		NumRecent:      recent,
		NumMessages:    uint32(len(m.uids)),
		UIDValidity:    m.uidValidity,
		UIDNext:        m.uidNext,
		Flags:          m.mboxFlags,
		PermanentFlags: m.permFlags,
		HighestModSeq:  m.highest,
	}
	for i, f := range m.flags {
		if !slices.Contains(f, imap.FlagSeen) {
			sd.FirstUnseen = uint32(i + 1)
			break
		}
	}
	return v, sd, nil
}

// Close detaches the view so it no longer holds the log back.
func (v *View) Close() {
	v.m.mu.Lock()
	delete(v.m.views, v)
	v.m.mu.Unlock()
}

// Err returns why the view failed (ErrLagging, or the mailbox's close
// reason), or nil.
func (v *View) Err() error {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	return v.err
}

// Changed returns a channel closed at the model's next change (or failure).
func (v *View) Changed() <-chan struct{} {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	return v.m.notify
}

// Count returns the number of messages the session knows of.
func (v *View) Count() uint32 {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return 0
	}
	return uint32(v.m.numberingAt(v.cursor.Load()).count())
}

// SeqToUID translates one of the session's sequence numbers.
func (v *View) SeqToUID(seq uint32) (imap.UID, bool) {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return 0, false
	}
	return v.m.uidAt(v.m.numberingAt(v.cursor.Load()), seq)
}

// UIDToSeq returns the session's sequence number for uid; false when the
// session does not know the message (not yet announced, or gone).
func (v *View) UIDToSeq(uid imap.UID) (uint32, bool) {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return 0, false
	}
	return v.m.seqOf(v.m.numberingAt(v.cursor.Load()), uid)
}

// Flags returns the model's current flags for uid, with \Recent when the
// message is recent in this session (shared: do not modify).
func (v *View) Flags(uid imap.UID) ([]imap.Flag, bool) {
	flags, _, ok := v.FlagsModSeq(uid)
	return flags, ok
}

// TakeMailboxFlags returns the mailbox's FLAGS list if it changed since
// the session was last told, and counts it as told: the caller writes it
// now, before a response of its own that may show a new keyword (RFC 3501
// 7.2.6), and a failed write ends the session.
func (v *View) TakeMailboxFlags() ([]imap.Flag, bool) {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v.err != nil {
		return nil, false
	}
	if _, ok := m.lastMailboxFlags(max(v.cursor.Load(), v.flagsTold)); !ok {
		return nil, false
	}
	v.flagsTold = m.head()
	return m.mboxFlags, true
}

// MailboxFlagsOwed says whether the model's mailbox FLAGS changed since
// the session was last told (TakeMailboxFlags would return them): a
// response showing a keyword read from the model now may need them first.
func (v *View) MailboxFlagsOwed() bool {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.lastMailboxFlags(max(v.cursor.Load(), v.flagsTold))
	return v.err == nil && ok
}

// Expunged reports whether the session still sees uid although the model
// has expunged it (RFC 2180 section 4: the session has not been told yet).
func (v *View) Expunged(uid imap.UID) bool {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return false
	}
	_, ok := slices.BinarySearch(v.m.numberingAt(v.cursor.Load()).extra, uid)
	return ok
}

// ResolveSeqSet translates a set of the session's sequence numbers into the
// UIDs to name upstream. Each sequence range maps to one UID range, because
// every message upstream inside it that the session does not know of was
// either expunged (harmless to name) or does not exist. expunged lists the
// requested messages already expunged in the model (RFC 2180 section 4.1).
// A number beyond the session's count is ErrBadSeq.
func (v *View) ResolveSeqSet(set imap.SeqSet) (uids imap.UIDSet, expunged []imap.UID, err error) {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return nil, nil, v.err
	}
	n := v.m.numberingAt(v.cursor.Load())
	count := uint32(n.count())
	for _, r := range set {
		start, stop := starRange(r.Start, r.Stop, count)
		if start < 1 || stop > count {
			return nil, nil, ErrBadSeq
		}
		first, _ := v.m.uidAt(n, start)
		last, _ := v.m.uidAt(n, stop)
		uids.AddRange(first, last)
		for _, e := range n.extra {
			if e >= first && e <= last {
				expunged = append(expunged, e)
			}
		}
	}
	return uids, expunged, nil
}

// ResolveUIDSet clips a client's UID set to the messages the session knows:
// "*" is the session's largest UID (RFC 3501 section 6.4.8: a range n:*
// includes it even when n is larger), and nothing above it is named
// upstream. ok is false when the set names no message of the view.
func (v *View) ResolveUIDSet(set imap.UIDSet) (uids imap.UIDSet, ok bool) {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return nil, false
	}
	last := v.m.lastUID(v.m.numberingAt(v.cursor.Load()))
	if last == 0 {
		return nil, false
	}
	for _, r := range set {
		start, stop := starRange(r.Start, r.Stop, last)
		if start > last {
			continue
		}
		uids.AddRange(start, min(stop, last))
	}
	return uids, len(uids) > 0
}

// ExpungedIn lists the UIDs of uids (resolved: no "*") that the session
// still shows but the model has expunged since: messages a command names
// that were expunged elsewhere and not yet reported to it (RFC 2180 4).
// ResolveSeqSet reports the same for sequence numbers.
func (v *View) ExpungedIn(uids imap.UIDSet) []imap.UID {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	if v.err != nil {
		return nil
	}
	var out []imap.UID
	for _, e := range v.m.numberingAt(v.cursor.Load()).extra {
		if uids.Contains(e) {
			out = append(out, e)
		}
	}
	return out
}

// starRange resolves "*" (0) in a range to star, the largest number or UID
// the session knows, and orders the range: RFC 3501 section 9 lets a
// client write n:m in either order.
func starRange[T ~uint32](start, stop, star T) (T, T) {
	if start == 0 {
		start = star
	}
	if stop == 0 {
		stop = star
	}
	return min(start, stop), max(start, stop)
}
