package proxy

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

var errMoveUnsupported = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "MOVE needs MOVE or UIDPLUS on the upstream server"}

// Copy runs UID COPY upstream; COPYUID names UIDs, so it passes unchanged.
func (sess *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	sess.settle()
	uids, expunged, err := sess.resolveWhole(numSet)
	if err != nil {
		return nil, err
	}
	if len(expunged) > 0 {
		return nil, sess.refuseExpunged()
	}
	var data *imap.CopyData
	if len(uids) > 0 {
		err = sess.withConn("COPY", sess.sel.name, func(c *upstream.Conn) (err error) {
			data, err = c.Copy(uids, dest).Wait()
			return err
		})
		if err != nil {
			sess.noteMissing("COPY", dest, err)
			return nil, err
		}
		sess.syncMailboxes(dest) // the copies reach every session of dest before OK
	}
	if data != nil && data.UIDValidity == 0 {
		data = nil // no UIDPLUS upstream: no COPYUID to give
	}
	return data, nil
}

// Move runs UID MOVE upstream (or COPY, STORE \Deleted, UID EXPUNGE when
// the upstream lacks MOVE but has UIDPLUS, checking each step). The EXPUNGE
// responses come from the model in imapserver's Poll after MOVE, numbered
// in this session's view (RFC 6851 section 3.3).
func (sess *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sess.settle()
	uids, expunged, err := sess.resolveWhole(numSet)
	if err != nil {
		return err
	}
	if sess.sel.readOnly {
		return errReadOnly
	}
	if len(expunged) > 0 {
		return sess.refuseExpunged()
	}
	if len(uids) > 0 {
		var data *imap.CopyData
		err = sess.withConn("MOVE", sess.sel.name, func(c *upstream.Conn) error {
			switch quirks.MoveBy(c.Caps()) {
			case quirks.MoveCommand:
				md, err := c.Move(uids, dest).Wait()
				if err != nil {
					return err
				}
				src, ok1 := md.SourceUIDs.(imap.UIDSet)
				dst, ok2 := md.DestUIDs.(imap.UIDSet)
				if md.UIDValidity != 0 && ok1 && ok2 {
					data = &imap.CopyData{UIDValidity: md.UIDValidity, SourceUIDs: src, DestUIDs: dst}
				}
				return nil
			case quirks.MoveRefused:
				return errMoveUnsupported
			}
			cd, err := c.Copy(uids, dest).Wait()
			if err != nil {
				return err
			}
			store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
			if err := c.Store(uids, store, nil).Close(); err != nil {
				return err
			}
			if err := c.UIDExpunge(uids).Close(); err != nil {
				return err
			}
			if cd != nil && cd.UIDValidity != 0 {
				data = cd
			}
			return nil
		})
		if err != nil {
			sess.noteMissing("MOVE", dest, err)
			return err
		}
		if data != nil {
			if err := w.WriteCopyData(data); err != nil {
				return err
			}
		}
		sess.syncMailboxes(sess.sel.name, dest)
	}
	return nil
}

// resolveWhole resolves a COPY's or MOVE's set and lists the messages it
// names that were expunged elsewhere and not told to the session yet, in
// the sequence and the UID form alike: Dovecot then refuses the command
// whole (refuseExpunged).
func (sess *session) resolveWhole(numSet imap.NumSet) (imap.UIDSet, []imap.UID, error) {
	uids, expunged, err := sess.resolve(numSet)
	if _, byUID := numSet.(imap.UIDSet); err == nil && byUID && len(uids) > 0 {
		expunged = sess.sel.v.ExpungedIn(uids)
	}
	return uids, expunged, err
}

// refuseExpunged answers a COPY or MOVE that names a message expunged
// elsewhere as Dovecot does: nothing is copied (RFC 3501 6.4.7: an
// unsuccessful COPY leaves the destination as it was), the pending
// updates go out, then NO [EXPUNGEISSUED] (RFC 2180 4.4.1). imapserver
// polls only after OK, so the updates are told here.
func (sess *session) refuseExpunged() error {
	if err := sess.Poll(nil, true); err != nil {
		return err
	}
	return errExpungeIssued
}

// Expunge runs EXPUNGE (or UID EXPUNGE) upstream; the EXPUNGE responses
// come from the model in the Poll that imapserver runs next. For CLOSE,
// imapserver passes a writer that writes nothing, and unselects after.
func (sess *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sess.settle()
	if sess.sel == nil {
		return errNotSelected
	}
	if sess.sel.readOnly {
		if uids == nil {
			return nil // CLOSE after EXAMINE expunges nothing (RFC 3501 6.4.2)
		}
		return errReadOnly
	}
	var target imap.UIDSet
	if uids != nil {
		var ok bool
		if target, ok = sess.sel.v.ResolveUIDSet(*uids); !ok {
			return nil
		}
	}
	err := sess.inWriteSlot(sess.sel.name, func() error {
		return sess.withConn("EXPUNGE", sess.sel.name, func(c *upstream.Conn) error {
			if uids == nil {
				return c.Expunge().Close()
			}
			if !quirks.Has(c.Caps(), quirks.UIDExpunge) {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "UID EXPUNGE needs UIDPLUS on the upstream server"}
			}
			return c.UIDExpunge(target).Close()
		})
	})
	if err != nil {
		return err
	}
	sess.syncMailboxes(sess.sel.name)
	return nil
}
