// Package imapframe finds where IMAP lines end and literals begin, for the
// readers that frame a peer's byte stream before go-imap parses it: the
// downstream command reader and the upstream response reader. Framing the
// stream ourselves is what keeps a literal's bytes from ever being taken
// for a command or a response (RFC 3501 4.3, RFC 7888).
package imapframe

import "unicode"

// MaxLiteralDigits bounds the digits of a literal's size: RFC 3501 9
// (number) is an unsigned 32-bit value, RFC 3516 literal8 likewise; ten
// digits hold it, more is not a number IMAP allows.
const MaxLiteralDigits = 10

// Literal describes the literal announced at the end of a line.
type Literal struct {
	Size    uint64 // the announced size in bytes (<= 2^32-1 when Valid)
	NonSync bool   // "{n+}": LITERAL+ / LITERAL- (RFC 7888), no continuation request
	Binary  bool   // "~{n}": literal8 (RFC 3516)
	Valid   bool   // false when the braces hold no size IMAP allows
}

// LiteralMarker reports whether line (without its CRLF) ends with a literal
// announcement "{n}", "{n+}", "~{n}" or "~{n+}" (RFC 3501 9 literal, RFC
// 7888, RFC 3516 literal8), and where the marker starts.
//
// A line whose last byte is '}' but whose braces hold no number, or a size
// past 2^32-1, is returned with ok true and Valid false: the peer meant a
// literal, so its next bytes must not be read as a line; callers refuse it.
// Quoting is the caller's concern: a marker inside a quoted string is not
// at the end of the line, since the quoted string ends with '"'.
func LiteralMarker(line []byte) (lit Literal, start int, ok bool) {
	n := len(line)
	if n < 3 || line[n-1] != '}' {
		return Literal{}, 0, false
	}
	end := n - 1
	if line[end-1] == '+' {
		lit.NonSync = true
		end--
	}
	open := end - 1
	for open >= 0 && line[open] >= '0' && line[open] <= '9' {
		open--
	}
	if open < 0 || line[open] != '{' {
		return Literal{}, 0, false
	}
	digits := line[open+1 : end]
	start = open
	if open > 0 && line[open-1] == '~' {
		lit.Binary = true
		start = open - 1
	}
	if len(digits) == 0 || len(digits) > MaxLiteralDigits {
		return lit, start, true
	}
	var size uint64
	for _, d := range digits {
		size = size*10 + uint64(d-'0')
	}
	if size > 1<<32-1 {
		return lit, start, true
	}
	lit.Size, lit.Valid = size, true
	return lit, start, true
}

// IsAtomChar is RFC 3501 9 ATOM-CHAR as go-imap reads it (imapserver's and
// imapclient's decoder alike): any byte but atom-specials and control
// characters, C1 included, since the decoder judges a byte taken as a
// rune. Framing with the same rule is what makes the readers agree with
// go-imap on where an atom (a tag, a command or response name) ends.
func IsAtomChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return !unicode.IsControl(rune(c))
}
