package proxy

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
)

// An APPEND's new message must be in the model before its OK, as a
// STORE's outcome (storeconfirm.go): every session's next read through
// idlemux shows it (read-your-writes across sessions). When the message
// goes to the session's selected mailbox, whose watcher idles with
// CONDSTORE, the APPEND's own answer names the message (APPENDUID, RFC
// 4315 3) and one UID FETCH on the same connection reads its flags and
// MODSEQ; the watcher adds it to the model without a round of its own
// (upstream/appendpost.go). Otherwise, or when anything leaves a doubt,
// the watcher of the mailbox is Synced, as before.

// appendReport is what the connection that appended read of the message.
type appendReport struct {
	read        bool // state holds the message as the upstream showed it
	uidValidity uint32
	state       upstream.FlagState
}

// appendTarget is the watcher that can take mailbox's new message from
// its APPEND's answer, or nil: the session's selected mailbox, watched
// live.
func (sess *session) appendTarget(mailbox string) *upstream.Watcher {
	if sess.sel == nil || canonical(mailbox) != sess.sel.name || !sess.sel.w.Live() {
		return nil
	}
	return sess.sel.w
}

// readAppended reads, on the connection that appended, the flags and
// MODSEQ of the message data names, when the watcher can take them. The
// APPEND's own flag list is not enough: a server may add flags as it
// saves (Dovecot's mail_attachment_detection_options adds
// $HasAttachment or $HasNoAttachment, a Sieve script any), and the
// answer carries no MODSEQ, which CONDSTORE sessions' answers need
// (TestDovecotAppendedFlagsServerAdds, ...UnknownModSeqAnswers). The
// APPEND succeeded whatever this read does: a failed read only means a
// Sync, and a connection it broke is closed so the pool drops it.
func readAppended(c *upstream.Conn, mailbox string, data *imap.AppendData, rep *appendReport) {
	*rep = appendReport{}
	if data == nil || data.UID == 0 || !c.CanReadAppended(mailbox, data.UIDValidity) {
		return
	}
	st, ok, err := c.ReadAppended(data.UID)
	if err != nil {
		if _, proto := upstream.IsProtocol(err); !proto {
			c.Client.Close()
		}
		return
	}
	*rep = appendReport{read: ok, uidValidity: data.UIDValidity, state: st}
}

// confirmAppend brings a completed APPEND into the model of mailbox: by
// its report when the watcher takes it, else by a Sync.
func (sess *session) confirmAppend(mailbox string, w *upstream.Watcher, rep appendReport) {
	if w != nil && rep.read {
		ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
		ok := w.PostAppended(ctx, rep.state, rep.uidValidity)
		cancel()
		if ok {
			sess.s.metrics.appendConfirmed.WithLabelValues("answer").Inc()
			return
		}
	}
	sess.syncMailboxes(mailbox)
	sess.s.metrics.appendConfirmed.WithLabelValues("sync").Inc()
	if sess.sel != nil && canonical(mailbox) == sess.sel.name {
		sess.wantsNews(sess.sel)
	}
}
