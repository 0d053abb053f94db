package proxy

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

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
	head, tail         []byte
	headCuts, tailCuts []int // where a literal ends in head and tail
	spool              *litSpool
	binary             bool // the APPEND message came as a literal8 (RFC 3516 4.4)
	modseq             bool // the reader took a MODSEQ item off (condstore_status.go, condstore_fetch.go)
	// relay, when set, is the command's text for the session rather
	// than head, which imapserver reads (condstore_fetch.go);
	// changedSince is the FETCH modifier taken off, if hasChangedSince.
	relay           []byte
	changedSince    uint64
	hasChangedSince bool
	// unchangedSince is STORE's modifier taken off, if hasUnchangedSince
	// (condstore_unchanged.go).
	unchangedSince    uint64
	hasUnchangedSince bool
	vanished          bool                       // UID FETCH's VANISHED modifier taken off (qresync_fetch.go)
	qresync           *qresyncParams             // SELECT's QRESYNC parameter taken off (qresync_select.go)
	searchModSeq      *imap.SearchCriteriaModSeq // SEARCH's MODSEQ key taken off (condstore_search.go)
	spoolR            io.Reader
	part, off         int
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
// per call, and a call ends where a literal ends: imapserver's buffer then
// never holds bytes past what it is parsing (a line, or a literal, after
// which its reader may stop with no line end to discard), so when it
// gives up on a command mid-way (and answers it), nothing of that command
// is left in its buffer to be read as the next one; the reader drops the
// rest instead (clientConn.Read).
func (f *framed) read(p []byte) (int, error) {
	for {
		switch f.part {
		case 0, 2:
			text, cuts := f.head, f.headCuts
			if f.part == 2 {
				text, cuts = f.tail, f.tailCuts
			}
			if f.off < len(text) {
				end := len(text)
				for _, c := range cuts {
					if c > f.off {
						end = c
						break
					}
				}
				n := lineChunk(p, text[f.off:end])
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
	fr := &framer{cc: cc, f: &framed{}, buf: make([]byte, 0, 128), first: true}
	reply, err := fr.run()
	if err != nil || reply != nil {
		fr.f.close()
		return nil, reply, err
	}
	return fr.f, nil, nil
}

// framer is the state of frame while it reads one command.
type framer struct {
	cc     *clientConn
	f      *framed
	buf    []byte // the head, then (after an APPEND message) the tail
	cuts   []int  // where in buf a literal ends
	refuse *refusal
	first  bool
}

func (fr *framer) refuseWith(text string) {
	if fr.refuse == nil {
		fr.refuse = &refusal{line: tagOr(fr.f.tag) + " " + text}
	}
}

func (fr *framer) run() (*refusal, error) {
	for {
		start := len(fr.buf)
		room := maxCommandBytes - len(fr.buf)
		if fr.refuse != nil {
			room = 0
		}
		var li lineInfo
		var err error
		fr.buf, li, err = fr.cc.readLine(fr.buf, room)
		if err != nil {
			return nil, err
		}
		if bye := fr.judgeLine(start, &li); bye != nil {
			return bye, nil
		}
		if li.inQuote {
			fr.refuseWith(`BAD Error in IMAP command: Missing '"'`)
			break
		}
		end, spaced := li.end(), false
		if n := len(end); n > 0 && end[n-1] == ' ' {
			// imapserver reads "{n} " as a literal (its CRLF takes one
			// space); Dovecot refuses it: refused, and its bytes never
			// taken for a command.
			end, spaced = end[:n-1], true
		}
		lit, at, ok := imapframe.LiteralMarker(end)
		if !ok {
			fr.buf = append(fr.buf, '\r', '\n')
			break
		}
		if spaced {
			fr.refuseWith("BAD Error in IMAP command: Missing LF after literal size")
		}
		stop, reply, err := fr.literal(lit, li.tailLen-at)
		if err != nil || reply != nil {
			return reply, err
		}
		if stop {
			break
		}
	}
	if fr.refuse != nil {
		return fr.refuse, nil
	}
	fr.finish()
	return fr.refuse, nil
}

// judgeLine checks one line just read: the command's head on its first
// line, its length, and bare CRs (imapserver's reader stops a line at a
// CR, so what follows one would be read as another command).
func (fr *framer) judgeLine(start int, li *lineInfo) *refusal {
	if fr.first {
		var why string
		if fr.f.cmdHead, why = parseHead(fr.buf[start:]); why != "" {
			fr.refuseWith("BAD " + why)
		}
	}
	if li.overflow && !fr.cc.authenticated.Load() {
		// Before login no command is this long but a LOGIN with a name
		// no server takes: Dovecot's answer, counted as a failed login.
		return &refusal{line: "* BYE Input buffer full, aborting", bye: true, failedLogin: true}
	}
	if li.overflow {
		fr.refuseWith("BAD Error in IMAP command: Command line too long")
	}
	if li.bareCR {
		fr.refuseWith("BAD Error in IMAP command: CR without LF")
	}
	return nil
}

// literal handles the literal a line announced; markerLen is the length
// of its marker. stop ends the command (a synchronizing literal refused:
// the client sends nothing more of it).
func (fr *framer) literal(lit imapframe.Literal, markerLen int) (stop bool, reply *refusal, err error) {
	if !lit.Valid {
		return true, byeLiteralTooLarge, nil
	}
	f, cc := fr.f, fr.cc
	// The APPEND message is any literal but the mailbox name (a line
	// "tag APPEND {n}" announces the name); a second one (MULTIAPPEND,
	// CATENATE, neither offered) is refused as Dovecot refuses what it
	// cannot parse.
	mailboxName := fr.first && len(f.args) == 1+markerLen
	message := f.name == "APPEND" && f.spool == nil && !mailboxName
	another := f.name == "APPEND" && f.spool != nil
	if another {
		fr.refuseWith("BAD Error in IMAP command APPEND: Invalid arguments")
	}
	limit := uint64(maxBufferedLiteral)
	if message && cc.authenticated.Load() {
		limit = uint64(cc.appendLimit())
	}
	if fr.refuse == nil && (lit.Size > limit || (!message && uint64(len(fr.buf))+lit.Size > maxCommandBytes)) {
		if !message && lit.Size > maxDiscard {
			return true, byeLiteralTooLarge, nil // as Dovecot past its line limit
		}
		fr.refuse = tooBig(f.tag, limit)
	}
	var spool *litSpool
	if message && fr.refuse == nil {
		if spool = newLitSpool(lit.Size); spool == nil {
			fr.refuseWith("NO [LIMIT] Too many messages being received at once, try again later")
		}
	}
	fr.first = false
	if fr.refuse != nil {
		if lit.Size > maxDiscard && (another || lit.NonSync) {
			return true, byeLiteralTooLarge, nil
		}
		if !lit.NonSync && !another {
			return true, nil, nil
		}
		// A MULTIAPPEND client may send the next message without
		// waiting: it is asked for and dropped, never read as commands.
		if !lit.NonSync {
			if err := cc.writeLocal(contReady); err != nil {
				return true, nil, err
			}
		}
		return false, nil, cc.in.discard(lit.Size)
	}
	fr.buf = nonSync(fr.buf, lit.NonSync)
	if !lit.NonSync {
		if err := cc.writeLocal(contReady); err != nil {
			spool.Close()
			return true, nil, err
		}
	}
	if spool != nil {
		f.head, f.headCuts, f.spool, f.binary = fr.buf, fr.cuts, spool, lit.Binary
		fr.buf, fr.cuts = make([]byte, 0, 16), nil
		// A message is received at the client's pace, but no slower than
		// imapserver would take it (its literal timeout).
		cc.transport().SetReadDeadline(time.Now().Add(appendReadTimeout))
		return false, nil, cc.in.copyN(spool, lit.Size)
	}
	err = cc.in.copyN((*appendBuf)(&fr.buf), lit.Size)
	fr.cuts = append(fr.cuts, len(fr.buf))
	return false, nil, err
}

// finish files the command's bytes. After an APPEND message only the
// line's end may follow (imapserver, given more, answers nothing at all).
func (fr *framer) finish() {
	f := fr.f
	if f.spool == nil {
		f.head, f.headCuts = fr.buf, fr.cuts
		return
	}
	if string(fr.buf) != "\r\n" {
		fr.refuseWith("BAD Error in IMAP command APPEND: Invalid arguments")
		return
	}
	f.tail, f.tailCuts = fr.buf, fr.cuts
}

// appendReadTimeout is imapserver's literal read timeout.
const appendReadTimeout = 5 * time.Minute

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
