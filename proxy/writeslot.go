package proxy

// inWriteSlot runs f, a write's upstream exchange, holding a write slot
// of mailbox on the session's account (upstream/writeslots.go). STORE,
// APPEND and EXPUNGE run their withConn in it, so the slot is taken
// before their connection and given back once the exchange is over (a
// panic included), before the model is brought up to date: the slot
// spares the server's mailbox locks, and what follows takes none.
func (sess *session) inWriteSlot(mailbox string, f func() error) error {
	ctx, cancel := sess.ctx()
	release := sess.acct.WriteSlot(ctx, canonical(mailbox))
	cancel()
	defer release()
	return f()
}
