package proxy

import (
	"strings"
	"testing"
)

// clientErrors are malformed or invalid commands, each sent on a fresh
// connection (Dovecot closes one after ten bad commands) directly to
// Dovecot and through idlemux. parser names the cases where imapserver's
// own parser answers otherwise than Dovecot (its "Internal server error"
// becomes BAD in the command reader, where Dovecot may answer NO or take
// the command): they are logged, not checked, and left to the
// transparency work.
var clientErrors = []struct {
	cmd      string
	loggedIn bool // LOGIN and SELECT INBOX first
	parser   string
}{
	{"SELECT INBOX", false, ""},
	{"FETCH 1 FLAGS", false, ""},
	{"IDLE", false, ""},
	{"FETCH 5 FLAGS", true, ""},
	{"FETCH 1 BOGUS", true, ""},
	{"FETCH 1 (FLAGS", true, ""},
	{"FETCH 1 BODY[1.x]", true, ""},
	{"FETCH 1 BODY[HEADER.FIELDS]", true, ""},
	{"STORE 1 +FLAGS (\\Bogus)", true, ""},
	{"STORE 1 +FLAGS (\\Recent)", true, ""},
	{"STORE 1 +FLAGS (a b", true, ""},
	{"STORE 1 FOO (\\Seen)", true, ""},
	{"STORE 9 +FLAGS (\\Seen)", true, ""},
	{"COPY 9 foo", true, ""},
	{"SEARCH 9", true, ""},
	{"SEARCH 1,9", true, ""},
	{"SEARCH 3:*", true, ""},
	{"UID SEARCH 9:10", true, ""},
	{"SEARCH CHARSET BOGUS ALL", true, ""},
	{"SEARCH LARGER x", true, ""},
	{"SEARCH HEADER", true, ""},
	{"SEARCH OR SEEN", true, ""},
	{"SEARCH (SEEN", true, ""},
	{"SEARCH RETURN (BOGUS) ALL", true, ""},
	{"STATUS INBOX (BOGUS)", true, ""},
	{"SELECT", true, ""},
	{"EXAMINE \"\"", true, ""},
	{"SELECT nonexistent", true, ""},
	{"LOGIN a b", true, ""},
	{"STORE 1 +FLAGS (\\*)", true, ""},
	{"STORE 1 +FLAGS ($a%)", true, "'%' in a keyword is a syntax error: BAD (Dovecot: NO [CANNOT])"},
	{"SEARCH KEYWORD \\Foo", true, ""},
	{"SEARCH UNKEYWORD \\Seen", true, ""},
	{"SEARCH BODY {3+}\r\na\x00b", true, ""},
	{"SEARCH BODY {3+}\r\na\r\n", true, ""},
	{"FETCH 1 BINARY[7]", true, ""},
	{"FETCH 1 BODY[0]", true, ""},
	{"FETCH 1 BODY.PEEK[1]<5.0>", true, ""},
	{"COPY 1 nonexistent", true, ""},
	{"MOVE 1 nonexistent", true, ""},
	{"APPEND INBOX (\\Bogus) {1+}\r\nx", true, ""},
	{"APPEND INBOX \"99-Jan-2020 00:00:00 +0000\" {1+}\r\nx", true, "day 99: BAD (Dovecot: OK)"},
	{"APPEND nonexistent {1+}\r\nx", true, ""},
	{"RENAME INBOX INBOX", true, ""},
	{"DELETE INBOX", true, ""},
	{"CREATE INBOX", true, ""},
	{"STATUS nonexistent (MESSAGES)", true, ""},
	{"UID STORE 99 +FLAGS (\\Seen)", true, ""},
	{"UID COPY 99 INBOX", true, ""},
	{"UID MOVE 99 INBOX", true, ""},
	{"UID FETCH 99 FLAGS", true, ""},
	{"FETCH 0 FLAGS", true, ""},
	{"FETCH 1:x FLAGS", true, ""},
	{"UID FETCH x FLAGS", true, ""},
	{"MOVE 1:x foo", true, ""},
	{"UID EXPUNGE x", true, ""},
	{"SEARCH FOO", true, ""},
	{"SEARCH 1:x", true, ""},
	{"SEARCH UID x", true, ""},
	{"SEARCH SINCE x", true, ""},
	{"SEARCH SINCE 32-Jan-2020", true, "Dovecot takes day 32: BAD (Dovecot: OK)"},
	{"SEARCH CHARSET KOI8-R ALL", true, "imapserver takes only US-ASCII and UTF-8: NO [BADCHARSET]"},
	{"SELECT \"&Jjo\"", true, ""},
	{"EXAMINE \"&Jjo\"", true, ""},
	{"CREATE \"&Jjo\"", true, ""},
	{"DELETE \"&Jjo\"", true, ""},
	{"RENAME \"&Jjo\" x", true, ""},
	{"SUBSCRIBE \"&Jjo\"", true, ""},
	{"STATUS \"&Jjo\" (MESSAGES)", true, ""},
	{"LIST \"\" \"&Jjo\"", true, ""},
	{"LIST \"\" &", true, ""},
	{"LSUB \"\" \"&Jjo\"", true, ""},
	{"APPEND \"&Jjo\" {1+}\r\nx", true, "invalid modified UTF-7: BAD (Dovecot: NO)"},
	{"STARTTLS", true, ""},
}

// TestDovecotClientErrorsAnswerAsDirect: a client's malformed or invalid
// command gets the same kind of answer (OK, NO or BAD) through idlemux as
// from Dovecot, and never NO [SERVERBUG]: the client's mistake is not the
// server's bug (RFC 5530).
func TestDovecotClientErrorsAnswerAsDirect(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	appendMsg(t, direct, "INBOX", testMessage("one"))
	appendMsg(t, direct, "INBOX", testMessage("two"))
	p := startProxy(t, testConfig(dv.Addr))
	answer := func(addr, cmd string, loggedIn bool) string {
		rc := dialRaw(t, addr)
		defer rc.c.Close()
		if loggedIn {
			rc.cmd("l", "LOGIN "+testUser+" "+testPass)
			rc.cmd("s", "SELECT INBOX")
		}
		lines := rc.cmdUntilClose("t", cmd)
		return lines[len(lines)-1]
	}
	for _, tt := range clientErrors {
		d, v := answer(dv.Addr, tt.cmd, tt.loggedIn), answer(p.Addrs()[0], tt.cmd, tt.loggedIn)
		same := strings.Fields(d)[1] == strings.Fields(v)[1] && !strings.Contains(v, "[SERVERBUG]")
		switch {
		case strings.Contains(v, "[SERVERBUG]"):
			t.Errorf("%q: through idlemux %q, a client's mistake answered as a server bug (directly %q)", tt.cmd, v, d)
		case tt.parser != "":
			t.Logf("imapserver's parser (%s): %q: through idlemux %q, directly %q", tt.parser, tt.cmd, v, d)
		case !same:
			t.Errorf("%q: through idlemux %q, directly %q", tt.cmd, v, d)
		}
	}
}
