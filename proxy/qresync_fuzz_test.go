package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream"
)

// FuzzRelayVanished: whatever the upstream answers a UID FETCH with
// VANISHED, the relay neither panics nor fails but with a relay error or
// a cut answer, and passes on only "* VANISHED (EARLIER)" responses (RFC
// 7162 3.2.6), never another connection's plain VANISHED.
func FuzzRelayVanished(f *testing.F) {
	for _, s := range []string{
		"* VANISHED (EARLIER) 3:4,7\r\n* 1 FETCH (UID 1 FLAGS () MODSEQ (5))\r\nX1 OK done\r\n",
		"* VANISHED 9\r\n* vanished (earlier) 1\r\nX1 OK [HIGHESTMODSEQ 9] done\r\n",
		"* VANISHED (EARLIER)\r\nX1 BAD x\r\n",
		"* VANISHED {3}\r\nabc\r\n* VANISHED (EARLIER) 1:*\r\nX1 OK\r\n",
		"* VANISHED (EARL",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sink := &bufSink{}
		rl := testRelay(&fetchRequest{wantUID: true}, sink)
		rl.vanished = true
		err := rl.run(bufio.NewReaderSize(bytes.NewReader(in), 16), "X1")
		if _, proto := upstream.IsProtocol(err); proto {
			err = nil
		}
		var re *errRelay
		if err != nil && !errors.As(err, &re) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("relay of %q: got error %v, want a relay error or a cut answer", in, err)
		}
		out := sink.String()
		if strings.Contains(out, "}\r\n") {
			return // a literal's bytes may hold anything
		}
		for _, l := range strings.SplitAfter(out, "\r\n") {
			if strings.HasPrefix(strings.ToUpper(l), "* VANISHED") && !strings.HasPrefix(strings.ToUpper(l), "* VANISHED (EARLIER) ") {
				t.Fatalf("relay of %q passed on %q, want only VANISHED (EARLIER)", in, l)
			}
		}
	})
}

// FuzzTakeQResync: with QRESYNC offered and enabled, whatever a client
// sends, the reader's rewriting never panics, hands imapserver one line
// ending in CRLF and never longer than the client's.
func FuzzTakeQResync(f *testing.F) {
	for _, s := range []string{
		"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7 VANISHED)\r\n", "a UID FETCH 1 F (VANISHED CHANGEDSINCE 1)\r\n",
		"a UID FETCH 1 (VANISHED)\r\n", "a FETCH 1 (FLAGS) (VANISHED)\r\n", "a UID FETCH (VANISHED CHANGEDSINCE)\r\n",
		"a SELECT INBOX (QRESYNC (1 2 1:5 (1:3 1:3)))\r\n", "a EXAMINE \"a (b\" (CONDSTORE QRESYNC (1 2))\r\n",
		"a SELECT x (QRESYNC (1 2) CONDSTORE)\r\n", "a SELECT x (QRESYNC ())\r\n", "a SELECT x (QRESYNC)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.Count(line, []byte("\n")) != 1 {
			return
		}
		cc, fr := condstoreFrame(line)
		cc.qr.offered = true
		cc.qr.enabled.Store(true)
		reply, _ := cc.takeCondstore(fr)
		if reply != nil {
			return
		}
		if !bytes.HasSuffix(fr.head, []byte("\r\n")) || len(fr.head) > len(line) {
			t.Fatalf("head %q from %q", fr.head, line)
		}
	})
}

// FuzzUnreportedVanished: whatever UID set the upstream writes, taking
// the view's UIDs out never panics, and what is left is a set that holds
// no UID of the view and every other UID of the upstream's set.
func FuzzUnreportedVanished(f *testing.F) {
	for _, s := range []string{"1:3,5", "9:2", "4294967295", "1:4294967295", "0", "1,,2", "3:"} {
		f.Add(s)
	}
	view := imap.UIDSet{{Start: 4, Stop: 4}, {Start: 7, Stop: 8}, {Start: 4294967295, Stop: 4294967295}}
	members := func(set imap.UIDSet) []fanout.Member {
		var out []fanout.Member
		for _, u := range []imap.UID{4, 7, 8, 4294967295} {
			if hasUID(set, u) {
				out = append(out, fanout.Member{UID: u})
			}
		}
		return out
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, ok := parseUIDSet([]byte(s))
		got, keep := unreportedVanished([]byte(s+"\r\n"), members)
		if !ok {
			if !keep || string(got) != s+"\r\n" {
				t.Fatalf("unreadable %q: got %q %v, want it as it is", s, got, keep)
			}
			return
		}
		if !keep {
			got = []byte("\r\n")
		}
		out, _ := parseUIDSet(bytes.TrimSuffix(got, []byte("\r\n")))
		for _, u := range []imap.UID{1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 4294967294, 4294967295} {
			want := hasUID(in, u) && !hasUID(view, u)
			if hasUID(out, u) != want {
				t.Fatalf("%q left %q: UID %d in it %v, want %v", s, got, u, hasUID(out, u), want)
			}
		}
	})
}

// hasUID reports whether uid is in set, whose ranges need not be in
// order (imap.UIDSet.Contains assumes they are).
func hasUID(set imap.UIDSet, uid imap.UID) bool {
	for _, r := range set {
		if uid >= min(r.Start, r.Stop) && uid <= max(r.Start, r.Stop) {
			return true
		}
	}
	return false
}
