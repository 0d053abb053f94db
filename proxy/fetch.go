package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/idlemux/idlemux/upstream"
)

// clientGone wraps a failed downstream write: the client is the problem,
// the upstream connection is fine and goes back to the pool.
type clientGone struct{ err error }

func (e *clientGone) Error() string { return "writing to client: " + e.err.Error() }
func (e *clientGone) Unwrap() error { return e.err }

// Fetch runs the FETCH upstream by UID and relays each message as it
// arrives, renumbered in the session's view. Bodies are copied literal to
// literal, never held whole in memory.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	sess.settle()
	sess.noExpunge = true
	defer sess.unholdOnError(&err)
	uids, expunged, err := sess.resolve(numSet)
	if err != nil {
		return err
	}
	if len(uids) > 0 {
		up := upstreamFetchOptions(options, sess.sel.readOnly)
		err = sess.withConn("FETCH", sess.sel.name, func(c *upstream.Conn) error {
			cmd := c.Fetch(uids, up)
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				sess.guard.Touch()
				if err := sess.relayMessage(w, msg, options); err != nil {
					cmd.Close()
					return err
				}
			}
			return cmd.Close()
		})
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

// relayMessage writes one upstream FETCH response as the client's.
func (sess *session) relayMessage(w *imapserver.FetchWriter, msg *imapclient.FetchMessageData, options *imap.FetchOptions) error {
	var (
		resp *imapserver.FetchResponseWriter
		held []heldItem
		mw   = messageWriter{options: options, guard: sess.guard}
	)
	defer func() {
		// The writer holds the connection's write lock until closed, even
		// when the message could not be finished.
		if resp != nil {
			resp.Close()
		}
		for _, h := range held {
			if h.file != nil {
				h.file.Close()
				os.Remove(h.file.Name())
			}
		}
	}()
	for item := msg.Next(); item != nil; item = msg.Next() {
		if resp != nil {
			if err := mw.write(resp, item, nil); err != nil {
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
			resp = w.CreateMessage(seq)
			sess.wrote = true
			if options.UID {
				resp.WriteUID(u.UID)
			}
			for _, h := range held {
				if err := mw.write(resp, h.item, &h); err != nil {
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
	if resp == nil {
		return nil // an unsolicited update routed to this command: no UID
	}
	if sess.guard != nil {
		sess.guard.Pause() // flushing to a slow client is not upstream silence
	}
	err := resp.Close()
	resp = nil
	if sess.guard != nil {
		sess.guard.Touch()
	}
	if err != nil {
		return &clientGone{err}
	}
	return nil
}

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

// messageWriter writes one message's items, matching each returned section
// to the pointer the client's command holds (imapserver names RFC822.*
// items by pointer).
type messageWriter struct {
	options    *imap.FetchOptions
	guard      *upstream.Guard // progress for the command's guard; may be nil
	usedBody   []bool
	usedBinary []bool
	wroteBS    bool
}

func (mw *messageWriter) write(resp *imapserver.FetchResponseWriter, item imapclient.FetchItemData, h *heldItem) error {
	o := mw.options
	switch it := item.(type) {
	case imapclient.FetchItemDataFlags:
		resp.WriteFlags(upstream.StripRecent(it.Flags))
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
			return nil // not asked for: msg.Next discards it
		}
		return copyLiteral(resp.WriteBodySection(target, literalSize(it.Literal, h)), it.Literal, h, mw.guard)
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
			return nil
		}
		return copyLiteral(resp.WriteBinarySection(target, literalSize(it.Literal, h)), it.Literal, h, mw.guard)
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

func literalSize(lit imap.LiteralReader, h *heldItem) int64 {
	if h != nil && h.file != nil {
		return h.size
	}
	if lit == nil {
		return 0
	}
	return lit.Size()
}

// copyLiteral streams a body from the upstream literal (or its spool file)
// into the client's literal.
func copyLiteral(wc io.WriteCloser, lit imap.LiteralReader, h *heldItem, g *upstream.Guard) error {
	var src io.Reader = lit
	if h != nil && h.file != nil {
		src = h.file
	}
	var dst io.Writer = wc
	if g != nil && src != nil {
		src = touchReader{src, g.Touch}
		dst = pausingWriter{wc, g}
	}
	if src != nil {
		if _, err := copyBuffered(dst, src); err != nil {
			var ce *clientGone
			if errors.As(err, &ce) {
				return err
			}
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

// pausingWriter stops the guard while a write to the client blocks: a
// slow client is not a silent upstream.
type pausingWriter struct {
	w io.Writer
	g *upstream.Guard
}

func (p pausingWriter) Write(b []byte) (int, error) {
	p.g.Pause()
	defer p.g.Touch()
	return p.w.Write(b)
}
