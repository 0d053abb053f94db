package proxy

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream"
)

// clientGone wraps a failed downstream write: the client is the problem,
// the upstream connection is fine and goes back to the pool.
type clientGone struct{ err error }

func (e *clientGone) Error() string { return "writing to client: " + e.err.Error() }
func (e *clientGone) Unwrap() error { return e.err }

// Fetch runs the FETCH upstream by UID and relays each message, renumbered
// in the session's view. The upstream side writes the answer into a
// bounded spool (fetchspool.go) and gives the connection back as soon as
// the upstream FETCH completes; a second goroutine writes the spool to the
// client at the client's pace, so a client that does not read holds disk,
// not an upstream connection. Bodies are never held whole in memory.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	sess.settle()
	sess.noExpunge = true
	defer sess.unholdOnError(&err)
	uids, expunged, err := sess.resolve(numSet)
	if err != nil {
		return err
	}
	// A new keyword the model knows is announced before a FETCH that
	// may show it, as Dovecot does at the start of FETCH (RFC 3501 7.2.6).
	if err := sess.tellMailboxFlags(); err != nil {
		return err
	}
	if len(uids) > 0 {
		up := upstreamFetchOptions(options, sess.sel.readOnly)
		sp := newFetchSpool()
		drained := make(chan error, 1)
		go func() { drained <- sess.drain(w, sp, options) }()
		err = sess.withConn("FETCH", sess.sel.name, func(c *upstream.Conn) error {
			sp.guard = sess.guard
			if setsSeen(up) {
				c.Wrote()
			}
			cmd := c.Fetch(uids, up)
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				sess.guard.Touch()
				if err := sess.spoolMessage(sp, msg); err != nil {
					cmd.Close()
					return err
				}
			}
			return cmd.Close()
		})
		sp.finish(err)
		derr := <-drained
		sp.free()
		if derr != nil {
			// The client broke off, or a literal could not be finished:
			// its connection cannot be resynchronised.
			sess.conn.NetConn().Close()
			return derr
		}
		if err != nil {
			return err
		}
	}
	if len(expunged) > 0 {
		return errExpungeIssued
	}
	return nil
}

// upstreamFetchOptions asks upstream for what the client asked, plus the
// UID that renumbering needs. Under EXAMINE, bodies are fetched with PEEK so
// the client's read-only view never sets \Seen (RFC 3501 6.3.2).
func upstreamFetchOptions(o *imap.FetchOptions, readOnly bool) *imap.FetchOptions {
	up := *o
	up.UID = true
	up.ModSeq = false
	up.ChangedSince = 0
	if readOnly {
		up.BodySection = make([]*imap.FetchItemBodySection, len(o.BodySection))
		for i, s := range o.BodySection {
			c := *s
			c.Peek = true
			up.BodySection[i] = &c
		}
		up.BinarySection = make([]*imap.FetchItemBinarySection, len(o.BinarySection))
		for i, s := range o.BinarySection {
			c := *s
			c.Peek = true
			up.BinarySection[i] = &c
		}
	}
	return &up
}

// heldItem is an item that arrived before the message's UID: the FETCH
// response cannot start until the UID gives its sequence number. Literals
// are spooled to a temporary file so memory stays bounded.
type heldItem struct {
	item imapclient.FetchItemData
	file *os.File
	size int64
}

// spoolMessage writes one upstream FETCH response into the spool as the
// client's: a message record once the UID gives its sequence number, then
// its items, each literal's bytes after its record.
func (sess *session) spoolMessage(sp *fetchSpool, msg *imapclient.FetchMessageData) error {
	var (
		started bool
		held    []heldItem
	)
	defer func() {
		for _, h := range held {
			if h.file != nil {
				h.file.Close()
				os.Remove(h.file.Name())
			}
		}
	}()
	for item := msg.Next(); item != nil; item = msg.Next() {
		if started {
			if err := spoolItem(sp, item, nil, sess.guard); err != nil {
				return err
			}
			continue
		}
		if u, ok := item.(imapclient.FetchItemDataUID); ok {
			seq, known := sess.sel.v.UIDToSeq(u.UID)
			if !known {
				// Not announced to this session yet (or gone): skip it.
				for msg.Next() != nil {
				}
				return nil
			}
			if err := sp.put(spoolRec{kind: recMessage, seq: seq, uid: u.UID}); err != nil {
				return err
			}
			started, sess.wrote = true, true
			for i := range held {
				if err := spoolItem(sp, held[i].item, &held[i], sess.guard); err != nil {
					return err
				}
			}
			continue
		}
		h, err := hold(item, sess.guard)
		if err != nil {
			return err
		}
		held = append(held, h)
	}
	if !started {
		return nil // an unsolicited update routed to this command: no UID
	}
	return sp.put(spoolRec{kind: recEnd})
}

