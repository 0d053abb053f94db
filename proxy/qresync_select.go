package proxy

import (
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
)

// SELECT and EXAMINE with the QRESYNC parameter (RFC 7162 3.2.5). The
// reader takes "(QRESYNC (...))" off for imapserver and keeps its
// content; the session opens its view from the model as for any SELECT,
// then relays the same SELECT with the client's parameters on the pool
// connection that has the mailbox selected (QRESYNC enabled there), and
// keeps of the answer the "* VANISHED (EARLIER)" and FETCH responses,
// each FETCH renumbered by its UID into the view just opened; the reader
// writes them before the tagged OK, after HIGHESTMODSEQ, where Dovecot
// does. Relaying the SELECT itself, rather than answering from a UID
// FETCH (CHANGEDSINCE m VANISHED), keeps every rule the upstream applies
// to the parameters: a UIDVALIDITY that differs (nothing reported), the
// seq-match-data that narrows the known UIDs (3.2.5.2), and the
// validation of each parameter, in the upstream's words.
//
// A message the upstream reports that the view does not hold (it arrived
// after the view opened) is left out: the session is told of it with
// EXISTS later. The pool connection's SELECT is read-write, as every
// pool connection's is, also for EXAMINE: only \Recent would differ,
// and the relay puts the session's own.

// maxQResyncLines bounds the responses a SELECT with QRESYNC holds until
// its tagged OK: past it the SELECT is refused with [LIMIT] rather than
// held (about 100,000 changed messages at Dovecot's ~60 bytes each).
const maxQResyncLines = 8 << 20

// qresyncParams is what the reader took off a SELECT or EXAMINE: the
// content of its "QRESYNC (...)" parameter, as the client wrote it.
// bare: "QRESYNC" came without its list, which the upstream refuses.
type qresyncParams struct {
	text string
	bare bool
}

// selectQResync takes a "(QRESYNC (...))" parameter, alone or beside
// CONDSTORE in the list (any case, either order), off a SELECT or
// EXAMINE before imapserver reads it. Only text that is numbers, sets
// and parentheses is relayed; anything else is left to imapserver, which
// refuses the parameter. The upstream judges the values (qresyncSelect).
func (cc *clientConn) selectQResync(f *framed) {
	if f.sub != "" || (f.name != "SELECT" && f.name != "EXAMINE") || f.spool != nil || len(f.tail) > 0 || len(f.headCuts) > 0 {
		return
	}
	line := bytes.TrimSuffix(f.head, []byte("\r\n"))
	start := len(f.tag) + 1 + len(f.name) + 1
	if start >= len(line) {
		return
	}
	end := mailboxEnd(line[start:])
	if end < 0 {
		return
	}
	end += start
	text, bare, ok := qresyncParam(line[end:])
	if !ok {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.qr.offered {
		return
	}
	if cc.qr.enabled.Load() {
		cc.cs.enabled = true // an enabling command; the SELECT reports HIGHESTMODSEQ
	} // else the session refuses it (qresyncSelect) and nothing is enabled, as with Dovecot
	f.qresync = &qresyncParams{text: text, bare: bare}
	f.head = append(f.head[:end], '\r', '\n')
}

// mailboxEnd returns where the mailbox argument that starts b ends: a
// quoted string (RFC 3501 9 quoted) or an atom; -1 if it does not end.
func mailboxEnd(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	if b[0] != '"' {
		if i := bytes.IndexByte(b, ' '); i > 0 {
			return i
		}
		return -1
	}
	return quotedEnd(b) // fetchitems.go
}

// qresyncParam reads a select parameter list " (...)" that holds QRESYNC
// and at most CONDSTORE besides (RFC 7162 3.2.5, 3.1.8), and returns
// QRESYNC's content (bare: QRESYNC without one). The content may hold
// only digits, ':', ',', '*', spaces and one level of parentheses: it
// goes upstream as it is.
func qresyncParam(b []byte) (text string, bare, ok bool) {
	if !bytes.HasPrefix(b, []byte(" (")) || !bytes.HasSuffix(b, []byte(")")) {
		return "", false, false
	}
	rest := string(b[2 : len(b)-1])
	found, condstore := false, false
	for rest != "" {
		word, after, _ := strings.Cut(rest, " ")
		switch {
		case strings.EqualFold(word, "CONDSTORE") && !condstore:
			condstore, rest = true, after
		case strings.EqualFold(word, "QRESYNC") && !found && strings.HasPrefix(after, "("):
			n := qresyncListEnd(after)
			if n < 0 {
				return "", false, false
			}
			text, rest, found = after[1:n], strings.TrimPrefix(after[n+1:], " "), true
		case strings.EqualFold(word, "QRESYNC") && !found:
			rest, found, bare = after, true, true
		default:
			return "", false, false
		}
	}
	return text, bare, found
}

// qresyncListEnd returns where the parenthesized list that starts s ends, if it
// holds only QRESYNC's characters and nests one level at most; -1
// otherwise.
func qresyncListEnd(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			if depth++; depth > 2 {
				return -1
			}
		case c == ')':
			if depth--; depth == 0 {
				return i
			}
		case c >= '0' && c <= '9', c == ':', c == ',', c == '*', c == ' ':
		default:
			return -1
		}
	}
	return -1
}

