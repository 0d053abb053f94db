package proxy

import (
	"slices"

	"github.com/emersion/go-imap/v2"
)

// A FETCH that sets \Seen (RFC 3501 6.4.5) changes the message's MODSEQ;
// a CONDSTORE-enabled session is told the new value after the FETCH's
// own responses (RFC 7162 3.1.4: every change to a message's flags
// reaches it with MODSEQ), as Dovecot tells it: "* n FETCH (MODSEQ (m))",
// without UID, for UID FETCH too, for each message the FETCH changed.

// seenModSeqsBefore returns, for a CONDSTORE-enabled session's FETCH
// that sets \Seen, the MODSEQ of uids before it runs; nil otherwise.
func (sess *session) seenModSeqsBefore(uids imap.UIDSet, setsSeen bool) map[imap.UID]uint64 {
	if !setsSeen {
		return nil
	}
	return sess.modseqsBefore(uids)
}

// tellSeenModSeqs writes "* n FETCH (MODSEQ (m))" for each message of
// shown (the FETCH's answers, by UID) whose MODSEQ moved from before,
// in sequence order; the watcher's sync (seenBy) brought the model the
// new values.
func (sess *session) tellSeenModSeqs(shown map[imap.UID][]byte, before map[imap.UID]uint64) error {
	if before == nil || len(shown) == 0 {
		return nil
	}
	box := sess.sel.w.Mailbox()
	type line struct {
		seq    uint32
		modseq uint64
	}
	var lines []line
	for uid := range shown {
		ms := box.ModSeq(uid)
		seq, ok := sess.sel.v.UIDToSeq(uid)
		if ok && ms != 0 && ms != before[uid] {
			lines = append(lines, line{seq, ms})
		}
	}
	slices.SortFunc(lines, func(a, b line) int { return int(a.seq) - int(b.seq) })
	var b []byte
	for _, l := range lines {
		b = appendStoreFetch(b, l.seq, 0, l.modseq, nil, false)
		sess.noteModSeqSent(l.modseq) // condstore_syncpoint.go
	}
	return sess.writeUnsolicited(b)
}
