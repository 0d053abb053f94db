package proxy

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// Limits on a SEARCH command's criteria, checked before any parser that
// recurses sees them. imapserver parses OR, NOT and parenthesised lists
// recursively, and imapclient encodes them recursively again upstream:
// an unchecked 49 KiB OR chain (6,000 levels) cost about 25 MB of
// goroutine stack per command. Dovecot 2.3 itself has no depth limit: it
// takes any nesting that fits in imap_max_line_length (64 KiB), measured
// up to 30,000 levels (TestDovecotSearchDepthAccepted). Real clients nest
// far less: Thunderbird and mutt turn "match any of N terms" into N-1
// nested ORs, Roundcube ORs four headers; a few hundred terms is already
// beyond what a person types into a filter.
const (
	// maxSearchDepth bounds the nesting of OR, NOT, FUZZY and "(".
	maxSearchDepth = 256
	// maxSearchKeys bounds the search keys of one command, operators and
	// their operands included (a depth-255 OR chain has 511 keys).
	maxSearchKeys = 4096
)

// errSearchDepth and errSearchKeys answer a SEARCH over the limits: BAD,
// as Dovecot answers a SEARCH too large for it, with RFC 5530's LIMIT.
var (
	errSearchDepth = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeLimit,
		Text: fmt.Sprintf("Search criteria nested too deeply (limit %d levels)", maxSearchDepth)}
	errSearchKeys = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeLimit,
		Text: fmt.Sprintf("Too many search keys (limit %d)", maxSearchKeys)}
)

func searchSyntax(text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Syntax error in SEARCH: " + text}
}

// searchArgs is how many arguments (strings, numbers, dates, flags) follow
// each search key of RFC 3501 section 6.4.4 and of the extensions Dovecot
// supports (WITHIN RFC 5032, SAVEDATE RFC 8514, OBJECTID RFC 8474,
// CONDSTORE RFC 7162, FILTER RFC 5466). OR, NOT and FUZZY (RFC 6203) take
// search keys instead and are handled apart. Any other atom (a sequence
// set, "$" of SEARCHRES, or an unknown key the parser will refuse) is
// taken as a key without arguments.
var searchArgs = map[string]int{
	"BCC": 1, "BEFORE": 1, "BODY": 1, "CC": 1, "FROM": 1, "KEYWORD": 1,
	"LARGER": 1, "ON": 1, "SENTBEFORE": 1, "SENTON": 1, "SENTSINCE": 1,
	"SINCE": 1, "SMALLER": 1, "SUBJECT": 1, "TEXT": 1, "TO": 1, "UID": 1,
	"UNKEYWORD": 1, "HEADER": 2,
	"OLDER": 1, "YOUNGER": 1,
	"SAVEDBEFORE": 1, "SAVEDON": 1, "SAVEDSINCE": 1,
	"EMAILID": 1, "THREADID": 1, "FILTER": 1,
	"MODSEQ": 1, // 3 when an entry name (a quoted string) follows
}

// searchScanner walks a SEARCH command's arguments token by token.
type searchScanner struct {
	b   []byte
	pos int
}

const (
	tokEnd = iota
	tokAtom
	tokString // quoted string or literal
	tokOpen
	tokClose
)

// next returns the next token and, for an atom, its bytes. Quoted strings
// (with \ escapes) and literals ({n}, {n+}, followed by CRLF and n bytes)
// are skipped whole: nothing inside them is a key.
func (s *searchScanner) next() (int, []byte, error) {
	for s.pos < len(s.b) && s.b[s.pos] == ' ' {
		s.pos++
	}
	if s.pos >= len(s.b) || s.b[s.pos] == '\r' || s.b[s.pos] == '\n' {
		return tokEnd, nil, nil
	}
	switch s.b[s.pos] {
	case '(':
		s.pos++
		return tokOpen, nil, nil
	case ')':
		s.pos++
		return tokClose, nil, nil
	case '"':
		return tokString, nil, s.quoted()
	case '{':
		return tokString, nil, s.literal()
	}
	start := s.pos
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '(', ')', '"', '\r', '\n':
			return tokAtom, s.b[start:s.pos], nil
		}
		s.pos++
	}
	return tokAtom, s.b[start:], nil
}

func (s *searchScanner) quoted() error {
	for i := s.pos + 1; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++
		case '"':
			s.pos = i + 1
			return nil
		case '\r', '\n':
			return searchSyntax("unterminated quoted string")
		}
	}
	return searchSyntax("unterminated quoted string")
}

// literal skips "{n}" or "{n+}", the CRLF and n bytes (RFC 3501 section
// 4.3, RFC 7888).
func (s *searchScanner) literal() error {
	end := bytes.IndexByte(s.b[s.pos:], '}')
	if end < 0 {
		return searchSyntax("malformed literal")
	}
	digits := bytes.TrimSuffix(s.b[s.pos+1:s.pos+end], []byte("+"))
	n, err := strconv.ParseUint(string(digits), 10, 32)
	if err != nil {
		return searchSyntax("malformed literal")
	}
	p := s.pos + end + 1
	if !bytes.HasPrefix(s.b[p:], []byte("\r\n")) || uint64(len(s.b)-p-2) < n {
		return searchSyntax("literal shorter than announced")
	}
	s.pos = p + 2 + int(n)
	return nil
}

