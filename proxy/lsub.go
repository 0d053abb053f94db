package proxy

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// lsub answers LSUB (RFC 3501 6.3.9), which imapserver hands to List as
// a LIST (SUBSCRIBED). The upstream's own LSUB is relayed as it is. Where
// that cannot be, LSUB is emulated: imapserver's LIST (SUBSCRIBED) loses
// LSUB's own rule, that a "%" stopping at an unsubscribed parent of a
// subscribed mailbox lists the parent as \Noselect, and adds \Subscribed.
// imapclient has no LSUB, so the upstream is asked the LIST-EXTENDED
// question that carries the same answer (RFC 5258 3, 6: SUBSCRIBED
// RECURSIVEMATCH, with the special-use attributes LSUB shows) and each
// entry is turned back into LSUB's.
//
// Identical concurrent requests share one upstream command (listshare.go).
func (sess *session) lsub(w *imapserver.ListWriter, ref, pattern string) error {
	opts := func(c *upstream.Conn) *imap.ListOptions {
		return &imap.ListOptions{
			SelectSubscribed:     true,
			SelectRecursiveMatch: true,
			ReturnSpecialUse:     quirks.Has(c.Caps(), quirks.SpecialUse),
		}
	}
	if cmd, ok := sess.rawCommand(); ok {
		// The upstream's own LSUB, relayed (listrelay.go); emulated
		// below where it has none (BAD), a command with a literal, or an
		// answer too large to hold.
		ans, err, ok := sess.relayedListing("LSUB", cmd)
		if ie, _ := upstream.IsProtocol(err); ok && (ie == nil || ie.Type != imap.StatusResponseTypeBad) {
			return sess.writeRelayed(ans, err)
		}
	}
	pctEnd := strings.HasSuffix(pattern, "%")
	conv := func(d *imap.ListData) *imap.ListData { return lsubData(d, pctEnd) }
	fetch := func() (*listAnswer, error) {
		return sess.collectList("LSUB", ref, []string{pattern}, opts, conv, w.WriteList)
	}
	if ans, err, ok := sess.sharedListing("LSUB", listKey("LSUB", ref, []string{pattern}, nil), fetch); ok {
		return writeLists(w, ans, err)
	}
	return sess.withConn("LSUB", "", func(c *upstream.Conn) error {
		cmd := c.List(ref, pattern, opts(c))
		for data := cmd.Next(); data != nil; data = cmd.Next() {
			d := conv(data)
			if d == nil {
				continue
			}
			sess.wrote = true // a retry would repeat lines
			if err := w.WriteList(d); err != nil {
				cmd.Close()
				return err
			}
		}
		return cmd.Close()
	})
}

// lsubData turns one answer to LIST (SUBSCRIBED RECURSIVEMATCH) into
// LSUB's, nil when LSUB lists nothing for it: a subscribed mailbox keeps
// its attributes but \Subscribed and \NonExistent (LSUB lists a
// subscription whether or not the mailbox exists); a mailbox listed only
// because a child is subscribed (CHILDINFO "SUBSCRIBED") is \Noselect,
// and listed only where the pattern ends in "%" (pctEnd), the case RFC
// 3501 6.3.9 describes (and where Dovecot lists it).
func lsubData(d *imap.ListData, pctEnd bool) *imap.ListData {
	has := func(a imap.MailboxAttr) bool {
		return slices.ContainsFunc(d.Attrs, func(b imap.MailboxAttr) bool { return strings.EqualFold(string(a), string(b)) })
	}
	out := &imap.ListData{Delim: d.Delim, Mailbox: d.Mailbox, Attrs: []imap.MailboxAttr{}}
	switch {
	case has(imap.MailboxAttrSubscribed):
		for _, a := range d.Attrs {
			if !strings.EqualFold(string(a), string(imap.MailboxAttrSubscribed)) && !strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)) {
				out.Attrs = append(out.Attrs, a)
			}
		}
	case pctEnd && d.ChildInfo != nil && d.ChildInfo.Subscribed:
		out.Attrs = append(out.Attrs, imap.MailboxAttrNoSelect)
	default:
		return nil
	}
	return out
}
