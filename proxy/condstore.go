package proxy

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
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
	// enabled: the client sent a CONDSTORE enabling command.
	enabled bool
	// highest is the HIGHESTMODSEQ of the mailbox the running SELECT or
	// EXAMINE opened, set by the session (0: the upstream keeps none).
	highest uint64
	// status is the HIGHESTMODSEQ the running STATUS reports, statusDue
	// until it is written (condstore_status.go).
	status    uint64
	statusDue bool
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

// setHighestModSeq records the HIGHESTMODSEQ the running SELECT or
// EXAMINE reports to a CONDSTORE-enabled client (RFC 7162 3.1.2.1).
func (cc *clientConn) setHighestModSeq(v uint64) {
	cc.mu.Lock()
	cc.cs.highest = v
	cc.mu.Unlock()
}

// enableCondstore answers the CONDSTORE of an ENABLE (RFC 5161, RFC
// 7162 3.1): enabled where offered. Dovecot names it in "* ENABLED"
// each time it is asked for, even when already enabled.
func (cc *clientConn) enableCondstore(atoms [][]byte) (enabled []string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.cs.offered {
		return nil
	}
	for _, a := range atoms {
		if strings.EqualFold(string(a), "CONDSTORE") {
			cc.cs.enabled = true
			return []string{"CONDSTORE"}
		}
	}
	return nil
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
	cc.cs.enabled = true
	f.head = append(f.head[:len(f.head)-n], '\r', '\n')
}

// takeCondstore takes CONDSTORE syntax off a command before imapserver
// reads it (RFC 7162 3.1 enabling commands).
func (cc *clientConn) takeCondstore(f *framed) {
	if f == nil {
		return
	}
	cc.selectCondstore(f)
	cc.statusCondstore(f)
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
	line := "* OK [NOMODSEQ] No permanent modsequences\r\n"
	if cc.cs.highest > 0 {
		line = "* OK [HIGHESTMODSEQ " + strconv.FormatUint(cc.cs.highest, 10) + "] Highest\r\n"
	}
	out := make([]byte, 0, len(p)+len(line))
	out = append(out, p[:at]...)
	out = append(out, line...)
	return append(out, p[at:]...)
}
