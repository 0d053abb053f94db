package proxy

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream"
)

// STORE with (UNCHANGEDSINCE m) (RFC 7162 3.1.3), which imapserver
// cannot parse: the reader takes the modifier off and keeps its value on
// the framed command; the session runs the STORE upstream with it (a raw
// command: imapclient neither sends UNCHANGEDSINCE 0 nor returns the
// MODIFIED code) and answers OK [MODIFIED set] with the set renumbered to
// the client's view, as Dovecot answers directly.

// unchangedSinceKey opens the STORE modifier (RFC 7162 7: store-modifier).
const unchangedSinceKey = "(UNCHANGEDSINCE "

// storeCondstore takes "(UNCHANGEDSINCE m) " (any case) off a STORE or
// UID STORE before imapserver reads it; it is an enabling command (RFC
// 7162 3.1). An invalid value is refused in Dovecot's words; any other
// modifier is left to imapserver, which refuses it.
func (cc *clientConn) storeCondstore(f *framed) (reply *refusal, announce string) {
	if f.name != "STORE" && f.sub != "STORE" || f.spool != nil || len(f.tail) > 0 || len(f.headCuts) > 0 {
		return nil, ""
	}
	line := bytes.TrimSuffix(f.head, []byte("\r\n"))
	rest, err := fetchItemsOf(line) // after the tag, [UID] STORE and the set
	if err != nil || len(rest) < len(unchangedSinceKey) || !strings.EqualFold(string(rest[:len(unchangedSinceKey)]), unchangedSinceKey) {
		return nil, ""
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.cs.offered {
		return nil, ""
	}
	num, after, ok := bytes.Cut(rest[len(unchangedSinceKey):], []byte(") "))
	if !ok {
		return nil, "" // imapserver refuses the rest
	}
	v, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil || len(num) == 0 || num[0] == '+' || v > 1<<63-1 {
		return &refusal{line: f.tag + " BAD Error in IMAP command STORE: Invalid modseq"}, ""
	}
	at := len(line) - len(rest)
	head := append(append([]byte(nil), line[:at]...), after...)
	f.head = append(head, '\r', '\n')
	f.unchangedSince, f.hasUnchangedSince = v, true
	return nil, cc.enableLocked()
}

// storeCondstoreOf reports the UNCHANGEDSINCE the reader took off the
// running STORE.
func (cc *clientConn) storeCondstoreOf() (since uint64, has bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur == nil || cc.cur.name != "STORE" && cc.cur.sub != "STORE" {
		return 0, false
	}
	return cc.cur.unchangedSince, cc.cur.hasUnchangedSince
}

// unchangedSince returns the running STORE's UNCHANGEDSINCE, if any.
func (sess *session) unchangedSince() (uint64, bool) {
	if cc := sess.reader(); cc != nil {
		return cc.storeCondstoreOf()
	}
	return 0, false
}

// storeConditional runs "UID STORE uids (UNCHANGEDSINCE since)
// <op>FLAGS.SILENT (flags)" upstream and returns the UIDs the upstream
// named in OK [MODIFIED ...]: those it did not store.
func storeConditional(c *upstream.Conn, uids imap.UIDSet, since uint64, flags *imap.StoreFlags) (imap.UIDSet, error) {
	var modified imap.UIDSet
	cmd := "UID STORE " + uids.String() + " (UNCHANGEDSINCE " + strconv.FormatUint(since, 10) + ") " +
		string(storeOp(flags.Op)) + ".SILENT " + string(appendFlagList(nil, flags.Flags))
	err := c.Raw(cmd, func(r upstream.RawReader) error {
		status, err := taggedLine(r.Reader, r.Tag)
		if err != nil {
			return err
		}
		if set, ok := modifiedCode(status); ok {
			modified = set
			return nil
		}
		return taggedStatus(status)
	})
	return modified, err
}

// storeOp is a STORE's data item name (RFC 3501 6.4.6).
func storeOp(op imap.StoreFlagsOp) string {
	switch op {
	case imap.StoreFlagsAdd:
		return "+FLAGS"
	case imap.StoreFlagsDel:
		return "-FLAGS"
	}
	return "FLAGS"
}

// taggedLine reads an answer up to the line tagged tag, untagged
// responses (literals included) dropped: the model learns the STORE's
// changes through the watcher. It returns the status after the tag.
func taggedLine(br *bufio.Reader, tag string) ([]byte, error) {
	rl := &fetchRelay{br: br}
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, relayEOF(err)
		}
		if b[0] == '*' {
			if err := rl.skipData(); err != nil {
				return nil, err
			}
			continue
		}
		line, err := rl.line()
		if err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(line, []byte(tag+" ")) {
			return nil, relayErr("unexpected line %q", clip(line))
		}
		return line[len(tag)+1:], nil
	}
}

// modifiedCode reads "OK [MODIFIED set] ..." (RFC 7162 3.1.3, 7: the
// set of UIDs a UID STORE did not store).
func modifiedCode(status []byte) (imap.UIDSet, bool) {
	const prefix = "OK [MODIFIED "
	if len(status) < len(prefix) || !strings.EqualFold(string(status[:len(prefix)]), prefix) {
		return nil, false
	}
	set, _, ok := bytes.Cut(status[len(prefix):], []byte("]"))
	if !ok {
		return nil, false
	}
	return parseUIDSet(set)
}

// parseUIDSet reads a set of UIDs as an upstream writes one in a response
// code or VANISHED: "n" and "n:m" ranges, either order, separated by
// commas, no "*" (RFC 3501 9 sequence-set of nz-numbers, RFC 4315
// uid-set, RFC 7162 3.2.10 known-uids).
func parseUIDSet(b []byte) (imap.UIDSet, bool) {
	var set imap.UIDSet
	for part := range bytes.SplitSeq(b, []byte(",")) {
		lo, hi, isRange := bytes.Cut(part, []byte(":"))
		start, ok := parseNZ(lo)
		stop, okStop := start, true
		if isRange {
			stop, okStop = parseNZ(hi)
		}
		if !ok || !okStop || start == 0 || stop == 0 {
			return nil, false
		}
		set.AddRange(imap.UID(min(start, stop)), imap.UID(max(start, stop)))
	}
	return set, len(set) > 0
}

// parseNZ reads an nz-number (RFC 3501 9: no leading zero) of 32 bits.
func parseNZ(b []byte) (uint32, bool) {
	if len(b) > 0 && b[0] == '0' {
		return 0, false
	}
	return parseNum(b)
}

// modifiedError is the client's OK [MODIFIED set] for the UIDs a STORE
// did not store: by UID for UID STORE, else by the session's numbers.
func (sess *session) modifiedError(modified imap.UIDSet, isUID bool) error {
	code := modified.String()
	if !isUID {
		var seqs imap.SeqSet
		for _, m := range sess.sel.v.Members(modified) {
			seqs.AddNum(m.Seq)
		}
		code = seqs.String()
	}
	return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode("MODIFIED " + code), Text: "Conditional store failed"}
}
