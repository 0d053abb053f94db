package proxy

import (
	"bytes"
	"io"
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// fetch relays one FETCH response, positioned after "FETCH" (RFC 3501
// 7.4.2: "(" item SP value ... ")" CRLF).
func (rl *fetchRelay) fetch() error {
	if err := rl.expect(' '); err != nil {
		return err
	}
	if err := rl.expect('('); err != nil {
		return err
	}
	rl.mode, rl.hold, rl.uid, rl.uidOut, rl.nItems, rl.nBuffered = modeHold, rl.hold[:0], 0, false, 0, 0
	rl.text = 0
	rl.curFlags = rl.curFlags[:0]
	if rl.capture != nil {
		rl.capture.reset()
	}
	for first := true; ; first = false {
		if !first && rl.fastRest() {
			break
		}
		c, err := rl.br.ReadByte()
		if err != nil {
			return relayEOF(err)
		}
		if c == ')' {
			break
		}
		if !first {
			if c != ' ' {
				return relayErr("got %q between FETCH items", c)
			}
		} else {
			rl.br.UnreadByte()
		}
		if err := rl.item(); err != nil {
			return err
		}
	}
	if err := rl.expect('\r'); err != nil {
		return err
	}
	if err := rl.expect('\n'); err != nil {
		return err
	}
	if rl.mode == modeOut {
		if rl.capture != nil {
			rl.capture.commit(uint32(rl.uid))
		}
		if rl.shown != nil && len(rl.curFlags) > 0 {
			rl.shown[rl.uid] = bytes.Clone(rl.curFlags)
		}
		rl.putUID(true)
		rl.out = append(rl.out, ")\r\n"...)
		rl.mode, rl.partial, rl.cut = modeHold, false, len(rl.out)
		if len(rl.out) >= relayFlushAt {
			return rl.flush()
		}
	}
	return nil // modeHold: no UID, an unsolicited change
}

// fastRest relays the rest of the response at once when nothing in it
// needs the item-by-item path: it is buffered whole, holds no literal
// (the first line end is the response's: ")" CRLF), no \Recent to drop,
// no item to rename and no UID still to place. A header listing is then
// one copy per message. It reports whether it did.
func (rl *fetchRelay) fastRest() bool {
	if rl.mode != modeOut || (rl.req.wantUID && !rl.uidOut) || rl.req.rename != nil {
		return false
	}
	b, _ := rl.br.Peek(rl.br.Buffered())
	end := bytes.IndexByte(b, '\n')
	if end < 2 || b[end-1] != '\r' || b[end-2] != ')' || hasRecent(b[:end]) {
		return false
	}
	rest := b[:end-2] // the items after the current one, " item value..."
	if !rl.flagsKnown(rest) || !fastItems(rest, nil) {
		return false
	}
	if rl.count(int64(len(rest))) != nil {
		return false // the item-by-item path reports it
	}
	if rl.capture != nil {
		fastItems(rest, rl.capture.item)
	}
	if rl.shown != nil {
		fastItems(rest, func(name, value []byte) {
			if string(name) == "FLAGS" {
				rl.curFlags = append(rl.curFlags[:0], value...)
			}
		})
	}
	if rl.nItems == 0 {
		rest = bytes.TrimPrefix(rest, []byte(" "))
	}
	if len(rest) > 0 {
		rl.nItems++ // at least one: all that matters now
	}
	rl.emit(rest)
	rl.br.Discard(end - 1) // through the ")": the caller reads the CRLF
	return true
}

// hasRecent reports a \Recent flag (any case) in b.
func hasRecent(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return false
		}
		b = b[i+1:]
		if len(b) >= 6 && bytes.EqualFold(b[:6], []byte("recent")) {
			return true
		}
	}
}

