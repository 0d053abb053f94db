package fanout

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// SEARCH from the model (issue 11). The model holds every message's UID
// and flags, so the search keys of RFC 3501 section 6.4.4 that need only
// those (ALL, UID sets, the flag keys SEEN, UNSEEN ... KEYWORD, UNKEYWORD,
// and NOT and OR of them) are answered without the upstream. The caller
// rewrites sequence sets and \Recent into UID sets first, through the
// session's view (proxy/search.go translateCriteria), exactly as it does
// for a search sent upstream by UID; what is left is judged here.

// MaxSearchWork bounds the work of one Search: messages times the keys and
// UID ranges of the criteria. Past it Search declines and the caller sends
// the search upstream, so a pathological command (4,096 keys on a 100,000
// message mailbox) costs the upstream, not idlemux's CPU.
const MaxSearchWork = 1 << 24

// Searchable reports whether c uses only keys the model can answer: UID
// sets (not SEARCHRES "$", RFC 5182), flags, NOT and OR. Sequence sets
// must have been translated to UID sets already. It also returns the
// per-message cost of evaluating c (keys plus UID ranges).
//
// An operand of NOT or OR must be a single key: Dovecot 2.3.19 answers
// some lists of flag keys under NOT unlike RFC 3501 (NOT (SEEN FLAGGED)
// leaves out a message that is \Seen only), and idlemux's answer must be
// the upstream's, so those go upstream.
func Searchable(c *imap.SearchCriteria) (cost int, ok bool) {
	return searchable(c, false)
}

func searchable(c *imap.SearchCriteria, operand bool) (cost int, ok bool) {
	if operand && len(c.UID)+len(c.SeqNum)+len(c.Flag)+len(c.NotFlag)+len(c.Not)+len(c.Or) > 1 {
		return 0, false
	}
	if len(c.SeqNum) > 0 || !c.Since.IsZero() || !c.Before.IsZero() || !c.SentSince.IsZero() || !c.SentBefore.IsZero() ||
		len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || c.Larger > 0 || c.Smaller > 0 || c.ModSeq != nil {
		return 0, false
	}
	cost = 1 + len(c.Flag) + len(c.NotFlag)
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			return 0, false
		}
		cost += len(set)
	}
	for i := range c.Not {
		n, ok := searchable(&c.Not[i], true)
		if !ok {
			return 0, false
		}
		cost += n
	}
	for i := range c.Or {
		a, ok := searchable(&c.Or[i][0], true)
		if !ok {
			return 0, false
		}
		b, ok := searchable(&c.Or[i][1], true)
		if !ok {
			return 0, false
		}
		cost += a + b
	}
	return cost, true
}

// Search returns the messages of the view that match c (Searchable, with
// sequence sets and \Recent already rewritten as UID sets), ascending.
// A message expunged in the model that the session was not told of yet
// is still in its view, and Dovecot still finds it, by the flags that
// session last saw (its view keeps the message until it may send the
// EXPUNGE, RFC 3501 7.4.1, RFC 2180 4.1). The model no longer has them
// (the watcher hears a flag change only as a signal to re-read, so a
// \Deleted set just before the EXPUNGE may never reach it): with such a
// message in the view, criteria with flag keys are declined, and the
// others match it by UID. ok is false when declined, when the view
// failed, when the work would pass MaxSearchWork, or when c names a
// keyword the mailbox does not have (knownKeywords).
func (v *View) Search(c *imap.SearchCriteria) (found []Member, ok bool) {
	cost, ok := Searchable(c)
	if !ok {
		return nil, false
	}
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v.err != nil {
		return nil, false
	}
	n := m.numberingAt(v.cursor.Load())
	if cost*max(n.count(), 1) > MaxSearchWork || !knownKeywords(c, m.mboxFlags) || (len(n.extra) > 0 && usesFlags(c)) {
		return nil, false
	}
	found = []Member{}
	i, e := 0, 0 // next model UID of the view, next expunged one
	for seq := uint32(1); i < n.prefix || e < len(n.extra); seq++ {
		var uid imap.UID
		var flags []imap.Flag
		if e < len(n.extra) && (i == n.prefix || n.extra[e] < m.uids[i]) {
			uid = n.extra[e]
			e++
		} else {
			uid, flags = m.uids[i], m.flags[i]
			i++
		}
		if matches(c, uid, flags) {
			found = append(found, Member{Seq: seq, UID: uid})
		}
	}
	return found, true
}