// checkSearch checks a SEARCH or UID SEARCH command's arguments (the text
// after "SEARCH ", literals inlined as "{n+}\r\n" and their bytes) against
// maxSearchDepth and maxSearchKeys before a recursive parser sees them
// (RFC 3501 section 6.4.4, RFC 4731 section 3 for RETURN). It walks the
// criteria once with an explicit stack, never recursing, so its own cost
// is linear in len(args) and its memory bounded by maxSearchDepth. It
// answers nil for anything within the limits, valid or not: validity is
// the parser's business; only unbalanced parentheses, unterminated quoted
// strings and malformed literals, which it must understand to count, are
// BAD here.
func checkSearch(args []byte) error {
	return walkSearch(args, nil)
}

// walkSearch is checkSearch that also shows visit, if set, each key's
// atom, whether it is a key of the top level (ANDed with the others:
// no operand of OR or NOT, outside parentheses), and where it starts.
func walkSearch(args []byte, visit func(atom []byte, top bool, at int)) error {
	s := &searchScanner{b: args}
	tok, atom, err := s.preamble()
	if err != nil {
		return err
	}
	var (
		stack   []int // per open OR/NOT/FUZZY: operands still wanted; -1 per "("
		keys    int
		argsDue int  // arguments still owed by the current key
		modseq  bool // the current key is MODSEQ, owing its first argument
	)
	// done completes one search key: it fills the innermost operator,
	// and an operator whose operands are all there is a completed key of
	// the one around it.
	done := func() {
		for len(stack) > 0 && stack[len(stack)-1] > 0 {
			stack[len(stack)-1]--
			if stack[len(stack)-1] > 0 {
				return
			}
			stack = stack[:len(stack)-1]
		}
	}
	push := func(want int) error {
		if len(stack) >= maxSearchDepth {
			return errSearchDepth
		}
		stack = append(stack, want)
		return nil
	}
	for ; tok != tokEnd; tok, atom, err = s.next() {
		if err != nil {
			return err
		}
		if argsDue > 0 && (tok == tokAtom || tok == tokString) {
			argsDue--
			if modseq && tok == tokString {
				argsDue += 2 // entry-name entry-type-req mod-sequence-valzer
			}
			modseq = false
			if argsDue == 0 {
				done()
			}
			continue
		}
		if argsDue > 0 { // a key short of arguments: the parser will say so
			argsDue, modseq = 0, false
			done()
		}
		if tok != tokClose {
			if keys++; keys > maxSearchKeys {
				return errSearchKeys
			}
		}
		switch tok {
		case tokOpen:
			err = push(-1)
		case tokClose:
			if len(stack) == 0 || stack[len(stack)-1] != -1 {
				return searchSyntax("unexpected ')'")
			}
			stack = stack[:len(stack)-1]
			done()
		case tokString:
			done()
		case tokAtom:
			if visit != nil {
				visit(atom, len(stack) == 0, s.pos-len(atom))
			}
			argsDue, modseq, err = keyArity(atom, push)
			if argsDue == 0 && err == nil && !isOperator(atom) {
				done()
			}
		}
		if err != nil {
			return err
		}
	}
	for _, w := range stack {
		if w == -1 {
			return searchSyntax("missing ')'")
		}
	}
	return nil
}

// keyArity opens an operator's frame, or says how many arguments a key
// takes.
func keyArity(atom []byte, push func(int) error) (args int, modseq bool, err error) {
	switch {
	case bytes.EqualFold(atom, []byte("OR")):
		return 0, false, push(2)
	case isOperator(atom):
		return 0, false, push(1)
	case bytes.EqualFold(atom, []byte("MODSEQ")):
		return 1, true, nil
	}
	if len(atom) > 12 { // longer than any key with arguments
		return 0, false, nil
	}
	var up [12]byte
	for i, c := range atom {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	return searchArgs[string(up[:len(atom)])], false, nil
}

func isOperator(atom []byte) bool {
	return bytes.EqualFold(atom, []byte("OR")) || bytes.EqualFold(atom, []byte("NOT")) || bytes.EqualFold(atom, []byte("FUZZY"))
}

// preamble skips "RETURN (options)" (RFC 4731) and "CHARSET name"
// (RFC 3501), in that order, and returns the first token of the criteria.
func (s *searchScanner) preamble() (int, []byte, error) {
	tok, atom, err := s.next()
	if err == nil && tok == tokAtom && bytes.EqualFold(atom, []byte("RETURN")) {
		if tok, _, err = s.next(); err == nil && tok != tokOpen {
			return 0, nil, searchSyntax("RETURN wants a list of options")
		}
		for err == nil && tok != tokClose {
			if tok, _, err = s.next(); err == nil && (tok == tokEnd || tok == tokOpen) {
				return 0, nil, searchSyntax("malformed RETURN options")
			}
		}
		if err == nil {
			tok, atom, err = s.next()
		}
	}
	if err == nil && tok == tokAtom && bytes.EqualFold(atom, []byte("CHARSET")) {
		if _, _, err = s.next(); err == nil { // the charset's name
			tok, atom, err = s.next()
		}
	}
	return tok, atom, err
}
