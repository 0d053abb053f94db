package proxy

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// converse sends payload on a fresh connection (logged in first when
// login is set) and returns every line received until the line tagged
// "zz" or the end of the connection; lines are cut at 120 bytes.
func converse(t *testing.T, addr string, login bool, payload string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(waitLong))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if login {
		fmt.Fprintf(c, "l LOGIN %s %s\r\n", testUser, testPass)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if strings.HasPrefix(l, "l ") {
				if !strings.HasPrefix(l, "l OK") {
					t.Fatalf("login: %q", l)
				}
				break
			}
		}
	}
	go c.Write([]byte(payload)) // may block on a server that stops reading
	var out []string
	for {
		l, err := r.ReadString('\n')
		if l != "" {
			out = append(out, cut(strings.TrimRight(l, "\r\n"), 120))
		}
		if err != nil {
			out = append(out, "<closed>")
			return out
		}
		if strings.HasPrefix(l, "zz ") {
			return out
		}
	}
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// shape is what a response line says, without the server's own words:
// its tag and type ("s NO", "* BYE", "+").
func shape(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
			out = append(out, "")
		case f[0] == "+":
			out = append(out, "+")
		case len(f) == 1:
			out = append(out, f[0])
		default:
			out = append(out, f[0]+" "+f[1])
		}
	}
	return out
}

// literalOf announces body as a literal ({n} or {n+}) followed by body.
func literalOf(body string, nonSync bool) string {
	plus := ""
	if nonSync {
		plus = "+"
	}
	return fmt.Sprintf("{%d%s}\r\n%s", len(body), plus, body)
}

