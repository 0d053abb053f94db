package proxy

import (
	"context"
	"slices"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream"
)

// searchLocal answers a SEARCH from the watcher's model (issue 11) when
// its keys need only UIDs and flags (fanout.Searchable: ALL, sequence and
// UID sets, the flag keys, RECENT, NEW and OLD as idlemux's own recency,
// NOT and OR of those; RFC 3501 section 6.4.4), the model is as current
// as the upstream's answer would be, and no SEARCHRES is involved ("$" or
// RETURN (SAVE), RFC 5182: idlemux does not advertise it, and the
// upstream's answer is kept for it). crit is criteria translated by
// translateCriteria: sequence sets and \Recent as UID sets of the view.
//
// "As current": the mailbox is watched by IDLE (upstream.Watcher.Live),
// and every change made through idlemux to it is in the model (Current:
// else one Sync, shared with concurrent requests, brings it in first). A
// change another client made directly on the upstream is in the model
// once the upstream told the watcher (Dovecot: within its 500 ms notify
// delay); Dovecot itself would show it at once. That window is the same
// one in which an idling client through idlemux has not yet been told of
// the change, and RFC 3501 gives no order between two connections'
// commands: it is accepted. A mailbox polled for want of a watcher slot
// (a longer window) answers only right after a poll round (modelCurrent),
// else goes upstream.
func (sess *session) searchLocal(criteria, crit *imap.SearchCriteria, options *imap.SearchOptions) ([]fanout.Member, bool) {
	if options != nil && options.ReturnSave {
		return nil, false
	}
	if _, ok := fanout.Searchable(crit); !ok || hasSearchRes(criteria) {
		return nil, false
	}
	if !sess.modelCurrent(sess.sel.w, sess.sel.prevMark, "SEARCH") {
		return nil, false
	}
	return sess.sel.v.Search(crit)
}

// hasSearchRes reports whether c refers to the saved search result "$"
// anywhere (RFC 5182 section 2.1).
func hasSearchRes(c *imap.SearchCriteria) bool {
	return fanout.AnyCriteria(c, func(n *imap.SearchCriteria) bool {
		return slices.ContainsFunc(n.UID, func(s imap.UIDSet) bool { return imap.IsSearchRes(s) }) ||
			slices.ContainsFunc(n.SeqNum, func(s imap.SeqSet) bool { return imap.IsSearchRes(s) })
	})
}

// modelCurrent says whether w's model may answer for the mailbox now.
// A Live model (IDLE on its own connection) may once it includes every
// change made through idlemux, after one Sync (shared with concurrent
// requests) if needed. Any other (polled, or an IDLE watcher that is
// reconnecting) may only when a poll round begun since mark has
// completed, with every change through idlemux in it
// (Watcher.FreshSince; mark is the session's prevMark for its selected
// mailbox, noMark elsewhere): the round a SELECT just ran, say, so a
// folder walk or a fleet reconnecting at once reads the model the
// SELECT refreshed. It never asks for a round: a poll round is a SELECT
// and maybe a whole flag listing, dearer than the command itself, and a
// reconnecting watcher answers no Sync until it is back.
// what names the command for the log.
func (sess *session) modelCurrent(w *upstream.Watcher, mark uint64, what string) bool {
	if !w.Live() {
		return w.FreshSince(mark)
	}
	if w.Current() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	if err := w.Sync(ctx); err != nil {
		sess.log.Info("mailbox watcher did not sync; asking the upstream", zap.String("command", what), zap.Error(err))
		return false
	}
	return w.Current()
}

// noMark is the mark of a mailbox the session has not selected: no poll
// round is fresh enough, a Sync is always asked for.
const noMark = ^uint64(0)
