package proxy

// writeSlot waits for a write slot of mailbox on the session's account
// (upstream/writeslots.go) and returns its release. STORE, APPEND and
// EXPUNGE call it before their connection and release it once their
// upstream exchange is over, before the model is brought up to date:
// the slot spares the server's mailbox locks, and what follows takes none.
func (sess *session) writeSlot(mailbox string) (release func()) {
	ctx, cancel := sess.ctx()
	defer cancel()
	return sess.acct.WriteSlot(ctx, canonical(mailbox))
}
