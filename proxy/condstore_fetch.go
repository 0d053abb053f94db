package proxy

import (
	"bytes"
	"strconv"
	"strings"
)

// FETCH with CONDSTORE (RFC 7162 3.1.4, 3.1.4.1), which imapserver cannot
// parse: the reader takes a trailing (CHANGEDSINCE m) off and puts UID
// where the client asked MODSEQ, for imapserver only; the session relays
// the client's own items (MODSEQ kept) and the modifier upstream; the
// model answers only FLAGS, UID and MODSEQ (condstore_fetchlocal.go), and
// the cache keeps no mod-sequences.

// fetchCondstore rewrites a FETCH or UID FETCH that uses CONDSTORE for
// imapserver (f.head) and keeps the text the session relays (f.relay,
// without the modifier). Both are enabling commands (RFC 7162 3.1). An
// invalid CHANGEDSINCE value is refused in Dovecot's words. A FETCH whose
// items hold a literal is left to imapserver.
func (cc *clientConn) fetchCondstore(f *framed) (reply *refusal, announce string) {
	if f.name != "FETCH" && f.sub != "FETCH" || f.spool != nil || len(f.tail) > 0 || len(f.headCuts) > 0 {
		return nil, ""
	}
	cc.mu.Lock()
	offered := cc.cs.offered
	cc.mu.Unlock()
	if !offered {
		return nil, ""
	}
	line := bytes.TrimSuffix(f.head, []byte("\r\n"))
	vanished := false
	if cc.qresyncOffer() {
		line, vanished = takeVanished(line) // qresync_fetch.go
	}
	since, rest, found, ok := changedSinceModifier(line)
	if found && !ok {
		return &refusal{line: f.tag + " BAD Error in IMAP command FETCH: Invalid CHANGEDSINCE modseq"}, ""
	}
	if vanished {
		if reply, announce := cc.vanishedRefusal(f, found); reply != nil {
			return reply, announce
		}
	}
	items, at := fetchItemsAt(rest)
	modseqAt := modseqItems(items)
	if !found && len(modseqAt) == 0 {
		return nil, ""
	}
	head := append([]byte(nil), rest...)
	for i := len(modseqAt) - 1; i >= 0; i-- {
		j := at + modseqAt[i]
		head = append(head[:j], append([]byte("UID"), head[j+len("MODSEQ"):]...)...)
	}
	cc.mu.Lock()
	announce = cc.enableLocked()
	cc.mu.Unlock()
	f.relay = append(append([]byte(nil), rest...), '\r', '\n')
	f.head = append(head, '\r', '\n')
	f.changedSince, f.hasChangedSince, f.modseq, f.vanished = since, found, len(modseqAt) > 0, vanished
	return nil, announce
}

// changedSinceModifier finds a trailing " (CHANGEDSINCE m)" (any case)
// on a FETCH line without its CRLF: found says it is there, ok that m is
// a mod-sequence (RFC 7162 7: mod-sequence-valzer, 0 included as Dovecot
// takes it); rest is the line without it.
func changedSinceModifier(line []byte) (since uint64, rest []byte, found, ok bool) {
	const key = " (CHANGEDSINCE "
	if !bytes.HasSuffix(line, []byte(")")) {
		return 0, line, false, false
	}
	// The modifier ends the line: its value has at most 20 digits.
	lo := max(0, len(line)-len(key)-21)
	i := lastIndexFold(line[lo:], key)
	if i < 0 {
		return 0, line, false, false
	}
	i += lo
	num := line[i+len(key) : len(line)-1]
	v, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil || len(num) == 0 || num[0] == '+' || v > 1<<63-1 {
		return 0, line, true, false
	}
	return v, line[:i], true, true
}

// lastIndexFold is where the last ASCII-case-insensitive key is in b, -1
// if nowhere. Byte by byte: upper-casing b would change its length where
// it is not UTF-8 (a client's bytes need not be).
func lastIndexFold(b []byte, key string) int {
	for i := len(b) - len(key); i >= 0; i-- {
		if strings.EqualFold(string(b[i:i+len(key)]), key) {
			return i
		}
	}
	return -1
}

// fetchItemsAt returns the items of a FETCH line (after tag, [UID] FETCH
// and the set) and where they start in it.
func fetchItemsAt(line []byte) ([]byte, int) {
	items, err := fetchItemsOf(line)
	if err != nil {
		return nil, len(line)
	}
	return items, len(line) - len(items)
}

// modseqItems returns where the MODSEQ items (any case) start in a FETCH
// command's items: a lone atom, or a member of the top-level list, never
// text inside a section's brackets or a quoted string.
func modseqItems(items []byte) []int {
	var at []int
	depth, inQuote := 0, false
	for i := 0; i < len(items); i++ {
		c := items[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == '[':
			depth++
		case c == ']':
			depth = max(depth-1, 0)
		case depth == 0 && (i == 0 || items[i-1] == ' ' || items[i-1] == '(') &&
			len(items)-i >= 6 && bytes.EqualFold(items[i:i+6], []byte("MODSEQ")) &&
			(len(items)-i == 6 || items[i+6] == ' ' || items[i+6] == ')'):
			at = append(at, i)
		}
	}
	return at
}

// fetchCondstoreOf reports what the reader took off the running FETCH:
// its CHANGEDSINCE (with has), and whether its items hold MODSEQ.
func (cc *clientConn) fetchCondstoreOf() (since uint64, has, modseq bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil || cc.cur.name != "FETCH" && cc.cur.sub != "FETCH" {
		return 0, false, false
	}
	return cc.cur.changedSince, cc.cur.hasChangedSince, cc.cur.modseq
}

// fetchCondstore readies req for a FETCH that used CONDSTORE: its
// CHANGEDSINCE goes upstream after the items (RFC 4466 2.4
// fetch-modifiers); MODSEQ asked is in req already (fetchRequest). It
// reports whether the FETCH used CONDSTORE (used): then it goes upstream
// and the MODSEQ items reach the client (the upstream sends MODSEQ for
// every message it answers a CHANGEDSINCE with, RFC 7162 3.1.4.1); and
// whether CHANGEDSINCE leaves unchanged messages unanswered (filtered),
// which then are not expunged ones.
func (sess *session) fetchCondstore(req *fetchRequest) (used, filtered bool) {
	cc := sess.reader()
	if cc == nil {
		return false, false
	}
	since, has, modseq := cc.fetchCondstoreOf()
	if has {
		req.items += " (CHANGEDSINCE " + strconv.FormatUint(since, 10) + vanishedModifier(cc) + ")"
	}
	return has || modseq, has
}
