package fanout

import "github.com/emersion/go-imap/v2"

// Per-message MODSEQ (RFC 7162 3.1.4). The model keeps each message's
// mod-sequence as the upstream last reported it, so that a CONDSTORE-
// enabled session's unsolicited FETCH can carry MODSEQ (RFC 7162 3.1.4:
// once CONDSTORE is enabled, every FETCH of a flag change includes it)
// without asking the upstream. A MODSEQ changes nothing a session is
// told by itself: it travels with the flag change the upstream reported
// it with, and the model logs only that change.

// SetModSeq records uid's MODSEQ as the upstream reported it. A value
// below the one held is ignored: mod-sequences only grow (RFC 7162 3.1.1),
// and an older report (a listing read before a newer push) must not undo
// a newer one. A MODSEQ that rises while the flags stay what the model
// holds (changed and changed back between two reads of the watcher) is
// logged as a flag change, unless this transaction logged one for uid
// already: Dovecot tells every session of such a message, FETCH FLAGS
// (with MODSEQ once enabled), and so do its sessions here.
func (tx *Tx) SetModSeq(uid imap.UID, modseq uint64) {
	m := tx.m
	i, ok := m.index(uid)
	if !ok || modseq == 0 {
		return
	}
	old := m.modSeqAt(i)
	m.setModSeqAt(i, modseq)
	if old != 0 && modseq > old && !tx.flagsLogged[uid] {
		tx.logChange(change{kind: changeFlags, uids: []imap.UID{uid}})
	}
}

// setModSeqAt sets the MODSEQ of the message at index i, allocating the
// column the first time. The owner holds the write lock.
func (m *Mailbox) setModSeqAt(i int, modseq uint64) {
	if m.modseqs == nil {
		m.modseqs = make([]uint64, len(m.uids), cap(m.uids))
	}
	if modseq > m.modseqs[i] {
		m.modseqs[i] = modseq
	}
}

// modSeqAt returns the MODSEQ of the message at index i, 0 if unknown.
// The caller holds the lock.
func (m *Mailbox) modSeqAt(i int) uint64 {
	if i < len(m.modseqs) {
		return m.modseqs[i]
	}
	return 0
}

// ModSeq returns uid's MODSEQ as the model holds it (0: unknown).
func (m *Mailbox) ModSeq(uid imap.UID) uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i, ok := m.index(uid)
	if !ok {
		return 0
	}
	return m.modSeqAt(i)
}

// ModSeqs returns the model's MODSEQ of each message of uids (resolved:
// no "*") that it knows one of: what a STORE compares after it ran to
// tell which messages it changed (RFC 7162 3.1.3).
func (v *View) ModSeqs(uids imap.UIDSet) map[imap.UID]uint64 {
	m := v.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[imap.UID]uint64)
	if m.modseqs == nil {
		return out
	}
	for _, r := range uids {
		lo, _ := m.index(r.Start)
		for i := lo; i < len(m.uids) && m.uids[i] <= r.Stop; i++ {
			if m.modseqs[i] != 0 {
				out[m.uids[i]] = m.modseqs[i]
			}
		}
	}
	return out
}

// ModSeq returns uid's MODSEQ as the model holds it inside the
// transaction (0: unknown), so the owner compares a read with it before
// applying the read's flags.
func (tx *Tx) ModSeq(uid imap.UID) uint64 {
	i, ok := tx.m.index(uid)
	if !ok {
		return 0
	}
	return tx.m.modSeqAt(i)
}

// FlagsModSeq returns uid's flags (with \Recent when the message is
// recent in this session; shared: do not modify) and MODSEQ (0: unknown)
// read under one lock, so an answer built from them pairs flags with the
// MODSEQ the upstream reported them with (RFC 7162 3.1.4): two reads could
// straddle a change and pair new flags with an old MODSEQ.
func (v *View) FlagsModSeq(uid imap.UID) (flags []imap.Flag, modseq uint64, ok bool) {
	v.m.mu.RLock()
	defer v.m.mu.RUnlock()
	i, ok := v.m.index(uid)
	if !ok {
		return nil, 0, false
	}
	return v.withRecent(uid, v.m.flags[i]), v.m.modSeqAt(i), true
}
