package proxy

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
)

// A STORE's outcome must be in the model before its OK: the session
// answers from the model, and every session's next read through idlemux
// must show it (read-your-writes across sessions). When the watcher idles
// on its own connection and the upstream has CONDSTORE, the STORE's own
// answer carries every message it changed, with MODSEQ
// (upstream/flagreport.go), and the watcher puts those states into the
// model without asking the upstream again (upstream/flagpost.go).
// Otherwise, or when the answer leaves a doubt, the watcher is Synced, as
// before: a NOOP round upstream.

// storeReport is what the upstream said a STORE did.
type storeReport struct {
	reported bool // states holds the STORE's answer (StoreReport ran)
	states   []upstream.FlagState
}

// runStore runs the STORE on c: reporting its changes when the watcher
// can take them, .SILENT otherwise.
func (sess *session) runStore(c *upstream.Conn, uids imap.UIDSet, flags *imap.StoreFlags, rep *storeReport) error {
	*rep = storeReport{}
	if !sess.sel.w.Live() || !c.CanReportFlags(uids) {
		up := *flags
		up.Silent = true
		return c.Store(uids, &up, nil).Close()
	}
	states, err := c.StoreReport(uids, flags)
	*rep = storeReport{reported: err == nil, states: states}
	return err
}

// confirmStore brings a completed STORE into the model: by its report
// when that is enough, else by a Sync.
func (sess *session) confirmStore(uids imap.UIDSet, flags *imap.StoreFlags, rep storeReport) {
	if rep.reported && sess.postStore(uids, flags, rep.states) {
		sess.s.metrics.storeConfirmed.WithLabelValues("answer").Inc()
		return
	}
	sess.syncMailboxes(sess.sel.name)
	sess.s.metrics.storeConfirmed.WithLabelValues("sync").Inc()
	sess.wantsNews(sess.sel)
}

// postStore hands the STORE's report to the watcher and says whether the
// model now holds the STORE's outcome. A message the report leaves out
// was not changed by the STORE (Dovecot reports only the messages it
// changed): the model must then already show it as the STORE asked (RFC
// 3501 6.4.6), or the model lacks a change and a Sync brings it in.
func (sess *session) postStore(uids imap.UIDSet, flags *imap.StoreFlags, states []upstream.FlagState) bool {
	w := sess.sel.w
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	if !w.PostFlags(ctx, states, sess.acct.Generation()) {
		return false
	}
	told := make(map[imap.UID]bool, len(states))
	for _, st := range states {
		told[st.UID] = true
	}
	box := w.Mailbox()
	for _, m := range sess.sel.v.Members(uids) {
		if told[m.UID] {
			continue
		}
		cur, ok := box.Flags(m.UID)
		if ok && !sameFlags(applyStore(cur, flags), cur) {
			return false
		}
	}
	return true
}