// item relays one item: name SP value.
func (rl *fetchRelay) item() error {
	name, err := rl.name()
	if err != nil {
		return err
	}
	if err := rl.expect(' '); err != nil {
		return err
	}
	if hasLower(name) {
		name = bytes.ToUpper(name)
	}
	up := name
	switch string(up) {
	case "UID":
		return rl.uidItem()
	case "MODSEQ":
		// A pool connection has CONDSTORE enabled (the watcher's polls
		// use it, RFC 7162 3.1), and the upstream may then add MODSEQ to
		// a FETCH the client did not ask it for: dropped.
		v, err := rl.modSeqValue()
		if err != nil || !rl.keepModSeq {
			return err
		}
		rl.maxModSeq = maxModSeqOf(rl.maxModSeq, v) // condstore_syncpoint.go
		rl.startItem(up)
		rl.emit(modseqPrefix)
		rl.emit(v)
		return rl.maybeFlush()
	case "FLAGS":
		flags, err := rl.flagList()
		if err != nil {
			return err
		}
		rl.announceFlags(flags)
		if rl.capture != nil {
			rl.capture.flags()
		}
		if rl.mode == modeOut && rl.isRecent != nil && rl.isRecent(rl.uid) {
			// idlemux's own \Recent, last as Dovecot writes it
			if len(flags) > 2 {
				flags = append(flags[:len(flags)-1], ` \Recent)`...)
			} else {
				flags = []byte(`(\Recent)`)
			}
		}
		if rl.shown != nil {
			rl.curFlags = append(rl.curFlags[:0], flags...)
		}
		rl.startItem(up)
		rl.emit(flagsPrefix)
		rl.emit(flags)
		return rl.maybeFlush()
	}
	rl.startItem(up)
	if to, ok := rl.req.rename[string(up)]; ok {
		name = []byte(to)
	}
	rl.emit(name)
	rl.emit([]byte{' '})
	if rl.capture != nil {
		rl.capture.begin(string(up))
	}
	err = rl.value()
	if rl.capture != nil {
		rl.capture.end()
	}
	if err != nil {
		return err
	}
	return rl.maybeFlush()
}

// startItem writes what goes before an item: the UID when its turn has
// come, and the separator.
func (rl *fetchRelay) startItem(name []byte) {
	rl.putUID(false)
	if rl.nItems > 0 {
		rl.emit([]byte{' '})
	}
	rl.nItems++
	if bufferedItems[string(name)] {
		rl.nBuffered++
	}
}

// putUID writes the UID item where the client's answer has it (last:
// at the end of the response, whatever is left).
func (rl *fetchRelay) putUID(last bool) {
	if rl.mode != modeOut || rl.uidOut || !rl.req.wantUID || (!last && rl.nBuffered < rl.req.uidAfter) {
		return
	}
	rl.uidOut = true
	if rl.nItems > 0 {
		rl.out = append(rl.out, ' ')
	}
	rl.nItems++
	rl.out = append(rl.out, "UID "...)
	rl.out = strconv.AppendUint(rl.out, uint64(rl.uid), 10)
}

// uidItem reads the UID, which says whose response this is.
func (rl *fetchRelay) uidItem() error {
	tok, err := rl.atom()
	if err != nil {
		return err
	}
	n, ok := parseNum(tok)
	if !ok || n == 0 || rl.mode != modeHold {
		return relayErr("bad or repeated UID %q", tok)
	}
	rl.uid = imap.UID(n)
	seq, known := uint32(0), rl.uids.Contains(rl.uid)
	if known {
		seq, known = rl.seqOf(rl.uid)
	}
	if !known {
		rl.mode = modeDrop
		return nil
	}
	if err := rl.emitHits(seq); err != nil {
		return err
	}
	rl.markSeen(seq)
	rl.mode = modeOut
	rl.start = len(rl.out)
	rl.out = append(rl.out, "* "...)
	rl.out = strconv.AppendUint(rl.out, uint64(seq), 10)
	rl.out = append(rl.out, " FETCH ("...)
	if len(rl.hold) > 0 {
		// Items before the UID (not Dovecot's order): the UID follows them.
		if rl.capture != nil {
			rl.capture.odd = true
		}
		rl.out = append(rl.out, rl.hold...)
		rl.hold = rl.hold[:0]
	}
	rl.putUID(false)
	return nil
}

// emit writes b where the current response goes.
func (rl *fetchRelay) emit(b []byte) {
	if rl.capture != nil {
		rl.capture.add(b)
	}
	switch rl.mode {
	case modeOut:
		rl.out = append(rl.out, b...)
	case modeHold:
		rl.hold = append(rl.hold, b...)
	}
}

