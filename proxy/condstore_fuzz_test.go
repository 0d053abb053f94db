package proxy

import (
	"bytes"
	"slices"
	"testing"
)

// TestTakeCondstore: what the reader hands imapserver (head) and the
// session (relay) for commands using CONDSTORE syntax (RFC 7162 3.1.4,
// 3.1.3, 3.1.8), and what it leaves alone.
func TestTakeCondstore(t *testing.T) {
	tests := []struct {
		name, in, head, relay string
		since, searchModSeq   uint64
		hasSince, modseq, bad bool
	}{
		{name: "select", in: "a SELECT INBOX (CONDSTORE)\r\n", head: "a SELECT INBOX\r\n"},
		{name: "examine any case", in: "a EXAMINE \"x y\" (condstore)\r\n", head: "a EXAMINE \"x y\"\r\n"},
		{name: "select other parameter", in: "a SELECT INBOX (FOO)\r\n", head: "a SELECT INBOX (FOO)\r\n"},
		{name: "status alone", in: "a STATUS INBOX (HIGHESTMODSEQ)\r\n", head: "a STATUS INBOX ()\r\n", modseq: true},
		{name: "status with others", in: "a STATUS INBOX (MESSAGES highestmodseq UNSEEN)\r\n", head: "a STATUS INBOX (MESSAGES UNSEEN)\r\n", modseq: true},
		{name: "status without", in: "a STATUS INBOX (MESSAGES)\r\n", head: "a STATUS INBOX (MESSAGES)\r\n"},
		{name: "fetch modseq", in: "a FETCH 1:* (FLAGS MODSEQ)\r\n", head: "a FETCH 1:* (FLAGS UID)\r\n", relay: "a FETCH 1:* (FLAGS MODSEQ)\r\n", modseq: true},
		{name: "fetch lone modseq", in: "a UID FETCH 1 modseq\r\n", head: "a UID FETCH 1 UID\r\n", relay: "a UID FETCH 1 modseq\r\n", modseq: true},
		{name: "fetch changedsince", in: "a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n", head: "a FETCH 1:* (FLAGS)\r\n", relay: "a FETCH 1:* (FLAGS)\r\n", since: 12345, hasSince: true},
		{name: "fetch both", in: "a UID FETCH 1:* (MODSEQ) (changedsince 0)\r\n", head: "a UID FETCH 1:* (UID)\r\n", relay: "a UID FETCH 1:* (MODSEQ)\r\n", hasSince: true, modseq: true},
		{name: "modseq inside a section", in: "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (MODSEQ)])\r\n", head: "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (MODSEQ)])\r\n"},
		{name: "modseq prefix of an atom", in: "a FETCH 1 (MODSEQX)\r\n", head: "a FETCH 1 (MODSEQX)\r\n"},
		{name: "search modseq", in: "a SEARCH UNSEEN MODSEQ 7\r\n", head: "a SEARCH UNSEEN ALL\r\n", searchModSeq: 7},
		{name: "uid search modseq with entry", in: "a UID SEARCH modseq \"/flags/\\\\seen\" priv 3 SEEN\r\n", head: "a UID SEARCH ALL SEEN\r\n", searchModSeq: 3},
		{name: "search modseq under OR", in: "a SEARCH OR MODSEQ 7 SEEN\r\n", head: "a SEARCH OR MODSEQ 7 SEEN\r\n"},
		{name: "search modseq under NOT", in: "a SEARCH NOT MODSEQ 7\r\n", head: "a SEARCH NOT MODSEQ 7\r\n"},
		{name: "search modseq in parentheses", in: "a SEARCH (MODSEQ 7)\r\n", head: "a SEARCH (MODSEQ 7)\r\n"},
		{name: "search modseq twice", in: "a SEARCH MODSEQ 7 MODSEQ 8\r\n", head: "a SEARCH MODSEQ 7 MODSEQ 8\r\n"},
		{name: "esearch modseq", in: "a SEARCH RETURN (ALL) MODSEQ 7\r\n", head: "a SEARCH RETURN (ALL) MODSEQ 7\r\n"},
		{name: "search flag named modseq", in: "a SEARCH KEYWORD MODSEQ\r\n", head: "a SEARCH KEYWORD MODSEQ\r\n"},
		{name: "changedsince not a number", in: "a FETCH 1 (FLAGS) (CHANGEDSINCE x)\r\n", bad: true},
		{name: "changedsince too large", in: "a FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)\r\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, f := condstoreFrame([]byte(tt.in))
			reply, _ := cc.takeCondstore(f)
			if tt.bad {
				if reply == nil || !bytes.Contains([]byte(reply.line), []byte(" BAD ")) {
					t.Fatalf("got %+v, want BAD", reply)
				}
				return
			}
			if reply != nil {
				t.Fatalf("got refusal %q, want none", reply.line)
			}
			if string(f.head) != tt.head || string(f.relay) != tt.relay {
				t.Errorf("got head %q relay %q, want %q %q", f.head, f.relay, tt.head, tt.relay)
			}
			if f.changedSince != tt.since || f.hasChangedSince != tt.hasSince || f.modseq != tt.modseq {
				t.Errorf("got since %d %v modseq %v, want %d %v %v", f.changedSince, f.hasChangedSince, f.modseq, tt.since, tt.hasSince, tt.modseq)
			}
			if got := f.searchModSeq; tt.searchModSeq != 0 && (got == nil || got.ModSeq != tt.searchModSeq) || tt.searchModSeq == 0 && got != nil {
				t.Errorf("got search MODSEQ %+v, want %d", got, tt.searchModSeq)
			}
			if enabled := tt.head != tt.in; cc.cs.enabled != enabled {
				t.Errorf("got enabled %v, want %v", cc.cs.enabled, enabled)
			}
		})
	}
}