// spoolItem writes one item's record and, for a body section, its
// literal's bytes (from the upstream, or from h's file when it was held).
func spoolItem(sp *fetchSpool, item imapclient.FetchItemData, h *heldItem, g *upstream.Guard) error {
	var lit imap.LiteralReader
	switch it := item.(type) {
	case imapclient.FetchItemDataBodySection:
		lit, it.Literal = it.Literal, nil
		item = it
	case imapclient.FetchItemDataBinarySection:
		lit, it.Literal = it.Literal, nil
		item = it
	default:
		return sp.put(spoolRec{kind: recItem, item: item})
	}
	var src io.Reader
	var size int64
	switch {
	case h != nil && h.file != nil:
		src, size = h.file, h.size
	case lit != nil:
		src, size = lit, lit.Size()
		if g != nil {
			src = touchReader{lit, g.Touch}
		}
	}
	if err := sp.put(spoolRec{kind: recItem, item: item, lit: true, size: size}); err != nil {
		return err
	}
	if src == nil {
		return nil
	}
	return sp.copyLiteralIn(src, size)
}

// hold spools an item that came before its message's UID; its literal
// goes to a temporary file until the UID says where the message goes.
func hold(item imapclient.FetchItemData, g *upstream.Guard) (heldItem, error) {
	var lit imap.LiteralReader
	switch it := item.(type) {
	case imapclient.FetchItemDataBodySection:
		lit = it.Literal
	case imapclient.FetchItemDataBinarySection:
		lit = it.Literal
	}
	if lit == nil {
		return heldItem{item: item}, nil
	}
	f, err := os.CreateTemp("", "idlemux-spool-")
	if err != nil {
		return heldItem{}, fmt.Errorf("spooling literal: %w", err)
	}
	var src io.Reader = lit
	if g != nil {
		src = touchReader{lit, g.Touch}
	}
	n, err := copyBuffered(f, src)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return heldItem{}, fmt.Errorf("spooling literal: %w", err)
	}
	return heldItem{item: item, file: f, size: n}, nil
}

// drain writes the spooled answer to the client at the client's pace
// (imapserver bounds each write). It stops the spool on failure, so the
// upstream side stops too; a panic (a bug, or imapserver's) is contained.
func (sess *session) drain(w *imapserver.FetchWriter, sp *fetchSpool, options *imap.FetchOptions) (err error) {
	var (
		resp *imapserver.FetchResponseWriter
		mw   messageWriter
	)
	defer func() {
		if v := recover(); v != nil {
			sess.log.Error("panic while writing a FETCH answer", zap.Any("panic", v), zap.Stack("stack"))
			err, resp = &panicError{op: "FETCH", val: v}, nil
		}
		if resp != nil {
			// The writer holds the connection's write lock until closed,
			// even when the message could not be finished.
			if cerr := resp.Close(); cerr != nil && err == nil {
				err = &clientGone{cerr}
			}
		}
		if err != nil {
			sp.abort(err)
		}
	}()
	for {
		r, ok := sp.next()
		if !ok {
			return nil
		}
		switch r.kind {
		case recMessage:
			resp = w.CreateMessage(r.seq)
			if options.UID {
				resp.WriteUID(r.uid)
			}
			mw = messageWriter{options: options, recent: sess.sel.v.IsRecent(r.uid)}
		case recItem:
			var lit *spoolLiteral
			if r.lit {
				lit = &spoolLiteral{sp, r.size}
			}
			if err := mw.write(resp, r.item, lit, r.size); err != nil {
				return err
			}
		case recEnd:
			err := resp.Close()
			resp = nil
			if err != nil {
				return &clientGone{err}
			}
		}
	}
}

// messageWriter writes one message's items, matching each returned section
// to the pointer the client's command holds (imapserver names RFC822.*
// items by pointer).
type messageWriter struct {
	options    *imap.FetchOptions
	recent     bool // \Recent in this session (fanout/recent.go)
	usedBody   []bool
	usedBinary []bool
	wroteBS    bool
}

