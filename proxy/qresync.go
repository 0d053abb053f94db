package proxy

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// QRESYNC (RFC 7162 3.2) in the command reader and the session. Like
// CONDSTORE (condstore.go) it is the reader's: imapserver parses none of
// its syntax. It is offered where the account's upstream has it, since
// everything it answers (VANISHED (EARLIER), the changed messages of a
// SELECT) comes from the upstream; enabling it enables CONDSTORE (RFC
// 7162 3.2.3). Sessions that do not enable it see nothing new.

// qresyncState is the reader's QRESYNC state of one connection.
type qresyncState struct {
	// offered: the account's upstream has QRESYNC (set at login, under
	// cc.mu).
	offered bool
	// enabled: the client sent ENABLE QRESYNC. Atomic: the idle fast
	// path reads it on a dispatcher's goroutine for every delivery.
	enabled atomic.Bool
	// selectLines are the VANISHED (EARLIER) and FETCH responses the
	// running SELECT or EXAMINE with QRESYNC reports (qresync_select.go),
	// written before its tagged OK; under cc.mu.
	selectLines []byte
	// vanishedHighest, when not 0, is the HIGHESTMODSEQ the running
	// command's tagged OK reports: it told the client of expunges, or
	// holds some back after sending a MODSEQ above them (noteSync,
	// condstore_syncpoint.go); under cc.mu.
	vanishedHighest uint64
}

// qresyncOffered says whether a session whose upstream has up is offered
// QRESYNC: only where the upstream has it and CONDSTORE (RFC 7162 3.2:
// QRESYNC implies CONDSTORE).
func qresyncOffered(up imap.CapSet) bool {
	return up.Has(imap.CapQResync) && condstoreOffered(up)
}

// qresyncOn reports whether the client enabled QRESYNC.
func (cc *clientConn) qresyncOn() bool { return cc.qr.enabled.Load() }

// enableExtensions answers the extensions of an ENABLE (RFC 5161) that
// idlemux lets a client enable: CONDSTORE and QRESYNC where offered
// (RFC 7162 3.1, 3.2.3). Dovecot names each in "* ENABLED" in the order
// asked, each time it is asked, even when already enabled; QRESYNC alone
// enables CONDSTORE too without naming it. announce is the mailbox's
// HIGHESTMODSEQ when this enables CONDSTORE with a mailbox selected
// (enableLocked).
func (cc *clientConn) enableExtensions(atoms [][]byte) (enabled []string, announce string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.cs.offered {
		return nil, ""
	}
	for _, a := range atoms {
		switch {
		case strings.EqualFold(string(a), "CONDSTORE"):
			enabled = append(enabled, "CONDSTORE")
		case strings.EqualFold(string(a), "QRESYNC") && cc.qr.offered:
			enabled = append(enabled, "QRESYNC")
			cc.qr.enabled.Store(true)
		}
	}
	if len(enabled) == 0 {
		return nil, ""
	}
	return enabled, cc.enableLocked()
}

// vanishedOn reports whether the session's expunges are told as VANISHED
// (RFC 7162 3.2.10): it enabled QRESYNC.
func (sess *session) vanishedOn() bool {
	cc := sess.reader()
	return cc != nil && cc.qresyncOn()
}

// appendSessionUpdates encodes a session's updates as appendUpdates
// does, but for a session that enabled QRESYNC its expunges as one
// "* VANISHED uids" (RFC 7162 3.2.10: such a client gets no EXPUNGE).
// Pending puts every expunge first (fanout/pending.go), so they are a
// leading run; Dovecot writes them as one UID set, ascending.
func appendSessionUpdates(b []byte, ups []fanout.Update, ps permSource, skip map[imap.UID][]imap.Flag, vanished bool) []byte {
	if !vanished {
		return appendUpdates(b, ups, ps, skip)
	}
	k := 0
	for k < len(ups) && ups[k].Kind == fanout.UpdateExpunge {
		k++
	}
	if k > 0 {
		b = appendVanished(b, ups[:k])
	}
	return appendUpdates(b, ups[k:], ps, skip)
}

// appendVanished encodes "* VANISHED uid-set" for the expunges in ups,
// the set ascending with runs as ranges (RFC 7162 3.2.10, RFC 3501 9
// sequence-set).
func appendVanished(b []byte, ups []fanout.Update) []byte {
	uids := make([]imap.UID, len(ups))
	for i, u := range ups {
		uids[i] = u.UID
	}
	slices.Sort(uids)
	uids = slices.Compact(uids)
	b = append(b, "* VANISHED "...)
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(uids[i]), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(uids[j]), 10)
		}
		i = j + 1
	}
	return append(b, "\r\n"...)
}

// vanishedHighestCode puts "[HIGHESTMODSEQ n]" into the running
// command's tagged OK when noteSync set one (condstore_syncpoint.go),
// unless imapserver's OK has a code of its own. p is what imapserver
// writes, from a line start. cc.mu is held.
func (cc *clientConn) vanishedHighestCode(p []byte) []byte {
	ok := cc.cur.tag + " OK "
	if !bytes.HasPrefix(p, []byte(ok)) || bytes.HasPrefix(p[len(ok):], []byte("[")) {
		return p
	}
	out := make([]byte, 0, len(p)+32)
	out = append(out, ok...)
	out = append(out, "[HIGHESTMODSEQ "...)
	out = strconv.AppendUint(out, cc.qr.vanishedHighest, 10)
	out = append(out, "] "...)
	return append(out, p[len(ok):]...)
}
