package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream"
)

// clientGone wraps a failed downstream write: the client is the problem,
// the upstream connection is fine and goes back to the pool.
type clientGone struct{ err error }

func (e *clientGone) Error() string { return "writing to client: " + e.err.Error() }
func (e *clientGone) Unwrap() error { return e.err }

// Fetch relays the FETCH as the upstream answers it (fetchrelay.go): the
// client's own items go upstream as UID FETCH of the messages its numbers
// name, and every response comes back byte for byte, renumbered in the
// session's view. The upstream side writes the answer into a bounded
// spool (fetchspool.go) and gives the connection back as soon as the
// upstream FETCH completes; a second goroutine writes the spool to the
// client at the client's pace, so a client that does not read holds
// disk, not an upstream connection. Bodies are never held whole.
//
// A message the session still sees but the upstream no longer has
// (expunged elsewhere, not yet reported: RFC 2180 4.1) gets no response,
// and the command OK [EXPUNGEISSUED], Dovecot's code for it; a body the
// upstream itself answers NIL is relayed as NIL, with the upstream's code.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	sess.settle()
	sess.noExpunge = true
	defer sess.unholdOnError(&err)
	uids, expunged, err := sess.resolve(numSet)
	if err != nil {
		return err
	}
	_, isUID := numSet.(imap.UIDSet)
	req, atts, list, err := sess.fetchRequest(options, isUID)
	if err != nil {
		return err
	}
	condstore, filtered := sess.fetchCondstore(req) // the model answers only FLAGS, UID and MODSEQ (condstore_fetchlocal.go)
	vanished := sess.fetchVanished()                // qresync_fetch.go
	if len(uids) == 0 && !vanished {
		if len(expunged) > 0 {
			return errExpungedOK
		}
		return nil
	}
	// A new keyword the model knows is announced before a FETCH that
	// may show it, as Dovecot does at the start of FETCH (RFC 3501 7.2.6);
	// one the upstream shows first, by the relay (fetchflags.go).
	if err := sess.tellMailboxFlags(); err != nil {
		return err
	}
	rl := &fetchRelay{req: req, uids: uids, seqOf: sess.sel.v.UIDToSeq,
		isRecent: sess.sel.v.IsRecent, announce: sess.flagAnnouncer(sess.sel),
		setsSeen: !sess.sel.readOnly && setsSeen(options)}
	if rl.setsSeen {
		rl.shown = make(map[imap.UID][]byte)
	}
	rl.keepModSeq = condstore
	seenBefore := sess.seenModSeqsBefore(uids, rl.setsSeen)
	if vanished {
		// A UID the view still holds is told later as "* VANISHED uid"
		// (RFC 7162 3.2.10); told now too, the client would count it out
		// twice (qresync_vanished.go).
		rl.vanished, rl.set, rl.members = true, numSet.String(), sess.sel.v.Members
	}
	if kind, needFlags := classifyFetch(atts, list, sess.sel.readOnly); kind != kindUpstream && !condstore {
		if done, err := sess.fetchLocal(rl, atts, kind, needFlags, expunged); done {
			return err
		}
	} else if condstore && !vanished { // VANISHED (EARLIER) is the upstream's
		if done, err := sess.fetchModSeqLocal(rl, atts, expunged); done {
			return err
		}
	}
	err = sess.relayFetch(rl)
	sess.noteModSeqSent(rl.maxModSeq) // condstore_syncpoint.go
	if err != nil {
		return err
	}
	if rl.setsSeen && rl.wrote {
		sess.seenBy(rl.shown)
		if err := sess.tellSeenModSeqs(rl.shown, seenBefore); err != nil {
			return err
		}
	}
	if rl.status != nil {
		if ie, _ := upstream.IsProtocol(rl.status); ie != nil && ie.Code == "EXPUNGEISSUED" {
			sess.syncMailboxes(sess.sel.name) // so the next command reports the EXPUNGE
		}
		return rl.status
	}
	if !filtered && sess.missing(numSet, uids, rl.answered) {
		// The upstream no longer has them: the watcher is brought up to
		// date, so the next command reports the EXPUNGE, as Dovecot's would.
		sess.syncMailboxes(sess.sel.name)
		return errExpungedOK
	}
	return nil
}

