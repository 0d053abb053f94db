package upstream

import (
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// wstate is the watcher's mirror of its own upstream session: the UID at
// each of that session's sequence numbers (0 while not yet fetched). Only
// that session's EXISTS and EXPUNGE move it; the model is keyed by UID.
type wstate struct {
	mirror    []imap.UID
	condstore bool
	modseq    uint64
}

// errMirror means the upstream's numbering no longer matches the mirror
// (an EXPUNGE out of range, EXISTS shrinking): reconnect and resync.
var errMirror = errors.New("upstream sequence numbers out of step; resyncing")

// open EXAMINEs the mailbox and brings the model in line with it: a new
// model the first time or after a UIDVALIDITY change, the net difference
// otherwise (RFC 3501 section 2.3.1.1: UIDs persist while UIDVALIDITY does).
func (w *Watcher) open(c *wconn) (*wstate, error) {
	st, _, err := w.openAs(c, true)
	return st, err
}

// openAs is open with the mailbox SELECTed read-write (readOnly false):
// a poll on a pool connection leaves it selected for the commands that
// follow (polled.go). It also returns the upstream's UIDVALIDITY.
func (w *Watcher) openAs(c *wconn, readOnly bool) (*wstate, uint32, error) {
	condstore := quirks.Has(c.Caps(), quirks.CondStore)
	opts := &imap.SelectOptions{ReadOnly: readOnly, CondStore: condstore}
	var sel *imap.SelectData
	var lst listing
	var listed bool
	var err error
	w.withModSeq = condstore // until the SELECT says the mailbox has none
	if w.box.Load() == nil {
		sel, lst, listed, err = w.selectListing(c, opts)
	} else {
		err = c.bounded(func() (err error) {
			sel, err = c.Select(w.name, opts).Wait()
			return err
		})
	}
	if err != nil {
		if ie, ok := IsProtocol(err); ok && !quirks.Transient(ie.Code) {
			w.acct.forgetSelected(w.name) // pool connections must not keep it selected either
			return nil, 0, &permanentError{fmt.Errorf("%w: EXAMINE %q: %w", ErrMailboxGone, w.name, err)}
		}
		return nil, 0, err
	}
	w.withModSeq = condstore && sel.HighestModSeq > 0
	box := w.box.Load()
	if !readOnly && w.current(box, sel) {
		return nil, sel.UIDValidity, nil
	}
	since := box != nil && box.UIDValidity() == sel.UIDValidity && condstore && w.modseq > 0 && sel.HighestModSeq > 0
	switch {
	case listed:
	case since:
		lst, err = w.listingSince(c, box, sel.NumMessages)
	default:
		lst, err = w.fetchListing(c, 1, sel.NumMessages)
	}
	if err != nil {
		return nil, 0, err
	}
	st := &wstate{mirror: lst.uids, condstore: condstore && sel.HighestModSeq > 0, modseq: sel.HighestModSeq}
	if slices.Contains(lst.uids, 0) {
		return nil, 0, errMirror
	}
	top, exact := lst.top()
	st.modseq = max(st.modseq, top)
	w.setModSeq(st.modseq)
	w.readInexact() // the listing holds every report before it
	w.exact = exact && st.condstore
	if box != nil && box.UIDValidity() == sel.UIDValidity {
		var rerr error
		n := box.Update(func(tx *fanout.Tx) {
			tx.SetMailboxFlags(sel.Flags, sel.PermanentFlags) // first: see process
			if rerr = tx.Resync(lst.uids, lst.flags); rerr == nil {
				tx.SetUIDNext(sel.UIDNext)
				setModSeqs(tx, lst)
				if !w.q.pending() { // else news after the reads: see process
					tx.SetHighestModSeq(st.modseq) // after what it covers
				}
			}
		})
		if rerr == nil {
			w.log.Info("mailbox resynced", zap.Int("changes", n), zap.Int("messages", len(lst.uids)), zap.Bool("changedsince", since))
			return st, sel.UIDValidity, nil
		}
		w.log.Warn("model inconsistent with upstream; rebuilding", zap.Error(rerr))
		box.Close(rerr)
	} else if box != nil {
		w.log.Warn("UIDVALIDITY changed upstream; closing sessions on this mailbox",
			zap.Uint32("old", box.UIDValidity()), zap.Uint32("new", sel.UIDValidity))
		box.Close(ErrUIDValidityChanged)
		w.acct.forgetSelected(w.name) // pool connections may have the old one selected
	}
	w.box.Store(fanout.NewMailbox(fanout.Snapshot{
		UIDValidity:    sel.UIDValidity,
		UIDNext:        sel.UIDNext,
		Flags:          sel.Flags,
		PermanentFlags: sel.PermanentFlags,
		UIDs:           lst.uids,
		MsgFlags:       lst.flags,
		ModSeqs:        lst.modseqs,
		FirstRecent:    w.acct.firstRecent(w.name, sel.UIDValidity, lst.firstRecent),
		HighestModSeq:  st.modseq,
	}, w.acct.m.opts.MaxLag))
	return st, sel.UIDValidity, nil
}

// current says whether a SELECT shows the model up to date: the same
// UIDVALIDITY, message count and HIGHESTMODSEQ (RFC 7162 3.1.2.1: every
// change to a message raises HIGHESTMODSEQ). A poll (openAs read-write,
// polled.go) stops there: its caller needs no mirror of the session.
func (w *Watcher) current(box *fanout.Mailbox, sel *imap.SelectData) bool {
	return box != nil && w.modseq > 0 && sel.HighestModSeq == w.modseq &&
		sel.UIDValidity == box.UIDValidity() && int(sel.NumMessages) == box.Len()
}

// listingChunk bounds one FETCH of a listing: a large mailbox is read in
// several commands, each within the response timeout, rather than one that
// a slow link could not finish in time.
var listingChunk uint32 = 5000

// fetchListing reads UID and FLAGS of sequence numbers from..to, and
// MODSEQ when w.withModSeq (the mailbox has mod-sequences, RFC 7162 3.1.4). A
// FETCH response without a UID (an unsolicited flag update routed to this
// command) is skipped and marks the flags dirty.
func (w *Watcher) fetchListing(c *wconn, from, to uint32) (listing, error) {
	var lst listing
	if to < from || to == 0 {
		return lst, nil
	}
	n := int(to - from + 1)
	lst.uids = make([]imap.UID, n)
	lst.flags = make([][]imap.Flag, n)
	if w.withModSeq {
		lst.modseqs = make([]uint64, n)
	}
	for lo := from; lo <= to; lo += listingChunk {
		hi := min(to, lo+listingChunk-1)
		err := c.bounded(func() error {
			cmd := c.Fetch(imap.SeqSet{{Start: lo, Stop: hi}}, &imap.FetchOptions{UID: true, Flags: true, ModSeq: w.withModSeq})
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				buf, err := msg.Collect()
				if err != nil {
					cmd.Close()
					return err
				}
				i := int(buf.SeqNum) - int(from)
				if buf.UID == 0 || i < 0 || i >= n {
					w.q.markDirty()
					continue
				}
				lst.uids[i] = buf.UID
				lst.noteRecent(buf.UID, buf.Flags)
				lst.flags[i] = StripRecent(buf.Flags)
				lst.noteModSeq(i, buf.ModSeq)
			}
			return cmd.Close()
		})
		if err != nil {
			return lst, err
		}
		if hi == to {
			break
		}
	}
	return lst, nil
}

