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
// for uids, whose MODSEQs before the STORE were before; modified are
// those an UNCHANGEDSINCE kept from being stored (RFC 7162 3.1.3). As
// Dovecot does, a modified message that changed since the session was
// told is reported first, with its flags; then the stored ones. A
// message whose MODSEQ the model does not know is answered without it.
// The answer is OK [MODIFIED set] when some were not stored.
func (sess *session) storeAnswerModSeq(uids imap.UIDSet, isUID bool, known *silentStore, before map[imap.UID]uint64, modified imap.UIDSet) error {
	v, box := sess.sel.v, sess.sel.w.Mailbox()
	uidOf := func(m fanout.Member) imap.UID {
		if isUID {
			return m.UID
		}
		return 0
	}
	var b []byte
	var sent uint64
	if len(modified) > 0 {
		untold, _ := v.UntoldFlags(modified)
		for _, m := range v.Members(modified) {
			if cur, ok := v.Flags(m.UID); ok && untold[m.UID] {
				sess.reported[m.UID] = cur
				b = appendStoreFetch(b, m.Seq, uidOf(m), box.ModSeq(m.UID), cur, true)
				sent = max(sent, box.ModSeq(m.UID))
			}
		}
	}
	for _, m := range v.Members(uids) {
		cur, ok := v.Flags(m.UID)
		if !ok || modified.Contains(m.UID) {
			continue // expunged meanwhile (the EXPUNGE comes later), or not stored
		}
		ms := box.ModSeq(m.UID)
		if ms != 0 && ms == before[m.UID] {
			continue // unchanged: Dovecot says nothing of it
		}
		b = appendStoreFetch(b, m.Seq, uidOf(m), ms, cur, sess.storeShows(m.UID, cur, known))
		sent = max(sent, ms)
	}
	sess.noteModSeqSent(sent) // condstore_syncpoint.go
	if flags, ok := v.TakeMailboxFlags(); ok {
		// A keyword that came into the model after the FLAGS Store told:
		// taken after the flags above were read, these FLAGS list it, and
		// go first (RFC 3501 7.2.6).
		b = append(appendMailboxFlags(nil, flags, sess.sel.permanent(flags)), b...)
	}
	if err := sess.writeUnsolicited(b); err != nil {
		return err
	}
	if len(modified) > 0 {
		// imapserver polls only after a plain OK: the updates due before
		// the tagged answer go out here (none of them EXPUNGE, RFC 3501
		// 7.4.1), as Dovecot sends them.
		if err := sess.deliver(sess.sel, false, false); err != nil {
			return err
		}
		sess.carryReported(sess.sel) // what lies past a held expunge (reportedcarry.go)
		sess.forgetReported()
		return sess.modifiedError(modified, isUID)
	}
	return nil
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
