package proxy

import (
	"bytes"
	"errors"
	"strconv"
)

// fetchAtt is one FETCH data item as the client wrote it (RFC 3501 9
// fetch-att; RFC 3516 BINARY): name, section and partial.
type fetchAtt struct {
	name    string // upper-cased, without section or partial: "BODY.PEEK", "UID"
	section []byte // "[...]" as written (literals made quoted), nil if none
	partial []byte // "<...>" as written, nil if none
}

func (a fetchAtt) text() string {
	return a.name + string(a.section) + string(a.partial)
}

// fetchRequest is what the upstream is asked, derived from the client's
// own FETCH items (proxy/clientconn.go keeps the command's text).
type fetchRequest struct {
	items string // the upstream's item list, for "UID FETCH <uids> " items
	// wantUID: the client asked for UID (or ran UID FETCH): the UID item
	// of the upstream's answer is kept, else dropped.
	wantUID bool
	// uidAfter is how many items go before UID in the client's answer:
	// Dovecot writes the items it has at hand (uidFirstItems) first, in
	// the order asked, then the rest; UID FETCH always has UID first.
	uidAfter int
	// rename maps an item name in the upstream's answer to the client's
	// (RFC822 asked as BODY.PEEK[] under EXAMINE).
	rename map[string]string
}

// bufferedItems are the items Dovecot writes before every other one,
// whatever their order in the command (its "buffered" fetch handlers);
// measured against Dovecot 2.3: FETCH 1 (RFC822.SIZE ENVELOPE UID) gives
// (RFC822.SIZE n UID n ENVELOPE ...).
var bufferedItems = map[string]bool{"UID": true, "FLAGS": true, "INTERNALDATE": true, "RFC822.SIZE": true, "MODSEQ": true}

var errFetchItems = errors.New("FETCH items not understood")

// fetchItemsOf returns the item list of a FETCH command's text ("tag
// [UID] FETCH set items CRLF"), as the command reader framed it.
func fetchItemsOf(cmd []byte) ([]byte, error) {
	cmd = bytes.TrimSuffix(cmd, []byte("\r\n"))
	for range 3 { // tag, FETCH or UID, and the set (or FETCH after UID)
		i := bytes.IndexByte(cmd, ' ')
		if i < 0 {
			return nil, errFetchItems
		}
		word := cmd[:i]
		cmd = cmd[i+1:]
		if bytes.EqualFold(word, []byte("UID")) {
			i = bytes.IndexByte(cmd, ' ')
			if i < 0 {
				return nil, errFetchItems
			}
			cmd = cmd[i+1:]
		}
	}
	return cmd, nil
}

// parseFetchItems reads a FETCH command's items: a macro, one item, or a
// parenthesized list, and any modifiers after it (RFC 4466 2.4), which
// are returned apart. Literals in sections (header field names) become
// quoted strings, so the upstream command is one line.
func parseFetchItems(b []byte) (atts []fetchAtt, list bool, err error) {
	p := &attParser{b: b}
	if p.peek() == '(' {
		list = true
		p.i++
		for p.peek() != ')' {
			if len(atts) > 0 && !p.eat(' ') {
				return nil, false, errFetchItems
			}
			a, err := p.att()
			if err != nil {
				return nil, false, err
			}
			atts = append(atts, a)
		}
		p.i++
	} else {
		a, err := p.att()
		if err != nil {
			return nil, false, err
		}
		atts = append(atts, a)
	}
	// What follows (" (CHANGEDSINCE n)") is a modifier list: dropped,
	// as CONDSTORE is not offered.
	if p.i < len(p.b) && p.b[p.i] != ' ' {
		return nil, false, errFetchItems
	}
	return atts, list, nil
}

type attParser struct {
	b []byte
	i int
}

func (p *attParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *attParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// att reads one item: name, then [section] and <partial>.
func (p *attParser) att() (fetchAtt, error) {
	start := p.i
	for p.i < len(p.b) && isAtomChar(p.b[p.i]) && p.b[p.i] != '[' && p.b[p.i] != ']' && p.b[p.i] != '<' {
		p.i++
	}
	if p.i == start {
		return fetchAtt{}, errFetchItems
	}
	a := fetchAtt{name: string(bytes.ToUpper(p.b[start:p.i]))}
	if p.peek() == '[' {
		sec, err := p.section()
		if err != nil {
			return fetchAtt{}, err
		}
		a.section = sec
	}
	if p.peek() == '<' {
		end := bytes.IndexByte(p.b[p.i:], '>')
		if end < 0 {
			return fetchAtt{}, errFetchItems
		}
		a.partial = p.b[p.i : p.i+end+1]
		p.i += end + 1
	}
	return a, nil
}

// section reads "[...]" up to its closing bracket outside quotes; a
// literal inside (a header field name) is rewritten as a quoted string.
func (p *attParser) section() ([]byte, error) {
	var out []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch c {
		case ']':
			p.i++
			return append(out, ']'), nil
		case '"':
			end := quotedEnd(p.b[p.i:])
			if end < 0 {
				return nil, errFetchItems
			}
			out = append(out, p.b[p.i:p.i+end]...)
			p.i += end
			continue
		case '{':
			s, err := p.literal()
			if err != nil {
				return nil, err
			}
			out = appendQuoted(out, s)
			continue
		case '\r', '\n':
			return nil, errFetchItems
		}
		out = append(out, c)
		p.i++
	}
	return nil, errFetchItems
}

