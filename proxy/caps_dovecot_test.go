package proxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// idAnswer sends ID with args and returns the untagged lines and the
// tagged answer's status word (OK, NO, BAD) or the BYE that ended it.
func idAnswer(rc *rawConn, args string) (untagged []string, status string) {
	for _, l := range rc.cmdUntilClose("i", "ID"+args) {
		switch {
		case strings.HasPrefix(l, "i "):
			status = strings.Fields(l)[1]
		case strings.HasPrefix(l, "* BYE"):
			status = "BYE"
		default:
			untagged = append(untagged, l)
		}
	}
	return untagged, status
}

// TestDovecotID: ID (RFC 2971) is answered before and after login, with
// idlemux's own identity where Dovecot gives its own, and the session goes
// on. Malformed parameters get BAD as Dovecot answers them before login;
// where Dovecot differs the row says why.
func TestDovecotID(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	pairs := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(` "k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `" "v"`)
		}
		return " (" + strings.TrimPrefix(b.String(), " ") + ")"
	}
	const (
		ok  = "OK"
		bad = "BAD"
	)
	tests := []struct {
		name, args string
		want       string // idlemux, before and after login
		// dovecotPre, dovecotPost: Dovecot's answer where it is not want.
		dovecotPre, dovecotPost string
	}{
		{"NIL", " NIL", ok, "", ""},
		{"nil in lower case", " nil", ok, "", ""},
		{"no argument", "", ok, "", ""},
		{"pairs", ` ("name" "mutt" "version" "2.2")`, ok, "", ""},
		{"empty list", " ()", ok, "", ""},
		{"NIL value", ` ("name" NIL)`, ok, "", ""},
		{"literal value", " (\"name\" {4+}\r\nmutt)", ok, "", ""},
		{"escaped quote", ` ("name" "a\"b")`, ok, "", ""},
		{"30 pairs", pairs(30), ok, "", ""},
		{"field of 30 octets", ` ("` + strings.Repeat("k", 30) + `" "v")`, ok, "", ""},
		{"value of 1024 octets", ` ("k" "` + strings.Repeat("v", 1024) + `")`, ok, "", ""},
		// Dovecot checks only before login; after login it takes anything.
		{"atoms", " (name mutt)", bad, "", ok},
		{"a string", ` "x"`, bad, "", ok},
		{"an atom", " x", bad, "", ok},
		{"NIL field", ` (NIL "b")`, bad, "", ok},
		{"nested list", ` ("a" ("b"))`, bad, "", ok},
		{"NIL run on", " NILx", bad, "", ok},
		{"field of 31 octets", ` ("` + strings.Repeat("k", 31) + `" "v")`, bad, "", ok},
		{"unterminated list", ` ("a" "b"`, bad, "", ""},
		// RFC 2971 3.3 limits, which Dovecot does not enforce (or
		// enforces by closing the connection).
		{"31 pairs", pairs(31), bad, ok, ok},
		{"value of 1025 octets", ` ("k" "` + strings.Repeat("v", 1025) + `")`, bad, "BYE", ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, login := range []bool{false, true} {
				for _, via := range []struct{ name, addr string }{{"directly", dv.Addr}, {"through idlemux", p.Addrs()[0]}} {
					rc := dialRaw(t, via.addr)
					if login {
						rc.cmd("l", "LOGIN "+testUser+" "+testPass)
					}
					untagged, status := idAnswer(rc, tt.args)
					want := tt.want
					if via.addr == dv.Addr && !login && tt.dovecotPre != "" {
						want = tt.dovecotPre
					}
					if via.addr == dv.Addr && login && tt.dovecotPost != "" {
						want = tt.dovecotPost
					}
					if status != want {
						t.Fatalf("%s, logged in %v: got %s (%q), want %s", via.name, login, status, untagged, want)
					}
					wantID := []string{`* ID ("name" "Dovecot")`}
					if via.addr != dv.Addr {
						wantID = []string{`* ID ("name" "idlemux" "version" "dev")`}
					}
					if status != ok {
						wantID = nil
					}
					if !slices.Equal(untagged, wantID) {
						t.Errorf("%s, logged in %v: got %q, want %q", via.name, login, untagged, wantID)
					}
					if status == "BYE" {
						continue
					}
					if l := rc.cmd("n", "NOOP"); !strings.HasPrefix(l[len(l)-1], "n OK") {
						t.Errorf("%s, logged in %v: NOOP after ID got %q, want the session to go on", via.name, login, l)
					}
				}
			}
		})
	}
}

