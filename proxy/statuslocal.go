package proxy

import (
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// modelStatusItems are the STATUS items a watcher's model knows exactly
// (RFC 3501 section 6.3.10): MESSAGES, UIDVALIDITY, UNSEEN, and RECENT,
// which is idlemux's own anyway (recent.go). UIDNEXT is not one: the
// upstream's moves when a message is appended and expunged between two
// of the watcher's syncs (Dovecot then reports neither EXISTS nor
// EXPUNGE), and doveadm can raise it with no message at all; a STATUS
// asking for it goes upstream. So do SIZE, DELETED, HIGHESTMODSEQ,
// APPENDLIMIT and the rest.
var modelStatusItems = imap.StatusOptions{NumMessages: true, UIDValidity: true, NumUnseen: true, NumRecent: true}

// statusLocal answers STATUS from the model of a mailbox watched by IDLE
// (issue 11), when every item asked is a modelStatusItems one and the
// model includes every change made through idlemux (else one shared Sync
// first, as searchLocal). For the session's own selected mailbox, Dovecot
// answers from what that session was last told: the model is used only
// when the session's view is caught up with it (nothing untold, nothing
// expunged still shown), where the two agree.
func (sess *session) statusLocal(mailbox string, options *imap.StatusOptions) (*imap.StatusData, bool) {
	rest := *options
	rest.NumMessages, rest.UIDValidity, rest.NumUnseen, rest.NumRecent = false, false, false, false
	if rest != (imap.StatusOptions{}) || *options == (imap.StatusOptions{}) {
		return nil, false
	}
	name := canonical(mailbox)
	w := sess.acct.LiveWatcher(name)
	if w == nil || !sess.modelCurrent(w, noMark, "STATUS") {
		return nil, false
	}
	if sess.sel != nil && sess.sel.name == name && !sess.sel.v.CaughtUp() {
		return nil, false
	}
	st, ok := w.Mailbox().Status()
	if !ok {
		return nil, false
	}
	data := &imap.StatusData{Mailbox: mailbox}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumRecent {
		n := sess.statusRecent(mailbox)
		data.NumRecent = &n
	}
	return data, true
}

// statusShared runs STATUS upstream, one command for identical requests
// in flight together (issue 11): keyed by the account, the mailbox, the
// items and the account's generation of changes through idlemux
// (upstream/changes.go), so a request never joins one that started before
// a change that completed before it began (read-your-writes), and no
// answer is staler than the request in flight.
func (sess *session) statusShared(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	key := fmt.Sprintf("%p\x00%s\x00%d\x00%+v", sess.acct, mailbox, sess.acct.Generation(), *options)
	v, err, _ := sess.s.statusFlight.Do(key, func() (any, error) {
		var data *imap.StatusData
		err := sess.withConn("STATUS", "", func(c *upstream.Conn) (err error) {
			// A NOOP first brings the connection's own selected
			// mailbox up to date (quirks.StatusOfSelectedLags). Not
			// pipelined: Dovecot may run pipelined commands side by side.
			if mb := c.Mailbox(); quirks.StatusOfSelectedLags && mb != nil && canonical(mb.Name) == canonical(mailbox) {
				if err := c.Noop().Wait(); err != nil {
					return err
				}
			}
			data, err = c.Status(mailbox, upstreamStatusOptions(options)).Wait()
			return err
		})
		return data, err
	})
	if err != nil {
		return nil, err
	}
	return cloneStatus(v.(*imap.StatusData)), nil
}

// cloneStatus copies a shared answer, so each session fills its own.
func cloneStatus(d *imap.StatusData) *imap.StatusData {
	out := *d
	copy32 := func(p **uint32) {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	copy64 := func(p **int64) {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	copy32(&out.NumMessages)
	copy32(&out.NumUnseen)
	copy32(&out.NumDeleted)
	copy32(&out.NumRecent)
	copy32(&out.AppendLimit)
	copy64(&out.Size)
	copy64(&out.DeletedStorage)
	return &out
}
