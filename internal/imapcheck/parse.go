// Package imapcheck checks IMAP server response streams against the rules a
// client relies on to keep its view of a mailbox (RFC 3501 5.5, 7.2.6,
// 7.3.1, 7.4.1; RFC 2180): a strict response parser, a per-session model
// of sequence numbers, UIDs and flags, and a hub that relates sessions of
// one mailbox to each other (read-your-writes, convergence). It is written
// for tests: the randomized multi-session consistency test runs the same
// workload through idlemux and directly against Dovecot and feeds both
// streams to it.
package imapcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// Kind is the kind of a parsed value (RFC 3501 9).
type Kind uint8

// The kinds of Value.
const (
	KindAtom Kind = iota + 1
	KindNumber
	KindString // quoted string or literal
	KindNil
	KindList
)

// Value is one parsed IMAP value.
type Value struct {
	Kind Kind
	Atom string
	Num  uint64
	Str  []byte
	List []Value
}

// FetchItem is one item of a FETCH response's msg-att (RFC 3501 7.4.2),
// its name upper-cased with any section and partial kept as sent.
type FetchItem struct {
	Name  string
	Value Value
}

// Response is one server response (RFC 3501 7), literals included.
type Response struct {
	Raw     []byte
	Tag     string // "*" untagged, "+" continuation request, else the command's tag
	Num     uint32 // the number of "* n EXISTS|RECENT|EXPUNGE|FETCH"
	HasNum  bool
	Name    string // upper-cased response name: OK, NO, EXISTS, FETCH, FLAGS, SEARCH, ...
	Code    string // resp-text-code atom, upper-cased ("APPENDUID")
	CodeArg string
	Text    string
	Items   []FetchItem // FETCH
	Flags   []string    // FLAGS
	Nums    []uint32    // SEARCH
	Args    []Value     // any other untagged response's data
}

// Item returns the FETCH item named name, if present.
func (r *Response) Item(name string) (Value, bool) {
	for _, it := range r.Items {
		if it.Name == name {
			return it.Value, true
		}
	}
	return Value{}, false
}

// ErrTooLong is returned by ReadResponse for a line or literal past max.
var ErrTooLong = errors.New("imapcheck: response exceeds the size limit")

// ReadResponse reads one whole response (its lines and the literals they
// announce) from r and parses it. A parse error is returned together with
// the raw bytes, so a caller can report the malformed response and go on.
func ReadResponse(r *bufio.Reader, max int) (*Response, []byte, error) {
	var raw []byte
	for {
		line, err := r.ReadSlice('\n')
		raw = append(raw, line...)
		if err == bufio.ErrBufferFull {
			if len(raw) > max {
				return nil, raw, ErrTooLong
			}
			continue
		}
		if err != nil {
			return nil, raw, err
		}
		body := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
		lit, _, ok := imapframe.LiteralMarker(body)
		if !ok || !lit.Valid {
			break
		}
		if _, err := Parse(raw); err == nil {
			break // "{n}" ending resp-text is text (RFC 3501 9), not a literal
		}
		if lit.Size > uint64(max) || len(raw)+int(lit.Size) > max {
			return nil, raw, ErrTooLong
		}
		buf := make([]byte, lit.Size)
		if _, err := readFull(r, buf); err != nil {
			return nil, raw, err
		}
		raw = append(raw, buf...)
	}
	resp, err := Parse(raw)
	return resp, raw, err
}

func readFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Parse parses one whole response, CRLF included, strictly by RFC 3501 9:
// anything the grammar does not allow is an error. Two leniencies, both
// common and harmless to a client: resp-text may be empty, and any
// untagged response it does not model is read as a list of values.
func Parse(raw []byte) (resp *Response, err error) {
	p := &parser{b: raw}
	resp = &Response{Raw: raw}
	if err := p.response(resp); err != nil {
		return nil, fmt.Errorf("%w at byte %d of %q", err, p.i, clip(raw))
	}
	return resp, nil
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

type parser struct {
	b []byte
	i int
}

var errSyntax = errors.New("imapcheck: syntax error")

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) expect(s string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		return fmt.Errorf("%w: want %q", errSyntax, s)
	}
	p.i += len(s)
	return nil
}

func (p *parser) crlf() error {
	if err := p.expect("\r\n"); err != nil {
		return err
	}
	if p.i != len(p.b) {
		return fmt.Errorf("%w: bytes after CRLF", errSyntax)
	}
	return nil
}

// atom reads 1*ATOM-CHAR, with extra bytes allowed by extra.
func (p *parser) atom(extra string) (string, error) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= 0x80 || !(imapframe.IsAtomChar(c) || strings.IndexByte(extra, c) >= 0) {
			break
		}
		p.i++
	}
	if p.i == start {
		return "", fmt.Errorf("%w: want an atom", errSyntax)
	}
	return string(p.b[start:p.i]), nil
}

func (p *parser) number() (uint64, error) {
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		if p.i-start >= 19 {
			return 0, fmt.Errorf("%w: number too long", errSyntax)
		}
		n = n*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start {
		return 0, fmt.Errorf("%w: want a number", errSyntax)
	}
	return n, nil
}

// nz reads nz-number (RFC 3501 9): a non-zero 32-bit number.
func (p *parser) nz() (uint32, error) {
	if p.peek() == '0' {
		return 0, fmt.Errorf("%w: nz-number starts with 0", errSyntax)
	}
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	if n > 1<<32-1 {
		return 0, fmt.Errorf("%w: number past 2^32-1", errSyntax)
	}
	return uint32(n), nil
}

// text reads resp-text's text up to CRLF: TEXT-CHAR excludes CR and LF.
func (p *parser) text() string {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '\r' && p.b[p.i] != '\n' && p.b[p.i] != 0 {
		p.i++
	}
	return string(p.b[start:p.i])
}