// condstoreFrame frames one command line for a connection offered
// CONDSTORE.
func condstoreFrame(line []byte) (*clientConn, *framed) {
	h, _ := parseHead(line)
	cc := &clientConn{}
	cc.cs.offered = true
	return cc, &framed{cmdHead: h, head: slices.Clone(line)}
}

// FuzzTakeCondstore: whatever a client sends, the reader's CONDSTORE
// rewriting never panics, hands imapserver one line still ending in
// CRLF, never longer than the client's, and the session the client's
// text without the modifier.
func FuzzTakeCondstore(f *testing.F) {
	for _, s := range []string{
		"a SELECT INBOX (CONDSTORE)\r\n", "a STATUS x (HIGHESTMODSEQ MESSAGES)\r\n", "a STATUS x (HIGHESTMODSEQ\r\n",
		"a FETCH 1 (MODSEQ FLAGS) (CHANGEDSINCE 1)\r\n", "a UID FETCH 1 MODSEQ\r\n", "a FETCH 1 (BODY[HEADER.FIELDS (\"MODSEQ\" MODSEQ)] MODSEQ)\r\n",
		"a FETCH (CHANGEDSINCE )\r\n", "a FETCH 1 x (CHANGEDSINCE -1)\r\n", "a STATUS ()\r\n", "a FETCH 1 \"\\\r\n",
		"a SEARCH MODSEQ \"/flags/x\" shared 5\r\n", "a SEARCH OR (MODSEQ 1) MODSEQ 2\r\n", "a SEARCH MODSEQ {3+}\r\nabc all 4\r\n",
		"a STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)\r\n", "a UID STORE 1:* (unchangedsince 0) FLAGS.SILENT ()\r\n",
		"a STORE 1 (UNCHANGEDSINCE ) x\r\n", "a STORE (UNCHANGEDSINCE 1) \r\n", "a STORE 1 (UNCHANGEDSINCE 1)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.Count(line, []byte("\n")) != 1 {
			return
		}
		cc, fr := condstoreFrame(line)
		reply, _ := cc.takeCondstore(fr)
		if reply != nil {
			return
		}
		if !bytes.HasSuffix(fr.head, []byte("\r\n")) || len(fr.head) > len(line) {
			t.Fatalf("head %q from %q", fr.head, line)
		}
		if fr.relay != nil && (!bytes.HasSuffix(fr.relay, []byte("\r\n")) || len(fr.relay) > len(line)) {
			t.Fatalf("relay %q from %q", fr.relay, line)
		}
	})
}

