package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// Bounds of what the relay holds of one upstream response; everything
// else streams into the spool.
const (
	relayNameMax  = 16 << 10 // an item's name, section included
	relayFlagsMax = 64 << 10 // a FLAGS list, read whole to drop \Recent
	relayHoldMax  = 1 << 20  // items before the UID (Dovecot sends UID first)
	relayLineMax  = 64 << 10 // a tagged status line
	relayFlushAt  = 16 << 10 // text gathered before it goes to the spool
	relayInline   = 16 << 10 // literals up to this are gathered, not streamed
	// relayTextMax bounds a response's bytes outside the literal values
	// of its items: what imapclient was allowed to hold of one response.
	relayTextMax = 16 << 20
)

// relaySink takes the client's answer: text, and literal bytes read
// straight from the upstream.
type relaySink interface {
	text(b []byte) error
	literal(r io.Reader, n int64) error
}

// fetchRelay turns the upstream's answer to one UID FETCH into the
// client's (RFC 3501 7.4.2): each FETCH response as the upstream wrote
// it, byte for byte, but for its number, which becomes the message's
// sequence number in the client's view; the UID item kept only if the
// client asked for it (at the place Dovecot gives it, see fetchRequest),
// \Recent dropped from FLAGS (a pool connection's \Recent is nobody's),
// and items renamed back where the request renamed them. Responses for
// messages not asked for or unknown to the view (unsolicited flag changes:
// the watcher reports those) and other untagged responses (EXISTS,
// EXPUNGE, RECENT: the watcher's too) are dropped.
type fetchRelay struct {
	req   *fetchRequest
	uids  imap.UIDSet
	seqOf func(imap.UID) (uint32, bool)
	sink  relaySink
	touch func() // progress, for the upstream guard
	// isRecent says whether the session sees uid as \Recent (claimed
	// by it, fanout/recent.go); announce returns the FLAGS lines a
	// response's flags need first (fetchflags.go). Either may be nil.
	isRecent func(imap.UID) bool
	announce func(flags [][]byte) []byte
	okFlags  map[string]bool // flags announce found known
	setsSeen bool            // the FETCH sets \Seen (a body without PEEK)
	// keepModSeq: the client asked MODSEQ or CHANGEDSINCE (RFC 7162
	// 3.1.4), so MODSEQ items reach it; otherwise they are dropped.
	keepModSeq bool
	maxModSeq  uint64 // the highest MODSEQ relayed (condstore_syncpoint.go)
	// vanished: the UID FETCH has the VANISHED modifier (RFC 7162
	// 3.2.6): set, when not empty, is the client's UID set, asked
	// upstream instead of uids, and "* VANISHED (EARLIER)" reaches the
	// client (qresync_fetch.go).
	vanished bool
	set      string
	// members, when set (a SELECT with QRESYNC, a UID FETCH with
	// VANISHED), lists the view's
	// messages among UIDs: VANISHED (EARLIER) leaves those out
	// (qresync_vanished.go).
	members func(imap.UIDSet) []fanout.Member
	// shown, when not nil, collects the FLAGS list each response wrote
	// (as the client got it), by UID: what the FETCH reported (seenBy).
	shown    map[imap.UID][]byte
	curFlags []byte // the current response's FLAGS as written, for shown
	// capture, when set, records the client's responses item by item for
	// the FETCH cache (fetchcapture.go); hits are responses built from
	// the cache (fetchlocal.go), written in sequence order among the
	// upstream's, at hitNext the next one due.
	capture *fetchCapture
	hits    *localHits
	hitNext int
	// finish, when set, ends the shared flight this FETCH leads
	// (fetchCache.join) once its upstream part is over.
	finish func()
	start  int // where the current response begins in out

	br       *bufio.Reader
	out      []byte // text not yet given to the sink
	hold     []byte // the current response's items before its UID
	mode     relayMode
	seen     []uint64 // sequence numbers answered, a bit each
	answered int      // how many distinct ones
	partial  bool     // part of the current response went to the sink
	cut      int      // out up to here holds whole responses
	wrote    bool     // anything went to the sink
	status   error    // the upstream's tagged status, when not a plain OK
	// the current response
	uid       imap.UID
	uidOut    bool
	nItems    int
	nBuffered int
	text      int64 // bytes of the response outside its items' literals
}

