package fanout

import (
	"slices"

	"github.com/emersion/go-imap/v2"
)

// UpdateKind says what an Update tells a session.
type UpdateKind uint8

const (
	UpdateExpunge UpdateKind = iota + 1 // "* Seq EXPUNGE"
	UpdateExists                        // "* Count EXISTS"
	UpdateFlags                         // "* Seq FETCH (UID uid FLAGS (...))"
	// UpdateMailboxFlags: the mailbox's FLAGS list (in Flags) changed;
	// "* FLAGS (...)" and its PERMANENTFLAGS go out before any FETCH.
	UpdateMailboxFlags
	UpdateRecent // "* Count RECENT" (RFC 3501 7.3.2)
)

// Update is one untagged response owed to a session, already numbered in
// that session's view at the moment it is written.
type Update struct {
	Kind  UpdateKind
	Seq   uint32 // EXPUNGE and FETCH; the count for EXISTS and RECENT
	UID   imap.UID
	Flags []imap.Flag // shared with the model: do not modify
	// ModSeq is the message's MODSEQ for a FETCH (0: unknown), which a
	// CONDSTORE-enabled session is told with its flags (RFC 7162 3.1.4).
	ModSeq uint64
}

// Pending computes what the session must be told to move its view forward,
// coalesced: expunges first (highest sequence number first, so each number
// is valid when written), then one EXISTS with the final count, then
// RECENT when the session's recent count changed (as Dovecot sends it),
// then each changed message's current flags once (\Recent included when
// the message is recent in this session). A flag change on a message that was
// expunged since, or on one the session is only now told of, is dropped.
//
// With allowExpunge false (RFC 3501 section 7.4.1: during FETCH, STORE and
// SEARCH), the view only moves up to the first expunge in the log.
// The caller writes the updates, then calls Commit(to).
func (v *View) Pending(allowExpunge bool) (updates []Update, to uint64, err error) {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := v.cursor.Load()
	v.flagsOwed = 0
	v.syncOwed.Store(0)
	if v.err != nil {
		return nil, c, v.err
	}
	head := m.head()
	if c == head {
		v.syncOwed.Store(m.highest)
		return nil, c, nil
	}
	t := head
	if !allowExpunge {
		for i, ch := range m.log[c-m.base:] {
			if ch.kind == changeExpunge {
				t = c + uint64(i)
				break
			}
		}
		if t == c {
			return nil, c, nil
		}
	}

	from := m.numberingAt(c)
	count := from.count()
	if t == head {
		for i := len(from.extra) - 1; i >= 0; i-- {
			seq, _ := m.seqOf(from, from.extra[i])
			updates = append(updates, Update{Kind: UpdateExpunge, Seq: seq, UID: from.extra[i]})
		}
		count -= len(from.extra)
	}
	if t == head {
		v.syncOwed.Store(m.highest)
	}
	to_ := m.numberingAt(t)
	if to_.count() > count {
		updates = append(updates, Update{Kind: UpdateExists, Seq: uint32(to_.count())})
	}

	if n, changed := m.pendingRecent(v, t, to_); changed {
		updates = append(updates, Update{Kind: UpdateRecent, Seq: n})
	}

	maxC := m.maxAt(c)
	start := len(updates)
	for _, ch := range m.log[c-m.base : t-m.base] {
		if ch.kind != changeFlags || ch.uids[0] > maxC {
			continue
		}
		uid := ch.uids[0]
		i, ok := m.index(uid)
		if !ok {
			continue // expunged since: the session will be told that instead
		}
		seq, ok := m.seqOf(to_, uid)
		if !ok {
			continue
		}
		updates = append(updates, Update{Kind: UpdateFlags, Seq: seq, UID: uid, Flags: v.withRecent(uid, m.flags[i]), ModSeq: m.modSeqAt(i)})
	}
	flags := updates[start:]
	slices.SortStableFunc(flags, func(a, b Update) int { return int(a.Seq) - int(b.Seq) })
	updates = slices.CompactFunc(updates, func(a, b Update) bool {
		return a.Kind == UpdateFlags && b.Kind == UpdateFlags && a.Seq == b.Seq
	})
	// A FLAGS change is told once, before the FETCHes (RFC 3501 7.2.6):
	// when it lies in the delivered range, or beyond it (after an expunge
	// held back) while a FETCH here, which shows the model's current
	// flags, may already use its keyword.
	if p, ok := m.lastMailboxFlags(max(c, v.flagsTold)); ok && (p < t || len(updates) > start) {
		updates = slices.Insert(updates, start, Update{Kind: UpdateMailboxFlags, Flags: m.mboxFlags})
		v.flagsOwed = head
	}
	return updates, t, nil
}

// lastMailboxFlags returns the position of the last mailbox FLAGS change
// logged at or after from.
func (m *Mailbox) lastMailboxFlags(from uint64) (uint64, bool) {
	for i := len(m.log) - 1; i >= int(from-m.base); i-- {
		if m.log[i].kind == changeMailboxFlags {
			return m.base + uint64(i), true
		}
	}
	return 0, false
}

// Commit records that the updates up to log position to were written.
// It takes no lock: only the view's own session moves its cursor, and the
// model's trim only reads it.
func (v *View) Commit(to uint64) {
	v.commitRecent(to)
	if to > v.cursor.Load() {
		v.cursor.Store(to)
	}
	v.flagsTold = max(v.flagsTold, v.flagsOwed)
	v.flagsOwed = 0
	if s := v.syncOwed.Swap(0); s > v.synced.Load() {
		v.synced.Store(s)
	}
}

// Position returns the log position up to which the session was told
// (its cursor) and the model's head: a caller that must remember
// something until the session is told a change logged by now keeps head
// and compares the cursor with it later.
func (v *View) Position() (told, head uint64) {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	return v.cursor.Load(), v.m.head()
}
