package proxy

import "bytes"

// fastItems reports whether rest, the items the fast path would
// copy (" item value..." up to the response's closing parenthesis), is
// exactly what the item-by-item path would write for them: each item is
// SP name SP value (RFC 3501 7.4.2 msg-att), the name upper-case already
// (the item path upper-cases it), not UID or MODSEQ (which that path
// places or drops), a FLAGS list already in its canonical spelling (that
// path rebuilds it with single spaces), and no literal (a line end in
// the middle). Anything else goes the item path, which refuses or
// rewrites it: both paths then agree (FuzzFetchRelay). each, when not
// nil, is given every item's name and value in turn.
func fastItems(rest []byte, each func(name, value []byte)) bool {
	for i := 0; i < len(rest); {
		if rest[i] != ' ' {
			return false
		}
		n := nameEnd(rest, i+1)
		if n <= i+1 || n >= len(rest) || rest[n] != ' ' {
			return false
		}
		name := rest[i+1 : n]
		if hasLower(name) || string(name) == "UID" || string(name) == "MODSEQ" {
			return false
		}
		var end int
		if string(name) == "FLAGS" {
			end = canonicalFlagsEnd(rest, n+1)
		} else {
			end = valueEnd(rest, n+1)
		}
		if end < 0 || (end < len(rest) && rest[end] != ' ') {
			return false
		}
		if each != nil {
			each(name, rest[n+1:end])
		}
		i = end
	}
	return true
}

// nameEnd returns where the item name starting at i ends (at a space
// outside its section), as fetchRelay.name reads it; -1 if it cannot be
// read.
func nameEnd(b []byte, i int) int {
	inSection := false
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '[':
			inSection = true
		case c == ']':
			inSection = false
		case c == '"' && inSection:
			e := quotedEnd(b[i:])
			if e < 0 {
				return -1
			}
			i += e - 1
		case c == '\r' || c == '\n' || c == '{':
			return -1
		case c == ')' && !inSection:
			return -1
		case c == ' ' && !inSection:
			return i
		}
	}
	return -1
}

// valueEnd returns where the value starting at i ends, as
// fetchRelay.value reads it without a literal; -1 if it cannot be read.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return quotedValueEnd(b, i)
	case '(':
		return listEnd(b, i)
	case '{', '~', ' ', ')', '\r', '\n':
		return -1
	}
	for i++; i < len(b) && !atomStop[b[i]]; i++ {
	}
	if i < len(b) && b[i] != ' ' && b[i] != ')' {
		return -1
	}
	return i
}

// quotedValueEnd is quotedEnd from position i, -1 if it does not end.
func quotedValueEnd(b []byte, i int) int {
	e := quotedEnd(b[i:])
	if e < 0 {
		return -1
	}
	return i + e
}

// listEnd returns where the parenthesized list at i ends; -1 if it
// holds a literal or does not end.
func listEnd(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			if i = quotedValueEnd(b, i); i < 0 {
				return -1
			}
			continue
		case '{', '~', '\r', '\n':
			return -1
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

// canonicalFlagsEnd returns where the FLAGS list at i ends when it is
// spelled as fetchRelay.flagList writes it: "(" flags joined by one
// space ")"; -1 otherwise.
func canonicalFlagsEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '(' {
		return -1
	}
	end := bytes.IndexByte(b[i:], ')')
	if end < 0 {
		return -1
	}
	list := b[i+1 : i+end]
	if len(list) == 0 {
		return i + end + 1
	}
	for _, tok := range bytes.Split(list, []byte(" ")) {
		if len(tok) == 0 || bytes.ContainsAny(tok, "(\"{\r\n") {
			return -1
		}
	}
	return i + end + 1
}