// seenBy brings the \Seen a FETCH just set (RFC 3501 6.4.5) into the
// model before the command ends, as STORE brings its change: the next
// FETCH FLAGS answered from the model (fetchlocal.go) shows it. The
// FLAGS the FETCH's own responses wrote (shown, by UID) count as
// reported, so the Poll after it does not repeat them (Dovecot does
// not); a change the sync brings beyond them (another client's, made
// meanwhile) differs from them and is still told.
func (sess *session) seenBy(shown map[imap.UID][]byte) {
	sess.syncMailboxes(sess.sel.name)
	if len(shown) == 0 {
		return
	}
	if sess.reported == nil {
		sess.reported = make(map[imap.UID][]imap.Flag, len(shown))
	}
	for uid, list := range shown {
		sess.reported[uid] = parseFlagList(list)
	}
}

// parseFlagList reads a FLAGS list as the relay wrote it, "(" flags ")"
// with single spaces (RFC 3501 7.4.2 flag-fetch).
func parseFlagList(list []byte) []imap.Flag {
	list = bytes.TrimSuffix(bytes.TrimPrefix(list, []byte("(")), []byte(")"))
	var flags []imap.Flag
	for f := range bytes.FieldsSeq(list) {
		flags = append(flags, imap.Flag(f))
	}
	return flags
}

// errExpungedOK is Dovecot's answer to a FETCH naming messages expunged
// elsewhere that the session has not been told of (RFC 2180 4.1.3, RFC
// 5530 EXPUNGEISSUED): OK, with the code.
var errExpungedOK = &imap.Error{Type: imap.StatusResponseTypeOK, Code: "EXPUNGEISSUED", Text: "Some messages were already expunged"}

// missing reports whether fewer than every message of the view the
// command names got a response. UID ranges answered in full need no look
// at the view.
func (sess *session) missing(numSet imap.NumSet, uids imap.UIDSet, answered int) bool {
	n := 0
	if set, ok := numSet.(imap.SeqSet); ok {
		for _, r := range clipSeqSet(set, sess.sel.v.Count()) {
			n += int(r.Stop-r.Start) + 1
		}
		return answered < n
	}
	for _, r := range uids { // resolved: no "*" left
		n += int(max(r.Start, r.Stop)-min(r.Start, r.Stop)) + 1
	}
	return answered < n && answered < len(sess.sel.v.Members(uids))
}

// relayFetch runs the relay on a pool connection, the spool between it
// and the client.
func (sess *session) relayFetch(rl *fetchRelay) error {
	sp := newFetchSpool()
	drained := make(chan error, 1)
	go func() { drained <- sess.drainFetch(sp) }()
	set := rl.uids.String()
	if rl.set != "" {
		set = rl.set
	}
	cmd := "UID FETCH " + set + " " + rl.req.items
	var names imap.UID // the client's own set (rl.set) may name any UID
	if rl.set == "" {
		names = maxUIDOf(rl.uids)
	}
	var whole bool
	defer rl.endFlight()
	err := sess.withConnNaming("FETCH", sess.sel.name, names, func(c *upstream.Conn) error {
		sp.guard = sess.guard
		if rl.setsSeen {
			c.Wrote() // other connections' views sync first (upstream/writes.go)
		}
		rl.reset() // a retry: nothing of the first attempt went out
		rl.sink, rl.touch = spoolSink{sp: sp, touch: sess.guard.Touch}, sess.guard.Touch
		if rl.vanished {
			if err := c.EnableQResync(); err != nil {
				return err
			}
		}
		err := c.Raw(cmd, func(r upstream.RawReader) error { return rl.run(r.Reader, r.Tag) })
		if _, proto := upstream.IsProtocol(err); proto || err == nil {
			rl.status, err, whole = poolStatus(err), nil, true
		} else {
			whole = rl.salvage()
		}
		sess.wrote = rl.wrote // a retry would repeat what went out
		return err
	})
	rl.endFlight() // the cache holds what it could keep: others may look
	if whole || err == nil {
		sp.finish(nil)
	} else {
		sp.finish(err)
	}
	derr := <-drained
	sp.free()
	if derr != nil || !whole {
		// The client broke off, or a response could not be finished:
		// its connection cannot be resynchronised.
		sess.conn.NetConn().Close()
		if derr == nil {
			derr = err
		}
		return derr
	}
	return err
}

