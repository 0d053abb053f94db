package proxy

import "bytes"

// Response item order: Dovecot's, where imapserver writes its own.

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

// statusOrder puts RECENT where Dovecot writes it in STATUS responses
// (imap-status.c: MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN ...):
// imapserver writes it last. p is what imapserver writes while a STATUS
// runs, starting at a line; a mailbox name that needs a literal leaves
// its line as it is (the name may hold "(": the items are the last list).
func statusOrder(p []byte) []byte {
	if !bytes.HasPrefix(p, []byte("* STATUS ")) {
		return p
	}
	n := bytes.IndexByte(p, '\n') + 1
	if n < 2 || p[n-2] != '\r' || p[n-3] != ')' {
		return p
	}
	open := bytes.LastIndexByte(p[:n], '(')
	rec := bytes.LastIndex(p[:n], []byte(" RECENT "))
	if open < 0 || rec < open || bytes.IndexByte(p[rec+len(" RECENT "):n-3], ' ') >= 0 {
		return p // RECENT is not the last item
	}
	item := p[rec+1 : n-3] // "RECENT n"
	at := open + 1         // first, unless MESSAGES is
	if bytes.HasPrefix(p[at:rec], []byte("MESSAGES ")) {
		sp := bytes.IndexByte(p[at+len("MESSAGES "):rec+1], ' ')
		at += len("MESSAGES ") + sp + 1
	}
	if at > rec {
		return p // RECENT is in place already
	}
	out := make([]byte, 0, len(p))
	out = append(out, p[:at]...)
	out = append(out, item...)
	out = append(out, ' ')
	out = append(out, p[at:rec]...)
	return append(out, p[n-3:]...)
}

// statusOfSelected marks the running STATUS as naming the session's own
// selected mailbox: Dovecot answers it with OK [CLIENTBUG] (RFC 5530:
// RFC 3501 6.3.10 advises against STATUS there), which imapserver's
// tagged answer lacks.
func (cc *clientConn) statusOfSelected() {
	cc.mu.Lock()
	cc.ownStatus = true
	cc.mu.Unlock()
}

// ownStatusCode adds [CLIENTBUG] to imapserver's tagged OK of STATUS in p.
func ownStatusCode(p []byte, tag string) []byte {
	ok := []byte(tag + " OK STATUS completed\r\n")
	i := bytes.Index(p, ok)
	if i < 0 || (i > 0 && p[i-1] != '\n') {
		return p
	}
	out := make([]byte, 0, len(p)+len("[CLIENTBUG] "))
	out = append(out, p[:i+len(tag)+len(" OK ")]...)
	out = append(out, "[CLIENTBUG] "...)
	return append(out, p[i+len(tag)+len(" OK "):]...)
}
