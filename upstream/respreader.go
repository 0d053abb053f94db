package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// respLimits bound what imapclient may be made to hold of one upstream
// response. imapclient parses a whole response in memory except message
// body literals, which it hands out as streams; without these a broken or
// hostile upstream grows memory without bound (a 100 MB line, a 2^40-byte
// literal in a LIST).
type respLimits struct {
	line    int    // one line, or the part of it between two literals
	literal uint64 // a literal that is not a FETCH message body
	total   int    // the lines and held literals of one response together
	body    uint64 // a FETCH body literal (streamed; 0 means up to 2^32-1)
}

// defaultRespLimits: a line holds "* SEARCH" for a mailbox of about
// 900,000 8-digit UIDs (listingSince's UID SEARCH ALL, on a server without
// ESEARCH); literals outside bodies are mailbox names, envelope strings,
// METADATA values: kilobytes. imapclient parses a long string into a
// growing buffer and then a string, about four times its size at the peak
// (65 MiB of RSS for a 16 MiB line was measured), so 8 MiB keeps a
// connection within 64 MiB.
var defaultRespLimits = respLimits{line: 8 << 20, literal: 4 << 20, total: 16 << 20}

// watcherRespLimits: a watcher never asks for a body and its FETCHes are
// collected in memory, so a body literal there is bounded like any other.
var watcherRespLimits = respLimits{line: 8 << 20, literal: 4 << 20, total: 16 << 20, body: 4 << 20}

// tailLen keeps enough of a line's end to see its literal marker (at most
// "~{4294967295+}") and the FETCH item before it ("RFC822.HEADER <n> ").
const tailLen = 64

type rstate uint8

const (
	stStart   rstate = iota // at the start of a response
	stLine                  // inside a line
	stLiteral               // inside a literal
)

// respReader frames the upstream's byte stream into responses before
// imapclient reads it (RFC 3501 7, 4.3 literals): it enforces respLimits
// and drops untagged responses imapclient would not parse. It scans for
// LF and copies each byte once; a body literal is read straight into the
// caller's buffer. A violation ends the connection with a clear error.
type respReader struct {
	src    io.Reader // raw bytes: the socket, or TLS over it
	br     *bufio.Reader
	lim    respLimits
	onDrop func(name []byte)

	st    rstate
	kind  respKind
	drop  bool   // the current response is discarded (kindUnknown)
	seg   int    // bytes of the current line so far
	total int    // bytes of the current response held by imapclient
	rem   uint64 // literal bytes still to come
	tail  []byte // the last tailLen bytes of the current line
	err   error

	rawState // a raw command waiting for the next response (rawcmd.go)
	tapState // STATUS events taken off the notify connection (notifytap.go)
}

func newRespReader(src io.Reader, lim respLimits, onDrop func([]byte)) *respReader {
	return &respReader{src: src, br: bufio.NewReaderSize(src, 64<<10), lim: lim, onDrop: onDrop, tail: make([]byte, 0, 2*tailLen)}
}

// Read implements io.Reader for imapclient.
func (r *respReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		var n int
		var err error
		switch r.st {
		case stStart:
			err = r.start()
		case stLine:
			n, err = r.readLine(p)
		default:
			n, err = r.readLiteral(p)
		}
		if err != nil {
			r.err = err // after the bytes before it, so imapclient's error names the response
		}
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// fill returns the buffered bytes, reading more when there are none.
func (r *respReader) fill() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, err
		}
	}
	return r.br.Peek(r.br.Buffered())
}

// start classifies the next response from its first bytes.
func (r *respReader) start() error {
	b, err := r.fill()
	for len(b) > 0 && r.yield() {
		if r.err != nil { // the raw command broke off mid-answer
			return r.err
		}
		b, err = r.fill()
	}
	for err == nil {
		kind, name, done := classifyHead(b[:min(len(b), headMax)])
		if !done && len(b) < headMax {
			b, err = r.br.Peek(len(b) + 1)
			continue
		}
		if !done {
			kind = kindData
		}
		r.kind, r.drop = kind, kind == kindUnknown
		if r.drop && r.onDrop != nil {
			r.onDrop(name)
		}
		r.tapStart(kind, name)
		break
	}
	if err != nil && len(b) == 0 {
		return err
	}
	if err != nil { // ends mid-head: pass it on, imapclient reports the end
		r.kind, r.drop = kindData, false
	}
	r.st, r.seg, r.total, r.tail = stLine, 0, 0, r.tail[:0]
	return nil
}