// TestDovecotHostileLiterals sends each hostile input directly to Dovecot
// and through idlemux, and compares the shape of the answers: tags and
// response types, and that bytes inside a literal never run as a command
// (issue: literal smuggling, RFC 3501 4.3, RFC 7888). Cases where idlemux
// deliberately differs say why: where Dovecot itself runs a literal's
// bytes as a command, idlemux does not.
func TestDovecotHostileLiterals(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	smallLimit := testConfig(dv.Addr)
	smallLimit.Limits.AppendLimit = 10000
	pSmall := startProxy(t, smallLimit)
	direct := directClient(t, dv.Addr)
	if err := direct.Create("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	// Repro 1 of the issue: a CREATE whose 5000-byte literal holds a command.
	smuggle := func(who string) string {
		cmd := "a\r\nx1 CREATE smuggled1" + who + "\r\n"
		return "s CREATE " + literalOf(cmd+strings.Repeat("y", 5000-len(cmd)), true) + "\r\nzz NOOP\r\n"
	}
	// Repro 2: an APPEND over append_limit whose message holds commands.
	appendSmuggle := func(who string) string {
		msg := "From: a@example.org\r\nX-A: \r\nx2 DELETE Archive\r\nX-B: \r\nx3 CREATE pwned" + who + "\r\n\r\n" + strings.Repeat("z", 22000) + "\r\n"
		return "s APPEND INBOX " + literalOf(msg, true) + "\r\nzz NOOP\r\n"
	}
	inLiteral := func(before string) func(string) string {
		return func(who string) string {
			return before + literalOf("b CREATE smuggled2"+who+"\r\n", true) + "\r\nzz NOOP\r\n"
		}
	}
	fixed := func(s string) func(string) string { return func(string) string { return s } }

	tests := []struct {
		name    string
		login   bool
		payload func(who string) string
		// want is the shape through idlemux; direct is Dovecot's when it
		// differs (nil: the same).
		want, direct []string
		via          *Server
	}{
		{"non-sync literal over the limit holds a command", true, smuggle,
			// idlemux refuses it (4096 bytes outside APPEND); Dovecot
			// takes it as the mailbox name and refuses the name.
			[]string{"s NO", "zz OK"}, nil, nil},
		{"APPEND over append_limit holds commands", true, appendSmuggle,
			// Dovecot has no APPENDLIMIT here and stores the message.
			[]string{"s NO", "zz OK"}, []string{"s OK", "zz OK"}, pSmall},
		{"unknown command with a literal", true, inLiteral("s XYZZY "),
			// Dovecot itself runs the literal as a command (b OK).
			[]string{"s BAD", "zz OK"}, []string{"s BAD", "b OK", "* BAD", "zz OK"}, nil},
		{"syntax error before a literal", true, inLiteral("s SELECT (x "),
			[]string{"s BAD", "zz OK"}, nil, nil},
		{"bad tag before a literal", true, inLiteral("s(x CREATE "),
			// Dovecot again runs the literal as a command.
			[]string{"* BAD", "zz OK"}, []string{"* BAD", "b OK", "* BAD", "zz OK"}, nil},
		{"literal size past 2^32-1", false, fixed("a LOGIN {4294967296}\r\nzz NOOP\r\n"),
			[]string{"* BYE", "<closed>"}, nil, nil},
		{"literal size 2^32-1", false, fixed("a LOGIN {4294967295}\r\nzz NOOP\r\n"),
			[]string{"* BYE", "<closed>"}, nil, nil},
		{"huge non-sync literal", true, fixed("a CREATE {4294967295+}\r\nzz NOOP\r\n"),
			[]string{"* BYE", "<closed>"}, nil, nil},
		{"sync literal within the limit", true, fixed("s STATUS {5}\r\nINBOX (MESSAGES)\r\nzz NOOP\r\n"),
			[]string{"+", "* STATUS", "s OK", "zz OK"}, nil, nil},
		{"sync LOGIN literals", false,
			fixed("s LOGIN " + literalOf(testUser, false) + " " + literalOf(testPass, false) + "\r\nzz NOOP\r\n"),
			[]string{"+", "+", "s OK", "zz OK"}, nil, nil},
		{"tag alone", true, fixed("x4\r\nzz NOOP\r\n"), []string{"x4 BAD", "zz OK"}, nil, nil},
		{"empty line", true, fixed("\r\nzz NOOP\r\n"), []string{"* BAD", "zz OK"}, nil, nil},
		{"plus as a tag", true, fixed("+ NOOP\r\nzz NOOP\r\n"), []string{"* BAD", "zz OK"}, nil, nil},
		{"UID alone", true, fixed("a UID\r\nzz NOOP\r\n"), []string{"a BAD", "zz OK"}, nil, nil},
		{"unterminated quote ending like a literal", true,
			// Inside a quoted string {8+} is no literal: the line is
			// broken, and the next one is a command.
			fixed("a SELECT \"INBOX {8+}\r\nb NOOP\r\nzz NOOP\r\n"),
			[]string{"a BAD", "b OK", "zz OK"}, nil, nil},
		{"IDLE ended by another line", true, fixed("a IDLE\r\nfoo\r\nzz NOOP\r\n"),
			[]string{"+", "a BAD", "zz OK"}, nil, nil},
		{"bare LF line ends", true, fixed("a NOOP\nzz NOOP\n"), []string{"a OK", "zz OK"}, nil, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			via := tt.via
			if via == nil {
				via = p
			}
			got := shape(converse(t, via.Addrs()[0], tt.login, tt.payload(fmt.Sprintf("p%d", i))))
			if !slices.Equal(got, tt.want) {
				t.Errorf("through idlemux: got %q, want %q", got, tt.want)
			}
			want := tt.direct
			if want == nil {
				want = tt.want
			}
			if direct := shape(converse(t, dv.Addr, tt.login, tt.payload(fmt.Sprintf("d%d", i)))); !slices.Equal(direct, want) {
				t.Errorf("directly against Dovecot: got %q, want %q", direct, want)
			}
		})
	}

	// Nothing inside a literal ran upstream through idlemux.
	boxes, err := direct.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	for _, name := range names {
		for _, bad := range []string{"smuggled1p", "smuggled2p", "pwnedp"} {
			if strings.HasPrefix(name, bad) {
				t.Errorf("mailbox %q exists: a literal's bytes ran as a command through idlemux (mailboxes %q)", name, names)
			}
		}
	}
	if !slices.Contains(names, "Archive") {
		t.Errorf("Archive is gone: a literal's bytes ran as a command (mailboxes %q)", names)
	}
}