// listingSince rebuilds the listing after a reconnect from what changed
// while idlemux was away (RFC 7162 section 3.1.4.1): UID SEARCH ALL names
// the messages (vanished ones are those missing), CHANGEDSINCE the
// last MODSEQ the model had gives the flags that changed, new messages
// included; the rest keep the model's flags. Far less than re-reading
// every message's flags. If the count moved meanwhile, it reads it all.
func (w *Watcher) listingSince(c *wconn, box *fanout.Mailbox, count uint32) (listing, error) {
	var uids []imap.UID
	err := c.bounded(func() error {
		data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err == nil {
			uids = data.AllUIDs()
		}
		return err
	})
	if err != nil {
		return listing{}, err
	}
	if len(uids) != int(count) {
		return w.fetchListing(c, 1, count)
	}
	st := &wstate{modseq: w.modseq}
	changed, err := w.fetchChanged(c, st)
	if err != nil {
		return listing{}, err
	}
	byUID := make(map[imap.UID][]imap.Flag, len(changed.uids))
	for i, u := range changed.uids {
		byUID[u] = changed.flags[i]
	}
	// Every message's MODSEQ is at most the CHANGEDSINCE read's highest
	// (w.modseq now) or it would have been in it: the listing is exact,
	// with 0 for the unchanged (the model keeps its own).
	lst := listing{uids: uids, flags: make([][]imap.Flag, len(uids)), modseqs: make([]uint64, len(uids)), bound: w.modseq}
	modseqOf := make(map[imap.UID]uint64, len(changed.uids))
	for i, u := range changed.uids {
		modseqOf[u] = changed.modseqs[i]
	}
	for i, u := range uids {
		lst.modseqs[i] = modseqOf[u]
		if f, ok := byUID[u]; ok {
			lst.flags[i] = f
		} else if f, ok := box.Flags(u); ok {
			lst.flags[i] = f
		}
	}
	return lst, nil
}