func (rl *fetchRelay) maybeFlush() error {
	if len(rl.hold) > relayHoldMax {
		return relayErr("more than %d bytes before the UID", relayHoldMax)
	}
	if len(rl.out) >= relayFlushAt {
		return rl.flush()
	}
	return nil
}

func (rl *fetchRelay) flush() error {
	if len(rl.out) == 0 {
		return nil
	}
	rl.wrote = true
	rl.partial = rl.mode == modeOut
	err := rl.sink.text(rl.out)
	rl.out, rl.cut = rl.out[:0], 0
	return err
}

// name reads an item's name: atom, "[section]" (which may hold spaces,
// parentheses and quoted strings) and "<origin>".
func (rl *fetchRelay) name() ([]byte, error) {
	var name []byte
	inSection := false
	for {
		c, err := rl.br.ReadByte()
		if err != nil {
			return nil, relayEOF(err)
		}
		switch {
		case c == '[':
			inSection = true
		case c == ']':
			inSection = false
		case c == '"' && inSection:
			name = append(name, c)
			q, err := rl.quotedRest()
			if err != nil {
				return nil, err
			}
			name = append(name, q...)
			continue
		case c == '\r' || c == '\n' || c == '{':
			return nil, relayErr("got %q in an item name", c)
		case (c == ' ' || c == ')') && !inSection:
			rl.br.UnreadByte()
			if len(name) == 0 {
				return nil, relayErr("empty item name")
			}
			return name, nil
		}
		if len(name) >= relayNameMax {
			return nil, relayErr("item name longer than %d bytes", relayNameMax)
		}
		name = append(name, c)
	}
}

// quotedRest reads a quoted string after its opening quote.
func (rl *fetchRelay) quotedRest() ([]byte, error) {
	var q []byte
	for {
		c, err := rl.br.ReadByte()
		if err != nil {
			return nil, relayEOF(err)
		}
		if len(q) >= relayNameMax {
			return nil, relayErr("quoted string in a name longer than %d bytes", relayNameMax)
		}
		q = append(q, c)
		switch c {
		case '\\':
			c, err = rl.br.ReadByte()
			if err != nil {
				return nil, relayEOF(err)
			}
			q = append(q, c)
		case '"':
			return q, nil
		case '\r', '\n':
			return nil, relayErr("line end in a quoted string")
		}
	}
}

// flagList reads a FLAGS value whole and returns it without \Recent.
func (rl *fetchRelay) flagList() ([]byte, error) {
	if err := rl.expect('('); err != nil {
		return nil, err
	}
	out := []byte{'('}
	var tok []byte
	for {
		c, err := rl.br.ReadByte()
		if err != nil {
			return nil, relayEOF(err)
		}
		if c == ' ' || c == ')' {
			if len(tok) > 0 && !bytes.EqualFold(tok, []byte(`\Recent`)) {
				if len(out) > 1 {
					out = append(out, ' ')
				}
				out = append(out, tok...)
			}
			tok = tok[:0]
			if c == ')' {
				return append(out, ')'), nil
			}
			continue
		}
		if c == '\r' || c == '\n' || c == '(' || c == '"' || c == '{' {
			return nil, relayErr("got %q in FLAGS", c)
		}
		if len(out)+len(tok) >= relayFlagsMax {
			return nil, relayErr("FLAGS longer than %d bytes", relayFlagsMax)
		}
		tok = append(tok, c)
	}
}

// value relays one value: a parenthesized list (nested, with strings and
// literals), a quoted string, a literal, or an atom (NIL, a number).
func (rl *fetchRelay) value() error {
	c, err := rl.br.ReadByte()
	if err != nil {
		return relayEOF(err)
	}
	switch c {
	case '"':
		return rl.quoted()
	case '{', '~':
		return rl.literal(c, false)
	case '(':
		return rl.list()
	case ' ', ')', '\r', '\n':
		return relayErr("empty value")
	}
	rl.emit([]byte{c})
	c, err = rl.copyRun(&atomStop)
	if err != nil {
		return err
	}
	if c != ' ' && c != ')' {
		return relayErr("got %q in an atom", c)
	}
	return nil
}

// Bytes that end a run copied as it is.
var atomStop, listStop, quotedStop = stopSet(" )(\"{\r\n"), stopSet("()\"{~\r\n"), stopSet("\"\\\r\n")