type relayMode uint8

const (
	modeHold relayMode = iota // before the UID: into hold
	modeOut                   // a message of the client's: into out
	modeDrop                  // not the client's: nowhere
)

// errRelay is an answer the relay cannot follow: the upstream connection
// is out of step and is closed.
type errRelay struct{ msg string }

func (e *errRelay) Error() string { return "upstream FETCH answer: " + e.msg }

func relayErr(format string, args ...any) error {
	return &errRelay{msg: fmt.Sprintf(format, args...)}
}

// run reads responses up to the one tagged tag and returns its status:
// nil for a plain OK, the upstream's own status (OK with a code, NO, BAD)
// as an *imap.Error.
func (rl *fetchRelay) run(br *bufio.Reader, tag string) error {
	rl.br = br
	for {
		b, err := br.Peek(1)
		if err != nil {
			return relayEOF(err)
		}
		if rl.touch != nil {
			rl.touch()
		}
		if b[0] == '*' {
			if err := rl.untagged(); err != nil {
				return err
			}
			continue
		}
		line, err := rl.line()
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(line, []byte(tag+" ")) {
			return relayErr("unexpected line %q", clip(line))
		}
		if err := rl.emitHits(^uint32(0)); err != nil {
			return err
		}
		if err := rl.flush(); err != nil {
			return err
		}
		return taggedStatus(line[len(tag)+1:])
	}
}

