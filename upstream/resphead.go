package upstream

import (
	"bytes"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// respKind is what the start of an upstream response says about the rest.
type respKind uint8

const (
	// kindText: a tagged status, a continuation request ("+") or an
	// untagged OK/NO/BAD/BYE/PREAUTH. Their text (RFC 3501 9 resp-text,
	// continue-req) carries no literal, so a '}' at the end is just text.
	kindText respKind = iota
	// kindData: untagged data that may carry literals (LIST, STATUS, ...),
	// each held in memory by imapclient, so each is bounded.
	kindData
	// kindFetch: "* n FETCH", whose message body literals are streamed.
	kindFetch
	// kindUnknown: an untagged response type imapclient does not parse
	// (it closes the connection on one); dropped whole, literals included.
	kindUnknown
)

// headMax bounds how much of a response's start is looked at to classify
// it: a type name longer than this is left to imapclient.
const headMax = 128

// knownTypes are the untagged response names imapclient parses (its
// readResponseData switch); any other one makes it close the connection.
var knownTypes = map[string]respKind{
	"OK": kindText, "NO": kindText, "BAD": kindText, "BYE": kindText, "PREAUTH": kindText,
	"FETCH": kindFetch,
	"ID":    kindData, "CAPABILITY": kindData, "ENABLED": kindData, "NAMESPACE": kindData,
	"FLAGS": kindData, "EXISTS": kindData, "RECENT": kindData, "LIST": kindData,
	"STATUS": kindData, "EXPUNGE": kindData, "SEARCH": kindData, "ESEARCH": kindData,
	"SORT": kindData, "THREAD": kindData, "METADATA": kindData, "QUOTA": kindData,
	"QUOTAROOT": kindData, "MYRIGHTS": kindData, "ACL": kindData,
}

// classifyHead classifies a response from its first bytes (RFC 3501 7:
// response-tagged, continue-req, or "*" SP [number SP] name). done is
// false while b ends before the name does. Anything malformed is kindData:
// passed on for imapclient to refuse, never dropped.
func classifyHead(b []byte) (kind respKind, name []byte, done bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	if b[0] != '*' {
		return kindText, nil, true // tagged, or "+" continue-req
	}
	if len(b) < 2 {
		return 0, nil, false
	}
	if b[1] != ' ' {
		return kindData, nil, true
	}
	tok, rest, ok := atomAt(b[2:])
	if !ok {
		return 0, nil, false
	}
	if isDigits(tok) {
		if len(rest) == 0 {
			return 0, nil, false
		}
		if rest[0] != ' ' {
			return kindData, nil, true
		}
		if tok, _, ok = atomAt(rest[1:]); !ok {
			return 0, nil, false
		}
	}
	if len(tok) == 0 {
		return kindData, nil, true
	}
	k, known := knownTypes[string(bytes.ToUpper(tok))]
	if !known {
		return kindUnknown, tok, true
	}
	return k, tok, true
}

// atomAt returns the atom at the start of b and what follows it; ok is
// false when b ends inside the atom. The atom characters are imapclient's
// (RFC 3501 9 ATOM-CHAR), so the name found is the name it would read.
func atomAt(b []byte) (atom, rest []byte, ok bool) {
	for i, c := range b {
		if !isAtomChar(c) {
			return b[:i], b[i:], true
		}
	}
	return nil, nil, false
}

func isAtomChar(c byte) bool { return imapframe.IsAtomChar(c) }

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// isBodyItem reports whether the FETCH text before a literal names a
// message body (RFC 3501 7.4.2 BODY[section]<origin>, RFC822,
// RFC822.HEADER, RFC822.TEXT; RFC 3516 BINARY[section]): the literals
// the proxy streams rather than holds. Envelope and body structure
// strings follow a '(', a quoted string or NIL, never one of these.
func isBodyItem(before []byte) bool {
	b := bytes.TrimSuffix(before, []byte(" "))
	if n := len(b); n > 0 && b[n-1] == '>' { // <origin>
		i := bytes.LastIndexByte(b, '<')
		if i < 0 || !isDigits(b[i+1:n-1]) {
			return false
		}
		b = b[:i]
	}
	if n := len(b); n > 0 && b[n-1] == ']' {
		return true
	}
	for _, item := range []string{"RFC822", "RFC822.HEADER", "RFC822.TEXT"} {
		n := len(b) - len(item)
		if n > 0 && (b[n-1] == ' ' || b[n-1] == '(') && bytes.EqualFold(b[n:], []byte(item)) {
			return true
		}
	}
	return false
}
