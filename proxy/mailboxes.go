package proxy

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// Authenticated-state commands that name mailboxes run on any pooled
// connection, as they are.

// Create, Delete and Rename end what idlemux knows of the mailboxes they
// touch (lifecycle.go): a name that was just created, deleted or renamed
// is not the mailbox a watcher or pool connection may still have open.
func (sess *session) Create(mailbox string, options *imap.CreateOptions) error {
	err := sess.withConn("CREATE", "", func(c *upstream.Conn) error {
		return c.Create(mailbox, options).Wait()
	})
	sess.acct.Listings().Changed()
	if err == nil {
		sess.mailboxGone("CREATE", mailbox, 0)
	}
	return err
}

func (sess *session) Delete(mailbox string) error {
	err := sess.withConn("DELETE", "", func(c *upstream.Conn) error {
		return c.Delete(mailbox).Wait()
	})
	sess.acct.Listings().Changed()
	if err == nil || upstream.MailboxMissing(err) {
		sess.mailboxGone("DELETE", mailbox, 0)
	}
	return err
}

// Rename moves the mailboxes below the old name too (RFC 3501 6.3.5): the
// upstream's hierarchy delimiter, asked first, says which they are.
func (sess *session) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	var delim rune
	err := sess.withConn("RENAME", "", func(c *upstream.Conn) error {
		delim, _ = hierarchyDelim(c) // without it, only the names themselves
		return c.Rename(mailbox, newName, options).Wait()
	})
	sess.acct.Listings().Changed()
	if err == nil || upstream.MailboxMissing(err) {
		sess.mailboxGone("RENAME", mailbox, delim)
	}
	if err == nil {
		sess.mailboxGone("RENAME", newName, delim)
	}
	return err
}

func (sess *session) Subscribe(mailbox string) error {
	defer sess.acct.Listings().Changed()
	return sess.withConn("SUBSCRIBE", "", func(c *upstream.Conn) error {
		return c.Subscribe(mailbox).Wait()
	})
}

func (sess *session) Unsubscribe(mailbox string) error {
	defer sess.acct.Listings().Changed()
	return sess.withConn("UNSUBSCRIBE", "", func(c *upstream.Conn) error {
		return c.Unsubscribe(mailbox).Wait()
	})
}