func stopSet(s string) (set [256]bool) {
	for i := range len(s) {
		set[s[i]] = true
	}
	return set
}

// copyRun relays the bytes up to the next one in stop, which it returns
// without consuming it: a run is copied at once, not byte by byte.
func (rl *fetchRelay) copyRun(stop *[256]bool) (byte, error) {
	for {
		if _, err := rl.br.Peek(1); err != nil {
			return 0, relayEOF(err)
		}
		b, _ := rl.br.Peek(rl.br.Buffered())
		i := 0
		for i < len(b) && !stop[b[i]] {
			i++
		}
		rl.emit(b[:i])
		rl.br.Discard(i)
		if err := rl.count(int64(i)); err != nil {
			return 0, err
		}
		if err := rl.maybeFlush(); err != nil {
			return 0, err
		}
		if i < len(b) {
			return b[i], nil
		}
	}
}

// list relays a parenthesized list after its "(".
func (rl *fetchRelay) list() error {
	rl.emit([]byte{'('})
	for depth := 1; depth > 0; {
		if _, err := rl.copyRun(&listStop); err != nil {
			return err
		}
		c, _ := rl.br.ReadByte()
		switch c {
		case '"':
			if err := rl.quoted(); err != nil {
				return err
			}
			continue
		case '{', '~':
			if err := rl.literal(c, true); err != nil {
				return err
			}
			continue
		case '(':
			depth++
		case ')':
			depth--
		case '\r', '\n':
			return relayErr("line end in a list")
		}
		rl.emit([]byte{c})
	}
	return nil
}

// quoted relays a quoted string after its opening quote.
func (rl *fetchRelay) quoted() error {
	rl.emit([]byte{'"'})
	for {
		if _, err := rl.copyRun(&quotedStop); err != nil {
			return err
		}
		c, _ := rl.br.ReadByte()
		switch c {
		case '\\':
			rl.emit([]byte{c})
			if c, err := rl.br.ReadByte(); err != nil {
				return relayEOF(err)
			} else {
				rl.emit([]byte{c})
			}
		case '"':
			rl.emit([]byte{c})
			return nil
		default:
			return relayErr("line end in a quoted string")
		}
	}
}

// count adds n bytes to the current response's text: everything but the
// literal values of its items (message bodies, streamed), bounded as the
// response reader bounds every other response (upstream/respreader.go).
func (rl *fetchRelay) count(n int64) error {
	rl.text += n
	if rl.text > relayTextMax {
		return relayErr("a response of more than %d bytes outside its bodies", relayTextMax)
	}
	return nil
}

