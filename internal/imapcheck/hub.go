package imapcheck

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
)

// maxExamples bounds the examples kept per rule.
const maxExamples = 5

// maxDeferred bounds the violations kept until Finish.
const maxDeferred = 100000

// Hub relates the sessions of one mailbox: a logical clock orders their
// commands, and what one session's completed writes did is checked in
// the others' views. Everything is under one mutex: sessions run on their
// own goroutines.
type Hub struct {
	mu       sync.Mutex
	tick     uint64
	counts   map[Rule]int
	examples map[Rule][]string
	sessions []*Session

	created map[uint32]uint64 // UID -> tick its APPEND, COPY or MOVE into the mailbox completed
	gone    map[uint32]uint64 // UID -> earliest tick a session was told of its expunge
	deleted map[uint32]uint64 // UID -> tick a STORE +FLAGS (\Deleted) on it completed
	kw      map[kwKey]*kwState
	target  map[uint32]targetMsg // UID in the other mailbox -> what created it
	// targetRefused: the first commands into the other mailbox refused,
	// for the examples
	targetRefused []string
	// The logs, in tick order, that each session's NOOP checks from its
	// own cursor on, so every change is checked once per session.
	createdLog []created
	goneLog    []uint32
	kwLog      []kwEntry
	// deferred violations stand only if their UID is still there at the
	// end: until then the message may have been expunged upstream,
	// unseen, and the miss be right (RFC 2180 4).
	deferred []deferred
}

// kwKey is one owned keyword of one message: only its owner session
// changes it, so its value after the owner's last STORE is known.
type kwKey struct {
	uid uint32
	kw  string
}

type kwEntry struct {
	tick uint64
	key  kwKey
}

type kwState struct {
	owner    *Session
	end      uint64 // tick the owner's last STORE of it completed
	value    bool
	inflight bool
}

type created struct {
	tick uint64
	uid  uint32
	by   *Session
}

type deferred struct {
	rule Rule
	uid  uint32
	msg  string
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{
		counts: map[Rule]int{}, examples: map[Rule][]string{},
		created: map[uint32]uint64{}, gone: map[uint32]uint64{},
		deleted: map[uint32]uint64{}, kw: map[kwKey]*kwState{},
		target: map[uint32]targetMsg{},
	}
}

// NewSession adds a session. Owned lists the keywords only it changes
// (others may read them): the hub checks their values across sessions.
func (h *Hub) NewSession(name string, owned ...string) *Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &Session{h: h, name: name, flags: map[uint32]map[string]bool{},
		keywords: map[string]bool{}, told: map[uint32]bool{}, owned: map[string]bool{}}
	for _, k := range owned {
		s.owned[norm(k)] = true
	}
	h.sessions = append(h.sessions, s)
	return s
}

func (h *Hub) next() uint64 {
	h.tick++
	return h.tick
}

func (h *Hub) violate(s *Session, rule Rule, format string, args ...any) {
	h.counts[rule]++
	if len(h.examples[rule]) < maxExamples {
		h.examples[rule] = append(h.examples[rule], s.context(fmt.Sprintf(format, args...)))
	}
}

func (h *Hub) defer_(s *Session, rule Rule, uid uint32, format string, args ...any) {
	if len(h.deferred) >= maxDeferred {
		return
	}
	h.deferred = append(h.deferred, deferred{rule, uid, s.context(fmt.Sprintf(format, args...))})
}

// Finish settles the deferred violations against final, the mailbox's
// UIDs and flags read directly from the upstream after every session
// stopped, and checks each session's view against it. Call it once, after
// every session's last command.
func (h *Hub) Finish(final map[uint32][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settle(final)
	h.compare(final)
}

// settle counts the deferred violations whose UID is in final.
func (h *Hub) settle(final map[uint32][]string) {
	for _, d := range h.deferred {
		if _, ok := final[d.uid]; ok {
			h.counts[d.rule]++
			if len(h.examples[d.rule]) < maxExamples {
				h.examples[d.rule] = append(h.examples[d.rule], d.msg+"\n  (the UID is still in the mailbox at the end)")
			}
		}
	}
	h.deferred = nil
}

// compare checks every session's view against final.
func (h *Hub) compare(final map[uint32][]string) {
	want := slices.Sorted(maps.Keys(final))
	for _, s := range h.sessions {
		if !slices.Equal(s.uids, want) {
			h.violate(s, FinalState, "view has UIDs %v, the upstream %v", s.uids, want)
			continue
		}
		for _, u := range want {
			if got, exp := flagString(s.flags[u]), flagString(setOf(final[u])); got != exp {
				h.violate(s, FinalState, "UID %d has flags (%s), the upstream (%s)", u, got, exp)
			}
		}
	}
}

// Counts returns the violations counted per rule.
func (h *Hub) Counts() map[Rule]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.counts)
}

// Examples returns up to a few examples of a rule's violations, each with
// the session's last lines of wire.
func (h *Hub) Examples(r Rule) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.examples[r])
}

// Report is every rule's count, one line each, for a test log.
func (h *Hub) Report() string {
	c := h.Counts()
	var b strings.Builder
	for _, r := range AllRules {
		fmt.Fprintf(&b, "  %-36s %d\n", r, c[r])
	}
	return b.String()
}

func setOf(flags []string) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		m[f] = true
	}
	return m
}

// flagString is a set of flags, \Recent left out (which session a message
// is recent in is its own concern, RFC 3501 2.3.2), sorted, case-folded
// for system flags (RFC 3501 2.3.2: flags are case-insensitive).
func flagString(m map[string]bool) string {
	var fs []string
	for f, on := range m {
		if on && !strings.EqualFold(f, `\Recent`) {
			fs = append(fs, strings.ToLower(f))
		}
	}
	sort.Strings(fs)
	return strings.Join(fs, " ")
}
