package proxy

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
)

// Search runs UID SEARCH upstream and answers in the session's numbering,
// keeping only messages the session knows. ESEARCH results (RFC 4731) are
// computed here from the UIDs, so they need nothing from the upstream.
func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	sess.settle()
	sess.noExpunge = true
	defer sess.unholdOnError(&err)
	if sess.sel == nil {
		return nil, errNotSelected
	}
	crit, err := sess.translateCriteria(criteria)
	if err != nil {
		return nil, err
	}
	var found []imap.UID
	err = sess.withConn("SEARCH", sess.sel.name, func(c *upstream.Conn) error {
		data, err := c.UIDSearch(crit, nil).Wait()
		if err != nil {
			return err
		}
		found = data.AllUIDs()
		return nil
	})
	if err != nil {
		return nil, err
	}
	members := sess.sel.v.Lookup(found)
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
	return out, nil
}
