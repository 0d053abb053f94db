package upstream

import (
	"bufio"
	"bytes"
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// QRESYNC (RFC 7162 3.2) on a command connection, for the raw commands
// that need it: a client's SELECT with QRESYNC parameters and its UID
// FETCH with the VANISHED modifier, which Dovecot refuses on a
// connection that has not enabled it. Enabling it is safe under
// imapclient: the VANISHED responses that then replace EXPUNGE on this
// connection are dropped by the response reader (resphead.go knownTypes),
// and nothing here counts a pool connection's messages; MODSEQ in its
// FETCH responses imapclient parses. The watcher never enables it.

// maxEnableAnswer bounds the bytes of the answer to ENABLE QRESYNC
// (unsolicited updates included) that are read and dropped.
const maxEnableAnswer = 16 << 20

// EnableQResync enables QRESYNC on the connection, once: the connection
// keeps it for its life (RFC 5161 3.1). The caller bounds the exchange
// (a Guard), as for any raw command.
func (c *Conn) EnableQResync() error {
	if c.qresync {
		return nil
	}
	err := c.Raw("ENABLE QRESYNC", func(r RawReader) error {
		return skipToTagged(r.Reader, r.Tag, maxEnableAnswer)
	})
	if err == nil {
		c.qresync = true
	}
	return err
}

// skipToTagged reads and drops responses, literals included (RFC 3501
// 4.3), through the one tagged tag, at most limit bytes; it returns that
// response's status: nil for OK, an *imap.Error for NO or BAD.
func skipToTagged(br *bufio.Reader, tag string, limit int) error {
	read := 0
	tail := make([]byte, 0, tailLen)
	start := true
	for {
		chunk, err := br.ReadSlice('\n')
		read += len(chunk)
		if read > limit {
			return framingErr("upstream answer to a raw command longer than %d bytes", limit)
		}
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if start && bytes.HasPrefix(chunk, []byte(tag+" ")) {
			if err == bufio.ErrBufferFull {
				return framingErr("upstream tagged answer longer than %d bytes", br.Size())
			}
			return statusOf(bytes.TrimRight(chunk[len(tag)+1:], "\r\n"))
		}
		tail = append(tail, chunk...)
		if len(tail) > tailLen {
			tail = append(tail[:0], tail[len(tail)-tailLen:]...)
		}
		if start = err == nil; !start {
			continue
		}
		lit, _, ok := imapframe.LiteralMarker(bytes.TrimRight(tail, "\r\n"))
		tail = tail[:0]
		if !ok {
			continue
		}
		if !lit.Valid || lit.Size > uint64(limit-read) {
			return framingErr("upstream announced a literal over the raw answer's limit")
		}
		n, err := br.Discard(int(lit.Size))
		read += n
		if err != nil {
			return io.ErrUnexpectedEOF
		}
		start = false // the line goes on after the literal
	}
}

// statusOf turns a tagged answer's "OK|NO|BAD [code] text" into nil for
// OK, else the upstream's *imap.Error, which leaves the connection usable.
func statusOf(s []byte) error {
	word, rest, _ := bytes.Cut(s, []byte(" "))
	typ := imap.StatusResponseType(bytes.ToUpper(word))
	switch typ {
	case imap.StatusResponseTypeOK:
		return nil
	case imap.StatusResponseTypeNo, imap.StatusResponseTypeBad:
		return &imap.Error{Type: typ, Text: string(rest)}
	}
	return framingErr("upstream tagged answer %q", s)
}

// QuoteMailbox is a mailbox name as a raw command names it: modified
// UTF-7 (RFC 3501 5.1.3), quoted.
func QuoteMailbox(name string) string { return quoteIMAP(encodeMailboxName(name)) }

// RawSelect runs a raw SELECT or EXAMINE of the mailbox the connection
// has selected (a client's QRESYNC parameters, proxy/qresync_select.go).
// When it fails the connection counts as having none selected, so its
// next use selects again: the upstream closes the selected mailbox before
// it judges the parameters (Dovecot does, RFC 7162 3.2.11 [CLOSED]).
func (c *Conn) RawSelect(cmd string, read func(r RawReader) error) error {
	err := c.Raw(cmd, read)
	if err != nil {
		c.selected = ""
	}
	return err
}
