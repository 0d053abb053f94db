package proxy

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// TestAppendSessionUpdates: a QRESYNC session's expunges go out as one
// "* VANISHED" with an ascending UID set (RFC 7162 3.2.10), the rest as
// for any session; a session without QRESYNC gets appendUpdates' bytes.
func TestAppendSessionUpdates(t *testing.T) {
	exp := func(seq uint32, uid imap.UID) fanout.Update {
		return fanout.Update{Kind: fanout.UpdateExpunge, Seq: seq, UID: uid}
	}
	exists := fanout.Update{Kind: fanout.UpdateExists, Seq: 4}
	flags := fanout.Update{Kind: fanout.UpdateFlags, Seq: 2, UID: 9, Flags: []imap.Flag{imap.FlagSeen}}
	for _, tc := range []struct {
		name     string
		ups      []fanout.Update
		vanished bool
		want     string
	}{
		{"one", []fanout.Update{exp(3, 7)}, true, "* VANISHED 7\r\n"},
		{"runs and singles, highest seq first", []fanout.Update{exp(9, 20), exp(5, 12), exp(4, 11), exp(3, 10), exp(1, 2)}, true,
			"* VANISHED 2,10:12,20\r\n"},
		{"then exists and flags", []fanout.Update{exp(2, 4), exp(1, 3), exists, flags}, true,
			"* VANISHED 3:4\r\n* 4 EXISTS\r\n* 2 FETCH (UID 9 FLAGS (\\Seen))\r\n"},
		{"no expunge", []fanout.Update{exists, flags}, true, "* 4 EXISTS\r\n* 2 FETCH (UID 9 FLAGS (\\Seen))\r\n"},
		{"not enabled", []fanout.Update{exp(2, 4), exp(1, 3), exists}, false, "* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n* 4 EXISTS\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(appendSessionUpdates(nil, tc.ups, nil, nil, tc.vanished))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !tc.vanished {
				if plain := string(appendUpdates(nil, tc.ups, nil, nil)); got != plain {
					t.Errorf("got %q, want appendUpdates' %q", got, plain)
				}
			}
		})
	}
}

// TestTakeCondstoreVanished: the reader takes UID FETCH's VANISHED
// modifier off with CHANGEDSINCE, in either order and any case, and
// refuses it as Dovecot does on FETCH, without CHANGEDSINCE and before
// QRESYNC is enabled (RFC 7162 3.2.6).
func TestTakeCondstoreVanished(t *testing.T) {
	for _, tc := range []struct {
		name, in, head, refusal string
		enabled, vanished       bool
		since                   uint64
	}{
		{name: "after", in: "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7 VANISHED)\r\n", enabled: true,
			head: "a UID FETCH 1:* (FLAGS)\r\n", vanished: true, since: 7},
		{name: "before, any case", in: "a uid fetch 1:* FLAGS (vanished changedsince 8)\r\n", enabled: true,
			head: "a uid fetch 1:* FLAGS\r\n", vanished: true, since: 8},
		{name: "without", in: "a UID FETCH 1 (FLAGS) (CHANGEDSINCE 7)\r\n", enabled: true, head: "a UID FETCH 1 (FLAGS)\r\n", since: 7},
		{name: "not enabled", in: "a UID FETCH 1 (FLAGS) (CHANGEDSINCE 7 VANISHED)\r\n",
			refusal: "a BAD Error in IMAP command UID FETCH: QRESYNC not enabled"},
		{name: "no changedsince", in: "a UID FETCH 1 (FLAGS) (VANISHED)\r\n", enabled: true,
			refusal: "a BAD Error in IMAP command UID FETCH: VANISHED used without CHANGEDSINCE"},
		{name: "fetch", in: "a FETCH 1 (FLAGS) (CHANGEDSINCE 7 VANISHED)\r\n", enabled: true,
			refusal: "a BAD Error in IMAP command FETCH: Unknown FETCH modifier"},
		{name: "items only", in: "a UID FETCH 1 (VANISHED)\r\n", enabled: true, head: "a UID FETCH 1 (VANISHED)\r\n"},
		{name: "bad changedsince", in: "a UID FETCH 1 (FLAGS) (CHANGEDSINCE x VANISHED)\r\n", enabled: true,
			refusal: "a BAD Error in IMAP command FETCH: Invalid CHANGEDSINCE modseq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, f := condstoreFrame([]byte(tc.in))
			cc.qr.offered = true
			cc.qr.enabled.Store(tc.enabled)
			reply, _ := cc.takeCondstore(f)
			if tc.refusal != "" {
				if reply == nil || reply.line != tc.refusal {
					t.Fatalf("got %+v, want refusal %q", reply, tc.refusal)
				}
				return
			}
			if reply != nil {
				t.Fatalf("got refusal %q, want none", reply.line)
			}
			if string(f.head) != tc.head || f.vanished != tc.vanished || f.changedSince != tc.since {
				t.Errorf("got head %q vanished %v since %d, want %q %v %d", f.head, f.vanished, f.changedSince, tc.head, tc.vanished, tc.since)
			}
		})
	}
}

