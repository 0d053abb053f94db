package fanout

import (
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
)

// Recency (RFC 3501 section 2.3.2): a message is \Recent in exactly one
// read-write session, the first one told of it, whether by SELECT or by an
// update. idlemux decides it here, not upstream: the watcher only EXAMINEs
// (which claims nothing upstream) and the pool connections SELECT
// read-write (which claims everything upstream, for no client), so the
// upstream's \Recent belongs to none of idlemux's sessions.
//
// The boundary at the model's birth is the upstream's own: the messages the
// watcher's first EXAMINE reports \Recent (what its "* n RECENT" counts) are
// recent for nobody yet, and so is every message added to the model later.
// Dovecot's recent messages are always the UIDs from its first_recent_uid
// on, so one UID records it: Snapshot.FirstRecent.
//
// Because a session is told of messages in UID order (a view always holds
// every model UID up to its own maxUID), the messages no read-write session
// was told of yet are exactly those above one watermark, claimedTo. The
// first read-write view to move past a message raises the watermark and
// records the UID range it took in its own list of ranges; consecutive
// claims by one view merge into one range. Memory is O(recent messages),
// never O(sessions × messages).
//
// A read-only view (EXAMINE) claims nothing, but sees as recent what no one
// had claimed when it was told of it, as Dovecot does: two EXAMINEs and a
// later SELECT all report the same messages recent.
//
// Lock order: Mailbox.mu, then Mailbox.recentMu. recentMu guards claimedTo
// and every view's recency fields.

// uidRange is an inclusive range of UIDs.
type uidRange struct{ lo, hi imap.UID }

// viewRecency is a view's share of recency, guarded by Mailbox.recentMu.
type viewRecency struct {
	ranges  []uidRange // ascending, disjoint: the UIDs recent in this view
	seenTo  imap.UID   // the largest UID this view was considered for
	told    uint32     // the recent count the session was last told
	pending uint32     // the count Pending computed for position pendAt
	pendAt  uint64
	pendOK  bool // pending and pendAt are set and not yet committed
}

// firstRecentBoundary returns the initial claimedTo of a model whose
// largest UID is maxUID: every UID above it is recent for the first session
// told. firstRecent is the lowest UID the upstream reported \Recent, or 0.
func firstRecentBoundary(firstRecent, maxUID imap.UID) imap.UID {
	if firstRecent == 0 || firstRecent > maxUID {
		return maxUID
	}
	return firstRecent - 1
}

// claimed returns claimedTo: UIDs above it no read-write session was told of.
func (m *Mailbox) claimed() imap.UID { return imap.UID(m.claimedTo.Load()) }

// Claimed returns the largest UID some read-write session was told of (or
// the boundary the model was born with): every model UID above it is
// recent for the next session told.
func (m *Mailbox) Claimed() imap.UID { return m.claimed() }

// takeInLocked records that v is being told of every model UID up to upTo:
// what no read-write session was told of yet becomes recent in v, and is
// claimed unless v is read-only. Idempotent. m.mu and m.recentMu are held.
func (m *Mailbox) takeInLocked(v *View, upTo imap.UID) {
	r := &v.rec
	lo := max(m.claimed(), r.seenTo) + 1
	r.seenTo = max(r.seenTo, upTo)
	if upTo < lo {
		return
	}
	if !v.readOnly {
		m.claimedTo.Store(uint32(upTo))
	}
	v.active.Store(true)
	if n := len(r.ranges); n > 0 && r.ranges[n-1].hi+1 == lo {
		r.ranges[n-1].hi = upTo
		return
	}
	r.ranges = append(r.ranges, uidRange{lo, upTo})
}

// recentCountLocked counts v's recent messages in numbering n, and drops
// the ranges none of whose messages is left: UIDs never come back, so
// they can never count again. m.mu and m.recentMu are held.
func (m *Mailbox) recentCountLocked(v *View, n numbering) uint32 {
	var total uint32
	kept := v.rec.ranges[:0]
	for _, r := range v.rec.ranges {
		a := sort.Search(n.prefix, func(j int) bool { return m.uids[j] >= r.lo })
		b := sort.Search(n.prefix, func(j int) bool { return m.uids[j] > r.hi })
		c := b - a
		for _, e := range n.extra {
			if e >= r.lo && e <= r.hi {
				c++
			}
		}
		// A message of the model the view was not told of yet may count
		// later; a range with neither is gone for good.
		if i := sort.Search(len(m.uids), func(j int) bool { return m.uids[j] >= r.lo }); c > 0 || (i < len(m.uids) && m.uids[i] <= r.hi) {
			kept = append(kept, r)
		}
		total += uint32(c)
	}
	clear(v.rec.ranges[len(kept):])
	v.rec.ranges = kept
	return total
}

