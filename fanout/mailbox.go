package fanout

import (
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
)

// ErrLagging is a view's error once it fell more than MaxLag changes behind
// the model: its session is closed with BYE rather than allowed to hold the
// change log (and so memory) without bound.
var ErrLagging = errors.New("too many mailbox changes not yet delivered")

// trimEvery is how many log entries may accumulate past the previous trim
// before the model scans its views to drop entries every view has passed.
// It bounds the scan cost to once per trimEvery changes.
const trimEvery = 256

// Snapshot is the full state of a mailbox as the upstream reports it.
type Snapshot struct {
	UIDValidity    uint32
	UIDNext        imap.UID
	Flags          []imap.Flag // the mailbox's FLAGS
	PermanentFlags []imap.Flag
	UIDs           []imap.UID    // ascending
	MsgFlags       [][]imap.Flag // aligned with UIDs
	// ModSeqs, when not nil, holds each message's MODSEQ as the upstream
	// reported it (RFC 7162 3.1.4), aligned with UIDs; 0 is unknown.
	ModSeqs []uint64
	// FirstRecent is the lowest UID the upstream reported \Recent when
	// the watcher first EXAMINEd the mailbox, 0 when none: from it on,
	// messages are recent for the first session told (see recent.go).
	FirstRecent imap.UID
	// HighestModSeq is the upstream's HIGHESTMODSEQ the snapshot holds
	// every change up to (RFC 7162 3.1.2.1); 0 without CONDSTORE.
	HighestModSeq uint64
}

// Mailbox is the model of one upstream mailbox plus its change log.
//
// Only the owner (the watcher) calls Update; views read under the read lock.
// Flag slices stored in the model are never modified in place, so readers may
// hand them to writers after unlocking.
type Mailbox struct {
	mu sync.RWMutex

	uids  []imap.UID
	flags [][]imap.Flag
	// modseqs is each message's MODSEQ (RFC 7162 3.1.4) as the upstream
	// last reported it, aligned with uids; nil until the upstream reports
	// one (a model without CONDSTORE spends nothing on it). 0: unknown.
	modseqs []uint64
	maxUID  imap.UID // largest UID ever added; never decreases
	// highest is the upstream HIGHESTMODSEQ the model holds every change
	// up to (highest.go); it only grows.
	highest uint64

	uidValidity uint32
	uidNext     imap.UID
	mboxFlags   []imap.Flag
	permFlags   []imap.Flag

	log      []change
	base     uint64 // log position of log[0]
	lastTrim int    // len(log) right after the previous trim
	trimHead uint64 // head at the previous trim

	notify  chan struct{} // closed and replaced whenever views have news
	updated time.Time     // when the last change was logged
	views   map[*View]struct{}
	maxLag  int
	err     error // set by Close: every view fails with it

	// recentMu and claimedTo: see recent.go. claimedTo is written under
	// recentMu and read atomically on the fast path.
	recentMu  sync.Mutex
	claimedTo atomic.Uint32
}

// NewMailbox builds a model from an upstream snapshot. maxLag bounds how many
// undelivered changes a view may have before it is failed with ErrLagging.
func NewMailbox(snap Snapshot, maxLag int) *Mailbox {
	if maxLag < 1 {
		maxLag = 1
	}
	m := &Mailbox{
		uidValidity: snap.UIDValidity,
		uidNext:     snap.UIDNext,
		mboxFlags:   slices.Clone(snap.Flags),
		permFlags:   slices.Clone(snap.PermanentFlags),
		notify:      make(chan struct{}),
		views:       make(map[*View]struct{}),
		maxLag:      maxLag,
		highest:     snap.HighestModSeq,
	}
	m.uids = make([]imap.UID, 0, len(snap.UIDs))
	m.flags = make([][]imap.Flag, 0, len(snap.UIDs))
	if snap.ModSeqs != nil {
		m.modseqs = make([]uint64, 0, len(snap.UIDs))
	}
	for i, uid := range snap.UIDs {
		if uid <= m.maxUID {
			continue // not ascending: keep the model well-formed
		}
		var f []imap.Flag
		if i < len(snap.MsgFlags) {
			f = slices.Clone(snap.MsgFlags[i])
		}
		m.uids = append(m.uids, uid)
		m.flags = append(m.flags, f)
		if m.modseqs != nil {
			var ms uint64
			if i < len(snap.ModSeqs) {
				ms = snap.ModSeqs[i]
			}
			m.modseqs = append(m.modseqs, ms)
		}
		m.maxUID = uid
	}
	if m.uidNext <= m.maxUID {
		m.uidNext = m.maxUID + 1
	}
	m.claimedTo.Store(uint32(firstRecentBoundary(snap.FirstRecent, m.maxUID)))
	return m
}

func (m *Mailbox) head() uint64 { return m.base + uint64(len(m.log)) }

// UIDValidity returns the UIDVALIDITY the model was built for.
func (m *Mailbox) UIDValidity() uint32 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.uidValidity
}

// Len returns the number of messages in the model.
func (m *Mailbox) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.uids)
}

// UIDs returns a copy of the model's UIDs, for tests and resync.
func (m *Mailbox) UIDs() []imap.UID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.uids)
}

// UpdatedAt returns when the model last logged a change, or when the
// watcher first heard of it (Tx.HeardAt): where fan-out latency starts.
func (m *Mailbox) UpdatedAt() time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.updated
}