// TestUnreportedVanished: a SELECT's VANISHED (EARLIER) loses the UIDs
// the session's view still holds (they are told later with VANISHED, RFC
// 7162 3.2.10), and goes when none is left; a set it cannot read, or one
// without such UIDs, goes on as the upstream wrote it.
func TestUnreportedVanished(t *testing.T) {
	view := []imap.UID{4, 7, 8, 20}
	members := func(set imap.UIDSet) []fanout.Member {
		var out []fanout.Member
		for i, u := range view {
			if hasUID(set, u) {
				out = append(out, fanout.Member{Seq: uint32(i + 1), UID: u})
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, in, want string
		keep           bool
	}{
		{"none held", "1:3,5\r\n", "1:3,5\r\n", true},
		{"one inside a range", "1:5\r\n", "1:3,5\r\n", true},
		{"at a range's ends", "4:8,10\r\n", "5:6,10\r\n", true},
		{"reversed range", "9:2\r\n", "2:3,5:6,9\r\n", true},
		{"all held", "4,7:8\r\n", "", false},
		{"unreadable", "1:*\r\n", "1:*\r\n", true},
		{"top of the range", "20:4294967295\r\n", "21:4294967295\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, keep := unreportedVanished([]byte(tc.in), members)
			if string(got) != tc.want || keep != tc.keep {
				t.Errorf("got %q %v, want %q %v", got, keep, tc.want, tc.keep)
			}
		})
	}
}

// TestQResyncParam: the reader takes QRESYNC's list off a SELECT's
// parameters, beside CONDSTORE, and only when its content is numbers,
// sets and parentheses.
func TestQResyncParam(t *testing.T) {
	for _, tc := range []struct {
		name, in, text string
		bare, ok       bool
	}{
		{"alone", " (QRESYNC (1 2))", "1 2", false, true},
		{"full", " (QRESYNC (1 2 1:5 (1:3 1,4:5)))", "1 2 1:5 (1:3 1,4:5)", false, true},
		{"condstore after", " (qresync (1 2) CONDSTORE)", "1 2", false, true},
		{"condstore before", " (CONDSTORE QRESYNC (1 2 1:*))", "1 2 1:*", false, true},
		{"bare", " (QRESYNC)", "", true, true},
		{"empty", " (QRESYNC ())", "", false, true},
		{"condstore only", " (CONDSTORE)", "", false, false},
		{"other parameter", " (QRESYNC (1 2) FOO)", "", false, false},
		{"letters", " (QRESYNC (1 2 a))", "", false, false},
		{"too deep", " (QRESYNC (1 2 1 ((1 1))))", "", false, false},
		{"unbalanced", " (QRESYNC (1 2)", "", false, false},
		{"twice", " (QRESYNC (1 2) QRESYNC (1 2))", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, bare, ok := qresyncParam([]byte(tc.in))
			if text != tc.text || bare != tc.bare || ok != tc.ok {
				t.Errorf("got %q %v %v, want %q %v %v", text, bare, ok, tc.text, tc.bare, tc.ok)
			}
		})
	}
}

// TestVanishedHighestCode: the tagged OK of a command that told a
// QRESYNC client of expunges gets [HIGHESTMODSEQ n], as Dovecot's does;
// an OK with a code of its own, another tag and NO are left alone.
func TestVanishedHighestCode(t *testing.T) {
	cc := &clientConn{cur: &framed{cmdHead: cmdHead{tag: "a1", name: "EXPUNGE"}}}
	cc.qr.vanishedHighest = 42
	for _, tc := range []struct{ name, in, want string }{
		{"ok", "a1 OK EXPUNGE completed\r\n", "a1 OK [HIGHESTMODSEQ 42] EXPUNGE completed\r\n"},
		{"own code", "a1 OK [READ-WRITE] x\r\n", "a1 OK [READ-WRITE] x\r\n"},
		{"untagged", "* OK x\r\n", "* OK x\r\n"},
		{"no", "a1 NO x\r\n", "a1 NO x\r\n"},
		{"other tag", "a11 OK x\r\n", "a11 OK x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(cc.vanishedHighestCode([]byte(tc.in))); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestQResyncSinkLimit: a SELECT's QRESYNC responses are held up to the
// limit and refused with [LIMIT] past it, text and literals alike.
func TestQResyncSinkLimit(t *testing.T) {
	s := &qresyncSink{max: 10}
	if err := s.text([]byte("0123456789")); err != nil {
		t.Fatalf("got %v for 10 bytes, want nil", err)
	}
	if err := s.text([]byte("x")); err != errQResyncTooMuch {
		t.Errorf("got %v for byte 11, want errQResyncTooMuch", err)
	}
	if err := s.literal(strings.NewReader("x"), 1); err != errQResyncTooMuch {
		t.Errorf("got %v for a literal past the limit, want errQResyncTooMuch", err)
	}
	if string(s.b) != "0123456789" {
		t.Errorf("got %q held, want the 10 bytes", s.b)
	}
}
