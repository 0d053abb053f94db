package imapcheck

import "slices"

// converge checks, at the end of a NOOP begun at tick begin, that the
// view shows every change other sessions completed before it began (RFC
// 3501 6.1.2: NOOP is how a client asks for updates; Dovecot syncs on
// it): messages created, messages expunged, and owned keywords stored.
func (s *Session) converge(begin uint64) {
	h := s.h
	for ; s.createdCur < len(h.createdLog) && h.createdLog[s.createdCur].tick < begin; s.createdCur++ {
		c := h.createdLog[s.createdCur]
		if c.by != s && !s.holds(c.uid) && !s.told[c.uid] {
			h.defer_(s, OthersWrite, c.uid, "UID %d created by %s before this NOOP began, not in the view %v", c.uid, c.by.name, s.uids)
		}
	}
	for ; s.goneCur < len(h.goneLog) && h.gone[h.goneLog[s.goneCur]] < begin; s.goneCur++ {
		if u := h.goneLog[s.goneCur]; slices.Contains(s.uids, u) {
			h.violate(s, OthersWrite, "UID %d expunged (another session was told) before this NOOP began, still in the view", u)
		}
	}
	for ; s.kwCur < len(h.kwLog) && h.kwLog[s.kwCur].tick < begin; s.kwCur++ {
		key := h.kwLog[s.kwCur].key
		st := h.kw[key]
		if st.end >= begin || st.owner == s || st.inflight || !slices.Contains(s.uids, key.uid) {
			continue
		}
		if f := s.flags[key.uid]; f != nil && f[key.kw] != st.value {
			h.violate(s, OthersWrite, "UID %d: %s stored %s=%v before this NOOP began; the view has %v", key.uid, st.owner.name, key.kw, st.value, f[key.kw])
		}
	}
}