// process applies what the upstream reported since the last round: queued
// EXISTS/EXPUNGE through the mirror, new messages' UIDs, changed flags; then
// releases the sessions waiting in Sync.
func (w *Watcher) process(c *wconn, st *wstate) (err error) {
	syncs := w.takeSyncs()
	defer func() {
		if err != nil {
			// The next connection's resync (and NOOP) answers them.
			w.requeueSyncs(syncs)
		}
	}()
	noop := w.q.takeNoop() || len(syncs) > 0
	gen := w.acct.Generation() // every change through idlemux so far is in the NOOP's answer
	if noop {
		if err := c.bounded(func() error { return c.Noop().Wait() }); err != nil {
			return fmt.Errorf("NOOP: %w", err)
		}
	}
	evs, dirty, heard := w.q.takeNews()
	if w.q.overflowed() {
		return errMirror
	}

	var expunged []imap.UID
	mboxChanged := false
	for _, ev := range evs {
		switch ev.kind {
		case evExists:
			if int(ev.n) < len(st.mirror) {
				return errMirror
			}
			for len(st.mirror) < int(ev.n) {
				st.mirror = append(st.mirror, 0)
			}
		case evExpunge:
			i := int(ev.n) - 1
			if i < 0 || i >= len(st.mirror) {
				return errMirror
			}
			if uid := st.mirror[i]; uid != 0 {
				expunged = append(expunged, uid)
				delete(w.posted, uid) // no report of it can come after
			}
			st.mirror = slices.Delete(st.mirror, i, i+1)
		case evMailbox:
			mboxChanged = true
		}
	}

	// New messages are a suffix of the mirror: fetch their UIDs by number.
	var added listing
	if p := slices.Index(st.mirror, 0); p >= 0 {
		var err error
		added, err = w.fetchListing(c, uint32(p+1), uint32(len(st.mirror)))
		if err != nil {
			return err
		}
		copy(st.mirror[p:], added.uids)
		w.readNew(added)
		if slices.Contains(st.mirror, 0) {
			return errMirror
		}
	}

	gone := w.settleAppended(st.mirror, noop)

	var full listing
	var changed listing
	refreshFlags := dirty || noop
	switch {
	case refreshFlags && !st.condstore:
		var err error
		if full, err = w.fetchListing(c, 1, uint32(len(st.mirror))); err != nil {
			return err
		}
		if !slices.Equal(full.uids, st.mirror) {
			return errMirror
		}
	case refreshFlags:
		var err error
		if changed, err = w.fetchChanged(c, st); err != nil {
			return err
		}
	}

	// HIGHESTMODSEQ is published only when it bounds nothing the model
	// lacks: a FETCH by sequence number (the new messages' listing) lets
	// the server sync this session's view and hold an EXPUNGE back to the
	// next command (RFC 3501 7.4.1, quirks.ExpungeHeldAfterFetch), and
	// news that came in after takeNews waits for the next round, while
	// CHANGEDSINCE's highest MODSEQ may already count them. The model then
	// keeps its lower value until a round with neither.
	publish := len(added.uids) == 0 && full.uids == nil && !w.q.pending()
	var uerr error
	box := w.box.Load()
	box.Update(func(tx *fanout.Tx) {
		tx.HeardAt(heard)
		// The mailbox's FLAGS first: sessions are told a new keyword
		// before any FETCH that shows it (RFC 3501 7.2.6), and a FLAGS
		// change ahead of the expunges is never held back with them.
		if mboxChanged {
			if mb := c.Mailbox(); mb != nil {
				tx.SetMailboxFlags(mb.Flags, mb.PermanentFlags)
			}
		}
		for _, uid := range expunged {
			tx.Expunge(uid)
		}
		for _, uid := range gone {
			tx.Expunge(uid) // added from its APPEND, gone before this session saw it
		}
		for i, uid := range added.uids {
			if err := tx.Add(uid, added.flags[i]); err != nil {
				uerr = err
			}
		}
		setModSeqs(tx, added)
		if full.uids != nil || (refreshFlags && !st.condstore && len(st.mirror) == 0) {
			if err := tx.Resync(full.uids, full.flags); err != nil {
				uerr = err
			}
		}
		applyChanged(tx, changed)
		// Published with the changes it bounds, not before them
		// (fetchChanged reads it first): a session never reports a
		// HIGHESTMODSEQ above a change it could not be told yet.
		if publish {
			tx.SetHighestModSeq(w.modseq)
		}
	})
	if ce := w.log.Check(zap.DebugLevel, "upstream changes applied"); ce != nil {
		ce.Write(zap.Int("events", len(evs)), zap.Int("expunged", len(expunged)), zap.Int("added", len(added.uids)),
			zap.Int("flags_changed", len(changed.uids)), zap.Bool("full_resync", full.uids != nil), zap.Int("syncs", len(syncs)))
	}
	if noop {
		w.synced.Store(gen)
	}
	for _, ch := range syncs {
		close(ch)
	}
	syncs = nil     // answered: a later failure must not requeue them
	w.retryParked() // the round may have read what they waited for
	// A busy mailbox may never let the loop wait: the parked posts' age
	// limit and the unconfirmed appends' NOOP are checked here too.
	if w.appendDue() {
		w.q.requestNoop()
	}
	if uerr != nil {
		return fmt.Errorf("applying upstream changes: %w", uerr)
	}
	// After a FETCH, a NOOP collects an EXPUNGE the server held back
	// (quirks.ExpungeHeldAfterFetch); the events it brings are processed
	// in the next round.
	if quirks.ExpungeHeldAfterFetch && (len(added.uids) > 0 || full.uids != nil || refreshFlags) {
		if err := c.bounded(func() error { return c.Noop().Wait() }); err != nil {
			return fmt.Errorf("NOOP: %w", err)
		}
	}
	return nil
}

