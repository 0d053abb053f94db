package proxy

import (
	"bytes"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
)

// CONDSTORE (RFC 7162) in the command reader. imapserver parses none of
// its syntax, so the reader takes it off a command before imapserver sees
// it and puts what it implies into the answer imapserver writes. A
// session has CONDSTORE enabled once it sent a CONDSTORE enabling command
// (RFC 7162 3.1: ENABLE CONDSTORE, SELECT/EXAMINE (CONDSTORE), ...);
// until then nothing it sees changes.

// condstoreState is the reader's CONDSTORE state of one connection.
type condstoreState struct {
	// offered: the account's upstream has CONDSTORE, so idlemux offers
	// it (set at login).
	offered bool
	// enabled: the client sent a CONDSTORE enabling command. on mirrors
	// it for the writers of unsolicited FETCH (the idle fast path's
	// workers), which must not take cc.mu.
	enabled bool
	on      atomic.Bool
	// highest is the HIGHESTMODSEQ of the mailbox the running SELECT or
	// EXAMINE opened, set by the session (0: the upstream keeps none);
	// sel is the watcher of the selected mailbox, nil if none.
	highest uint64
	sel     *upstream.Watcher
	// status is the HIGHESTMODSEQ the running STATUS reports, statusDue
	// until it is written (condstore_status.go).
	status    uint64
	statusDue bool
	// search is the MODSEQ the running SEARCH reports, searchDue until
	// it is written (condstore_search.go).
	search    uint64
	searchDue bool
	// sent is the highest MODSEQ the running command wrote to the client
	// (condstore_syncpoint.go).
	sent uint64
}

// condstoreOffered says whether a session whose upstream has up is
// offered CONDSTORE: only where the upstream keeps mod-sequences, since
// every MODSEQ idlemux answers is the upstream's.
func condstoreOffered(up imap.CapSet) bool { return up.Has(imap.CapCondStore) }

// condstoreOn reports whether the client enabled CONDSTORE.
func (cc *clientConn) condstoreOn() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cs.enabled
}

// setSelected records the watcher of the mailbox a SELECT or EXAMINE
// opened (nil: none is selected), and the HIGHESTMODSEQ the running
// SELECT reports to a CONDSTORE-enabled client (RFC 7162 3.1.2.1): the
// model's, read with the view it bounds (fanout.SelectData).
func (cc *clientConn) setSelected(w *upstream.Watcher, highest uint64) {
	cc.mu.Lock()
	cc.cs.sel, cc.cs.highest = w, highest
	cc.mu.Unlock()
}

// enableLocked enables CONDSTORE. A client that enables it with a
// mailbox selected is told the mailbox's HIGHESTMODSEQ first, as Dovecot
// does (RFC 7162 3.1: a later SELECT would have told it); announce is
// that line, "" if none is due. cc.mu is held.
func (cc *clientConn) enableLocked() (announce string) {
	if cc.cs.enabled {
		return ""
	}
	cc.cs.enabled = true
	cc.cs.on.Store(true)
	if cc.cs.sel == nil {
		return ""
	}
	return highestModSeqResponse(cc.cs.sel.HighestModSeq())
}

// highestModSeqResponse is Dovecot's untagged HIGHESTMODSEQ line (or
// NOMODSEQ, RFC 7162 3.1.2.2, for a mailbox without mod-sequences).
func highestModSeqResponse(v uint64) string {
	if v == 0 {
		return "* OK [NOMODSEQ] No permanent modsequences\r\n"
	}
	return "* OK [HIGHESTMODSEQ " + strconv.FormatUint(v, 10) + "] Highest\r\n"
}

// condstoreSelectParam is SELECT's and EXAMINE's CONDSTORE parameter
// (RFC 7162 3.1.8), as it ends a command line.
const condstoreSelectParam = " (CONDSTORE)\r\n"

// selectCondstore takes a trailing "(CONDSTORE)" (any case, as Dovecot
// takes it) off a SELECT or EXAMINE before imapserver reads it, and
// enables CONDSTORE: SELECT (CONDSTORE) is an enabling command (RFC 7162
// 3.1). Where CONDSTORE is not offered the command is left to imapserver,
// which refuses the parameter.
func (cc *clientConn) selectCondstore(f *framed) {
	if f.sub != "" || (f.name != "SELECT" && f.name != "EXAMINE") || f.spool != nil || len(f.tail) > 0 {
		return
	}
	n := len(condstoreSelectParam)
	if len(f.head) < n || !strings.EqualFold(string(f.head[len(f.head)-n:]), condstoreSelectParam) {
		return
	}
	if len(f.headCuts) > 0 && f.headCuts[len(f.headCuts)-1] > len(f.head)-n {
		return // the parameter is inside a literal
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.cs.offered {
		return
	}
	cc.cs.enabled = true // the SELECT itself reports HIGHESTMODSEQ
	cc.cs.on.Store(true)
	f.head = append(f.head[:len(f.head)-n], '\r', '\n')
}

// takeCondstore takes CONDSTORE syntax off a command before imapserver
// reads it (RFC 7162 3.1 enabling commands); a refusal answers it;
// announce is due to the client before the command's answer
// (enableLocked).
func (cc *clientConn) takeCondstore(f *framed) (reply *refusal, announce string) {
	if f == nil {
		return nil, ""
	}
	cc.selectQResync(f) // qresync_select.go
	cc.selectCondstore(f)
	if announce = cc.statusCondstore(f); announce != "" {
		return nil, announce
	}
	if announce = cc.searchCondstore(f); announce != "" {
		return nil, announce
	}
	if reply, announce = cc.storeCondstore(f); reply != nil || announce != "" {
		return reply, announce
	}
	return cc.fetchCondstore(f)
}

// highestModSeqLine puts Dovecot's "* OK [HIGHESTMODSEQ n] Highest" (or
// "[NOMODSEQ]" for a mailbox without mod-sequences, RFC 7162 3.1.2.2)
// before the tagged OK of a SELECT or EXAMINE of a CONDSTORE-enabled
// client (RFC 7162 3.1.2.1), where Dovecot writes it: last before the
// tagged answer. p is what imapserver writes, from a line start; SELECT's
// answer has no literal, so a line that starts with the tag is the
// tagged one. cc.mu is held.
func (cc *clientConn) highestModSeqLine(p []byte) []byte {
	if !cc.cs.enabled || cc.cur == nil || cc.cur.sub != "" || (cc.cur.name != "SELECT" && cc.cur.name != "EXAMINE") {
		return p
	}
	okTag := []byte(cc.cur.tag + " OK ")
	at := -1
	if bytes.HasPrefix(p, okTag) {
		at = 0
	} else if i := bytes.Index(p, append([]byte("\n"), okTag...)); i >= 0 {
		at = i + 1
	}
	if at < 0 {
		return p
	}
	line := highestModSeqResponse(cc.cs.highest) + string(cc.takeQResyncLinesLocked())
	out := make([]byte, 0, len(p)+len(line))
	out = append(out, p[:at]...)
	out = append(out, line...)
	return append(out, p[at:]...)
}
