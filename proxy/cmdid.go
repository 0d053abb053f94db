package proxy

import (
	"bytes"
	"strconv"
	"strings"
)

// Version is idlemux's version, as ID (RFC 2971) gives it: the binary
// sets it from its build.
var Version = "dev"

// RFC 2971 3.3 limits of the client's ID parameters.
const (
	maxIDPairs    = 30
	maxIDField    = 30
	maxIDValueLen = 1024
)

// idReply answers ID (RFC 2971) in the reader, before and after login
// alike: imapserver has no ID. The answer is idlemux's own identity, not
// the upstream's: the client talks to idlemux, and the client's ID is not
// passed upstream (forwarding it would tell the upstream about the
// client; see the ID forwarding of upstream.forward_client_address, off
// by default). Parameters that are not NIL or a list of string pairs
// within RFC 2971's limits get BAD, as Dovecot answers them before login;
// after login Dovecot accepts any arguments, idlemux keeps the one rule.
func idReply(f *framed) *refusal {
	// f.head is the whole command, literals included; the name is "ID"
	// in any case.
	args := bytes.TrimSuffix(f.head[min(len(f.head), len(f.tag)+3):], []byte("\r\n"))
	if why := checkIDParams(args); why != "" {
		return &refusal{line: f.tag + " BAD " + why}
	}
	return &refusal{line: "* ID (\"name\" \"idlemux\" \"version\" " + quoteIMAP(Version) + ")\r\n" + f.tag + " OK ID completed."}
}

const badIDParams = "Invalid ID parameters"

// checkIDParams checks ID's argument (RFC 2971 3.1: NIL or a list of
// field-value pairs, fields strings, values strings or NIL). What follows
// it is ignored, and no argument at all is taken as NIL, as Dovecot does.
// It returns the text of a BAD, or "".
func checkIDParams(b []byte) string {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 {
		return ""
	}
	if b[0] != '(' {
		if atom, _ := atomPrefix(b); atom == "NIL" {
			return ""
		}
		return badIDParams
	}
	b = b[1:]
	for n := 0; ; n++ {
		b = bytes.TrimLeft(b, " ")
		if len(b) == 0 {
			return "Missing ')'"
		}
		if b[0] == ')' {
			return ""
		}
		s, rest, ok := idString(b)
		isField := n%2 == 0
		switch {
		case !ok && (isField || !startsNIL(b)):
			return badIDParams
		case !ok:
			rest = b[3:]
		case isField && (len(s) > maxIDField || n/2 >= maxIDPairs):
			return badIDParams
		case !isField && len(s) > maxIDValueLen:
			return badIDParams
		}
		b = rest
	}
}

// startsNIL reports whether b starts with the atom NIL.
func startsNIL(b []byte) bool {
	atom, _ := atomPrefix(b)
	return atom == "NIL"
}

// idString reads a string (RFC 3501 9: quoted, or a literal as the reader
// framed it, "{n+}" CRLF and n bytes) at the start of b: its content and
// what follows it.
func idString(b []byte) (s, rest []byte, ok bool) {
	switch b[0] {
	case '"':
		var out []byte
		for i := 1; i < len(b); i++ {
			switch c := b[i]; c {
			case '\\':
				if i+1 == len(b) {
					return nil, nil, false
				}
				i++
				out = append(out, b[i])
			case '"':
				return out, b[i+1:], true
			default:
				out = append(out, c)
			}
		}
	case '{', '~':
		end := bytes.Index(b, []byte("}\r\n"))
		if end < 0 || b[0] == '~' {
			return nil, nil, false
		}
		n, err := strconv.Atoi(strings.TrimSuffix(string(b[1:end]), "+"))
		if err != nil || n < 0 || n > len(b)-end-3 {
			return nil, nil, false
		}
		return b[end+3 : end+3+n], b[end+3+n:], true
	}
	return nil, nil, false
}

// quoteIMAP writes s as an IMAP quoted string (RFC 3501 9).
func quoteIMAP(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
