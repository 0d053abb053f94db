package proxy

import (
	"errors"

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

// maxUIDOf is the largest UID in uids, resolved by resolve (no "*"); 0
// for an empty set or one that still holds "*" (no bound).
func maxUIDOf(uids imap.UIDSet) imap.UID {
	var top imap.UID
	for _, r := range uids {
		if r.Start == 0 || r.Stop == 0 {
			return 0
		}
		top = max(top, r.Start, r.Stop)
	}
	return top
}