// fetchChanged reads the flags changed since the last known MODSEQ
// (RFC 7162 section 3.1.4.1, CHANGEDSINCE), by UID.
func (w *Watcher) fetchChanged(c *wconn, st *wstate) (listing, error) {
	var lst listing
	top := st.modseq
	err := c.bounded(func() error {
		cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, ModSeq: true, ChangedSince: st.modseq,
		})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			buf, err := msg.Collect()
			if err != nil {
				cmd.Close()
				return err
			}
			if buf.UID == 0 {
				continue
			}
			lst.uids = append(lst.uids, buf.UID)
			lst.flags = append(lst.flags, StripRecent(buf.Flags))
			lst.modseqs = append(lst.modseqs, buf.ModSeq)
			top = max(top, buf.ModSeq)
		}
		return cmd.Close()
	})
	if err == nil {
		st.modseq = top
		w.setModSeq(max(w.modseq, top))
		w.readExact()
	}
	return lst, err
}

// setModSeqs records in the model the MODSEQ of each message of lst that
// has one (RFC 7162 3.1.4), after the flags it came with.
// applyChanged puts a FETCH CHANGEDSINCE read's flags and MODSEQs into
// the model (RFC 7162 3.1.4.1). A message whose read MODSEQ is below the
// model's is skipped: a state posted since (flagpost.go) is newer than
// the read, and applying the read's flags would pair them with the
// post's MODSEQ (SetModSeq never lowers one, RFC 7162 3.1.1).
func applyChanged(tx *fanout.Tx, lst listing) {
	for i, uid := range lst.uids {
		if i < len(lst.modseqs) && lst.modseqs[i] < tx.ModSeq(uid) {
			continue
		}
		tx.SetFlags(uid, lst.flags[i])
	}
	setModSeqs(tx, lst)
}

func setModSeqs(tx *fanout.Tx, lst listing) {
	for i, ms := range lst.modseqs {
		if i < len(lst.uids) {
			tx.SetModSeq(lst.uids[i], ms)
		}
	}
}

// StripRecent drops \Recent: it belongs to one upstream session (RFC 3501
// 2.3.2), and no idlemux client owns the upstream session that saw it
// first. idlemux decides recency itself (fanout/recent.go).
func StripRecent(flags []imap.Flag) []imap.Flag {
	if !slices.Contains(flags, "\\Recent") {
		return flags
	}
	return slices.DeleteFunc(slices.Clone(flags), func(f imap.Flag) bool { return f == "\\Recent" })
}
