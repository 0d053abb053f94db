package proxy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// rawItemsMessages are the messages of TestDovecotFetchRawItems: what
// go-imap's client and server would change (a source route, an RFC 2047
// word in ISO-8859-1), a multipart with a base64 part holding NUL bytes
// (BINARY, RFC 3516), and a plain one already \Seen.
var rawItemsMessages = []struct {
	body  string
	flags []imap.Flag
}{
	{body: "From: <@route:user@domain>\r\nTo: \"R\" <@a,@b:r@example.org>\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n" +
		"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nhello body\r\n"},
	{body: "From: a@b\r\nSubject: multi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECA2hlbGxvCgp3b3JsZA==\r\n" +
		"--XX\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--XX--\r\n"},
	{body: testMessage("third"), flags: []imap.Flag{imap.FlagSeen}},
}

// fillRawItems creates box with rawItemsMessages, all with one date.
func fillRawItems(t *testing.T, c *imapclient.Client, box string) {
	t.Helper()
	if err := c.Create(box, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	for _, m := range rawItemsMessages {
		cmd := c.Append(box, int64(len(m.body)), &imap.AppendOptions{Flags: m.flags, Time: date})
		if _, err := cmd.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// Claim \Recent: no session under test sees it (idlemux drops it).
	if _, err := c.Select(box, nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// rawPair starts Dovecot and idlemux, fills prefix+"D" and prefix+"P"
// with rawItemsMessages, and returns a direct client (setup) and two raw
// sessions, one with prefix+"D" selected directly, one with prefix+"P"
// through idlemux.
func rawPair(t *testing.T, prefix string) (setup *imapclient.Client, direct, proxied *rawConn) {
	setup, direct, proxied, _ = rawPairProxy(t, prefix, nil)
	return setup, direct, proxied
}

// rawPairProxy is rawPair that also returns the proxy; before, if set,
// runs on the setup client once the mailboxes are filled.
func rawPairProxy(t *testing.T, prefix string, before func(*imapclient.Client)) (setup *imapclient.Client, direct, proxied *rawConn, p *Server) {
	dv := startDovecot(t)
	p = startProxy(t, testConfig(dv.Addr))
	setup = dv.Dial(t, testUser, testPass)
	fillRawItems(t, setup, prefix+"D")
	fillRawItems(t, setup, prefix+"P")
	if before != nil {
		before(setup)
	}
	direct, proxied = dialRaw(t, dv.Addr), dialRaw(t, p.Addrs()[0])
	for _, s := range []struct {
		rc  *rawConn
		box string
	}{{direct, prefix + "D"}, {proxied, prefix + "P"}} {
		s.rc.cmd("l", "LOGIN "+testUser+" "+testPass)
		if got := s.rc.cmd("s", "SELECT "+s.box); !strings.HasPrefix(got[len(got)-1], "s OK") {
			t.Fatalf("SELECT %s: got %q", s.box, got)
		}
	}
	return setup, direct, proxied, p
}

// TestDovecotFetchRawItems: every FETCH item reaches the client as
// Dovecot wrote it, item order included; the same commands run directly
// on one mailbox and through idlemux on an identical one, and the wire
// must be equal (sequence numbers are equal too: both sessions see the
// same messages).
func TestDovecotFetchRawItems(t *testing.T) {
	_, direct, proxied := rawPair(t, "Raw")
	for _, tc := range []struct {
		name, cmd string
		none      bool // no untagged response directly either
	}{
		{name: "envelope with source routes and RFC 2047 in ISO-8859-1", cmd: "FETCH 1 (ENVELOPE)"},
		{name: "bodystructure of a multipart", cmd: "FETCH 2 (BODYSTRUCTURE)"},
		{name: "body of a multipart", cmd: "FETCH 2 (BODY)"},
		{name: "header fields", cmd: "UID FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject From)])"},
		{name: "header field name as a literal", cmd: "UID FETCH 2 (BODY.PEEK[HEADER.FIELDS ({7+}\r\nSubject)])"},
		{name: "header fields not", cmd: "FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (subject)])"},
		{name: "partial body, already seen", cmd: "FETCH 3 (BODY[]<0.10>)"},
		{name: "partial body peek", cmd: "FETCH 1:3 (BODY.PEEK[]<0.10>)"},
		{name: "rfc822.size", cmd: "FETCH 1:* (RFC822.SIZE)"},
		{name: "internaldate", cmd: "FETCH 1:* (INTERNALDATE)"},
		{name: "binary size", cmd: "FETCH 2 (BINARY.SIZE[1])"},
		{name: "binary peek partial", cmd: "FETCH 2 (BINARY.PEEK[1]<0.7>)"},
		{name: "binary, sets seen", cmd: "FETCH 2 (BINARY[1])"},
		{name: "uid fetch", cmd: "UID FETCH 1:* (FLAGS)"},
		{name: "fetch", cmd: "FETCH 1:* (FLAGS)"},
		{name: "fetch uid first", cmd: "FETCH 1:* (UID FLAGS)"},
		{name: "unusual order", cmd: "FETCH 1:3 (ENVELOPE RFC822.SIZE UID FLAGS)"},
		{name: "unusual order with body", cmd: "FETCH 1 (BODY.PEEK[TEXT] INTERNALDATE UID)"},
		{name: "uid last", cmd: "FETCH 2 (FLAGS UID)"},
		{name: "uid twice", cmd: "FETCH 2 (UID RFC822.SIZE UID)"},
		{name: "macro all", cmd: "FETCH 1 ALL"},
		{name: "macro full by uid", cmd: "UID FETCH 1:3 FULL"},
		{name: "rfc822 names", cmd: "FETCH 3 (RFC822.HEADER RFC822.TEXT RFC822)"},
		{name: "single item", cmd: "FETCH 1 RFC822.SIZE"},
		{name: "uid fetch of a missing uid", cmd: "UID FETCH 9 (FLAGS)", none: true},
		{name: "uid after a body that sets seen", cmd: "FETCH 1 (RFC822.SIZE BODY[]<0.5> UID)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := direct.cmd("f", tc.cmd)
			got := proxied.cmd("f", tc.cmd)
			if len(want) < 2 && !tc.none {
				t.Fatalf("%s: no untagged response directly (%q)", tc.cmd, want)
			}
			if !equalUntagged(got, want) || !sameStatus(got[len(got)-1], want[len(want)-1]) {
				t.Errorf("%s:\n got %q\nwant %q", tc.cmd, got, want)
			}
		})
	}
}

// equalUntagged compares everything but the tagged line.
func equalUntagged(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range len(got) - 1 {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// sameStatus compares a tagged line's status and response code, not its
// text (Dovecot's carries timings; imapserver writes its own OK).
func sameStatus(got, want string) bool {
	status := func(l string) string {
		f := strings.Fields(l)
		if len(f) < 2 {
			return l
		}
		s := f[1]
		if len(f) > 2 && strings.HasPrefix(f[2], "[") {
			s += " " + strings.TrimRight(f[2], "]")
		}
		return s
	}
	return status(got) == status(want)
}

// TestDovecotFetchExpungedElsewhere: a FETCH naming messages another
// session expunged, which this session has not been told of (RFC 2180
// 4.1), never gets an empty literal: directly, Dovecot answers NIL for
// what it no longer has and OK [EXPUNGEISSUED]; through idlemux the
// answer is the same when the pool connection still sees the messages,
// and, when it has already been told of the expunge (the upstream then
// returns nothing for them), no response for them with the same OK
// [EXPUNGEISSUED]. Either way the message still there is answered alike,
// and the next NOOP reports the EXPUNGEs.
func TestDovecotFetchExpungedElsewhere(t *testing.T) {
	setup, direct, proxied := rawPair(t, "Exp")
	for _, box := range []string{"ExpD", "ExpP"} {
		if _, err := setup.Select(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := setup.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := setup.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range []string{"FETCH 1:3 (FLAGS BODY.PEEK[])", "FETCH 1:2 (BODY.PEEK[TEXT] RFC822.SIZE)", "FETCH 2 (BINARY.PEEK[1])"} {
		want, got := direct.cmd("f", cmd), proxied.cmd("f", cmd)
		if !sameStatus(want[len(want)-1], "f OK [EXPUNGEISSUED]") {
			t.Fatalf("%s directly: got %q, want f OK [EXPUNGEISSUED]", cmd, want)
		}
		if !sameStatus(got[len(got)-1], "f OK [EXPUNGEISSUED]") {
			t.Errorf("%s through idlemux: got %q, want f OK [EXPUNGEISSUED]", cmd, got)
		}
		for _, l := range got {
			if strings.HasSuffix(l, "{0}") {
				t.Errorf("%s through idlemux: got an empty literal in %q", cmd, got)
			}
		}
		if g, w := responseOf(got, 3), responseOf(want, 3); g != w {
			t.Errorf("%s, message 3: got %q, want %q", cmd, g, w)
		}
		for _, seq := range []int{1, 2} {
			// Directly, Dovecot answers the message's items (its body
			// NIL) and then repeats its new flags in an unsolicited
			// FETCH. Through idlemux the pool connection's answer may be
			// either nothing (its view no longer has the message) or the
			// items; the repeated flags, which tell the client nothing
			// the answer did not, are not relayed.
			g, w := responseOf(got, seq), responseOf(want, seq)
			first, _, _ := strings.Cut(w, "\n")
			if g != "" && g != w && g != first {
				t.Errorf("%s, message %d: got %q, want nothing, %q or %q", cmd, seq, g, first, w)
			}
		}
	}
	deadline := time.Now().Add(waitLong)
	for {
		got := proxied.cmd("n", "NOOP")
		if n := strings.Count(strings.Join(got, "\n"), " EXPUNGE"); n == 2 {
			break
		} else if n != 0 || time.Now().After(deadline) {
			t.Fatalf("NOOP after the FETCH: got %q, want two EXPUNGEs", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// responseOf returns the FETCH response for message seq among lines
// (its literal lines included), "" if there is none.
func responseOf(lines []string, seq int) string {
	prefix := "* " + strconv.Itoa(seq) + " FETCH "
	var out []string
	in := false
	for _, l := range lines {
		if strings.HasPrefix(l, "* ") {
			in = strings.HasPrefix(l, prefix)
		}
		if in && !strings.HasPrefix(l, "f ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDovecotFetchExamineNeverSeen: under EXAMINE, body items that would
// set \Seen do not (RFC 3501 6.3.2), though idlemux's pool connections
// select read-write: RFC822 and RFC822.TEXT, which have no .PEEK form,
// come back under their own names, and the answers equal Dovecot's.
func TestDovecotFetchExamineNeverSeen(t *testing.T) {
	_, direct, proxied := rawPair(t, "Exa")
	for _, s := range []struct {
		rc  *rawConn
		box string
	}{{direct, "ExaD"}, {proxied, "ExaP"}} {
		if got := s.rc.cmd("e", "EXAMINE "+s.box); !strings.HasPrefix(got[len(got)-1], "e OK [READ-ONLY]") {
			t.Fatalf("EXAMINE %s: got %q", s.box, got)
		}
	}
	for _, cmd := range []string{
		"FETCH 1 (RFC822)", "FETCH 1 (RFC822.TEXT FLAGS)", "FETCH 1 (BODY[TEXT])", "UID FETCH 2 (BINARY[1] BODY[]<0.5>)",
		"FETCH 1 (RFC822.HEADER)", "FETCH 1:2 (FLAGS)",
	} {
		want, got := direct.cmd("f", cmd), proxied.cmd("f", cmd)
		if !equalUntagged(got, want) || !sameStatus(got[len(got)-1], want[len(want)-1]) {
			t.Errorf("%s under EXAMINE:\n got %q\nwant %q", cmd, got, want)
		}
	}
	if got := strings.Join(proxied.cmd("f", "FETCH 1:2 (FLAGS)"), "\n"); strings.Contains(got, `\Seen`) {
		t.Errorf("FETCH FLAGS after body fetches under EXAMINE: got %q, want no \\Seen", got)
	}
}