// capsSeen is what one connection was offered.
type capsSeen struct {
	greeting, before []string // in the greeting, by CAPABILITY before login
	login            []string // with LOGIN's answer: its code, or an untagged list
	loginLine        string   // LOGIN's tagged answer
	after            []string // by CAPABILITY after login
}

// offeredLists opens a fresh connection to addr and collects its lists;
// askFirst sends CAPABILITY before loginCmd (LOGIN or AUTHENTICATE), after which Dovecot sends the
// post-login list in an untagged CAPABILITY rather than as a response
// code (it takes the client for one that ignores the code).
func offeredLists(t *testing.T, addr string, askFirst bool, loginCmd string) capsSeen {
	t.Helper()
	fields := func(line, prefix, end string) []string {
		i := strings.Index(line, prefix)
		if i < 0 {
			return nil
		}
		rest := line[i+len(prefix):]
		if j := strings.Index(rest, end); end != "" && j >= 0 {
			rest = rest[:j]
		}
		return strings.Fields(rest)
	}
	listed := func(lines []string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, "* CAPABILITY ") {
				return fields(l, "* CAPABILITY ", "")
			}
		}
		return nil
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	var seen capsSeen
	seen.greeting = fields(rc.line(), "* OK [CAPABILITY ", "]")
	if askFirst {
		seen.before = listed(rc.cmd("c", "CAPABILITY"))
	}
	l := rc.cmd("l", loginCmd)
	seen.loginLine = l[len(l)-1]
	seen.login = fields(seen.loginLine, "l OK [CAPABILITY ", "]")
	if seen.login == nil {
		seen.login = listed(l)
	}
	seen.after = listed(rc.cmd("d", "CAPABILITY"))
	return seen
}

// notOfferedByIdlemux: what Dovecot 2.3 offers that idlemux deliberately
// does not, because it does not work end to end through idlemux (caps.go
// postLoginOffers), and before login LOGIN-REFERRALS (idlemux refers no
// one) and AUTH=LOGIN (imapserver offers PLAIN).
var notOfferedByIdlemux = []string{
	"LOGIN-REFERRALS", "AUTH=LOGIN",
	"SORT", "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=REFS", "THREAD=ORDEREDSUBJECT",
	"MULTIAPPEND", "URL-PARTIAL", "CATENATE", "LIST-EXTENDED", "I18NLEVEL=1",
	"ESORT", "SEARCHRES", "WITHIN", "CONTEXT=SEARCH",
	"SNIPPET=FUZZY", "PREVIEW=FUZZY", "PREVIEW", "STATUS=SIZE", "SAVEDATE", "NOTIFY",
}

