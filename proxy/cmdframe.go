package proxy

import (
	"bytes"
	"fmt"
	"io"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// Limits of the command reader. imapserver must never refuse what the
// reader lets through: a literal it refuses is left unread and its bytes
// would be taken for commands (the literal-smuggling hole).
const (
	// maxCommandBytes bounds one command's text and small literals;
	// imapserver's reader stops at 50 KiB of text and closes the
	// connection.
	maxCommandBytes = 48 << 10
	// maxBufferedLiteral is imapserver's own limit for literals outside
	// APPEND (checkBufferedLiteral).
	maxBufferedLiteral = 4096
	// maxDiscard bounds a refused non-synchronizing literal that is read
	// and dropped; past it the connection ends with BYE, as Dovecot does
	// past its 64 KiB line limit ("Literal size too large").
	maxDiscard = 64 << 10
)

// contReady is the continuation request for a synchronizing literal,
// Dovecot's text (RFC 3501 7.5).
const contReady = "+ OK\r\n"

// framed is one complete command as the client sent it, every literal
// read (the APPEND message into a spool) and rewritten non-synchronizing,
// ready for imapserver: head, then the spooled literal, then tail.
type framed struct {
	cmdHead
	head, tail []byte
	spool      *litSpool
	spoolR     io.Reader
	part, off  int
}

// remaining reports whether imapserver has not read all of the command.
func (f *framed) remaining() bool {
	switch f.part {
	case 0:
		return f.off < len(f.head) || f.spool != nil || len(f.tail) > 0
	case 1:
		return true
	case 2:
		return f.off < len(f.tail)
	}
	return false
}

// read hands the command to imapserver. Text goes out at most one line
// per call: imapserver's buffer then never holds bytes past the line it
// is parsing, so when it gives up on a command mid-way (and answers it),
// nothing of that command is left in its buffer to be read as the next
// one; the reader drops the rest instead (clientConn.Read).
func (f *framed) read(p []byte) (int, error) {
	for {
		switch f.part {
		case 0, 2:
			text := f.head
			if f.part == 2 {
				text = f.tail
			}
			if f.off < len(text) {
				n := lineChunk(p, text[f.off:])
				f.off += n
				return n, nil
			}
			f.part++
			f.off = 0
		case 1:
			if f.spool == nil {
				f.part++
				continue
			}
			if f.spoolR == nil {
				r, err := f.spool.reader()
				if err != nil {
					return 0, err
				}
				f.spoolR = r
			}
			n, err := f.spoolR.Read(p)
			if n > 0 {
				return n, nil
			}
			if err != io.EOF && err != nil {
				return 0, err
			}
			f.part++
		default:
			return 0, io.EOF
		}
	}
}

// lineChunk copies into p up to and including the first LF of text.
func lineChunk(p, text []byte) int {
	n := min(len(p), len(text))
	if i := bytes.IndexByte(text[:n], '\n'); i >= 0 {
		n = i + 1
	}
	return copy(p, text[:n])
}

func (f *framed) close() {
	if f.spool != nil {
		f.spool.Close()
		f.spool = nil
	}
}

// refusal is an answer the reader gives itself, without imapserver.
type refusal struct {
	line        string // without CRLF
	bye         bool   // close the connection after it
	failedLogin bool   // counts as a failed login (clientConn.onFailedLogin)
}

func tagOr(tag string) string {
	if tag == "" {
		return "*"
	}
	return tag
}

func tooBig(tag string, limit uint64) *refusal {
	return &refusal{line: fmt.Sprintf("%s NO [TOOBIG] Literals are limited to %d bytes for this command", tagOr(tag), limit)}
}

var byeLiteralTooLarge = &refusal{line: "* BYE Literal size too large", bye: true}

// frame reads one whole command from the client (RFC 3501 2.2.1: a line,
// and for each literal it announces the literal and the line after it).
// Literals within the limits are read, after a continuation request for
// the synchronizing ones (RFC 3501 7.5); a literal over them is refused
// at once when synchronizing, read and dropped when not (RFC 7888 4), or
// ends the connection when too large even to drop.
func (cc *clientConn) frame() (*framed, *refusal, error) {
	f := &framed{}
	buf := make([]byte, 0, 128)
	var refuse *refusal
	first := true
	for {
		start := len(buf)
		room := maxCommandBytes - len(buf)
		if refuse != nil {
			room = 0
		}
		var li lineInfo
		var err error
		buf, li, err = cc.readLine(buf, room)
		if err != nil {
			f.close()
			return nil, nil, err
		}
		if first {
			var why string
			if f.cmdHead, why = parseHead(buf[start:]); why != "" {
				refuse = &refusal{line: tagOr(f.tag) + " BAD " + why}
			}
		}
		if li.overflow && !cc.authenticated.Load() {
			// Before login no command is this long but a LOGIN with a
			// name no server takes: Dovecot's answer, counted as a
			// failed login.
			f.close()
			return nil, &refusal{line: "* BYE Input buffer full, aborting", bye: true, failedLogin: true}, nil
		}
		if li.overflow && refuse == nil {
			refuse = &refusal{line: tagOr(f.tag) + " BAD Error in IMAP command: Command line too long"}
		}
		if li.inQuote {
			if refuse == nil {
				refuse = &refusal{line: tagOr(f.tag) + ` BAD Error in IMAP command: Missing '"'`}
			}
			break
		}
		lit, _, ok := imapframe.LiteralMarker(li.end())
		if !ok {
			buf = append(buf, '\r', '\n')
			break
		}
		if !lit.Valid {
			f.close()
			return nil, byeLiteralTooLarge, nil
		}
		// The APPEND message is any literal but the mailbox name (a line
		// "tag APPEND {n}" announces the name).
		mailboxName := first && len(f.args) == 1+markerLen(li)
		message := f.spool == nil && f.name == "APPEND" && !mailboxName
		limit := uint64(maxBufferedLiteral)
		if message && cc.authenticated.Load() {
			limit = uint64(cc.appendLimit())
		}
		if refuse == nil && (lit.Size > limit || (!message && uint64(len(buf))+lit.Size > maxCommandBytes)) {
			if !message && lit.Size > maxDiscard {
				f.close()
				return nil, byeLiteralTooLarge, nil // as Dovecot past its line limit
			}
			refuse = tooBig(f.tag, limit)
		}
		first = false
		if refuse != nil {
			if !lit.NonSync {
				break // no continuation request: the client sends nothing more
			}
			if lit.Size > maxDiscard {
				f.close()
				return nil, byeLiteralTooLarge, nil
			}
			if err := cc.in.discard(lit.Size); err != nil {
				f.close()
				return nil, nil, err
			}
			continue
		}
		buf = nonSync(buf, lit.NonSync)
		if !lit.NonSync {
			if err := cc.writeLocal(contReady); err != nil {
				f.close()
				return nil, nil, err
			}
		}
		if message {
			f.head, f.spool = buf, &litSpool{}
			buf = make([]byte, 0, 16)
			err = cc.in.copyN(f.spool, lit.Size)
		} else {
			err = cc.in.copyN((*appendBuf)(&buf), lit.Size)
		}
		if err != nil {
			f.close()
			return nil, nil, err
		}
	}
	if refuse != nil {
		f.close()
		return nil, refuse, nil
	}
	if f.spool != nil {
		f.tail = buf
	} else {
		f.head = buf
	}
	return f, nil, nil
}

// markerLen is the length of the literal marker at the end of the line.
func markerLen(li lineInfo) int {
	_, start, _ := imapframe.LiteralMarker(li.end())
	return li.tailLen - start
}

// nonSync ends buf (a line ending in a literal marker, without CRLF) with
// the marker's non-synchronizing form and CRLF: imapserver then reads the
// literal without a continuation request, which the reader already sent.
func nonSync(buf []byte, already bool) []byte {
	if !already {
		buf = append(buf[:len(buf)-1], '+', '}')
	}
	return append(buf, '\r', '\n')
}

// appendBuf is a byte slice as an io.Writer.
type appendBuf []byte

func (b *appendBuf) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}
