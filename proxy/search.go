package proxy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream"
)

// Search answers from the watcher's model when it can (searchlocal.go),
// else runs UID SEARCH upstream; either way it answers in the session's
// numbering, keeping only messages the session knows. ESEARCH results
// (RFC 4731) are computed here from the UIDs, so they need nothing from
// the upstream.
func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	sess.settle()
	sess.noExpunge = true
	defer sess.unholdOnError(&err)
	if sess.sel == nil {
		return nil, errNotSelected
	}
	cc := sess.reader()
	var modseq *imap.SearchCriteriaModSeq
	if cc != nil {
		modseq = cc.searchModSeqOf()
	}
	if modseq != nil { // ANDed at the top (condstore_search.go)
		c := *criteria
		c.ModSeq = modseq
		criteria = &c
	}
	crit, size, err := sess.translateCriteria(criteria)
	if err != nil {
		return nil, err
	}
	if found, ok := sess.searchLocal(criteria, crit, options); ok && modseq == nil {
		sess.s.metrics.answeredLocally("SEARCH")
		return searchData(kind, found), nil
	}
	if size > maxUpstreamSearch {
		return nil, errSearchTooLarge
	}
	var found []imap.UID
	var top uint64
	err = sess.withConn("SEARCH", sess.sel.name, func(c *upstream.Conn) error {
		data, err := c.UIDSearch(crit, nil).Wait()
		if err != nil {
			return err
		}
		found, top = data.AllUIDs(), data.ModSeq
		return nil
	})
	if err != nil {
		return nil, err
	}
	members := sess.sel.v.Lookup(found)
	if modseq != nil && cc != nil && len(members) > 0 {
		cc.setSearchModSeq(top)
	}
	return searchData(kind, members), nil
}

// searchData is the answer for the session's matching messages
// (ascending), in its numbering: ESEARCH's MIN, MAX and COUNT (RFC 4731
// section 3.1) are computed from them; imapserver writes what the client
// asked for.
func searchData(kind imapserver.NumKind, members []fanout.Member) *imap.SearchData {
	out := &imap.SearchData{Count: uint32(len(members))}
	if kind == imapserver.NumKindUID {
		var set imap.UIDSet
		for _, m := range members {
			set.AddNum(m.UID)
		}
		out.All = set
		if len(members) > 0 {
			out.Min, out.Max = uint32(members[0].UID), uint32(members[0].UID)
			for _, m := range members {
				out.Min = min(out.Min, uint32(m.UID))
				out.Max = max(out.Max, uint32(m.UID))
			}
		}
	} else {
		var set imap.SeqSet
		for _, m := range members {
			set.AddNum(m.Seq)
		}
		out.All = set
		if len(members) > 0 {
			out.Min, out.Max = members[0].Seq, members[len(members)-1].Seq
		}
	}
	if out.All == nil {
		if kind == imapserver.NumKindUID {
			out.All = imap.UIDSet{}
		} else {
			out.All = imap.SeqSet{}
		}
	}
	return out
}

// maxUpstreamSearch bounds the criteria of the UID SEARCH sent upstream.
// Dovecot refuses a command line over imap_max_line_length (64 KiB by
// default) with "BAD Error in IMAP command UID SEARCH: IMAP command line
// too large", which would name a command the client never sent; 1 KiB is
// left for the tag, "UID SEARCH" and what the estimate rounds.
const maxUpstreamSearch = 63 << 10

// errSearchTooLarge answers a SEARCH whose translation would exceed
// maxUpstreamSearch: sequence numbers become UIDs (up to ten digits
// each), and imapclient wraps each operand of OR and NOT in parentheses.
var errSearchTooLarge = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeLimit,
	Text: fmt.Sprintf("SEARCH too large for the mail server once sent by UID (limit %d bytes)", maxUpstreamSearch)}

// noUID names no message: UIDs are at most 2^32-1 and no server reaches it.
var noUID = imap.UIDSetNum(math.MaxUint32)

// translateCriteria rewrites sequence-number keys of a SEARCH into UID keys
// (through NOT and OR) so the search runs upstream by UID, and returns the
// size the rewritten criteria take on the wire. It walks the tree with an
// explicit stack, copying each node it changes, and refuses what is nested
// deeper than maxSearchDepth: imapclient encodes the result recursively.
// Each sequence range becomes one UID range (fanout.View.ResolveSeqSet),
// so the rewrite has no more ranges than the client wrote.
func (sess *session) translateCriteria(c *imap.SearchCriteria) (*imap.SearchCriteria, int, error) {
	type node struct {
		c     *imap.SearchCriteria
		depth int
	}
	root := *c
	stack := []node{{&root, 0}}
	size, keys := 0, 0
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.depth > maxSearchDepth {
			return nil, 0, errSearchDepth
		}
		if err := sess.criteriaToUID(n.c); err != nil {
			return nil, 0, err
		}
		if keys += len(n.c.Not) + 2*len(n.c.Or); keys > maxSearchKeys {
			return nil, 0, errSearchKeys
		}
		size += criteriaSize(n.c)
		n.c.Not = slices.Clone(n.c.Not)
		for i := range n.c.Not {
			stack = append(stack, node{&n.c.Not[i], n.depth + 1})
		}
		n.c.Or = slices.Clone(n.c.Or)
		for i := range n.c.Or {
			stack = append(stack, node{&n.c.Or[i][0], n.depth + 1}, node{&n.c.Or[i][1], n.depth + 1})
		}
	}
	return &root, size, nil
}

