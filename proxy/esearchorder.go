package proxy

import "bytes"

// esearchOrder puts the result items of the ESEARCH responses in p in
// Dovecot's order: imapserver writes ALL before MIN and MAX, Dovecot
// (imap-search.c) writes MIN, MAX, ALL, COUNT. RFC 4731 section 3.1 lets
// them come in any order, but a client through idlemux must read what
// the upstream would send. p is what imapserver writes while a SEARCH or
// UID SEARCH runs, starting at a line; an ESEARCH line holds no literal
// (its tag is a quoted string, its items atoms, numbers and sets).
func esearchOrder(p []byte) []byte {
	var out []byte
	for rest := p; len(rest) > 0; {
		n := bytes.IndexByte(rest, '\n') + 1
		if n == 0 {
			n = len(rest)
		}
		line := rest[:n]
		rest = rest[n:]
		if fixed, ok := esearchLine(line); ok {
			if out == nil {
				out = append(make([]byte, 0, len(p)), p[:len(p)-len(rest)-n]...)
			}
			out = append(out, fixed...)
		} else if out != nil {
			out = append(out, line...)
		}
	}
	if out == nil {
		return p
	}
	return out
}

// esearchLine moves "ALL set" after MIN and MAX in one ESEARCH line.
func esearchLine(line []byte) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte("* ESEARCH ")) || !bytes.HasSuffix(line, []byte("\r\n")) {
		return nil, false
	}
	body := line[:len(line)-2]
	start := len("* ESEARCH")
	if i := bytes.Index(body, []byte(") ")); bytes.HasPrefix(body[start:], []byte(" (TAG ")) && i > 0 {
		start = i + 1 // past the tag's correlator, which may hold anything quoted
	}
	all := bytes.Index(body[start:], []byte(" ALL "))
	if all < 0 {
		return nil, false
	}
	all += start
	end := all + len(" ALL ")
	for end < len(body) && body[end] != ' ' {
		end++
	}
	if !bytes.Contains(body[end:], []byte(" MIN ")) && !bytes.Contains(body[end:], []byte(" MAX ")) {
		return nil, false
	}
	item := body[all:end]
	after := body[end:]
	at := bytes.Index(after, []byte(" COUNT "))
	if at < 0 {
		at = bytes.Index(after, []byte(" MODSEQ "))
	}
	if at < 0 {
		at = len(after)
	}
	out := make([]byte, 0, len(line))
	out = append(out, body[:all]...)
	out = append(out, after[:at]...)
	out = append(out, item...)
	out = append(out, after[at:]...)
	return append(out, '\r', '\n'), true
}
