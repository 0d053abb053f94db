package proxy

import (
	"errors"
	"math"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

var errNotSelected = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "No mailbox selected"}

// errBadSeq mirrors what servers answer for a sequence number beyond the
// session's count (RFC 3501 section 9, seq-number).
var errBadSeq = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Invalid message sequence number"}

// errExpungeIssued answers a command that named messages the session still
// sees but that are gone upstream (RFC 2180 section 4.1.2, RFC 5530
// EXPUNGEISSUED). The EXPUNGE itself follows with the next command.
var errExpungeIssued = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "EXPUNGEISSUED", Text: "Some of the requested messages no longer exist"}

// resolve turns a command's number set into the UIDs to name upstream,
// translated through the session's own view. Sequence numbers never reach
// the upstream: its numbering differs from every client's.
func (sess *session) resolve(numSet imap.NumSet) (uids imap.UIDSet, expunged []imap.UID, err error) {
	if sess.sel == nil {
		return nil, nil, errNotSelected
	}
	v := sess.sel.v
	switch set := numSet.(type) {
	case imap.SeqSet:
		uids, expunged, err = v.ResolveSeqSet(set)
		switch {
		case errors.Is(err, fanout.ErrBadSeq):
			return nil, nil, errBadSeq
		case err != nil:
			return nil, nil, sess.viewFailed(err)
		}
		return uids, expunged, nil
	case imap.UIDSet:
		if err := v.Err(); err != nil {
			return nil, nil, sess.viewFailed(err)
		}
		uids, _ = v.ResolveUIDSet(set)
		return uids, nil, nil
	}
	return nil, nil, errors.New("unknown number set type")
}

// noUID names no message: UIDs are at most 2^32-1 and no server reaches it.
var noUID = imap.UIDSetNum(math.MaxUint32)

// translateCriteria rewrites sequence-number keys of a SEARCH into UID keys
// (recursively through NOT and OR) so the search runs upstream by UID.
func (sess *session) translateCriteria(c *imap.SearchCriteria) (*imap.SearchCriteria, error) {
	out := *c
	out.SeqNum = nil
	out.UID = nil
	v := sess.sel.v
	for _, set := range c.SeqNum {
		uids, _, err := v.ResolveSeqSet(set)
		if errors.Is(err, fanout.ErrBadSeq) {
			return nil, errBadSeq
		} else if err != nil {
			return nil, sess.viewFailed(err)
		}
		out.UID = append(out.UID, uids)
	}
	for _, set := range c.UID {
		uids, ok := v.ResolveUIDSet(set)
		if !ok {
			uids = noUID
		}
		out.UID = append(out.UID, uids)
	}
	out.Not = nil
	for i := range c.Not {
		n, err := sess.translateCriteria(&c.Not[i])
		if err != nil {
			return nil, err
		}
		out.Not = append(out.Not, *n)
	}
	out.Or = nil
	for _, pair := range c.Or {
		a, err := sess.translateCriteria(&pair[0])
		if err != nil {
			return nil, err
		}
		b, err := sess.translateCriteria(&pair[1])
		if err != nil {
			return nil, err
		}
		out.Or = append(out.Or, [2]imap.SearchCriteria{*a, *b})
	}
	return &out, nil
}