// fetchRequest derives what to ask upstream from the client's own FETCH
// items, which the command reader kept (RFC 3501 6.4.5): imapserver's
// parsed options lose their names and order.
func (sess *session) fetchRequest(options *imap.FetchOptions, isUID bool) (*fetchRequest, []fetchAtt, bool, error) {
	var text []byte
	if cc := sess.reader(); cc != nil {
		text = cc.command()
	}
	items, err := fetchItemsOf(text)
	var atts []fetchAtt
	list := false
	if err == nil {
		atts, list, err = parseFetchItems(items)
	}
	if err != nil {
		// imapserver took the command, so its items are valid: this is
		// ours to fix.
		sess.log.Error("FETCH items not understood", zap.ByteString("command", clip(text)), zap.Error(err))
		return nil, nil, false, sess.fail("FETCH", err)
	}
	var modseq bool
	if cc := sess.reader(); cc != nil {
		_, _, modseq = cc.fetchCondstoreOf()
	}
	return newFetchRequestModSeq(atts, list, isUID, sess.sel.readOnly, modseq), atts, list, nil
}

// spoolSink puts the relay's output into the spool.
type spoolSink struct {
	sp    *fetchSpool
	touch func()
}

func (s spoolSink) text(b []byte) error {
	if err := s.sp.put(spoolRec{kind: recItem, lit: true, size: int64(len(b))}); err != nil {
		return err
	}
	return s.sp.copyLiteralIn(bytes.NewReader(b), int64(len(b)))
}

func (s spoolSink) literal(r io.Reader, n int64) error {
	if err := s.sp.put(spoolRec{kind: recItem, lit: true, size: n}); err != nil {
		return err
	}
	return s.sp.copyLiteralIn(touchReader{r, s.touch}, n)
}

// drainFetch writes the spooled answer to the client at the client's
// pace, straight to the transport: imapserver flushed everything before
// it called Fetch, and writes the tagged answer only after Fetch returns.
// writeMu keeps a BYE from landing inside a response. Each write is
// bounded; on failure the spool stops, so the upstream side stops too.
func (sess *session) drainFetch(sp *fetchSpool) (err error) {
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	w := deadlineWriter{c: transportOf(sess.conn.NetConn()), d: localWriteTimeout}
	for {
		r, ok := sp.next()
		if !ok {
			return nil
		}
		if err := sp.writeLiteralTo(w, r.size); err != nil {
			err = &clientGone{err}
			sp.abort(err) // the upstream side stops with it
			return err
		}
	}
}

// deadlineWriter bounds each write to a client.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.d))
	n, err := w.c.Write(p)
	w.c.SetWriteDeadline(time.Time{})
	return n, err
}

// copyBufs holds the buffers bodies are copied through. The guard's
// wrappers hide the ReaderFrom/WriterTo that would let io.Copy skip its
// buffer, so without a pool every body would allocate its own 32 KiB: a
// FETCH of 1,000 bodies made 32 MiB of garbage and spent a fifth of its CPU
// allocating and collecting it.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBuffered is io.Copy through a pooled buffer. Both ends are wrapped
// so that an *os.File (the spool) cannot take over with its ReadFrom or
// WriteTo, which fall back to io.Copy's own allocation for these peers.
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

// touchReader reports progress on every read, so a long body that keeps
// moving never trips the command's guard.
type touchReader struct {
	r     io.Reader
	touch func()
}

func (t touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.touch()
	}
	return n, err
}