// selectQResyncOf returns the QRESYNC parameter the reader took off the
// running SELECT or EXAMINE, nil if none.
func (cc *clientConn) selectQResyncOf() *qresyncParams {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil {
		return nil
	}
	return cc.cur.qresync
}

// setQResyncLines keeps the responses the running SELECT reports before
// its tagged OK (highestModSeqLine writes them).
func (cc *clientConn) setQResyncLines(b []byte) {
	cc.mu.Lock()
	cc.qr.selectLines = b
	cc.mu.Unlock()
}

// takeQResyncLines returns the responses due before the running SELECT's
// tagged OK, once. cc.mu is held.
func (cc *clientConn) takeQResyncLinesLocked() []byte {
	b := cc.qr.selectLines
	cc.qr.selectLines = nil
	return b
}

// errQResyncNotEnabled is Dovecot's answer to SELECT (QRESYNC ...) from a
// client that did not ENABLE QRESYNC (RFC 7162 3.2.5: it MUST be
// enabled first).
var errQResyncNotEnabled = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Error in IMAP command SELECT: QRESYNC not enabled"}

// qresyncSelect runs the QRESYNC part of a SELECT or EXAMINE that the
// session has just opened (sess.sel): it relays the parameters upstream
// and hands the reader the responses to write. An error fails the SELECT
// (the caller unselects), as Dovecot fails it after closing the previous
// mailbox.
func (sess *session) qresyncSelect() error {
	cc := sess.reader()
	if cc == nil {
		return nil
	}
	p := cc.selectQResyncOf()
	if p == nil {
		return nil
	}
	if !cc.qresyncOn() {
		if ie := *errQResyncNotEnabled; sess.sel.readOnly {
			ie.Text = strings.Replace(ie.Text, "SELECT", "EXAMINE", 1)
			return &ie
		}
		return errQResyncNotEnabled
	}
	sel := sess.sel
	sink := &qresyncSink{max: maxQResyncLines}
	rl := &fetchRelay{req: &fetchRequest{wantUID: true}, uids: imap.UIDSet{{Start: 1, Stop: ^imap.UID(0)}},
		seqOf: sel.v.UIDToSeq, isRecent: sel.v.IsRecent, announce: sess.flagAnnouncer(sel),
		keepModSeq: true, vanished: true, members: sel.v.Members, sink: sink}
	param := "QRESYNC (" + p.text + ")"
	if p.bare {
		param = "QRESYNC"
	}
	cmd := "SELECT " + upstream.QuoteMailbox(sel.name) + " (" + param + ")"
	err := sess.withConn("SELECT", sel.name, func(c *upstream.Conn) error {
		if err := c.EnableQResync(); err != nil {
			return err
		}
		rl.reset()
		sink.b = sink.b[:0]
		rl.touch = sess.guard.Touch
		return c.RawSelect(cmd, func(r upstream.RawReader) error { return okStatus(rl.run(r.Reader, r.Tag)) })
	})
	if err != nil {
		return err
	}
	cc.setQResyncLines(sink.b)
	return nil
}

// qresyncSink gathers a SELECT's QRESYNC responses, up to max bytes.
type qresyncSink struct {
	b   []byte
	max int
}

func (s *qresyncSink) text(b []byte) error {
	if len(s.b)+len(b) > s.max {
		return errQResyncTooMuch
	}
	s.b = append(s.b, b...)
	return nil
}

func (s *qresyncSink) literal(r io.Reader, n int64) error {
	if int64(len(s.b))+n > int64(s.max) {
		return errQResyncTooMuch
	}
	at := len(s.b)
	s.b = append(s.b, make([]byte, n)...)
	_, err := io.ReadFull(r, s.b[at:])
	return err
}

// errQResyncTooMuch refuses a SELECT whose QRESYNC answer would exceed
// maxQResyncLines (RFC 5530 LIMIT): the client can SELECT without it.
var errQResyncTooMuch = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many changes to report, select without QRESYNC"}

// okStatus is a relayed command's status with an OK that carries a
// response code (SELECT's [READ-WRITE]) taken as success.
func okStatus(err error) error {
	if ie, ok := upstream.IsProtocol(err); ok && ie.Type == imap.StatusResponseTypeOK {
		return nil
	}
	return err
}
