package upstream

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/idlemux/idlemux/internal/imapframe"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// maxNotifyLen bounds the NOTIFY SET command line idlemux sends
// (quirks.MaxCommandLine). Mailboxes that do not fit stay polled.
const maxNotifyLen = quirks.MaxCommandLine

// notifyEvents are the events asked for each watched mailbox: a new
// message, an expunge, a flag change (RFC 5465 section 5: MessageNew and
// MessageExpunge go together, FlagChange needs both). For a mailbox that
// is not selected the upstream reports each as an untagged STATUS
// (section 5.2-5.4); with CONDSTORE enabled it carries HIGHESTMODSEQ, so
// a flag change that moves no count is reported too (Dovecot does).
const notifyEvents = "(MessageNew MessageExpunge FlagChange)"

// notifyCommand builds "NOTIFY SET (mailboxes (<names>) <events>)" (RFC
// 5465 section 3.1, filter-mailboxes) for names (UTF-8, as imapclient
// decodes them). Each is spelled as RFC 3501 section 5.1.3 wants, in
// modified UTF-7, quoted: a quoted string carries any name of printable
// US-ASCII, which modified UTF-7 always is. With dual, a name whose UTF-8
// differs from that is named a second time in UTF-8 (quoted, or a LITERAL+
// literal when it has 8-bit bytes): Dovecot 2.3 matches NOTIFY names as
// UTF-8 and ignores the modified UTF-7 spelling (notes/dovecot.md). Names
// are taken in order while the command stays within maxLen; n says how
// many were. With no name at all it returns "".
func notifyCommand(names []string, maxLen int, dual bool) (cmd string, n int) {
	const head, tail = "NOTIFY SET (mailboxes (", ") " + notifyEvents + ")"
	var b strings.Builder
	b.WriteString(head)
	for _, name := range names {
		spelt := spellings(name, dual)
		if b.Len()+len(spelt)+len(tail) > maxLen {
			break
		}
		if n > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(spelt[1:]) // spellings starts with the separator
		n++
	}
	if n == 0 {
		return "", 0
	}
	b.WriteString(tail)
	return b.String(), n
}

// spellings is name as NOTIFY SET lists it, after a space: its modified
// UTF-7, and with dual its UTF-8 when that differs and can be sent (no
// NUL, CR or LF).
func spellings(name string, dual bool) string {
	wire := encodeMailboxName(name)
	out := " " + quoteIMAP(wire)
	if !dual || wire == name || strings.ContainsAny(name, "\x00\r\n") {
		return out
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return out + " {" + strconv.Itoa(len(name)) + "+}\r\n" + name
		}
	}
	return out + " " + quoteIMAP(name)
}

// needsDual says whether some name is spelled twice with dual.
func needsDual(names []string) bool {
	for _, name := range names {
		if spellings(name, true) != spellings(name, false) {
			return true
		}
	}
	return false
}

// maxEventLen bounds one STATUS event as the notify connection keeps it:
// a mailbox name (at most a few hundred bytes in practice) and a handful
// of numbers. A longer one is not ours to parse: every mailbox is then
// resynced, as after a NOTIFICATIONOVERFLOW.
const maxEventLen = 4 << 10

var errNotStatus = errors.New("not a STATUS response")

// parseStatusEvent returns the mailbox name (as the upstream spells it,
// modified UTF-7) of one whole untagged STATUS response, literals
// included: `* STATUS <astring> (<status-att-list>)` CRLF (RFC 3501
// section 7.2.4, 9 mailbox-data; RFC 5465 section 5 sends these for
// watched mailboxes that are not selected). The items are not needed: any
// STATUS means "resync this mailbox".
func parseStatusEvent(b []byte) (string, error) {
	const head = "* STATUS "
	if len(b) < len(head) || !bytes.EqualFold(b[:len(head)], []byte(head)) {
		return "", errNotStatus
	}
	b = b[len(head):]
	name, rest, err := parseAstring(b)
	if err != nil {
		return "", err
	}
	rest = bytes.TrimSuffix(bytes.TrimSuffix(rest, []byte("\n")), []byte("\r"))
	if len(rest) < 3 || rest[0] != ' ' || rest[1] != '(' || rest[len(rest)-1] != ')' {
		return "", errors.New("STATUS: no attribute list after the mailbox name")
	}
	return name, nil
}

// parseAstring reads an astring (RFC 3501 section 9: atom, quoted string
// or literal) at the start of b.
func parseAstring(b []byte) (string, []byte, error) {
	if len(b) == 0 {
		return "", nil, errors.New("STATUS: no mailbox name")
	}
	switch b[0] {
	case '"':
		var s []byte
		for i := 1; i < len(b); i++ {
			switch c := b[i]; c {
			case '"':
				return string(s), b[i+1:], nil
			case '\\':
				if i+1 >= len(b) || (b[i+1] != '"' && b[i+1] != '\\') {
					return "", nil, errors.New("STATUS: bad escape in a quoted name")
				}
				i++
				s = append(s, b[i])
			case '\r', '\n', 0:
				return "", nil, errors.New("STATUS: line break in a quoted name")
			default:
				s = append(s, c)
			}
		}
		return "", nil, errors.New("STATUS: unterminated quoted name")
	case '{':
		eol := bytes.IndexByte(b, '\n')
		if eol < 0 {
			return "", nil, errors.New("STATUS: literal marker without line end")
		}
		line := bytes.TrimSuffix(b[:eol], []byte("\r"))
		lit, at, ok := imapframe.LiteralMarker(line)
		if !ok || at != 0 || !lit.Valid || lit.Size > uint64(len(b)-eol-1) {
			return "", nil, errors.New("STATUS: bad literal for the mailbox name")
		}
		body := b[eol+1:]
		return string(body[:lit.Size]), body[lit.Size:], nil
	}
	i := 0
	for i < len(b) && (isAtomChar(b[i]) || b[i] == ']') {
		i++
	}
	if i == 0 {
		return "", nil, errors.New("STATUS: bad mailbox name")
	}
	return string(b[:i]), b[i:], nil
}

// readResponse reads one whole response (its line and any literals it
// announces, RFC 3501 section 4.3) from r, at most max bytes: for the
// notify connection's raw NOTIFY exchange, where STATUS events may come
// before the tagged answer.
func readResponse(r interface {
	ReadSlice(byte) ([]byte, error)
	Read([]byte) (int, error)
}, max int) ([]byte, error) {
	var out []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		if len(out)+len(line) > max {
			return nil, framingErr("upstream sent a response to NOTIFY longer than %d bytes", max)
		}
		out = append(out, line...)
		lit, _, ok := imapframe.LiteralMarker(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")))
		if !ok {
			return out, nil
		}
		if !lit.Valid || lit.Size > uint64(max-len(out)) {
			return nil, framingErr("upstream sent a literal of %d bytes in a response to NOTIFY", lit.Size)
		}
		start := len(out)
		out = append(out, make([]byte, lit.Size)...)
		for got := start; got < len(out); {
			k, err := r.Read(out[got:])
			if err != nil {
				return nil, err
			}
			got += k
		}
	}
}
