package imapcheck

import (
	"fmt"
	"slices"
	"strings"
)

// Command describes the command a session sends, as much as the checks
// need: the caller builds the wire line and this from the same choice.
type Command struct {
	Name string   // upper-cased: APPEND, STORE, EXPUNGE, COPY, MOVE, FETCH, SEARCH, NOOP, IDLE, SELECT
	UID  bool     // the UID form
	Seqs []uint32 // the sequence numbers it names (non-UID forms)
	UIDs []uint32 // the UIDs it names (UID forms)
	// Self: APPEND, COPY or MOVE into the selected mailbox itself.
	Self bool
	// Flags: for APPEND, the flags it sets.
	Flags []string
	// Store: for STORE, the flags and how.
	Store *Store
	Line  string // the wire line, for examples
}

// Store is a STORE's data item (RFC 3501 6.4.6).
type Store struct {
	Add    bool // +FLAGS, else -FLAGS
	Silent bool
	Flags  []string
}

// Session is one client session's view of the selected mailbox, as its
// response stream built it: a UID per sequence number (0 until a FETCH
// told it), the flags last seen per UID, and the keywords of the last
// FLAGS response. Its methods are called from the session's goroutine.
type Session struct {
	h        *Hub
	name     string
	uids     []uint32
	flags    map[uint32]map[string]bool
	keywords map[string]bool
	told     map[uint32]bool // UIDs whose expunge the session was told
	owned    map[string]bool
	cur      *inflight
	wire     []string // the last lines sent and received, for examples
	// cursors into the hub's logs: how far this session's NOOPs checked
	createdCur, goneCur, kwCur int
}

type inflight struct {
	cmd     Command
	tag     string
	begin   uint64
	targets []uint32        // STORE, MOVE: the UIDs it acts on, as the view names them
	echoed  map[uint32]bool // STORE: UIDs answered with FETCH FLAGS
	// copyUID: a MOVE's COPYUID, which comes untagged before its
	// EXPUNGEs (RFC 6851 4.3)
	copyUID string
}

const wireKept = 12

func (s *Session) remember(dir, line string) {
	line = strings.ReplaceAll(strings.TrimRight(line, "\r\n"), "\r\n", `\r\n`)
	if len(line) > 160 {
		line = line[:160] + "..."
	}
	s.wire = append(s.wire, dir+line)
	if len(s.wire) > wireKept {
		s.wire = s.wire[len(s.wire)-wireKept:]
	}
}

func (s *Session) context(msg string) string {
	return fmt.Sprintf("%s: %s\n    %s", s.name, msg, strings.Join(s.wire, "\n    "))
}

// Count is the session's number of messages.
func (s *Session) Count() int {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return len(s.uids)
}

// UIDs returns the view's UIDs by sequence number (0: not yet known).
func (s *Session) UIDs() []uint32 {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return slices.Clone(s.uids)
}

// Flags returns the flags last seen for uid (nil: never seen).
func (s *Session) Flags(uid uint32) map[string]bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if f := s.flags[uid]; f != nil {
		return maps0(f)
	}
	return nil
}

func maps0(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Malformed counts a response the parser refused.
func (s *Session) Malformed(raw []byte, err error) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.remember("S: ", string(raw))
	s.h.violate(s, Malformed, "%v", err)
}

// Begin records that the command tagged tag was sent.
func (s *Session) Begin(tag string, c Command) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.remember("C: ", tag+" "+c.Line)
	in := &inflight{cmd: c, tag: tag, begin: s.h.next(), echoed: map[uint32]bool{}}
	if c.Name == "STORE" || c.Name == "MOVE" {
		in.targets = s.targetUIDs(c)
	}
	if c.Name == "STORE" {
		for _, u := range in.targets {
			for _, f := range c.Store.Flags {
				if s.owned[f] {
					s.kwState(u, f).inflight = true
				}
			}
		}
	}
	s.cur = in
}

// targetUIDs is the UIDs a command names, through the view for numbers.
func (s *Session) targetUIDs(c Command) []uint32 {
	if c.UID {
		var us []uint32
		for _, u := range c.UIDs {
			if slices.Contains(s.uids, u) {
				us = append(us, u)
			}
		}
		return us
	}
	var us []uint32
	for _, n := range c.Seqs {
		if n >= 1 && int(n) <= len(s.uids) && s.uids[n-1] != 0 {
			us = append(us, s.uids[n-1])
		}
	}
	return us
}

func (s *Session) kwState(u uint32, k string) *kwState {
	key := kwKey{u, k}
	st := s.h.kw[key]
	if st == nil {
		st = &kwState{owner: s}
		s.h.kw[key] = st
	}
	return st
}

// Receive feeds one untagged or continuation response.
func (s *Session) Receive(r *Response) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.remember("S: ", string(r.Raw))
	if r.Tag != "*" {
		return
	}
	switch r.Name {
	case "EXISTS":
		s.exists(int(r.Num))
	case "EXPUNGE":
		s.expunge(r.Num)
	case "FETCH":
		s.fetch(r)
	case "FLAGS":
		s.keywords = map[string]bool{}
		for _, f := range r.Flags {
			if !strings.HasPrefix(f, `\`) {
				s.keywords[f] = true
			}
		}
	case "SEARCH":
		s.search(r.Nums)
	case "OK":
		if c := s.cur; c != nil && c.cmd.Name == "MOVE" && r.Code == "COPYUID" {
			c.copyUID = r.CodeArg
		}
	}
}

func (s *Session) exists(n int) {
	if n < len(s.uids) {
		s.h.violate(s, ExistsShrink, "EXISTS %d with %d messages in the view", n, len(s.uids))
		return
	}
	for len(s.uids) < n {
		s.uids = append(s.uids, 0)
	}
}

func (s *Session) expunge(n uint32) {
	if c := s.cur; c != nil && !c.cmd.UID && (c.cmd.Name == "FETCH" || c.cmd.Name == "STORE" || c.cmd.Name == "SEARCH") {
		s.h.violate(s, ExpungeInFetch, "EXPUNGE %d while answering %s", n, c.cmd.Name)
	}
	if n < 1 || int(n) > len(s.uids) {
		s.h.violate(s, ExpungeRange, "EXPUNGE %d with %d messages in the view", n, len(s.uids))
		return
	}
	u := s.uids[n-1]
	s.uids = slices.Delete(s.uids, int(n-1), int(n))
	if u == 0 {
		return
	}
	s.told[u] = true
	delete(s.flags, u)
	if _, ok := s.h.gone[u]; !ok {
		s.h.gone[u] = s.h.next()
		s.h.goneLog = append(s.h.goneLog, u)
	}
}
