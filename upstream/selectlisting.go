package upstream

import (
	"github.com/emersion/go-imap/v2"
)

// selectListing SELECTs (or EXAMINEs) the mailbox with FETCH 1:* (UID
// FLAGS) pipelined behind it: a mailbox the model does not have yet costs
// one round trip instead of two (issue 10: a folder-by-folder sync,
// offlineimap or mbsync, opens every folder once). The server runs the
// FETCH in the mailbox the SELECT opened: a command that uses the
// selected mailbox cannot run beside one that changes it (RFC 3501 5.5;
// Dovecot holds it back until the SELECT completes).
//
// The listing is used only when it is whole: every message 1..n of the
// SELECT's EXISTS answered once with its UID, none beyond. FETCH may not
// be interleaved with EXPUNGE (RFC 3501 7.4.1), so its numbers are the
// SELECT's; a message that arrived in between (EXISTS) makes it not whole,
// and listed false has the caller read the listing as before. An empty
// mailbox answers the FETCH BAD or NO (Dovecot: "Invalid messageset"),
// which is the empty listing.
//
// Bounded by the response timeout of silence, not in all: a large
// mailbox that keeps coming never trips it (fetchListing reads one in
// chunks instead, for the same reason).
func (w *Watcher) selectListing(c *wconn, opts *imap.SelectOptions) (sel *imap.SelectData, lst listing, listed bool, err error) {
	g := newGuard(c.timeout, func() { c.Client.Close() })
	selCmd := c.Select(w.name, opts)
	fetch := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, ModSeq: w.withModSeq})
	sel, err = selCmd.Wait()
	if err != nil {
		fetch.Close()
		if g.Stop() {
			return nil, lst, false, unavailable("no answer from upstream within %v", c.timeout)
		}
		return nil, lst, false, err
	}
	g.Touch()
	n := int(sel.NumMessages)
	lst.uids = make([]imap.UID, n)
	lst.flags = make([][]imap.Flag, n)
	if w.withModSeq {
		lst.modseqs = make([]uint64, n)
	}
	got, whole := 0, true
	for msg := fetch.Next(); msg != nil; msg = fetch.Next() {
		g.Touch()
		buf, cerr := msg.Collect()
		i := 0
		if buf != nil {
			i = int(buf.SeqNum) - 1
		}
		if cerr != nil || buf.UID == 0 || i < 0 || i >= n || lst.uids[i] != 0 {
			whole = false
			continue
		}
		lst.uids[i] = buf.UID
		lst.noteRecent(buf.UID, buf.Flags)
		lst.flags[i] = StripRecent(buf.Flags)
		lst.noteModSeq(i, buf.ModSeq)
		got++
	}
	ferr := fetch.Close()
	if g.Stop() {
		return nil, listing{}, false, unavailable("no answer from upstream within %v", c.timeout)
	}
	if _, proto := IsProtocol(ferr); ferr != nil && !proto {
		return nil, listing{}, false, ferr // the connection broke
	}
	if n == 0 {
		return sel, listing{}, true, nil
	}
	if ferr != nil || !whole || got != n {
		return sel, listing{}, false, nil
	}
	return sel, lst, true, nil
}
