package upstream

// Freshness of answers given without the upstream (issue 11). A session
// may answer SEARCH or STATUS from a watcher's model, or share one
// upstream STATUS with other sessions, only if no change made through
// idlemux is missing from that answer: a client that saw its STORE,
// APPEND or FETCH of a body (which sets \Seen) complete must see it in
// its next read, as one connection to the upstream gives it. The account
// numbers those changes (its generation) and remembers, per mailbox, the
// generation of the latest one; a watcher remembers the generation its
// last round with the upstream started at (watcher_sync.go process).

// Changed records that a command through idlemux changed the named
// mailboxes (APPEND, COPY and MOVE targets; CREATE, DELETE and RENAME).
// Call it once the change completed upstream and before the client is
// told so: a read that starts later must not share a request that
// started before.
func (a *Account) Changed(names ...string) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	a.changedLocked(names...)
}

// changedLocked is Changed with m.mu held.
func (a *Account) changedLocked(names ...string) {
	a.gen++
	if a.changedAt == nil {
		a.changedAt = make(map[string]uint64)
	}
	for _, n := range names {
		a.changedAt[n] = a.gen
	}
}

// changedInModel counts a change to mailbox (Changed) that w's model
// already holds (loop only: an APPEND's message it added). Under the same
// lock, the watcher's synced generation moves to it unless a change was
// left unconfirmed, as a round would: no read sees the change counted
// and the model not Current for it, and so none Syncs for it.
func (a *Account) changedInModel(w *Watcher) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	a.changedLocked(w.name)
	if a.unconfirmed[w.name] <= w.synced.Load() {
		w.synced.Store(a.gen)
	}
}

// Unconfirmed records that a change through idlemux to mailbox completed
// without the model confirming it (its Sync failed or timed out): the
// model is not Current until a round that began after it, and no STORE's
// reported flags (PostFlags) make it so.
func (a *Account) Unconfirmed(mailbox string) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	a.changedLocked(mailbox)
	if a.unconfirmed == nil {
		a.unconfirmed = make(map[string]uint64)
	}
	a.unconfirmed[mailbox] = a.gen
}

// unconfirmedAt is the generation of the latest Unconfirmed change to
// mailbox, 0 when none.
func (a *Account) unconfirmedAt(mailbox string) uint64 {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.unconfirmed[mailbox]
}

// Generation numbers the changes made through idlemux to the account's
// mailboxes: a request keyed by it never answers from before a change
// that completed before the request began.
func (a *Account) Generation() uint64 {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.gen
}

// lastChange is the generation of the latest change through idlemux to
// mailbox, 0 when none.
func (a *Account) lastChange(mailbox string) uint64 {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	return a.changedAt[mailbox]
}

// Live reports whether the watcher watches its mailbox by IDLE on a
// connection of its own, resynced: its model then hears another client's
// change as soon as the upstream tells (Dovecot: within its 500 ms notify
// delay). A polled one (polled.go) lags by up to PollInterval, and one
// that is reconnecting by longer.
func (w *Watcher) Live() bool { return w.live.Load() }

// RoundMark is a mark for FreshSince: the number of poll rounds begun.
func (w *Watcher) RoundMark() uint64 { return w.roundsBegun.Load() }

// FreshSince reports whether a poll round begun after RoundMark returned
// mark has completed: the polled model then shows the upstream as it was
// at some point after mark was taken (a round confirms or rereads the
// whole mailbox, polled.go). A session takes its mark as a command
// begins; its next command may answer from the model once FreshSince, as
// Dovecot's own session answers from what it synced at the end of the
// command before (RFC 3501 5.2: another client's change is seen when
// the server next reports, not at once).
//
// The round must also have begun after the latest change made through
// idlemux to the mailbox: a change whose own Sync timed out is otherwise
// missing from it.
func (w *Watcher) FreshSince(mark uint64) bool {
	return w.roundDone.Load() > mark && w.acct.lastChange(w.name) <= w.synced.Load()
}

// Current reports whether the model is Live and includes every change
// made through idlemux to the mailbox: otherwise a Sync brings it in.
func (w *Watcher) Current() bool {
	return w.live.Load() && w.acct.lastChange(w.name) <= w.synced.Load()
}

// LiveWatcher returns the watcher of mailbox if it is Live (lingering or
// not), or nil.
func (a *Account) LiveWatcher(mailbox string) *Watcher {
	a.m.mu.Lock()
	w := a.watchers[mailbox]
	a.m.mu.Unlock()
	if w == nil || !w.Live() || w.box.Load() == nil {
		return nil
	}
	return w
}