// criteriaToUID replaces c's sequence sets by UID sets, and clips its UID
// sets to the session's view, in place (c is a copy).
func (sess *session) criteriaToUID(c *imap.SearchCriteria) error {
	v := sess.sel.v
	recentToUID(c, v.Recent())
	seqs, uidSets := c.SeqNum, c.UID
	c.SeqNum, c.UID = nil, nil
	for _, set := range seqs {
		set = clipSeqSet(set, v.Count())
		if len(set) == 0 {
			c.UID = append(c.UID, noUID)
			continue
		}
		uids, _, err := v.ResolveSeqSet(set)
		if errors.Is(err, fanout.ErrBadSeq) {
			return errBadSeq
		} else if err != nil {
			return sess.viewFailed(err)
		}
		c.UID = append(c.UID, uids)
	}
	for _, set := range uidSets {
		uids, ok := v.ResolveUIDSet(set)
		if !ok {
			uids = noUID
		}
		c.UID = append(c.UID, uids)
	}
	return nil
}

// clipSeqSet drops the part of a SEARCH's sequence set beyond the
// session's count: a search key naming no message matches none. Dovecot
// answers "SEARCH 9" in a mailbox of two with OK and no result, where
// FETCH 9 is BAD (RFC 3501 section 6.4.4 gives SEARCH no error for it).
func clipSeqSet(set imap.SeqSet, count uint32) imap.SeqSet {
	var out imap.SeqSet
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start = count
		}
		if stop == 0 {
			stop = count
		}
		start, stop = min(start, stop), min(max(start, stop), count)
		if start >= 1 && start <= stop {
			out = append(out, imap.SeqRange{Start: start, Stop: stop})
		}
	}
	return out
}

// criteriaSize is an upper bound of the bytes imapclient writes for c's
// own keys (RFC 3501 section 6.4.4 syntax), its NOT and OR operands
// excluded but their keywords and parentheses counted.
func criteriaSize(c *imap.SearchCriteria) int {
	n := len("ALL ")
	for _, set := range c.UID {
		n += len("UID  ") + len(set.String())
	}
	for _, t := range []time.Time{c.Since, c.Before, c.SentSince, c.SentBefore} {
		if !t.IsZero() {
			n += len(`SENTBEFORE "02-Jan-2006" `)
		}
	}
	for _, h := range c.Header {
		n += len("HEADER   ") + wireStringSize(h.Key) + wireStringSize(h.Value)
	}
	for _, s := range slices.Concat(c.Body, c.Text) {
		n += len("BODY  ") + wireStringSize(s)
	}
	for _, f := range slices.Concat(c.Flag, c.NotFlag) {
		n += flagKeySize(f)
	}
	for _, size := range []int64{c.Larger, c.Smaller} {
		if size > 0 {
			n += len("SMALLER  ") + len(strconv.FormatInt(size, 10))
		}
	}
	if c.ModSeq != nil {
		n += len("MODSEQ   18446744073709551615 ") + wireStringSize(c.ModSeq.MetadataName) + len(c.ModSeq.MetadataType)
	}
	n += len(c.Not)*len("NOT () ") + len(c.Or)*len("OR () () ")
	return n
}

// flagKeySize is the size of the key naming f: "UNSEEN " for a system
// flag, "UNKEYWORD $Junk " for a keyword (RFC 3501 section 6.4.4).
func flagKeySize(f imap.Flag) int {
	switch f {
	case imap.FlagAnswered, imap.FlagDeleted, imap.FlagDraft, imap.FlagFlagged, imap.FlagSeen, "\\Recent":
		return len("UN ") + len(f)
	}
	return len("UNKEYWORD  ") + len(f)
}

// wireStringSize is the size of s as imapclient sends it: quoted with "
// and \ escaped, or a literal ("{n+}" CRLF and the bytes) for what a
// quoted string cannot hold (RFC 3501 section 4.3, RFC 7888).
func wireStringSize(s string) int {
	quoted := len(s) <= 4096
	escapes := 0
	for i := 0; i < len(s) && quoted; i++ {
		switch c := s[i]; {
		case c == 0 || c == '\r' || c == '\n' || c > 0x7f:
			quoted = false
		case c == '"' || c == '\\':
			escapes++
		}
	}
	if quoted {
		return 2 + len(s) + escapes
	}
	return len("{+}\r\n") + len(strconv.Itoa(len(s))) + len(s)
}
