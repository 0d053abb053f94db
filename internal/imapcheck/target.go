package imapcheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// targetMsg is what the checker knows of one message a session put into
// the other mailbox (the target of APPEND, COPY and MOVE that is not the
// selected one). No session changes that mailbox otherwise, so what it
// holds at the end is exactly what the completed commands put there.
type targetMsg struct {
	by   *Session
	line string
	// exact: an APPEND's flags, the message's whole flag set (RFC 3501
	// 6.3.11); else the copier's own keywords as it last stored them on
	// the source (RFC 3501 6.4.7: a copy keeps the flags).
	exact bool
	flags map[string]bool
}

// target records what a completed APPEND, COPY or MOVE into the other
// mailbox created, from its APPENDUID or COPYUID (RFC 4315 3). A command
// refused creates nothing (RFC 3501 6.3.11, 6.4.7: the destination is
// restored), so only OK answers are recorded.
func (s *Session) target(c *inflight, r *Response) {
	if r.Name != "OK" {
		if len(s.h.targetRefused) < maxExamples {
			s.h.targetRefused = append(s.h.targetRefused, fmt.Sprintf("%s: %s %s -> %s", s.name, c.tag, c.cmd.Line, strings.TrimSpace(string(r.Raw))))
		}
		return
	}
	code, f := uidCode(c, r)
	switch {
	case c.cmd.Name == "APPEND" && code == "APPENDUID" && len(f) == 2:
		fs := map[string]bool{}
		for _, fl := range c.cmd.Flags {
			fs[norm(fl)] = true
		}
		for _, u := range parseUIDSet(f[1]) {
			s.addTarget(u, targetMsg{by: s, line: c.cmd.Line, exact: true, flags: fs})
		}
	case c.cmd.Name != "APPEND" && code == "COPYUID" && len(f) == 3:
		src, dst := parseUIDSet(f[1]), parseUIDSet(f[2])
		if len(src) != len(dst) {
			s.h.violate(s, TargetState, "%s answered COPYUID with %d source and %d destination UIDs", c.cmd.Name, len(src), len(dst))
			return
		}
		for i, u := range dst {
			s.addTarget(u, targetMsg{by: s, line: c.cmd.Line, flags: s.ownKnown(src[i])})
		}
	}
}

// uidCode is the APPENDUID or COPYUID that answered c: r's code, or for
// MOVE the untagged one before it (RFC 6851 4.3).
func uidCode(c *inflight, r *Response) (code string, args []string) {
	if c.copyUID != "" {
		return "COPYUID", strings.Fields(c.copyUID)
	}
	return r.Code, strings.Fields(r.CodeArg)
}

// ownKnown is the session's own keywords on uid whose value it knows
// from its last completed STORE of them.
func (s *Session) ownKnown(uid uint32) map[string]bool {
	fs := map[string]bool{}
	for k := range s.owned {
		if st := s.h.kw[kwKey{uid, k}]; st != nil && st.owner == s && st.end != 0 {
			fs[k] = st.value
		}
	}
	return fs
}

func (s *Session) addTarget(u uint32, m targetMsg) {
	if prev, ok := s.h.target[u]; ok {
		s.h.violate(s, TargetState, "UID %d in the other mailbox created twice: by %q and by %q", u, prev.line, m.line)
		return
	}
	s.h.target[u] = m
}

// FinishTarget checks the other mailbox at the end: final is its UIDs
// and flags read directly from the upstream, seen as read through the
// server under test. Every UID a completed command created is there once
// with the flags it must have, nothing else is, and both reads agree.
func (h *Hub) FinishTarget(final, seen map[uint32][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range slices.Sorted(maps.Keys(final)) {
		m, ok := h.target[u]
		if !ok {
			h.targetViolation(nil, "UID %d is in the other mailbox, no completed command created it; commands into it refused: %q", u, h.targetRefused)
			continue
		}
		got := setOf(final[u])
		if m.exact {
			if g, w := flagString(got), flagString(m.flags); g != w {
				h.targetViolation(m.by, "UID %d, created by %q, has flags (%s), want (%s)", u, m.line, g, w)
			}
			continue
		}
		for k, want := range m.flags {
			if got[k] != want {
				h.targetViolation(m.by, "UID %d, created by %q, has %s=%v, the source had %v", u, m.line, k, got[k], want)
			}
		}
	}
	for _, u := range slices.Sorted(maps.Keys(h.target)) {
		if _, ok := final[u]; !ok {
			m := h.target[u]
			h.targetViolation(m.by, "UID %d, created by %q, is not in the other mailbox", u, m.line)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(final)) {
		if g, w := flagString(setOf(seen[u])), flagString(setOf(final[u])); !has(seen, u) || g != w {
			h.targetViolation(nil, "UID %d of the other mailbox read through the server has (%s), directly (%s)", u, g, w)
		}
	}
	if len(seen) != len(final) {
		h.targetViolation(nil, "the other mailbox read through the server has %d messages, directly %d", len(seen), len(final))
	}
}

func (h *Hub) targetViolation(s *Session, format string, args ...any) {
	if s == nil {
		s = &Session{name: "other mailbox"}
	}
	h.violate(s, TargetState, format, args...)
}

func has(m map[uint32][]string, u uint32) bool {
	_, ok := m[u]
	return ok
}