// TestTakeUnchangedSince: the reader takes STORE's (UNCHANGEDSINCE m)
// off for imapserver and keeps m for the session (RFC 7162 3.1.3); an
// invalid value is Dovecot's BAD; other modifiers stay for imapserver.
func TestTakeUnchangedSince(t *testing.T) {
	tests := []struct {
		name, in, head string
		since          uint64
		has, bad       bool
	}{
		{name: "store", in: "a STORE 1:3 (UNCHANGEDSINCE 12) +FLAGS.SILENT (\\Deleted)\r\n", head: "a STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n", since: 12, has: true},
		{name: "uid store any case", in: "a uid store 4,6 (unchangedsince 0) FLAGS ()\r\n", head: "a uid store 4,6 FLAGS ()\r\n", has: true},
		{name: "largest", in: "a STORE 1 (UNCHANGEDSINCE 9223372036854775807) FLAGS ()\r\n", head: "a STORE 1 FLAGS ()\r\n", since: 1<<63 - 1, has: true},
		{name: "without", in: "a STORE 1 +FLAGS (x)\r\n", head: "a STORE 1 +FLAGS (x)\r\n"},
		{name: "other modifier", in: "a STORE 1 (FOO 1) +FLAGS (x)\r\n", head: "a STORE 1 (FOO 1) +FLAGS (x)\r\n"},
		{name: "unterminated", in: "a STORE 1 (UNCHANGEDSINCE 1 +FLAGS (x)\r\n", head: "a STORE 1 (UNCHANGEDSINCE 1 +FLAGS (x)\r\n"},
		{name: "not a number", in: "a STORE 1 (UNCHANGEDSINCE x) +FLAGS (y)\r\n", bad: true},
		{name: "too large", in: "a STORE 1 (UNCHANGEDSINCE 9223372036854775808) +FLAGS (y)\r\n", bad: true},
		{name: "signed", in: "a STORE 1 (UNCHANGEDSINCE +1) +FLAGS (y)\r\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, f := condstoreFrame([]byte(tt.in))
			reply, _ := cc.takeCondstore(f)
			if tt.bad {
				if reply == nil || reply.line != "a BAD Error in IMAP command STORE: Invalid modseq" {
					t.Fatalf("got %+v, want Dovecot's BAD", reply)
				}
				return
			}
			if reply != nil {
				t.Fatalf("got refusal %q, want none", reply.line)
			}
			if string(f.head) != tt.head || f.unchangedSince != tt.since || f.hasUnchangedSince != tt.has {
				t.Errorf("got head %q since %d %v, want %q %d %v", f.head, f.unchangedSince, f.hasUnchangedSince, tt.head, tt.since, tt.has)
			}
			if cc.cs.enabled != tt.has {
				t.Errorf("got enabled %v, want %v", cc.cs.enabled, tt.has)
			}
		})
	}
}

// FuzzModifiedCode: whatever an upstream puts in a tagged status, reading
// [MODIFIED set] never panics and yields only valid UIDs, and Dovecot's
// forms read as they are meant.
func FuzzModifiedCode(f *testing.F) {
	for _, s := range []string{"OK [MODIFIED 7,9] Conditional store failed", "OK [MODIFIED 1:4] x", "ok [modified 3:1,5]",
		"OK [MODIFIED *] x", "OK [MODIFIED 1:] x", "OK [MODIFIED 0] x", "OK [MODIFIED 4294967296] x", "OK [MODIFIED 1,,2] x", "NO [MODIFIED 1] x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, status []byte) {
		set, ok := modifiedCode(status)
		if !ok {
			return
		}
		for _, r := range set {
			if r.Start == 0 || r.Stop == 0 || r.Start > r.Stop {
				t.Fatalf("%q: got range %v", status, r)
			}
		}
	})
}

// TestModifiedCode: the UIDs of [MODIFIED set] as Dovecot writes them.
func TestModifiedCode(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"OK [MODIFIED 7,9] Conditional store failed", "7,9", true},
		{"OK [MODIFIED 1:4] Conditional store failed", "1:4", true},
		{"OK [MODIFIED 4:2] x", "2:4", true},
		{"OK Store completed", "", false},
		{"OK [MODIFIED *] x", "", false},
		{"OK [MODIFIED 0] x", "", false},
		{"NO [MODIFIED 1] x", "", false},
	}
	for _, tt := range tests {
		set, ok := modifiedCode([]byte(tt.in))
		if ok != tt.ok || ok && set.String() != tt.want {
			t.Errorf("%q: got %v %v, want %q %v", tt.in, set, ok, tt.want, tt.ok)
		}
	}
}