// readLine passes (or drops) bytes up to the end of the current line.
func (r *respReader) readLine(p []byte) (int, error) {
	b, err := r.fill()
	if len(b) == 0 {
		return 0, err
	}
	if !r.drop && len(b) > len(p) {
		b = b[:len(p)]
	}
	eol := bytes.IndexByte(b, '\n')
	if eol >= 0 {
		b = b[:eol+1]
	}
	if r.seg+len(b) > r.lim.line+2 { // +2: the CRLF
		return 0, framingErr("upstream sent a line longer than the limit of %d bytes", r.lim.line)
	}
	if r.total+len(b) > r.lim.total {
		return 0, framingErr("upstream sent a response longer than the limit of %d bytes", r.lim.total)
	}
	r.seg += len(b)
	r.total += len(b)
	r.keepTail(b)
	r.tapKeep(b)
	n := 0
	if !r.drop {
		n = copy(p, b)
	}
	r.br.Discard(len(b))
	if eol >= 0 {
		if err := r.endLine(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// keepTail keeps the last tailLen bytes of the line.
func (r *respReader) keepTail(b []byte) {
	if len(b) > tailLen {
		b = b[len(b)-tailLen:]
	}
	if len(r.tail)+len(b) > cap(r.tail) {
		keep := r.tail[len(r.tail)-(tailLen-len(b)):]
		r.tail = append(r.tail[:0], keep...)
	}
	r.tail = append(r.tail, b...)
}

// endLine decides, at a line's end, whether a literal follows (RFC 3501
// 4.3: "{n}" CRLF ends the line) or the response is complete.
func (r *respReader) endLine() error {
	line := bytes.TrimSuffix(bytes.TrimSuffix(r.tail, []byte("\n")), []byte("\r"))
	cut := len(r.tail) < r.seg // the line is longer than the tail kept
	r.seg, r.st = 0, stStart
	if r.kind == kindText {
		r.tapEnd()
		return nil
	}
	lit, at, ok := imapframe.LiteralMarker(line)
	if !ok {
		if cut && endsInDigits(line) {
			return framingErr("upstream announced a literal with more than %d digits", imapframe.MaxLiteralDigits)
		}
		r.tapEnd()
		return nil
	}
	if !lit.Valid {
		return framingErr("upstream announced an invalid literal %q", line[at:])
	}
	limit := r.lim.literal
	body := r.kind == kindFetch && isBodyItem(line[:at])
	if body {
		limit = r.lim.body
	}
	if limit > 0 && lit.Size > limit {
		what := "a literal outside a message body"
		if body {
			what = "a message body literal"
		}
		return framingErr("upstream sent a %d-byte %s; limit %d", lit.Size, what, limit)
	}
	if !body {
		if r.total+int(lit.Size) > r.lim.total {
			return framingErr("upstream sent a response longer than the limit of %d bytes", r.lim.total)
		}
		r.total += int(lit.Size)
	}
	r.rem, r.st, r.tail = lit.Size, stLiteral, r.tail[:0]
	if r.rem == 0 {
		r.st = stLine
	}
	return nil
}

// endsInDigits reports a line whose end "digits}" or "digits+}" runs to
// the start of the kept tail: a marker too long to be a literal IMAP
// allows, which imapclient might still read as one.
func endsInDigits(line []byte) bool {
	b, ok := bytes.CutSuffix(line, []byte("}"))
	if !ok {
		return false
	}
	b = bytes.TrimSuffix(b, []byte("+"))
	return isDigits(b)
}

// readLiteral passes (or drops) the current literal's bytes: from the
// buffer when it holds some, else straight from the source into p.
func (r *respReader) readLiteral(p []byte) (int, error) {
	var n int
	var err error
	switch {
	case r.tapping:
		n, err = r.tapLiteral()
	case r.drop:
		n, err = r.br.Discard(int(min(r.rem, 64<<10)))
	case r.br.Buffered() > 0:
		n, err = r.br.Read(p[:min(uint64(len(p)), r.rem, uint64(r.br.Buffered()))])
	default:
		n, err = r.src.Read(p[:min(uint64(len(p)), r.rem)])
	}
	r.rem -= uint64(n)
	if r.rem == 0 {
		r.st = stLine
	}
	if r.drop {
		n = 0
	}
	if err == io.EOF && r.rem > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// FramingError is a response that breaks respLimits or IMAP's framing:
// the connection is closed and the client gets NO [UNAVAILABLE].
type FramingError struct{ msg string }

func (e *FramingError) Error() string { return e.msg }

func framingErr(format string, args ...any) error {
	return &FramingError{msg: fmt.Sprintf(format, args...)}
}
