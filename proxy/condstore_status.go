package proxy

import (
	"bytes"
	"strconv"
)

// STATUS HIGHESTMODSEQ (RFC 7162 3.1.3), which imapserver cannot parse:
// the reader takes the item off the list, the session asks the upstream
// for it (never the model: statuslocal.go answers none), and the reader
// writes it into imapserver's STATUS response where Dovecot does, last.

// statusCondstore takes HIGHESTMODSEQ off a STATUS item list before
// imapserver reads it, marks the command (f.modseq) and enables
// CONDSTORE: STATUS HIGHESTMODSEQ is an enabling command (RFC 7162 3.1).
// The list ends the command; one inside a literal is left alone.
func (cc *clientConn) statusCondstore(f *framed) (announce string) {
	if f.sub != "" || f.name != "STATUS" || f.spool != nil || len(f.tail) > 0 || !bytes.HasSuffix(f.head, []byte(")\r\n")) {
		return ""
	}
	open := bytes.LastIndexByte(f.head, '(')
	if open < 0 || (len(f.headCuts) > 0 && f.headCuts[len(f.headCuts)-1] > open) {
		return ""
	}
	items := bytes.Fields(f.head[open+1 : len(f.head)-3])
	kept := items[:0:0]
	for _, it := range items {
		if !bytes.EqualFold(it, []byte("HIGHESTMODSEQ")) {
			kept = append(kept, it)
		}
	}
	if len(kept) == len(items) {
		return ""
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.cs.offered {
		return ""
	}
	f.modseq = true
	head := append(f.head[:open+1:open+1], bytes.Join(kept, []byte(" "))...)
	f.head = append(head, ")\r\n"...)
	return cc.enableLocked()
}

// statusWantsModSeq reports whether the running STATUS asked for
// HIGHESTMODSEQ (taken off by statusCondstore).
func (cc *clientConn) statusWantsModSeq() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cur != nil && cc.cur.name == "STATUS" && cc.cur.modseq
}

// setStatusModSeq records the upstream's HIGHESTMODSEQ for the running
// STATUS's response.
func (cc *clientConn) setStatusModSeq(v uint64) {
	cc.mu.Lock()
	cc.cs.status, cc.cs.statusDue = v, true
	cc.mu.Unlock()
}

// statusModSeqItem adds "HIGHESTMODSEQ n" last to the item list of the
// STATUS response in p (Dovecot's place for it). The list ends at the
// first ")\r\n" after the response starts (a mailbox name holds no line
// break); a response written in pieces gets it in the piece that ends it.
// cc.mu is held.
func (cc *clientConn) statusModSeqItem(p []byte) []byte {
	if !cc.cs.statusDue {
		return p
	}
	end := bytes.Index(p, []byte(")\r\n"))
	if end < 0 {
		return p
	}
	cc.cs.statusDue = false
	item := "HIGHESTMODSEQ " + strconv.FormatUint(cc.cs.status, 10)
	if end == 0 || p[end-1] != '(' {
		item = " " + item
	}
	out := make([]byte, 0, len(p)+len(item))
	out = append(out, p[:end]...)
	out = append(out, item...)
	return append(out, p[end:]...)
}