func relayEOF(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// line reads one line (a status), without its CRLF.
func (rl *fetchRelay) line() ([]byte, error) {
	line, err := rl.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > relayLineMax {
		return nil, relayErr("status line longer than %d bytes", rl.br.Size())
	}
	if err != nil {
		return nil, relayEOF(err)
	}
	return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")), nil
}

// taggedStatus turns "OK|NO|BAD [code] text" into the command's result.
func taggedStatus(s []byte) error {
	word, rest, _ := bytes.Cut(s, []byte(" "))
	var typ imap.StatusResponseType
	switch string(bytes.ToUpper(word)) {
	case "OK":
		typ = imap.StatusResponseTypeOK
	case "NO":
		typ = imap.StatusResponseTypeNo
	case "BAD":
		typ = imap.StatusResponseTypeBad
	default:
		return relayErr("tagged response %q", clip(s))
	}
	var code imap.ResponseCode
	if len(rest) > 0 && rest[0] == '[' {
		end := bytes.IndexByte(rest, ']')
		if end < 0 {
			return relayErr("unterminated response code in %q", clip(s))
		}
		name, _, _ := bytes.Cut(rest[1:end], []byte(" "))
		code = imap.ResponseCode(bytes.ToUpper(name))
		rest = bytes.TrimPrefix(rest[end+1:], []byte(" "))
	}
	if typ == imap.StatusResponseTypeOK && code == "" {
		return nil
	}
	return &imap.Error{Type: typ, Code: code, Text: string(rest)}
}

// untagged reads one untagged response: a FETCH is relayed, any other
// dropped.
func (rl *fetchRelay) untagged() error {
	if _, err := rl.br.Discard(1); err != nil {
		return err
	}
	if err := rl.expect(' '); err != nil {
		return err
	}
	tok, err := rl.atom()
	if err != nil {
		return err
	}
	num, isNum := parseNum(tok)
	if isNum {
		if err := rl.expect(' '); err != nil {
			return err
		}
		if tok, err = rl.atom(); err != nil {
			return err
		}
	}
	switch string(bytes.ToUpper(tok)) {
	case "FETCH":
		if !isNum || num == 0 {
			return relayErr("FETCH without a message number")
		}
		return rl.fetch()
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		_, err := rl.skipLine() // text: a '}' at its end is no literal
		return err
	case "VANISHED":
		return rl.relayVanished() // qresync_fetch.go
	}
	return rl.skipData()
}

// atom reads the atom at the current position (at most 64 bytes).
func (rl *fetchRelay) atom() ([]byte, error) {
	var tok []byte
	for {
		b, err := rl.br.Peek(1)
		if err != nil {
			return nil, relayEOF(err)
		}
		if !isAtomChar(b[0]) {
			return tok, nil
		}
		if len(tok) >= 64 {
			return nil, relayErr("atom longer than 64 bytes")
		}
		tok = append(tok, b[0])
		rl.br.Discard(1)
	}
}

func parseNum(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	return uint32(n), err == nil
}

func (rl *fetchRelay) expect(c byte) error {
	b, err := rl.br.ReadByte()
	if err != nil {
		return relayEOF(err)
	}
	if b != c {
		return relayErr("got %q, want %q", b, c)
	}
	return nil
}

// skipLine drops the rest of a line and returns its last bytes.
func (rl *fetchRelay) skipLine() ([]byte, error) {
	var tail []byte
	for {
		chunk, err := rl.br.ReadSlice('\n')
		tail = append(tail, chunk...)
		if len(tail) > 64 {
			tail = tail[len(tail)-64:]
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, relayEOF(err)
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(tail, []byte("\n")), []byte("\r")), nil
	}
}

// skipData drops an untagged data response, literals included.
func (rl *fetchRelay) skipData() error {
	for {
		tail, err := rl.skipLine()
		if err != nil {
			return err
		}
		n, ok := relayLiteralAtEnd(tail)
		if !ok {
			return nil
		}
		if _, err := rl.br.Discard(int(n)); err != nil {
			return relayEOF(err)
		}
	}
}

// relayLiteralAtEnd reads a "{n}" or "~{n}" that ends a line.
func relayLiteralAtEnd(line []byte) (int64, bool) {
	b, ok := bytes.CutSuffix(line, []byte("}"))
	if !ok {
		return 0, false
	}
	i := bytes.LastIndexByte(b, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b[i+1:]), 10, 64)
	if err != nil || n < 0 || n > 1<<32 {
		return 0, false
	}
	return n, true
}

// salvage, after a failure, gives the sink the whole responses gathered,
// and reports whether the client's answer is still whole: false when part
// of a response already went out (the client's connection cannot be
// resynchronised).
func (rl *fetchRelay) salvage() bool {
	if rl.partial {
		return false
	}
	rl.out = rl.out[:rl.cut]
	rl.mode = modeHold
	return rl.flush() == nil
}

// reset readies the relay for a new attempt on another connection.
func (rl *fetchRelay) reset() {
	rl.out, rl.hold, rl.mode = rl.out[:0], rl.hold[:0], modeHold
	rl.seen, rl.answered, rl.partial, rl.cut, rl.status = rl.seen[:0], 0, false, 0, nil
	rl.hitNext = 0
	clear(rl.shown)
}

// endFlight ends the flight this FETCH leads, if any (idempotent).
func (rl *fetchRelay) endFlight() {
	if rl.finish != nil {
		rl.finish()
		rl.finish = nil
	}
}

// emitHits writes the responses built from the cache for messages
// numbered below before: the client gets every response in ascending
// sequence order, as the upstream would send them. Called between
// responses only.
func (rl *fetchRelay) emitHits(before uint32) error {
	if rl.hits == nil {
		return nil
	}
	for ; rl.hitNext < len(rl.hits.list) && rl.hits.list[rl.hitNext].seq < before; rl.hitNext++ {
		h := &rl.hits.list[rl.hitNext]
		rl.out = rl.hits.appendTo(rl.out, rl.req, h)
		rl.markSeen(h.seq)
		rl.cut = len(rl.out)
		if len(rl.out) >= relayFlushAt {
			if err := rl.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}