// TestHostileLiteralLimits: what idlemux refuses at its own limits, which
// are lower than Dovecot's (imapserver buffers at most 4 KiB per literal
// outside APPEND): a synchronizing literal over the limit gets NO [TOOBIG]
// at once instead of a continuation request, and the connection goes on.
func TestHostileLiteralLimits(t *testing.T) {
	_, p, _ := setup(t, 1)
	tests := []struct {
		name, payload string
		want          []string
	}{
		{"sync literal over 4096", "s CREATE {5000}\r\nzz NOOP\r\n",
			[]string{"s NO [TOOBIG] Literals are limited to 4096 bytes for this command", "zz OK NOOP completed"}},
		{"non-sync literal over 64 KiB", "s CREATE {70000+}\r\n" + strings.Repeat("y", 70000) + "\r\nzz NOOP\r\n",
			[]string{"* BYE Literal size too large", "<closed>"}},
		{"command line over 48 KiB", "s NOOP " + strings.Repeat("x", 60000) + "\r\nzz NOOP\r\n",
			[]string{"s BAD Error in IMAP command: Command line too long", "zz OK NOOP completed"}},
		{"overlong line ending in a literal", "s NOOP " + strings.Repeat("x", 60000) + " {20+}\r\nb CREATE smuggled\r\n\r\nzz NOOP\r\n",
			[]string{"s BAD Error in IMAP command: Command line too long", "zz OK NOOP completed"}},
		{"APPEND literal past append_limit", fmt.Sprintf("s APPEND INBOX {%d}\r\nzz NOOP\r\n", 64<<20+1),
			[]string{"s NO [TOOBIG] Literals are limited to 67108864 bytes for this command", "zz OK NOOP completed"}},
		{"AUTHENTICATE response too long", "", nil},
	}
	for _, tt := range tests {
		if tt.payload == "" {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			got := converse(t, p.Addrs()[0], true, tt.payload)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("AUTHENTICATE response too long", func(t *testing.T) {
		got := shape(converse(t, p.Addrs()[0], false, "a AUTHENTICATE PLAIN\r\n"+strings.Repeat("A", 9000)+"\r\nzz NOOP\r\n"))
		// Dovecot closes the connection; idlemux cancels the exchange
		// (RFC 3501 6.2.2) and none of the line runs as a command.
		if want := []string{"+", "a BAD", "zz OK"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestAppendSpooledBeforeUpstream: APPEND literals, synchronizing or not,
// small or spooled to disk, arrive upstream byte for byte.
func TestAppendSpooledBeforeUpstream(t *testing.T) {
	_, p, direct := setup(t, 0)
	for _, size := range []int{10, 70 << 10, 300 << 10} {
		for _, nonSync := range []bool{false, true} {
			body := testMessage(fmt.Sprintf("size %d", size)) + strings.Repeat("line of text\r\n", size/14)
			got := converse(t, p.Addrs()[0], true, "s APPEND INBOX (\\Seen) "+literalOf(body, nonSync)+"\r\nzz NOOP\r\n")
			if tagged := got[len(got)-2]; !strings.HasPrefix(tagged, "s OK") {
				t.Fatalf("APPEND of %d bytes (non-sync %v): got %q, want s OK", len(body), nonSync, got)
			}
			sel, err := direct.Select("INBOX", nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := direct.Fetch(imap.SeqSetNum(sel.NumMessages), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			var stored []byte
			for _, b := range msgs[len(msgs)-1].BodySection {
				stored = b.Bytes
			}
			if string(stored) != body {
				t.Fatalf("APPEND of %d bytes (non-sync %v): upstream stored %d bytes, want the %d sent", len(body), nonSync, len(stored), len(body))
			}
		}
	}
}
