package upstream

// A server refreshes a session's view of a mailbox only at its own sync
// points: Dovecot answers a command from what that session last synced,
// and syncs at the end of each command (RFC 3501 5.5 and 7: a server may
// tell a session of others' changes only then). Two pool connections with
// the same mailbox selected are two such sessions: after a STORE of
// \Deleted on one, a UID EXPUNGE on the other would expunge nothing, and
// a FETCH there would show the old flags, though the client saw the STORE
// complete. So the account counts, per mailbox, the commands through
// idlemux that changed it (STORE, EXPUNGE, MOVE, a FETCH that sets
// \Seen), and a connection whose view predates the latest runs a NOOP
// before its next command there (Acquire): read-your-writes across
// connections, as one connection to the server gives it.

// Wrote marks the running command as having changed the selected mailbox;
// Release counts it.
func (c *Conn) Wrote() { c.wrote = true }

// writesOf is the account's count of changes to mailbox.
func (a *Account) writesOf(mailbox string) uint64 {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.writes[mailbox]
}

// noteWriteLocked counts c's change, if it made one; c's own view
// includes it. m.mu must be held.
func (a *Account) noteWriteLocked(c *Conn) {
	if !c.wrote {
		return
	}
	c.wrote = false
	if c.selected == "" {
		return
	}
	if a.writes == nil {
		a.writes = make(map[string]uint64)
	}
	a.writes[c.selected]++
	a.changedLocked(c.selected)
	c.seen = a.writes[c.selected]
}
