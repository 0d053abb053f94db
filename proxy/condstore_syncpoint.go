package proxy

import (
	"strconv"

	"github.com/idlemux/idlemux/fanout"
)

// A QRESYNC client takes the highest MODSEQ it was sent as its sync
// point unless the command's tagged OK says otherwise (RFC 7162 3.1.2.1,
// 3.2: "[HIGHESTMODSEQ n]"), and resyncs from it later: SELECT (QRESYNC
// (uidvalidity modseq)) tells it only the expunges above it (3.2.5). idlemux holds expunges back during FETCH, STORE and SEARCH
// (RFC 3501 7.4.1), and the changes logged after them: a MODSEQ sent then
// may be above an expunge or flag change the session has not been told.
// So, as Dovecot does (imap_sync_send_highestmodseq: a command that sent
// a MODSEQ above sync_last_full_modseq while expunges are delayed gets
// "[HIGHESTMODSEQ sync_last_full_modseq]"), such a command's tagged OK
// carries the model's HIGHESTMODSEQ of the session's last full delivery
// (fanout View.SyncPoint), below everything it was not told. A session
// that enabled only CONDSTORE learns expunges by other means (CHANGEDSINCE
// reports none, RFC 7162 3.1.4.1), and Dovecot adds no code for it
// (TestDovecotCondstoreHeldExpungeHighest): nor does idlemux.

// noteModSeqSent records that the running command wrote a MODSEQ of m to
// the client.
func (sess *session) noteModSeqSent(m uint64) {
	cc := sess.reader()
	if cc == nil || m == 0 {
		return
	}
	cc.mu.Lock()
	cc.cs.sent = max(cc.cs.sent, m)
	cc.mu.Unlock()
}

// noteSync runs after a command's delivery (not IDLE's) of ups and sets
// the HIGHESTMODSEQ the command's tagged OK reports: the session's sync
// point when something is still held back and a MODSEQ above it was
// sent (the rule above); when it told of expunges, the model's value with
// them, as Dovecot reports it (RFC 7162 3.2.10, 3.1.2.1). QRESYNC
// sessions only.
func (sess *session) noteSync(sel *selection, ups []fanout.Update) {
	cc := sess.reader()
	if cc == nil || !cc.qresyncOn() {
		return
	}
	var sent uint64
	for _, u := range ups {
		if u.Kind == fanout.UpdateFlags {
			sent = max(sent, u.ModSeq)
		}
	}
	synced, caughtUp := sel.v.SyncPoint()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.cs.sent = max(cc.cs.sent, sent)
	switch {
	case synced == 0:
	case !caughtUp && cc.cs.sent > synced:
		cc.qr.vanishedHighest = synced
	case len(ups) > 0 && ups[0].Kind == fanout.UpdateExpunge:
		cc.qr.vanishedHighest = synced
	}
}

// maxModSeqOf returns the larger of m and the MODSEQ in v, "(n)" as the
// relay read it (fetchrelay_items.go modSeqValue).
func maxModSeqOf(m uint64, v []byte) uint64 {
	if len(v) < 3 {
		return m
	}
	n, err := strconv.ParseUint(string(v[1:len(v)-1]), 10, 64)
	if err != nil {
		return m
	}
	return max(m, n)
}