// usesFlags reports whether c has a flag key anywhere.
func usesFlags(c *imap.SearchCriteria) bool {
	return AnyCriteria(c, func(n *imap.SearchCriteria) bool { return len(n.Flag) > 0 || len(n.NotFlag) > 0 })
}

// AnyCriteria reports whether pred holds for c or any criteria nested in
// it under NOT or OR. Its recursion is bounded as matches' is.
func AnyCriteria(c *imap.SearchCriteria, pred func(*imap.SearchCriteria) bool) bool {
	if pred(c) {
		return true
	}
	for i := range c.Not {
		if AnyCriteria(&c.Not[i], pred) {
			return true
		}
	}
	for i := range c.Or {
		if AnyCriteria(&c.Or[i][0], pred) || AnyCriteria(&c.Or[i][1], pred) {
			return true
		}
	}
	return false
}

// matches evaluates c on one message: its keys are ANDed (RFC 3501
// section 6.4.4). Recursion is bounded by the command's nesting, which
// the command reader limits (proxy/searchcheck.go maxSearchDepth).
func matches(c *imap.SearchCriteria, uid imap.UID, flags []imap.Flag) bool {
	for _, set := range c.UID {
		if !set.Contains(uid) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !hasFlag(flags, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(flags, f) {
			return false
		}
	}
	for i := range c.Not {
		if matches(&c.Not[i], uid, flags) {
			return false
		}
	}
	for i := range c.Or {
		if !matches(&c.Or[i][0], uid, flags) && !matches(&c.Or[i][1], uid, flags) {
			return false
		}
	}
	return true
}

// knownKeywords reports whether every keyword c names is in the
// mailbox's FLAGS. Dovecot adds a keyword it did not know to the mailbox
// when a SEARCH names it, and tells the session a new FLAGS list
// (RFC 3501 7.2.6): such a search goes upstream, so the upstream does so.
func knownKeywords(c *imap.SearchCriteria, mboxFlags []imap.Flag) bool {
	unknown := func(n *imap.SearchCriteria) bool {
		for _, f := range append(n.Flag[:len(n.Flag):len(n.Flag)], n.NotFlag...) {
			if !strings.HasPrefix(string(f), `\`) && !hasFlag(mboxFlags, f) {
				return true
			}
		}
		return false
	}
	return !AnyCriteria(c, unknown)
}

// hasFlag compares flag names without regard to case: Dovecot matches
// KEYWORD $junk against $Junk, and system flags are case-insensitive
// atoms (RFC 3501 section 9, flag-keyword and "\" atom).
func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		// Flags are atoms (ASCII): a different length never folds equal.
		if len(g) == len(f) && (g == f || strings.EqualFold(string(g), string(f))) {
			return true
		}
	}
	return false
}

// Status is what STATUS reports of the mailbox from the model (RFC 3501
// section 6.3.10): MESSAGES, UIDVALIDITY and UNSEEN. UIDNEXT is not
// here: a message appended and expunged between two of the watcher's
// syncs moves the upstream's UIDNEXT without the model ever seeing it.
type Status struct {
	Messages, Unseen, UIDValidity uint32
}

// Status returns the model's counts; false once the model was closed.
func (m *Mailbox) Status() (Status, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.err != nil {
		return Status{}, false
	}
	st := Status{Messages: uint32(len(m.uids)), UIDValidity: m.uidValidity}
	for _, f := range m.flags {
		if !hasFlag(f, imap.FlagSeen) {
			st.Unseen++
		}
	}
	return st, true
}

// CaughtUp reports whether the session was told everything the model
// logged: its numbering is then the model's, with nothing expunged in
// the model still shown, and the model's UIDs and flags are what the
// session was last told (a FETCH FLAGS answered from them is what the
// upstream would answer, RFC 3501 7.4.2).
func (v *View) CaughtUp() bool {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	return v.err == nil && v.cursor.Load() == v.m.head()
}