// write writes item; a body section's size bytes come from lit, and are
// read (and dropped) even when the client did not ask for the section.
func (mw *messageWriter) write(resp *imapserver.FetchResponseWriter, item imapclient.FetchItemData, lit *spoolLiteral, size int64) error {
	o := mw.options
	switch it := item.(type) {
	case imapclient.FetchItemDataFlags:
		resp.WriteFlags(sessionFlags(it.Flags, mw.recent))
	case imapclient.FetchItemDataEnvelope:
		if o.Envelope {
			resp.WriteEnvelope(it.Envelope)
		}
	case imapclient.FetchItemDataInternalDate:
		if o.InternalDate {
			resp.WriteInternalDate(it.Time)
		}
	case imapclient.FetchItemDataRFC822Size:
		if o.RFC822Size {
			resp.WriteRFC822Size(it.Size)
		}
	case imapclient.FetchItemDataBodyStructure:
		// imapserver writes BODY and/or BODYSTRUCTURE, as asked, from one
		// structure: write it once per message.
		if o.BodyStructure != nil && !mw.wroteBS {
			bs := it.BodyStructure
			if o.BodyStructure.Extended {
				bs = withExtended(bs)
			}
			resp.WriteBodyStructure(bs)
			mw.wroteBS = true
		}
	case imapclient.FetchItemDataBodySection:
		if mw.usedBody == nil {
			mw.usedBody = make([]bool, len(o.BodySection))
		}
		var target *imap.FetchItemBodySection
		for i, s := range o.BodySection {
			if !mw.usedBody[i] && it.MatchCommand(s) {
				target, mw.usedBody[i] = s, true
				break
			}
		}
		if target == nil {
			return skipLiteral(lit) // not asked for
		}
		return copyLiteral(resp.WriteBodySection(target, size), lit)
	case imapclient.FetchItemDataBinarySection:
		if mw.usedBinary == nil {
			mw.usedBinary = make([]bool, len(o.BinarySection))
		}
		var target *imap.FetchItemBinarySection
		for i, s := range o.BinarySection {
			if !mw.usedBinary[i] && it.MatchCommand(s) {
				target, mw.usedBinary[i] = s, true
				break
			}
		}
		if target == nil {
			return skipLiteral(lit)
		}
		return copyLiteral(resp.WriteBinarySection(target, size), lit)
	case imapclient.FetchItemDataBinarySectionSize:
		for _, s := range o.BinarySectionSize {
			if it.MatchCommand(s) {
				resp.WriteBinarySectionSize(s, it.Size)
				break
			}
		}
	}
	return nil
}

// spoolLiteral is the next literal's size bytes in the spool.
type spoolLiteral struct {
	sp   *fetchSpool
	size int64
}

// skipLiteral reads a literal nobody asked for out of the spool.
func skipLiteral(lit *spoolLiteral) error {
	if lit == nil {
		return nil
	}
	if err := lit.sp.writeLiteralTo(io.Discard, lit.size); err != nil {
		return &clientGone{err}
	}
	return nil
}

// copyLiteral streams a body from the spool into the client's literal. A
// literal that cannot be finished leaves the client's connection out of
// step: either way the client is gone.
func copyLiteral(wc io.WriteCloser, lit *spoolLiteral) error {
	if lit != nil {
		if err := lit.sp.writeLiteralTo(wc, lit.size); err != nil {
			wc.Close()
			return &clientGone{err}
		}
	}
	if err := wc.Close(); err != nil {
		return &clientGone{err}
	}
	return nil
}

// withExtended fills in empty extension data where the upstream sent none:
// imapserver panics when BODYSTRUCTURE was asked for and it is missing.
func withExtended(bs imap.BodyStructure) imap.BodyStructure {
	switch b := bs.(type) {
	case *imap.BodyStructureSinglePart:
		c := *b
		if c.Extended == nil {
			c.Extended = &imap.BodyStructureSinglePartExt{}
		}
		if c.MessageRFC822 != nil {
			m := *c.MessageRFC822
			if m.BodyStructure != nil {
				m.BodyStructure = withExtended(m.BodyStructure)
			}
			c.MessageRFC822 = &m
		}
		return &c
	case *imap.BodyStructureMultiPart:
		c := *b
		if c.Extended == nil {
			c.Extended = &imap.BodyStructureMultiPartExt{}
		}
		c.Children = make([]imap.BodyStructure, len(b.Children))
		for i, ch := range b.Children {
			c.Children[i] = withExtended(ch)
		}
		return &c
	}
	return bs
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

// setsSeen reports whether a FETCH sets \Seen: a body section without
// PEEK does (RFC 3501 6.4.5), and so do RFC822 and RFC822.TEXT, which
// imapserver turns into such sections.
func setsSeen(o *imap.FetchOptions) bool {
	for _, s := range o.BodySection {
		if !s.Peek {
			return true
		}
	}
	for _, s := range o.BinarySection {
		if !s.Peek {
			return true
		}
	}
	return false
}
