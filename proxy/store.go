package proxy

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
)

// Store runs UID STORE upstream, waits until the watcher has the result in
// the model (storeconfirm.go), and answers with each message's flags from the model
// once. The change reaches every other session through the model; this
// session's Poll skips the messages it already reported.
func (sess *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (err error) {
	sess.settle()
	sess.noExpunge = true
	defer sess.unholdOnError(&err)
	clear(sess.reported)
	defer func() {
		if err != nil {
			clear(sess.reported) // no Poll follows a failed command
		}
	}()
	// Messages expunged but not yet reported to the session are skipped
	// and the rest stored: OK, as Dovecot answers (RFC 2180 4.2.1).
	uids, _, err := sess.resolve(numSet)
	if err != nil {
		return err
	}
	if sess.sel.readOnly {
		return errReadOnly
	}
	if len(uids) > 0 {
		// What the session knows of each message's flags before the
		// STORE: with .SILENT, Poll may skip a message only if nobody
		// else changed it meanwhile (known returns nil otherwise).
		known := sess.knownFlags(uids, flags)
		modseqs := sess.modseqsBefore(uids)
		since, conditional := sess.unchangedSince()
		var modified imap.UIDSet // not stored: UNCHANGEDSINCE failed
		var rep storeReport
		err = sess.inWriteSlot(sess.sel.name, func() error {
			return sess.withConnNaming("STORE", sess.sel.name, maxUIDOf(uids), func(c *upstream.Conn) (err error) {
				if conditional {
					modified, err = storeConditional(c, uids, since, flags)
					return err
				}
				return sess.runStore(c, uids, flags, &rep)
			})
		})
		if err != nil {
			return err
		}
		sess.confirmStore(uids, flags, rep)
		// A new keyword is announced before the FETCH that shows it,
		// .SILENT or not, as Dovecot tells the actor (RFC 3501 7.2.6).
		if err := sess.tellMailboxFlags(); err != nil {
			return err
		}
		if sess.reported == nil {
			sess.reported = make(map[imap.UID][]imap.Flag)
		}
		_, isUID := numSet.(imap.UIDSet)
		if modseqs != nil {
			return sess.storeAnswerModSeq(uids, isUID, known, modseqs, modified)
		}
		for _, m := range sess.sel.v.Members(uids) {
			cur, ok := sess.sel.v.Flags(m.UID)
			if !ok || hasKeyword(cur) && sess.sel.v.MailboxFlagsOwed() {
				// Expunged meanwhile (the EXPUNGE comes later), or a
				// keyword came into the model after the FLAGS told above:
				// the Poll before the OK tells FLAGS, then this FETCH
				// (RFC 3501 7.2.6).
				continue
			}
			if !sess.storeShows(m.UID, cur, known) {
				continue // silent
			}
			resp := w.CreateMessage(m.Seq)
			if isUID {
				resp.WriteUID(m.UID)
			}
			resp.WriteFlags(cur)
			if err := resp.Close(); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasKeyword says whether flags hold a keyword (not a system flag).
func hasKeyword(flags []imap.Flag) bool {
	return slices.ContainsFunc(flags, func(f imap.Flag) bool { return !strings.HasPrefix(string(f), `\`) })
}

// storeShows says whether a STORE's answer shows the flags of uid, now
// cur, and records what the session was told of them: with .SILENT
// (known), see silentStore; otherwise always. Poll skips a message only if
// it would report these very flags again; any other change still reaches
// the client.
func (sess *session) storeShows(uid imap.UID, cur []imap.Flag, known *silentStore) bool {
	if known != nil {
		write, told := known.silent(uid, cur)
		if told {
			sess.reported[uid] = cur
		}
		if !write {
			return false
		}
	}
	sess.reported[uid] = cur
	return true
}