// isRecentLocked reports whether uid is recent in v. m.recentMu is held.
func (v *View) isRecentLocked(uid imap.UID) bool {
	rs := v.rec.ranges
	i := sort.Search(len(rs), func(j int) bool { return rs[j].hi >= uid })
	return i < len(rs) && rs[i].lo <= uid
}

// withRecent returns flags with \Recent added when uid is recent in v
// (a new slice: the model's are shared). m.mu is held (read).
func (v *View) withRecent(uid imap.UID, flags []imap.Flag) []imap.Flag {
	if !v.active.Load() {
		return flags
	}
	v.m.recentMu.Lock()
	recent := v.isRecentLocked(uid)
	v.m.recentMu.Unlock()
	if !recent {
		return flags
	}
	return append(slices.Clip(flags), FlagRecent)
}

// FlagRecent is the session flag \Recent (RFC 3501 section 2.3.2).
const FlagRecent imap.Flag = "\\Recent"

// pendingRecent takes in the messages up to position t for v and returns
// the recent count at t, and whether the session must be told it (RFC 3501
// section 7.3.2; Dovecot sends RECENT only when the count changed).
// m.mu is held (read).
func (m *Mailbox) pendingRecent(v *View, t uint64, at numbering) (uint32, bool) {
	upTo := m.maxAt(t)
	if !v.active.Load() && upTo <= m.claimed() {
		return 0, false // nothing new for anyone, nothing recent here
	}
	m.recentMu.Lock()
	defer m.recentMu.Unlock()
	m.takeInLocked(v, upTo)
	n := m.recentCountLocked(v, at)
	v.rec.pending, v.rec.pendAt, v.rec.pendOK = n, t, true
	return n, n != v.rec.told
}

// commitRecent records that the count Pending computed for position to
// was written.
func (v *View) commitRecent(to uint64) {
	if !v.active.Load() {
		return
	}
	v.m.recentMu.Lock()
	if v.rec.pendOK && v.rec.pendAt == to {
		v.rec.told, v.rec.pendOK = v.rec.pending, false
	}
	v.m.recentMu.Unlock()
}

// IsRecent reports whether uid is \Recent in this session (RFC 3501
// section 2.3.2), for FETCH FLAGS.
func (v *View) IsRecent(uid imap.UID) bool {
	if !v.active.Load() {
		return false
	}
	v.m.recentMu.Lock()
	defer v.m.recentMu.Unlock()
	return v.isRecentLocked(uid)
}

// RecentCount returns the number of messages the session knows of that are
// recent in it (STATUS RECENT on its own mailbox).
func (v *View) RecentCount() uint32 {
	if !v.active.Load() {
		return 0
	}
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v.err != nil {
		return 0
	}
	m.recentMu.Lock()
	defer m.recentMu.Unlock()
	return m.recentCountLocked(v, m.numberingAt(v.cursor.Load()))
}

// Recent returns the UIDs recent in this session, as ranges that may also
// name UIDs that no longer exist (SEARCH RECENT runs upstream by UID, and
// its result is filtered through the view). Empty when none.
func (v *View) Recent() imap.UIDSet {
	if !v.active.Load() {
		return nil
	}
	v.m.recentMu.Lock()
	defer v.m.recentMu.Unlock()
	var set imap.UIDSet
	for _, r := range v.rec.ranges {
		set.AddRange(r.lo, r.hi)
	}
	return set
}

// Unclaimed returns the number of messages of the model that no read-write
// session was told of yet: what Dovecot's STATUS RECENT reports to a
// session that does not have the mailbox selected.
func (m *Mailbox) Unclaimed() uint32 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := m.claimed()
	i := sort.Search(len(m.uids), func(j int) bool { return m.uids[j] > c })
	return uint32(len(m.uids) - i)
}
