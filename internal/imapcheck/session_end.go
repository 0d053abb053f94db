package imapcheck

import (
	"slices"
	"strconv"
	"strings"
)

// norm folds a flag's case: flags are case-insensitive (RFC 3501 2.3.2).
func norm(f string) string { return strings.ToLower(f) }

func (s *Session) fetch(r *Response) {
	n := r.Num
	if int(n) > len(s.uids) {
		s.h.violate(s, FetchRange, "FETCH %d with %d messages in the view", n, len(s.uids))
		return
	}
	u := s.uids[n-1]
	if v, ok := r.Item("UID"); ok {
		got := uint32(v.Num)
		switch {
		case u != 0 && u != got:
			s.h.violate(s, UIDStable, "number %d was UID %d, now UID %d", n, u, got)
		case u == 0 && !s.ordered(int(n-1), got):
			s.h.violate(s, UIDStable, "UID %d at number %d breaks ascending order in %v", got, n, s.uids)
		}
		s.uids[n-1] = got
		u = got
	}
	v, ok := r.Item("FLAGS")
	if !ok {
		return
	}
	fs := map[string]bool{}
	for _, e := range v.List {
		f := norm(e.Atom)
		fs[f] = true
		if !strings.HasPrefix(f, `\`) && !s.keywords[f] {
			s.h.violate(s, KeywordInFlags, "FETCH %d uses keyword %s, not in the last FLAGS", n, e.Atom)
		}
	}
	if u == 0 {
		return
	}
	s.flags[u] = fs
	c := s.cur
	if c == nil || c.cmd.Name != "STORE" || !slices.Contains(c.targets, u) {
		return
	}
	c.echoed[u] = true
	for _, f := range c.cmd.Store.Flags {
		if f = norm(f); s.owned[f] && fs[f] != c.cmd.Store.Add {
			s.h.violate(s, OwnWrite, "STORE answered FETCH %d (UID %d) with %s set=%v", n, u, f, fs[f])
		}
	}
}

// ordered reports whether uid fits at index i between the known UIDs
// around it (RFC 3501 2.3.1.1: UIDs ascend with sequence numbers).
func (s *Session) ordered(i int, uid uint32) bool {
	for j := i - 1; j >= 0; j-- {
		if s.uids[j] != 0 {
			if s.uids[j] >= uid {
				return false
			}
			break
		}
	}
	for j := i + 1; j < len(s.uids); j++ {
		if s.uids[j] != 0 {
			return s.uids[j] > uid
		}
	}
	return true
}

// holds reports whether the view has uid, or a number whose UID it does
// not know yet where uid would fit.
func (s *Session) holds(uid uint32) bool {
	for i, u := range s.uids {
		if u == uid || (u == 0 && s.ordered(i, uid)) {
			return true
		}
	}
	return false
}

func (s *Session) search(nums []uint32) {
	c := s.cur
	if c == nil {
		return
	}
	if c.cmd.UID {
		// Checked against the view as it is now: a UID SEARCH may report
		// expunges after its results (RFC 3501 7.4.1 allows them there).
		for _, u := range nums {
			if !s.holds(u) {
				s.h.violate(s, SearchRange, "UID SEARCH result %d is not in the view %v", u, s.uids)
			}
		}
		return
	}
	for _, n := range nums {
		if int(n) > len(s.uids) {
			s.h.violate(s, SearchRange, "SEARCH result %d with %d messages in the view", n, len(s.uids))
		}
	}
}

// End feeds the command's tagged response and runs the checks that
// follow from its completion.
func (s *Session) End(r *Response) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.remember("S: ", string(r.Raw))
	c := s.cur
	s.cur = nil
	if c == nil {
		return
	}
	end := s.h.next()
	if c.cmd.Name == "STORE" {
		s.storeDone(c, end, r.Name == "OK")
	}
	if !c.cmd.Self && (c.cmd.Name == "APPEND" || c.cmd.Name == "COPY" || c.cmd.Name == "MOVE") {
		s.target(c, r)
	}
	if r.Name != "OK" {
		// RFC 2180 4.1.2, 4.4: NO [EXPUNGEISSUED] for messages expunged
		// elsewhere is the one refusal a valid command may get.
		if r.Name == "BAD" || r.Code != "EXPUNGEISSUED" {
			s.h.violate(s, BadAnswer, "%s answered %s", c.cmd.Name, r.Name)
		}
		return
	}
	switch c.cmd.Name {
	case "APPEND", "COPY", "MOVE":
		s.created(c, r, end)
		if c.cmd.Name == "MOVE" {
			s.moved(c, r)
		}
	case "EXPUNGE":
		s.expunged(c)
	case "NOOP":
		s.converge(c.begin)
	}
}

// created checks that what the session's APPEND, COPY or MOVE put into
// the selected mailbox is in its view (RFC 3501 6.3.11: EXISTS at once).
func (s *Session) created(c *inflight, r *Response, end uint64) {
	if !c.cmd.Self {
		return
	}
	var set string
	switch code, f := uidCode(c, r); {
	case code == "APPENDUID" && len(f) == 2:
		set = f[1]
	case code == "COPYUID" && len(f) == 3:
		set = f[2]
	default:
		return
	}
	for _, u := range parseUIDSet(set) {
		if _, ok := s.h.created[u]; !ok {
			s.h.created[u] = end
			s.h.createdLog = append(s.h.createdLog, created{end, u, s})
		}
		if !s.holds(u) && !s.told[u] {
			s.h.defer_(s, OwnWrite, u, "%s completed with UID %d, not in the view %v", c.cmd.Name, u, s.uids)
		}
	}
}

// moved checks that a completed MOVE's source messages left the view
// (RFC 6851 3.3: the server sends their EXPUNGE before the tagged OK).
func (s *Session) moved(c *inflight, r *Response) {
	src := c.targets
	if code, f := uidCode(c, r); code == "COPYUID" && len(f) == 3 {
		src = parseUIDSet(f[1])
	}
	for _, u := range src {
		if slices.Contains(s.uids, u) {
			s.h.violate(s, OwnWrite, "MOVE completed, UID %d still in the view", u)
		}
	}
}

// expunged checks that a completed EXPUNGE (or UID EXPUNGE) removed every
// message whose \Deleted STORE had completed before it began (RFC 3501
// 6.4.3, RFC 4315 2.1), unless the message is gone at the end anyway.
func (s *Session) expunged(c *inflight) {
	for _, u := range s.uids {
		t, ok := s.h.deleted[u]
		if !ok || u == 0 || t >= c.begin || (c.cmd.UID && !slices.Contains(c.cmd.UIDs, u)) {
			continue
		}
		// Deferred: another session's EXPUNGE or MOVE of the same message
		// may have taken it first, and Dovecot tells this one later.
		s.h.defer_(s, OwnWrite, u, "EXPUNGE completed, UID %d (\\Deleted before it began) still in the view", u)
	}
}

func (s *Session) storeDone(c *inflight, end uint64, ok bool) {
	st := c.cmd.Store
	for _, u := range c.targets {
		changes := false // an owned keyword known to change: Dovecot answers FETCH only for changed messages
		for _, f := range st.Flags {
			f = norm(f)
			if s.owned[f] {
				k := s.kwState(u, f)
				changes = changes || (k.end != 0 && k.value != st.Add)
				k.inflight = false
				if ok {
					k.end, k.value = end, st.Add
					s.h.kwLog = append(s.h.kwLog, kwEntry{end, kwKey{u, f}})
				}
			}
			if f == `\deleted` && ok {
				if _, was := s.h.deleted[u]; st.Add && !was {
					s.h.deleted[u] = end
				} else if !st.Add {
					delete(s.h.deleted, u)
				}
			}
		}
		if ok && !st.Silent && changes && !c.echoed[u] {
			s.h.defer_(s, OwnWrite, u, "STORE completed without FETCH for UID %d", u)
		}
	}
}

// parseUIDSet expands a uid-set (RFC 4315 4) such as "3:5,9".
func parseUIDSet(set string) []uint32 {
	var us []uint32
	for _, part := range strings.Split(set, ",") {
		a, b, rng := strings.Cut(part, ":")
		lo, err1 := strconv.ParseUint(a, 10, 32)
		hi := lo
		var err2 error
		if rng {
			hi, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil {
			return nil
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		for u := lo; u <= hi && hi-lo < 1<<16; u++ {
			us = append(us, uint32(u))
		}
	}
	return us
}
