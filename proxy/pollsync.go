package proxy

import "go.uber.org/zap"

// syncPolled asks a polled mailbox's watcher (upstream/polled.go) for news
// before NOOP or CHECK answers. Directly, a server reports on NOOP what
// other connections changed meanwhile (RFC 3501 6.1.2, 6.4.1); a mailbox
// watched by IDLE has it already, a polled one would otherwise report it
// only after the next poll. Concurrent requests share one upstream round.
func (sess *session) syncPolled(sel *selection) {
	if !sel.w.Polled() {
		return
	}
	switch sess.command() {
	case "NOOP", "CHECK":
	default:
		return
	}
	sess.wantsNews(sel)
	ctx, cancel := sess.ctx()
	defer cancel()
	if err := sel.w.Sync(ctx); err != nil {
		sess.log.Warn("polled mailbox not synced before NOOP", zap.Error(err))
	}
}

// wantsNews counts a NOOP, CHECK or write (STORE, APPEND) of
// the session in its selected mailbox while that is polled. A session
// that polls with NOOP again and again wants news as it comes, as much as
// one that idles; one that writes again and again wants each write in
// the model before its OK, which a polled mailbox gives only by a poll
// round (SELECT, SEARCH, FETCH upstream) and a mailbox watched on its own
// connection by the write's own answer (storeconfirm.go,
// appendconfirm.go). At the second, the mailbox asks for an IDLE
// connection of its own (upstream/polled.go), as long as watcher slots
// last. One per folder, as a folder-by-folder sync does, asks nothing.
func (sess *session) wantsNews(sel *selection) {
	if sel.polls < 2 && sel.w.Polled() {
		if sel.polls++; sel.polls == 2 {
			sel.w.Idling(true)
		}
	}
}

// command is the name of the command the session runs ("" if unknown).
func (sess *session) command() string {
	cc := sess.reader()
	if cc == nil {
		return ""
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil {
		return ""
	}
	return cc.cur.name
}
