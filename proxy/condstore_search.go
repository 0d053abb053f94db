package proxy

import (
	"bytes"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// SEARCH MODSEQ (RFC 7162 3.1.5), which imapserver cannot parse: the
// reader puts ALL where a top-level MODSEQ key was, for imapserver only,
// and keeps the key; the session ANDs it into the criteria, which then go
// upstream (the model keeps no mod-sequences), and the reader adds the
// upstream's "(MODSEQ n)" to the SEARCH response. A MODSEQ key under OR,
// NOT or parentheses, a second one, or one in a SEARCH with RETURN
// (ESEARCH) is left to imapserver, which refuses it.

// searchCondstore rewrites a SEARCH or UID SEARCH with one top-level
// MODSEQ key. It is an enabling command (RFC 7162 3.1).
func (cc *clientConn) searchCondstore(f *framed) (announce string) {
	if f.name != "SEARCH" && f.sub != "SEARCH" || f.spool != nil || len(f.tail) > 0 {
		return ""
	}
	cc.mu.Lock()
	offered := cc.cs.offered
	cc.mu.Unlock()
	if !offered {
		return ""
	}
	h, _ := parseHead(f.head)
	args := bytes.TrimPrefix(h.args, []byte(" "))
	base := len(f.head) - len(args)
	start, end, crit, ok := topModSeqKey(args)
	if !ok {
		return ""
	}
	head := append(append(append([]byte(nil), f.head[:base+start]...), "ALL"...), f.head[base+end:]...)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	f.head, f.searchModSeq = head, crit
	return cc.enableLocked()
}

// topModSeqKey finds the one top-level MODSEQ key of SEARCH arguments:
// where it starts and ends and what it asks (RFC 7162 7 search-modsequence:
// MODSEQ [entry-name entry-type-req] mod-sequence-valzer).
func topModSeqKey(args []byte) (start, end int, crit *imap.SearchCriteriaModSeq, ok bool) {
	if len(args) >= 6 && bytes.EqualFold(args[:6], []byte("RETURN")) {
		return 0, 0, nil, false // ESEARCH (RFC 4731): not yet
	}
	var at []int
	bad := false
	err := walkSearch(args, func(atom []byte, top bool, pos int) {
		if bytes.EqualFold(atom, []byte("MODSEQ")) {
			bad = bad || !top
			at = append(at, pos)
		}
	})
	if err != nil || bad || len(at) != 1 {
		return 0, 0, nil, false
	}
	s := &searchScanner{b: args, pos: at[0] + len("MODSEQ")}
	crit = &imap.SearchCriteriaModSeq{}
	begin := s.pos
	for begin < len(args) && args[begin] == ' ' {
		begin++
	}
	tok, atom, err := s.next()
	if err == nil && tok == tokString {
		name, qerr := strconv.Unquote(string(args[begin:s.pos]))
		if qerr != nil {
			return 0, 0, nil, false
		}
		crit.MetadataName = name
		if tok, atom, err = s.next(); err != nil || tok != tokAtom {
			return 0, 0, nil, false
		}
		switch string(bytes.ToLower(atom)) {
		case "priv":
			crit.MetadataType = imap.SearchCriteriaMetadataPrivate
		case "shared":
			crit.MetadataType = imap.SearchCriteriaMetadataShared
		case "all":
			crit.MetadataType = imap.SearchCriteriaMetadataAll
		default:
			return 0, 0, nil, false
		}
		tok, atom, err = s.next()
	}
	if err != nil || tok != tokAtom || len(atom) == 0 || atom[0] == '+' {
		return 0, 0, nil, false
	}
	v, perr := strconv.ParseUint(string(atom), 10, 63)
	if perr != nil {
		return 0, 0, nil, false
	}
	crit.ModSeq = v
	return at[0], s.pos, crit, true
}

// searchModSeqOf returns the MODSEQ key the reader took off the running
// SEARCH, nil if none.
func (cc *clientConn) searchModSeqOf() *imap.SearchCriteriaModSeq {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil {
		return nil
	}
	return cc.cur.searchModSeq
}

// setSearchModSeq records the upstream's highest mod-sequence of what
// the running SEARCH found (0: nothing), for its response.
func (cc *clientConn) setSearchModSeq(v uint64) {
	cc.mu.Lock()
	cc.cs.search, cc.cs.searchDue = v, v > 0
	cc.mu.Unlock()
}

// searchModSeqItem ends the "* SEARCH" response in p with "(MODSEQ n)"
// (RFC 7162 3.1.5, search-sort-mod-seq), as Dovecot writes it; a SEARCH
// that found nothing has none. cc.mu is held.
func (cc *clientConn) searchModSeqItem(p []byte) []byte {
	if !cc.cs.searchDue || !bytes.HasPrefix(p, []byte("* SEARCH ")) {
		return p
	}
	end := bytes.Index(p, []byte("\r\n"))
	if end < 0 {
		return p
	}
	cc.cs.searchDue = false
	item := " (MODSEQ " + strconv.FormatUint(cc.cs.search, 10) + ")"
	out := make([]byte, 0, len(p)+len(item))
	out = append(out, p[:end]...)
	out = append(out, item...)
	return append(out, p[end:]...)
}
