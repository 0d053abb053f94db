package proxy

import (
	"bytes"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// lineTail is how many trailing bytes of a line are kept when the line is
// too long to store: enough for the largest literal marker ("~{4294967295+}").
const lineTail = 24

// lineInfo describes one line read by readLine.
type lineInfo struct {
	overflow bool // longer than the room given: only part was stored
	inQuote  bool // ended inside a quoted string (RFC 3501 9 quoted)
	bareCR   bool // holds a CR that does not end it
	tail     [lineTail]byte
	tailLen  int
}

func (li *lineInfo) end() []byte { return li.tail[lineTail-li.tailLen:] }

func (li *lineInfo) keepTail(b []byte) {
	if len(b) >= lineTail {
		copy(li.tail[:], b[len(b)-lineTail:])
		li.tailLen = lineTail
		return
	}
	keep := min(li.tailLen, lineTail-len(b))
	copy(li.tail[lineTail-keep-len(b):], li.tail[lineTail-keep:])
	copy(li.tail[lineTail-len(b):], b)
	li.tailLen = keep + len(b)
}

// quoteScan follows quoted strings across a line: inside one, '\' escapes
// the next byte (RFC 3501 9 quoted-specials).
type quoteScan struct{ in, esc bool }

func (q *quoteScan) scan(b []byte) {
	for _, c := range b {
		switch {
		case q.esc:
			q.esc = false
		case q.in && c == '\\':
			q.esc = true
		case c == '"':
			q.in = !q.in
		}
	}
}

// readLine reads one line of the client's input up to its LF, appending
// at most room bytes of it to out without the line ending. The quote
// state and the last bytes are tracked over the whole line, stored or not.
func (cc *clientConn) readLine(out []byte, room int) ([]byte, lineInfo, error) {
	var li lineInfo
	var q quoteScan
	stored, crs := 0, 0
	for {
		p, err := cc.in.peek()
		if err != nil {
			return out, li, err
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		q.scan(chunk)
		crs += bytes.Count(chunk, []byte{'\r'})
		keep := min(len(chunk), room-stored)
		out = append(out, chunk[:keep]...)
		stored += keep
		if keep < len(chunk) {
			li.overflow = true
		}
		li.keepTail(chunk)
		if i < 0 {
			cc.in.advance(len(p))
			continue
		}
		cc.in.advance(i + 1)
		break
	}
	// A CR before the LF is the line ending, not content (a bare LF is
	// accepted as Dovecot does, and passed on as CRLF).
	if li.tailLen > 0 && li.tail[lineTail-1] == '\r' {
		copy(li.tail[1:], li.tail[:lineTail-1]) // the window ends before the CR
		li.tailLen--
		crs--
		if !li.overflow {
			out = out[:len(out)-1]
		}
	}
	li.bareCR = crs > 0
	li.inQuote = q.in
	return out, li, nil
}

// isAtomChar is imapframe.IsAtomChar: what imapserver's reader takes as
// an atom's byte.
func isAtomChar(c byte) bool { return imapframe.IsAtomChar(c) }

// cmdHead is the start of a command line: tag, name and, for UID, the
// command it applies to (RFC 3501 9 command, tag, "UID" SP ...).
type cmdHead struct {
	tag, name, sub string
	args           []byte // what follows the name (and sub), from its SP on
}

// parseHead reads what imapserver's command reader needs to be valid
// before it dispatches: it closes the connection on anything else. why is
// the Dovecot-style text of a BAD when the head is not valid; a tag of ""
// means the BAD is untagged.
func parseHead(line []byte) (h cmdHead, why string) {
	i := 0
	for i < len(line) && isAtomChar(line[i]) && line[i] != '+' {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		if i > 0 && (i == len(line) || line[i] == ' ') {
			return cmdHead{tag: string(line[:i])}, "Error in IMAP command: Invalid command name"
		}
		return cmdHead{}, "Error in IMAP tag: Invalid tag"
	}
	h.tag = string(line[:i])
	rest := line[i+1:]
	name, rest := atomPrefix(rest)
	if name == "" || (len(rest) > 0 && rest[0] != ' ' && name == "UID") {
		return h, "Error in IMAP command: Invalid command name"
	}
	h.name = name
	if name == "UID" {
		if len(rest) == 0 {
			return h, "Error in IMAP command UID: Missing command"
		}
		sub, r := atomPrefix(rest[1:])
		if sub == "" {
			return h, "Error in IMAP command UID: Missing command"
		}
		h.sub, rest = sub, r
	}
	h.args = rest
	return h, ""
}

// atomPrefix splits b after its leading atom, upper-cased.
func atomPrefix(b []byte) (string, []byte) {
	i := 0
	for i < len(b) && isAtomChar(b[i]) {
		i++
	}
	return string(bytes.ToUpper(b[:i])), b[i:]
}