// List relays LIST, and LSUB, which imapserver turns into LIST with
// SelectSubscribed and writes the answers as LSUB (lsub.go). Special-use
// and child attributes pass through as the upstream sends them: byte for
// byte (listrelay.go), but for RETURN (STATUS), a command with a literal
// and an answer too large to hold, which are decoded and re-encoded.
//
// imapserver drops an empty pattern: a List without patterns is
// `LIST ref ""`, which asks for the hierarchy delimiter and the root of
// ref (RFC 3501 6.3.8); the upstream answers it.
func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if cc := sess.reader(); cc != nil && cc.running() == "LSUB" && len(patterns) == 1 {
		return sess.lsub(w, ref, patterns[0])
	}
	if len(patterns) == 0 {
		patterns = []string{""}
	}
	up := options
	if options != nil && options.ReturnStatus != nil {
		o, st := *options, upstreamStatusOptions(options.ReturnStatus)
		o.ReturnStatus = st
		up = &o
	} else if cmd, ok := sess.rawCommand(); ok {
		// Relayed as the upstream answers it (listrelay.go), shared with
		// identical requests in flight (listshare.go). Not with RETURN
		// (STATUS) (RFC 5819): a mailbox's counts change with every
		// write, which no listing generation follows, and RECENT is the
		// session's own.
		if ans, err, ok := sess.relayedListing("LIST", cmd); ok {
			return sess.writeRelayed(ans, err)
		}
	} else {
		// A command with a literal: decoded and re-encoded, shared.
		fetch := func() (*listAnswer, error) {
			return sess.collectList("LIST", ref, patterns, func(*upstream.Conn) *imap.ListOptions { return up }, nil, w.WriteList)
		}
		if ans, err, ok := sess.sharedListing("LIST", listKey("LIST", ref, patterns, options), fetch); ok {
			return writeLists(w, ans, err)
		}
	}
	return sess.withConn("LIST", "", func(c *upstream.Conn) error {
		for _, pattern := range patterns {
			cmd := c.List(ref, pattern, up)
			for data := cmd.Next(); data != nil; data = cmd.Next() {
				if options != nil && options.ReturnStatus != nil && data.Status != nil {
					fillStatus(data.Status, options.ReturnStatus)
				}
				sess.wrote = true // a retry would repeat lines
				if err := w.WriteList(data); err != nil {
					cmd.Close()
					return err
				}
			}
			if err := cmd.Close(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Status answers from a watched mailbox's model when it can, else
// upstream, sharing one command among identical requests (statuslocal.go).
// It fills every item asked for: imapserver dereferences them all.
func (sess *session) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	if cc := sess.reader(); cc != nil && sess.sel != nil && sess.sel.name == canonical(mailbox) {
		cc.statusOfSelected()
	}
	if data, ok := sess.statusLocal(mailbox, options); ok {
		sess.s.metrics.answeredLocally("STATUS")
		return data, nil
	}
	data, err := sess.statusShared(mailbox, options)
	if err != nil {
		sess.noteMissing("STATUS", mailbox, err)
		return nil, err
	}
	fillStatus(data, options)
	if options.NumRecent {
		n := sess.statusRecent(mailbox)
		data.NumRecent = &n
	}
	data.Mailbox = mailbox
	return data, nil
}

// upstreamStatusOptions drops RECENT: imapclient panics on it, and the
// upstream's recency is not the session's (idlemux answers it: recent.go).
func upstreamStatusOptions(o *imap.StatusOptions) *imap.StatusOptions {
	up := *o
	up.NumRecent = false
	up = quirks.NonEmptyStatus(up)
	return &up
}

// fillStatus sets every requested item the upstream did not return to 0.
func fillStatus(data *imap.StatusData, options *imap.StatusOptions) {
	fill32 := func(want bool, p **uint32) {
		if want && *p == nil {
			*p = new(uint32)
		}
	}
	fill32(options.NumMessages, &data.NumMessages)
	fill32(options.NumRecent, &data.NumRecent)
	fill32(options.NumUnseen, &data.NumUnseen)
	fill32(options.NumDeleted, &data.NumDeleted)
	fill32(options.AppendLimit, &data.AppendLimit)
	if options.Size && data.Size == nil {
		data.Size = new(int64)
	}
	if options.DeletedStorage && data.DeletedStorage == nil {
		data.DeletedStorage = new(int64)
	}
}

// Namespace relays the upstream's, or derives the personal namespace from
// the hierarchy delimiter when the upstream has no NAMESPACE (RFC 2342).
//
// Identical concurrent requests share one upstream command
// (listshare.go): the namespaces change only with the upstream's
// configuration.
func (sess *session) Namespace() (*imap.NamespaceData, error) {
	ans, err, ok := sess.sharedListing("NAMESPACE", "NAMESPACE", sess.namespaceUp)
	if !ok {
		ans, err = sess.namespaceUp()
	}
	if err != nil || ans == nil {
		return nil, err
	}
	return ans.ns, nil
}

// namespaceUp asks the upstream.
func (sess *session) namespaceUp() (*listAnswer, error) {
	ans := &listAnswer{}
	err := sess.withConn("NAMESPACE", "", func(c *upstream.Conn) error {
		var err error
		if quirks.Has(c.Caps(), quirks.Namespace) {
			ans.ns, err = c.Namespace().Wait()
		} else {
			ans.ns, err = listDelimData(c)
		}
		_, proto := upstream.IsProtocol(err)
		ans.answered = err == nil || proto
		return err
	})
	return ans, err
}
