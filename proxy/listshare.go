package proxy

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
)

// Identical concurrent LIST, LSUB and NAMESPACE requests of one account
// share one upstream command (issue 11; upstream/listings.go says when a
// request may join one in flight). The shared answer is the upstream's
// decoded responses, which every session writes with its own imapserver
// encoder exactly as it writes an answer it asked for alone: mailbox
// names, quoting, extended data and order do not depend on who asked.

// listShareMax bounds the bytes (about) a shared answer holds: about
// 15,000 mailboxes of Dovecot's LIST. A listing larger than that is not
// held or shared: the request that ran it streams the rest to its own
// client from the same upstream command (listRelay.spill, collectList's
// spill), and each request that joined it runs its own, streamed the
// same way. At most one answer per distinct request in flight is held.
// A var only so that a test can bring a Dovecot listing over it.
var listShareMax = 1 << 20

// listAnswer is one shared answer: the responses, and whether the
// upstream answered at all (an error then is its NO or BAD, the same for
// everyone who asked; otherwise the error was the asking session's own).
type listAnswer struct {
	raw      []byte // the responses as the upstream sent them (listrelay.go)
	lists    []*imap.ListData
	ns       *imap.NamespaceData
	answered bool
	tooBig   bool
	streamed bool // too big, and its start went to the asking client already
}

// sharedListing returns the answer of a call for key, joined or run now
// with fetch. ok false: the caller answers alone, because the call it
// joined was too large to hold (err nil), or failed for its leader's own
// reasons (the upstream never answered it). A nil ans with ok is an
// error only: nothing is written before it. The answer of a call run now
// that was too large to hold and streamed is ok: its start went to the
// client already, and it holds the tail.
func (sess *session) sharedListing(op, key string, fetch func() (*listAnswer, error)) (ans *listAnswer, err error, ok bool) {
	v, err, joined := sess.acct.Listings().Do(key, func() (any, error) { return fetch() })
	ans, _ = v.(*listAnswer)
	switch {
	case ans != nil && ans.tooBig && (joined || !ans.streamed):
		return nil, nil, false
	case err != nil && (ans == nil || !ans.answered):
		return nil, err, !joined
	}
	if joined {
		sess.s.metrics.answeredLocally(op)
	}
	return ans, err, true
}

// listKey names a request: the command and its arguments as they go
// upstream (mailbox names decoded, so two spellings of one name share).
func listKey(op, ref string, patterns []string, options *imap.ListOptions) string {
	var b strings.Builder
	b.WriteString(op)
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(ref))
	for _, p := range patterns {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(p))
	}
	if options != nil {
		o := *options
		o.ReturnStatus = nil // never shared: see List
		b.WriteString(" opts")
		for _, f := range []bool{o.SelectSubscribed, o.SelectRemote, o.SelectRecursiveMatch, o.SelectSpecialUse,
			o.ReturnSubscribed, o.ReturnChildren, o.ReturnSpecialUse} {
			b.WriteByte("01"[btoi(f)])
		}
	}
	return b.String()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// relayedListing answers the client's own LIST or LSUB (op) text cmd
// relayed (listrelay.go), shared with identical requests in flight; a
// request that joined a listing too big to share runs its own. ok as
// sharedListing's.
func (sess *session) relayedListing(op, cmd string) (ans *listAnswer, err error, ok bool) {
	fetch := func() (*listAnswer, error) { return sess.listRaw(op, cmd) }
	ans, err, ok = sess.sharedListing(op, "raw "+cmd, fetch)
	if ok || err != nil {
		return ans, err, ok
	}
	ans, err = sess.listRaw(op, cmd)
	if err != nil && !ans.answered {
		ans = nil
	}
	return ans, err, true
}

// collectList asks the upstream for a listing and holds its responses,
// up to listShareMax; conv turns each into what the client gets (nil:
// nothing), as LSUB's does. Past the bound the listing goes to spill,
// the asking client's writer, as it comes (listAnswer.hold); without
// spill it stops there (tooBig).
func (sess *session) collectList(op, ref string, patterns []string, options func(c *upstream.Conn) *imap.ListOptions,
	conv func(*imap.ListData) *imap.ListData, spill func(*imap.ListData) error) (*listAnswer, error) {
	ans := &listAnswer{}
	err := sess.withConn(op, "", func(c *upstream.Conn) error {
		ans.lists, ans.answered, ans.tooBig, ans.streamed = ans.lists[:0], false, false, false
		size := 0
		for _, pattern := range patterns {
			cmd := c.List(ref, pattern, options(c))
			for data := cmd.Next(); data != nil; data = cmd.Next() {
				if conv != nil {
					if data = conv(data); data == nil {
						continue
					}
				}
				size += 64 + len(data.Mailbox) + len(data.OldName)
				if size > listShareMax && !ans.tooBig {
					ans.tooBig = true
					if spill == nil { // nowhere to stream it: the caller asks again
						cmd.Close()
						return nil
					}
					sess.wrote, ans.streamed = true, true // a retry would repeat what went out
				}
				if err := ans.hold(data, spill); err != nil {
					cmd.Close()
					return err
				}
			}
			if err := cmd.Close(); err != nil {
				_, ans.answered = upstream.IsProtocol(err)
				return err
			}
		}
		ans.answered = true
		return nil
	})
	return ans, err
}

// hold keeps data, or once the answer is too big to hold, hands what is
// held and data to spill.
func (ans *listAnswer) hold(data *imap.ListData, spill func(*imap.ListData) error) error {
	if !ans.tooBig {
		ans.lists = append(ans.lists, data)
		return nil
	}
	for _, d := range ans.lists {
		if err := spill(d); err != nil {
			return err
		}
	}
	ans.lists = ans.lists[:0]
	return spill(data)
}

// writeLists writes a shared answer's responses, then its status.
func writeLists(w *imapserver.ListWriter, ans *listAnswer, err error) error {
	if ans == nil {
		return err
	}
	for _, data := range ans.lists {
		if werr := w.WriteList(data); werr != nil {
			return werr
		}
	}
	return err
}
