package proxy

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// A SELECT with QRESYNC reports, in VANISHED (EARLIER), UIDs the upstream
// expunged. One the session's view still holds (expunged upstream after
// the watcher's sync that opened the view, before the relayed SELECT)
// the session is told of later, with "* VANISHED uid" (RFC 7162 3.2.10),
// which makes the client count it out; told now too, the client would
// drop it from its cache while the EXISTS it got still counts it, and
// number the rest wrongly. So such UIDs are taken out of the SELECT's
// VANISHED (EARLIER), as Dovecot, whose view is its own, never has them.

// withoutMembers returns set without the UIDs of in (ascending, each in
// set), encoded as a sequence set: "" when nothing is left.
func withoutMembers(set imap.UIDSet, in []fanout.Member) string {
	var b []byte
	add := func(lo, hi imap.UID) {
		if lo > hi {
			return
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(lo), 10)
		if hi > lo {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(hi), 10)
		}
	}
	for _, r := range set {
		lo := r.Start
		for _, m := range in {
			if m.UID < lo || m.UID > r.Stop {
				continue
			}
			add(lo, m.UID-1)
			lo = m.UID + 1
		}
		if lo != 0 { // not past 2^32-1
			add(lo, r.Stop)
		}
	}
	return string(b)
}

// unreportedVanished rewrites the UID set of a "* VANISHED (EARLIER)"
// response of a SELECT (line: the set and its CRLF) without the UIDs the
// session's view still holds (members); keep is false when none is left.
// A set it cannot read goes on as it is.
func unreportedVanished(line []byte, members func(imap.UIDSet) []fanout.Member) (out []byte, keep bool) {
	text := strings.TrimSuffix(string(line), "\r\n")
	set, ok := parseUIDSet([]byte(text))
	if !ok {
		return line, true
	}
	in := members(set)
	if len(in) == 0 {
		return line, true
	}
	rest := withoutMembers(set, in)
	if rest == "" {
		return nil, false
	}
	return []byte(rest + "\r\n"), true
}
