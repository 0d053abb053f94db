package fanout

import (
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
)

// Member is a message of a session's view.
type Member struct {
	Seq uint32
	UID imap.UID
}

// Members lists the view's messages whose UIDs are in set, ascending, under
// one read lock. "*" in set means the view's largest UID.
func (v *View) Members(set imap.UIDSet) []Member {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v.err != nil {
		return nil
	}
	n := m.numberingAt(v.cursor.Load())
	last := m.lastUID(n)
	var uids []imap.UID
	for _, r := range set {
		start, stop := starRange(r.Start, r.Stop, last)
		i := sort.Search(n.prefix, func(j int) bool { return m.uids[j] >= start })
		for ; i < n.prefix && m.uids[i] <= stop; i++ {
			uids = append(uids, m.uids[i])
		}
		for _, e := range n.extra {
			if e >= start && e <= stop {
				uids = append(uids, e)
			}
		}
	}
	slices.Sort(uids)
	uids = slices.Compact(uids)
	out := make([]Member, 0, len(uids))
	for _, u := range uids {
		seq, _ := m.seqOf(n, u)
		out = append(out, Member{Seq: seq, UID: u})
	}
	return out
}

// Lookup returns the members of the view among uids (any order), in
// ascending order, dropping UIDs the session does not know.
func (v *View) Lookup(uids []imap.UID) []Member {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v.err != nil {
		return nil
	}
	n := m.numberingAt(v.cursor.Load())
	out := make([]Member, 0, len(uids))
	for _, u := range uids {
		if seq, ok := m.seqOf(n, u); ok {
			out = append(out, Member{Seq: seq, UID: u})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return int(a.Seq) - int(b.Seq) })
	return out
}