// Flags returns the model's flags for uid (shared: do not modify).
func (m *Mailbox) Flags(uid imap.UID) ([]imap.Flag, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i, ok := m.index(uid)
	if !ok {
		return nil, false
	}
	return m.flags[i], true
}

// MailboxFlags returns the mailbox's FLAGS and PERMANENTFLAGS as the
// upstream last reported them (shared: do not modify).
func (m *Mailbox) MailboxFlags() (flags, permanent []imap.Flag) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mboxFlags, m.permFlags
}

// MaxUID returns the largest UID the model ever added.
func (m *Mailbox) MaxUID() imap.UID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.maxUID
}

// Changed returns a channel closed at the model's next change (or failure),
// for whoever delivers on behalf of many views at once.
func (m *Mailbox) Changed() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.notify
}

// Views returns the number of open views.
func (m *Mailbox) Views() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.views)
}

// Update applies changes under the write lock and wakes the views if any
// change was logged. It returns the number of changes logged.
func (m *Mailbox) Update(fn func(tx *Tx)) int {
	m.mu.Lock()
	tx := Tx{m: m}
	fn(&tx)
	if tx.n > 0 || tx.wake {
		m.updated = time.Now()
		if !tx.heard.IsZero() && tx.heard.Before(m.updated) {
			m.updated = tx.heard
		}
		if len(m.log)-m.lastTrim >= trimEvery {
			m.trimLocked()
		}
		close(m.notify)
		m.notify = make(chan struct{})
	}
	m.mu.Unlock()
	return tx.n
}

// Close fails every view with err (for example when UIDVALIDITY changed or
// the mailbox was deleted upstream) and wakes them so their sessions end.
func (m *Mailbox) Close(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return
	}
	m.err = err
	for v := range m.views {
		v.err = err
	}
	clear(m.views)
	close(m.notify)
	m.notify = make(chan struct{})
}

// trimLocked fails views that lag by more than maxLag and drops the log
// entries every remaining view has passed. A view is only failed if it has
// not moved past the previous trim's head either: one large transaction
// (a STORE on a whole mailbox, a resync) must not fail sessions that simply
// had no chance to read it yet.
func (m *Mailbox) trimLocked() {
	head := m.head()
	low := head
	for v := range m.views {
		c := v.cursor.Load()
		if head-c > uint64(m.maxLag) && c < m.trimHead {
			v.err = ErrLagging
			delete(m.views, v)
			continue
		}
		low = min(low, c)
	}
	if drop := int(low - m.base); drop > 0 {
		// Copy rather than reslice so the dropped entries can be freed.
		m.log = append([]change(nil), m.log[drop:]...)
		m.base = low
	}
	m.lastTrim = len(m.log)
	m.trimHead = head
}

// index returns the position of uid in m.uids.
func (m *Mailbox) index(uid imap.UID) (int, bool) {
	i, ok := slices.BinarySearch(m.uids, uid)
	return i, ok
}

// maxAt returns maxUID(pos): the largest UID added when the log reached pos.
func (m *Mailbox) maxAt(pos uint64) imap.UID {
	if pos >= m.head() {
		return m.maxUID
	}
	return m.log[pos-m.base].maxBefore
}

// numbering is a view's message list at some log position, described
// relative to the current model (see the package doc).
type numbering struct {
	prefix int        // number of model UIDs present at the position
	extra  []imap.UID // UIDs present at the position, expunged since; ascending
}

func (n numbering) count() int { return n.prefix + len(n.extra) }

// numberingAt computes the numbering at log position pos (base <= pos <= head).
func (m *Mailbox) numberingAt(pos uint64) numbering {
	maxU := m.maxAt(pos)
	var n numbering
	n.prefix = sort.Search(len(m.uids), func(i int) bool { return m.uids[i] > maxU })
	for _, ch := range m.log[pos-m.base:] {
		if ch.kind == changeExpunge && ch.uids[0] <= maxU {
			n.extra = append(n.extra, ch.uids[0])
		}
	}
	slices.Sort(n.extra)
	return n
}

// uidAt returns the UID at 1-based sequence number seq in numbering n.
func (m *Mailbox) uidAt(n numbering, seq uint32) (imap.UID, bool) {
	if seq < 1 || int(seq) > n.count() {
		return 0, false
	}
	s := int(seq)
	for i, e := range n.extra {
		k := sort.Search(n.prefix, func(j int) bool { return m.uids[j] > e })
		switch pos := k + i + 1; {
		case pos == s:
			return e, true
		case pos > s:
			return m.uids[s-1-i], true
		}
	}
	return m.uids[s-1-len(n.extra)], true
}

// seqOf returns the 1-based sequence number of uid in numbering n.
func (m *Mailbox) seqOf(n numbering, uid imap.UID) (uint32, bool) {
	if i, ok := slices.BinarySearch(n.extra, uid); ok {
		k := sort.Search(n.prefix, func(j int) bool { return m.uids[j] > uid })
		return uint32(k + i + 1), true
	}
	j, ok := slices.BinarySearch(m.uids[:n.prefix], uid)
	if !ok {
		return 0, false
	}
	e, _ := slices.BinarySearch(n.extra, uid)
	return uint32(j + 1 + e), true
}

// lastUID returns the largest UID of numbering n, or 0 when it is empty.
func (m *Mailbox) lastUID(n numbering) imap.UID {
	var last imap.UID
	if n.prefix > 0 {
		last = m.uids[n.prefix-1]
	}
	if len(n.extra) > 0 {
		last = max(last, n.extra[len(n.extra)-1])
	}
	return last
}