// TestDovecotCapabilitiesFirstConnection: the very first connection to a
// fresh idlemux (which has never logged in upstream) is offered, before
// and after login, what Dovecot offers directly, in Dovecot's order, but
// for notOfferedByIdlemux and idlemux's own APPENDLIMIT (RFC 7889); the
// LOGIN and AUTHENTICATE answers carry the post-login list as Dovecot's
// do; later connections get the same lists. Dovecot runs with imap_zlib,
// so both list COMPRESS=DEFLATE (RFC 4978), last.
func TestDovecotCapabilitiesFirstConnection(t *testing.T) {
	dv := startDovecotZlib(t)
	p := startProxy(t, testConfig(dv.Addr))
	offered := func(caps []string) []string {
		return slices.DeleteFunc(slices.Clone(caps), func(c string) bool {
			// STARTTLS: the test's listener has no TLS; Dovecot's has.
			return slices.Contains(notOfferedByIdlemux, c) || c == "STARTTLS"
		})
	}
	limit := "APPENDLIMIT=" + strconv.FormatInt(testConfig(dv.Addr).Limits.AppendLimit, 10)
	login := "LOGIN " + testUser + " " + testPass
	auth := "AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+testUser+"\x00"+testPass))
	// The first connection asks nothing before LOGIN, the second asks
	// CAPABILITY first, the third and fourth ask nothing again.
	for i, c := range []struct {
		askFirst bool
		login    string
	}{{false, login}, {true, login}, {false, login}, {false, auth}} {
		askFirst := c.askFirst
		d := offeredLists(t, dv.Addr, askFirst, c.login)
		if len(d.greeting) == 0 || len(d.login) == 0 || !slices.Equal(d.login, d.after) || (askFirst && !slices.Equal(d.greeting, d.before)) {
			t.Fatalf("Dovecot directly: %+v (the reference changed)", d)
		}
		got := offeredLists(t, p.Addrs()[0], askFirst, c.login)
		name := fmt.Sprintf("connection %d (%s, CAPABILITY before: %v)", i+1, strings.Fields(c.login)[0], askFirst)
		if want := offered(d.greeting); !slices.Equal(got.greeting, want) {
			t.Errorf("%s, greeting: got %q, want %q (Dovecot's %q)", name, got.greeting, want, d.greeting)
		}
		if want := offered(d.before); !slices.Equal(got.before, want) {
			t.Errorf("%s, before login: got %q, want %q (Dovecot's %q)", name, got.before, want, d.before)
		}
		want := append(offered(d.after), limit)
		if !slices.Equal(got.login, want) || !slices.Equal(got.after, want) {
			t.Errorf("%s: with LOGIN %q, after login %q, want %q (Dovecot's %q)", name, got.login, got.after, want, d.after)
		}
		if wantLine := strings.Replace(d.loginLine, strings.Join(d.login, " "), strings.Join(want, " "), 1); got.loginLine != wantLine {
			t.Errorf("%s: LOGIN answered %q, want %q", name, got.loginLine, wantLine)
		}
		for _, c := range []string{"ID", "BINARY", "IDLE"} {
			if !slices.Contains(got.after, c) {
				t.Errorf("%s after login: %s not offered in %q", name, c, got.after)
			}
		}
	}
}

// TestDovecotEnable: ENABLE (RFC 5161) enables nothing idlemux does not
// offer (imapserver would enable UTF8=ACCEPT and IMAP4rev2), and answers
// as Dovecot does for extensions it lacks, before and after login.
// CONDSTORE and QRESYNC: qresync_dovecot_test.go, condstore_dovecot_test.go.
func TestDovecotEnable(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	tests := []struct {
		name, args string
		login      bool
	}{
		{"before login", " UTF8=ACCEPT", false},
		{"UTF8=ACCEPT", " UTF8=ACCEPT", true},
		{"IMAP4rev2 and unknown", " IMAP4rev2 FOO", true},
		{"no argument", "", true},
		{"a string", ` "x"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer := func(addr string) (untagged []string, status string) {
				rc := dialRaw(t, addr)
				if tt.login {
					rc.cmd("l", "LOGIN "+testUser+" "+testPass)
				}
				lines := rc.cmd("e", "ENABLE"+tt.args)
				return lines[:len(lines)-1], strings.Fields(lines[len(lines)-1])[1]
			}
			wantU, wantS := answer(dv.Addr)
			gotU, gotS := answer(p.Addrs()[0])
			if gotS != wantS || !slices.Equal(gotU, wantU) {
				t.Errorf("ENABLE%s: through idlemux %q %s, directly %q %s", tt.args, gotU, gotS, wantU, wantS)
			}
		})
	}
}
