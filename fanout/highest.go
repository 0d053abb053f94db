package fanout

// HIGHESTMODSEQ in the model (RFC 7162 3.1.2.1). The value a session
// reports must bound what that session was told, no more: a client takes
// it as its sync point, and asks only for changes above it when it
// reconnects (RFC 7162 3.2.5). So the model keeps it under the same lock
// as the messages: a view opened, or a Pending read, sees the value and
// the state it bounds in one snapshot, and a session that was not told
// everything (an expunge held back during FETCH, STORE or SEARCH, RFC
// 3501 7.4.1) keeps the value of its last full delivery, as Dovecot's
// sync_last_full_modseq does.

// SetHighestModSeq records the upstream HIGHESTMODSEQ the model now holds
// every change up to. It only grows. The owner calls it after the changes
// it covers, in the same transaction (views read both at once).
func (tx *Tx) SetHighestModSeq(v uint64) {
	if v > tx.m.highest {
		tx.m.highest = v
	}
}

// HighestModSeq returns the model's HIGHESTMODSEQ (0: unknown).
func (m *Mailbox) HighestModSeq() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.highest
}

// SyncPoint returns the HIGHESTMODSEQ the view's session may be told:
// the model's when the session was last told everything, and whether it
// is told everything now. A session not caught up must not be given a
// higher one (RFC 7162 3.2, 3.1.2.1): changes above modseq it has not
// been told would be lost to a client that resyncs from it.
func (v *View) SyncPoint() (modseq uint64, caughtUp bool) {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	return v.synced.Load(), v.cursor.Load() == m.head()
}