// literal reads "{n}" or "{n+}" CRLF and n bytes.
func (p *attParser) literal() ([]byte, error) {
	end := bytes.Index(p.b[p.i:], []byte("}\r\n"))
	if end < 0 {
		return nil, errFetchItems
	}
	digits := bytes.TrimSuffix(p.b[p.i+1:p.i+end], []byte("+"))
	n, err := strconv.Atoi(string(digits))
	if err != nil || n < 0 || p.i+end+3+n > len(p.b) {
		return nil, errFetchItems
	}
	start := p.i + end + 3
	p.i = start + n
	return p.b[start:p.i], nil
}

// quotedEnd returns the length of the quoted string at the start of b,
// quotes included; -1 if it does not end.
func quotedEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		case '\r', '\n':
			return -1
		}
	}
	return -1
}

// appendQuoted appends s as a quoted string (RFC 3501 9 quoted). A header
// field name never holds CR, LF or 8-bit bytes (RFC 5322 2.2); one that
// does is quoted anyway and the upstream refuses it.
func appendQuoted(out, s []byte) []byte {
	out = append(out, '"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			out = append(out, '\\')
		}
		out = append(out, c)
	}
	return append(out, '"')
}

// newFetchRequest derives the upstream's items from the client's. Sent
// as UID FETCH, so every answer carries the UID that gives its sequence
// number in the client's view. MODSEQ is dropped (CONDSTORE is not
// offered, and enabling it on a shared pool connection would change
// every later answer there). Under EXAMINE every body item is asked with
// .PEEK, so the client's read-only view never sets \Seen (RFC 3501
// 6.3.2): RFC822 and RFC822.TEXT, which have no .PEEK form, are asked as
// BODY.PEEK[] and BODY.PEEK[TEXT] and renamed back in the answer.
func newFetchRequest(atts []fetchAtt, list, uidCmd, readOnly bool) *fetchRequest {
	return newFetchRequestModSeq(atts, list, uidCmd, readOnly, false)
}

// newFetchRequestModSeq is newFetchRequest that, with modseq, keeps
// MODSEQ where the client asked it, for a client that asked it (RFC 7162
// 3.1.4): the upstream answers items in the order asked.
func newFetchRequestModSeq(atts []fetchAtt, list, uidCmd, readOnly, modseq bool) *fetchRequest {
	r := &fetchRequest{wantUID: uidCmd}
	var parts []string
	seen := make(map[string]bool, len(atts))
	for _, a := range atts {
		key := a.text()
		switch {
		case a.name == "UID" && !r.wantUID:
			r.wantUID = true
			r.uidAfter = countBuffered(seen)
		case a.name == "MODSEQ" && !modseq:
			continue
		case readOnly && (a.name == "BODY" && a.section != nil || a.name == "BINARY"):
			a.name += ".PEEK"
		case readOnly && (a.name == "RFC822" || a.name == "RFC822.TEXT"):
			spec := map[string]string{"RFC822": "[]", "RFC822.TEXT": "[TEXT]"}[a.name]
			if r.rename == nil {
				r.rename = make(map[string]string)
			}
			r.rename["BODY"+spec] = a.name
			a = fetchAtt{name: "BODY.PEEK", section: []byte(spec)}
		}
		seen[key] = true
		parts = append(parts, a.text())
	}
	switch {
	case len(parts) == 0:
		r.items = "(UID)"
	case !list:
		r.items = parts[0]
	default:
		r.items = "(" + joinSP(parts) + ")"
	}
	return r
}

// countBuffered counts the distinct buffered items among those seen.
func countBuffered(seen map[string]bool) int {
	n := 0
	for k := range seen {
		if bufferedItems[k] {
			n++
		}
	}
	return n
}

func joinSP(parts []string) string {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, p...)
	}
	return string(b)
}
