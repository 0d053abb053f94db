package proxy

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
)

// UID FETCH with the VANISHED modifier (RFC 7162 3.2.6): the reader takes
// it off with CHANGEDSINCE (condstore_fetch.go), the session relays both
// upstream on a connection with QRESYNC enabled, with the client's own
// UID set (the upstream reports VANISHED (EARLIER) for UIDs the session's
// view no longer holds), and the relay passes "* VANISHED (EARLIER)" on
// as the upstream wrote it: UIDs need no renumbering.

// takeVanished takes a VANISHED fetch modifier (any case) off the end of
// a FETCH line without its CRLF: "(CHANGEDSINCE m VANISHED)" and
// "(VANISHED CHANGEDSINCE m)" leave "(CHANGEDSINCE m)", a lone
// "(VANISHED)" nothing. The modifiers follow the items (RFC 4466 2.4), so
// a line whose only list is its items is left as it is.
func takeVanished(line []byte) (rest []byte, vanished bool) {
	if !bytes.HasSuffix(line, []byte(")")) {
		return line, false
	}
	i := bytes.LastIndex(line, []byte(" ("))
	if i < 0 {
		return line, false
	}
	mods := strings.Fields(string(line[i+2 : len(line)-1]))
	if items, err := fetchItemsOf(line[:i]); err != nil || len(items) == 0 {
		return line, false
	}
	var since string
	switch {
	case len(mods) == 1 && strings.EqualFold(mods[0], "VANISHED"):
	case len(mods) == 3 && strings.EqualFold(mods[0], "CHANGEDSINCE") && strings.EqualFold(mods[2], "VANISHED"):
		since = mods[1]
	case len(mods) == 3 && strings.EqualFold(mods[0], "VANISHED") && strings.EqualFold(mods[1], "CHANGEDSINCE"):
		since = mods[2]
	default:
		return line, false
	}
	rest = append([]byte(nil), line[:i]...)
	if since != "" {
		rest = append(append(rest, " (CHANGEDSINCE "...), since+")"...)
	}
	return rest, true
}

// vanishedRefusal answers a FETCH with VANISHED that Dovecot refuses, in
// its words: on FETCH (RFC 7162 3.2.6: UID FETCH only), without
// CHANGEDSINCE, or before the client enabled QRESYNC; the last after
// CHANGEDSINCE enabled CONDSTORE (announce, enableLocked), as Dovecot
// does. nil: the command goes on.
func (cc *clientConn) vanishedRefusal(f *framed, changedSince bool) (reply *refusal, announce string) {
	switch {
	case f.sub != "FETCH":
		return &refusal{line: f.tag + " BAD Error in IMAP command FETCH: Unknown FETCH modifier"}, ""
	case !changedSince:
		return &refusal{line: f.tag + " BAD Error in IMAP command UID FETCH: VANISHED used without CHANGEDSINCE"}, ""
	case !cc.qresyncOn():
		cc.mu.Lock()
		announce = cc.enableLocked()
		cc.mu.Unlock()
		return &refusal{line: f.tag + " BAD Error in IMAP command UID FETCH: QRESYNC not enabled"}, announce
	}
	return nil, ""
}

// qresyncOffer reports whether QRESYNC is offered to the client.
func (cc *clientConn) qresyncOffer() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.qr.offered
}

// fetchVanishedOf reports whether the running UID FETCH has VANISHED.
func (cc *clientConn) fetchVanishedOf() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cur != nil && cc.cur.vanished
}

// vanishedEarlier is how a VANISHED response to a UID FETCH starts after
// "* VANISHED" (RFC 7162 3.2.10: "(EARLIER)" marks it as the command's).
const vanishedEarlier = " (EARLIER) "

// relayVanished relays a "* VANISHED (EARLIER) uids" response of the
// FETCH, positioned after "VANISHED", as the upstream wrote it; a
// VANISHED without EARLIER is another connection's expunge, which the
// watcher reports, and is dropped. Its bytes count toward the relay's
// text bound.
func (rl *fetchRelay) relayVanished() error {
	head, err := rl.br.Peek(len(vanishedEarlier))
	if !rl.vanished || err != nil || !strings.EqualFold(string(head), vanishedEarlier) {
		return rl.skipData()
	}
	earlier := string(head) // as the upstream wrote it; Peek's bytes go
	rl.br.Discard(len(vanishedEarlier))
	var line []byte
	for {
		chunk, err := rl.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > relayTextMax {
			return relayErr("VANISHED response longer than %d bytes", relayTextMax)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return relayEOF(err)
		}
		break
	}
	if rl.members != nil {
		var keep bool
		if line, keep = unreportedVanished(line, rl.members); !keep {
			return nil // qresync_vanished.go
		}
	}
	rl.out = append(append(append(rl.out, "* VANISHED"...), earlier...), line...)
	rl.cut = len(rl.out)
	if len(rl.out) >= relayFlushAt {
		return rl.flush()
	}
	return nil
}

// vanishedModifier is " VANISHED" for the running UID FETCH's
// CHANGEDSINCE when it had VANISHED, else "".
func vanishedModifier(cc *clientConn) string {
	if cc.fetchVanishedOf() {
		return " VANISHED"
	}
	return ""
}

// fetchVanished reports whether the session's running UID FETCH has the
// VANISHED modifier.
func (sess *session) fetchVanished() bool {
	cc := sess.reader()
	return cc != nil && cc.fetchVanishedOf()
}

// poolStatus is the status of a relayed command's tagged answer as the
// client gets it: an OK whose code is the pool connection's
// [HIGHESTMODSEQ n] (Dovecot adds it once that connection was told of
// expunges with CONDSTORE or QRESYNC enabled, RFC 7162 3.1.2.1) is a
// plain OK: the client's own HIGHESTMODSEQ is not the pool connection's.
func poolStatus(err error) error {
	if ie, ok := upstream.IsProtocol(err); ok && ie.Type == imap.StatusResponseTypeOK && ie.Code == "HIGHESTMODSEQ" {
		return nil
	}
	return err
}