// literal relays "{n}" CRLF and n bytes, or RFC 3516's "~{n}" (first is
// the '{' or '~' already read). A large literal of the client's message
// streams into the sink; one before the UID is held (bounded). A literal
// nested in a value (an ENVELOPE or BODYSTRUCTURE string) counts as text.
func (rl *fetchRelay) literal(first byte, nested bool) error {
	marker := []byte{first}
	if first == '~' {
		if err := rl.expect('{'); err != nil {
			return err
		}
		marker = append(marker, '{')
	}
	var digits []byte
	for {
		c, err := rl.br.ReadByte()
		if err != nil {
			return relayEOF(err)
		}
		if c == '}' {
			break
		}
		if c < '0' || c > '9' || len(digits) >= 10 {
			return relayErr("bad literal size")
		}
		digits = append(digits, c)
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || n > 1<<32-1 {
		return relayErr("bad literal size %q", digits)
	}
	if err := rl.expect('\r'); err != nil {
		return err
	}
	if err := rl.expect('\n'); err != nil {
		return err
	}
	if nested {
		if err := rl.count(n); err != nil {
			return err
		}
	}
	marker = append(append(marker, digits...), "}\r\n"...)
	rl.emit(marker)
	src := io.LimitReader(rl.br, n)
	switch {
	case rl.mode == modeDrop:
		_, err = rl.br.Discard(int(n))
	case rl.mode == modeOut && n > relayInline:
		if err = rl.flush(); err == nil {
			rl.partial = true
			if rl.capture != nil {
				src = rl.capture.tee(src)
			}
			err = rl.sink.literal(src, n)
		}
	default:
		if rl.mode == modeHold && int64(len(rl.hold))+n > relayHoldMax {
			return relayErr("more than %d bytes before the UID", relayHoldMax)
		}
		var got int64
		dst := &rl.hold
		if rl.mode == modeOut {
			dst = &rl.out
		}
		got, err = readAppend(dst, src, n)
		if rl.capture != nil {
			rl.capture.add((*dst)[len(*dst)-int(got):])
		}
		if err == nil && got < n {
			err = io.ErrUnexpectedEOF
		}
	}
	return relayEOF(err)
}

// readAppend appends n bytes of r to *b.
func readAppend(b *[]byte, r io.Reader, n int64) (int64, error) {
	start := len(*b)
	*b = append(*b, make([]byte, n)...)
	got, err := io.ReadFull(r, (*b)[start:])
	*b = (*b)[:start+got]
	return int64(got), err
}

// markSeen records that the message numbered seq was answered.
func (rl *fetchRelay) markSeen(seq uint32) {
	i, bit := seq/64, uint64(1)<<(seq%64)
	for uint32(len(rl.seen)) <= i {
		rl.seen = append(rl.seen, 0)
	}
	if rl.seen[i]&bit == 0 {
		rl.seen[i] |= bit
		rl.answered++
	}
}

var flagsPrefix = []byte("FLAGS ")

func hasLower(b []byte) bool {
	for _, c := range b {
		if 'a' <= c && c <= 'z' {
			return true
		}
	}
	return false
}

// flagsKnown reports whether the fast path may copy rest as it is: no
// FLAGS list in it needs \Recent added or a keyword announced first.
// Every "FLAGS (" in rest is looked at, the real one among them.
func (rl *fetchRelay) flagsKnown(rest []byte) bool {
	if rl.announce == nil && rl.isRecent == nil {
		return true
	}
	if !bytes.Contains(rest, flagsPrefix) {
		return true
	}
	if rl.isRecent != nil && rl.isRecent(rl.uid) {
		return false // \Recent is added on the item path
	}
	for b := rest; ; {
		i := bytes.Index(b, flagsPrefix)
		if i < 0 {
			return true
		}
		b = b[i+len(flagsPrefix):]
		end := bytes.IndexByte(b, ')')
		if end < 0 || !bytes.HasPrefix(b, []byte("(")) {
			continue
		}
		for _, f := range flagTokens(b[:end+1]) {
			if rl.announce != nil && !rl.okFlags[string(f)] {
				return false
			}
		}
	}
}

// announceFlags puts the FLAGS lines a response's flags need (RFC 3501
// 7.2.6) before the response, when it is the client's and still whole in
// out (a server that sends FLAGS before UID, or a literal before FLAGS,
// gets none: Dovecot does neither).
func (rl *fetchRelay) announceFlags(flags []byte) {
	if rl.announce == nil || rl.mode != modeOut || rl.partial {
		return
	}
	var toks [][]byte
	for _, f := range flagTokens(flags) {
		if !rl.okFlags[string(f)] {
			toks = append(toks, f)
		}
	}
	if len(toks) == 0 {
		return
	}
	if lines := rl.announce(toks); lines != nil {
		rl.out = slices.Insert(rl.out, rl.start, lines...)
	}
	if rl.okFlags == nil {
		rl.okFlags = make(map[string]bool)
	}
	for _, f := range toks {
		if len(rl.okFlags) < 1024 { // bounded: a hostile upstream's flags
			rl.okFlags[string(f)] = true
		}
	}
}

var modseqPrefix = []byte("MODSEQ ")

// modSeqValue reads a MODSEQ value, "(" number ")" (RFC 7162 7
// fetch-mod-resp), and returns it as read.
func (rl *fetchRelay) modSeqValue() ([]byte, error) {
	if err := rl.expect('('); err != nil {
		return nil, err
	}
	v := make([]byte, 1, 22)
	v[0] = '('
	for n := 0; ; n++ {
		c, err := rl.br.ReadByte()
		if err != nil {
			return nil, relayEOF(err)
		}
		v = append(v, c)
		if c == ')' && n > 0 {
			return v, nil
		}
		if c < '0' || c > '9' || n >= 20 {
			return nil, relayErr("got %q in MODSEQ", c)
		}
	}
}
