package proxy

import (
	"strconv"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// STORE for a CONDSTORE-enabled session (RFC 7162 3.1.3). Its FETCH
// responses carry MODSEQ, which imapserver's FetchResponseWriter cannot
// write, so the session writes them itself, around imapserver (as
// unsolicited responses are written), before imapserver's tagged OK. As
// Dovecot answers: "* n FETCH ([UID u ]MODSEQ (m) FLAGS (...))"; with
// .SILENT, "* n FETCH ([UID u ]MODSEQ (m))"; nothing for a message the
// STORE did not change (its MODSEQ did not move). The values are the
// model's, which the watcher's sync after the STORE brought up to date.

// modseqsBefore returns, for a CONDSTORE-enabled session, each message's
// MODSEQ before its STORE runs (non-nil, maybe empty); nil otherwise.
func (sess *session) modseqsBefore(uids imap.UIDSet) map[imap.UID]uint64 {
	cc := sess.reader()
	if cc == nil || !cc.condstoreOn() {
		return nil
	}
	return sess.sel.v.ModSeqs(uids)
}

// storeAnswerModSeq writes a CONDSTORE-enabled session's STORE answer
// for uids, whose MODSEQs before the STORE were before. A message whose
// MODSEQ the model does not know is answered without it, as before.
func (sess *session) storeAnswerModSeq(uids imap.UIDSet, isUID bool, known *silentStore, before map[imap.UID]uint64) error {
	box := sess.sel.w.Mailbox()
	var b []byte
	for _, m := range sess.sel.v.Members(uids) {
		cur, ok := sess.sel.v.Flags(m.UID)
		if !ok {
			continue // expunged meanwhile: the EXPUNGE comes later
		}
		ms := box.ModSeq(m.UID)
		if ms != 0 && ms == before[m.UID] {
			continue // unchanged: Dovecot says nothing of it
		}
		show := sess.storeShows(m.UID, cur, known)
		uid := m.UID
		if !isUID {
			uid = 0
		}
		b = appendStoreFetch(b, m.Seq, uid, ms, cur, show)
	}
	return sess.writeUnsolicited(b)
}

// appendStoreFetch encodes one STORE answer in Dovecot's order: "* seq
// FETCH (UID uid MODSEQ (m) FLAGS (...))" when the flags are shown,
// "* seq FETCH (UID uid MODSEQ (m))" when not (.SILENT), without UID
// where uid is 0 (STORE by number), without MODSEQ where m is unknown.
func appendStoreFetch(b []byte, seq uint32, uid imap.UID, modseq uint64, flags []imap.Flag, show bool) []byte {
	if show {
		u := fanout.Update{Kind: fanout.UpdateFlags, Seq: seq, UID: uid, Flags: flags, ModSeq: modseq}
		return appendFlagsUpdate(b, u, condstoreEnabled{})
	}
	if modseq == 0 {
		return b
	}
	b = appendNumbered(b, seq, " FETCH (")
	if uid != 0 {
		b = append(b, "UID "...)
		b = strconv.AppendUint(b, uint64(uid), 10)
		b = append(b, ' ')
	}
	b = appendModSeqItem(b, modseq)
	return append(b[:len(b)-1], ")\r\n"...) // "MODSEQ (m)" ends the list
}

// condstoreEnabled encodes for a CONDSTORE-enabled session; it writes no
// mailbox FLAGS (its permanent is never asked).
type condstoreEnabled struct{}

func (condstoreEnabled) tellsModSeq() bool                 { return true }
func (condstoreEnabled) permanent([]imap.Flag) []imap.Flag { return nil }
