package proxy

// Review findings against the downstream command reader (clientconn.go,
// cmdframe.go, cmdline.go, cmdlocal.go): each test asserts the property the
// reader promises and fails on main as it is, with Dovecot's answer to the
// same bytes beside it where Dovecot is the reference.

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/config"
)

// mailboxesLike lists the upstream's mailboxes whose name starts with prefix.
func mailboxesLike(t *testing.T, direct *imapclient.Client, prefix string) []string {
	t.Helper()
	boxes, err := direct.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		if strings.HasPrefix(b.Mailbox, prefix) {
			out = append(out, b.Mailbox)
		}
	}
	return out
}

func inboxCount(t *testing.T, direct *imapclient.Client) uint32 {
	t.Helper()
	st, err := direct.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return *st.NumMessages
}

// TestFramingMultiappendSecondLiteralRunsAsCommands: a MULTIAPPEND (RFC
// 3502) whose second message holds a command. The reader frames the second
// literal (<= 4096 bytes) as part of the command; imapserver's handleAppend
// fails ExpectCRLF after the first message, returns nil (no tagged answer),
// DiscardLine eats the rest of that line only, and the second message's
// lines are then read by imapserver as commands: the literal runs.
// Dovecot: "s OK [APPENDUID ...]" (both stored), "zz OK".
// idlemux: "b OK CREATE completed" (the literal ran), s never answered.
func TestFramingMultiappendSecondLiteralRunsAsCommands(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := directClient(t, dv.Addr)
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			box := fmt.Sprintf("smuggledMulti%v", sync)
			second := "b CREATE " + box + "\r\n"
			first := "{5+}"
			if sync {
				first = "{5}"
			}
			payload := "s APPEND INBOX " + first + "\r\nhello " + literalOf(second, !sync) + "\r\nzz NOOP\r\n"
			got := shape(converse(t, p.Addrs()[0], true, payload))
			if boxes := mailboxesLike(t, direct, box); len(boxes) > 0 {
				t.Errorf("through idlemux: the second message literal %q ran as a command: mailbox %q exists (wire %q)", second, boxes, got)
			}
			if !slices.Contains(got, "s BAD") && !slices.Contains(got, "s OK") && !slices.Contains(got, "s NO") {
				t.Errorf("through idlemux: got %q, want a tagged answer for s", got)
			}
			dgot := shape(converse(t, dv.Addr, true, payload))
			if want := []string{"s OK", "zz OK"}; sync && !slices.Equal(dgot[2:], want) || !sync && !slices.Equal(dgot, want) {
				t.Errorf("directly against Dovecot: got %q, want %q", dgot, want)
			}
		})
	}
}

// TestFramingAppendTrailingBytesStoredWithoutAnswer: bytes after an APPEND
// message literal. Dovecot answers BAD and stores nothing; through idlemux
// the message is stored upstream and the command never gets a tagged
// answer (imapserver's handleAppend returns a nil error when ExpectCRLF
// fails), so a client waits for it forever.
func TestFramingAppendTrailingBytesStoredWithoutAnswer(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := directClient(t, dv.Addr)
	payload := "s APPEND INBOX {5+}\r\nhello junk\r\nzz NOOP\r\n"

	before := inboxCount(t, direct)
	dgot := shape(converse(t, dv.Addr, true, payload))
	if want := []string{"s BAD", "zz OK"}; !slices.Equal(dgot, want) {
		t.Errorf("directly against Dovecot: got %q, want %q", dgot, want)
	}
	if n := inboxCount(t, direct); n != before {
		t.Errorf("directly against Dovecot: INBOX went from %d to %d, want unchanged", before, n)
	}
	got := shape(converse(t, p.Addrs()[0], true, payload))
	if want := []string{"s BAD", "zz OK"}; !slices.Equal(got, want) {
		t.Errorf("through idlemux: got %q, want %q", got, want)
	}
	if n := inboxCount(t, direct); n != before {
		t.Errorf("through idlemux: INBOX went from %d to %d, want unchanged (Dovecot stores nothing)", before, n)
	}
}

// TestFramingBareCRRunsUnframedCommand: a bare CR inside a line. The reader
// frames up to the LF; imapserver's DiscardLine stops at the CR, so after
// answering the first command it parses the rest of the line as a new
// command the reader never framed or checked. Dovecot: "a OK", "zz OK".
func TestFramingBareCRRunsUnframedCommand(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := directClient(t, dv.Addr)
	payload := "a NOOP x\rb CREATE smuggledCR\r\nzz NOOP\r\n"
	dgot := shape(converse(t, dv.Addr, true, payload))
	want := []string{"a OK", "zz OK"}
	if !slices.Equal(dgot, want) {
		t.Errorf("directly against Dovecot: got %q, want %q", dgot, want)
	}
	got := shape(converse(t, p.Addrs()[0], true, payload))
	if slices.Contains(got, "b OK") {
		t.Errorf("through idlemux: got %q: the text after the bare CR ran as command b", got)
	}
	if boxes := mailboxesLike(t, direct, "smuggledCR"); len(boxes) > 0 {
		t.Errorf("through idlemux: mailbox %q exists", boxes)
	}
}

// TestFramingLiteralMarkerThenSpaceRunsLiteral: "{n+} " (a space before
// CRLF) is no literal to the reader (the line does not end in '}') but is
// one to imapserver (CRLF accepts a leading SP, go-imap issue 540). The
// reader then frames the client's next command, imapserver reads its
// first line as the literal (an invalid mailbox name: NO, and DiscardLine
// does nothing since the literal's CRLF was the last it saw), and the
// client's next literal (L below) is handed over line by line as
// commands: "d CREATE smuggledSP" runs. Dovecot: "a BAD" (Missing LF after
// literal size), "c NO", then L's lines as commands (its own framing).
func TestFramingLiteralMarkerThenSpaceRunsLiteral(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := directClient(t, dv.Addr)
	payload := func(who string) string {
		L := "d CREATE smuggledSP" + who + "\r\nzz NOOP\r\n"
		c2 := fmt.Sprintf("c SELECT {%d+}\r\n", len(L))
		return fmt.Sprintf("a CREATE {%d+} \r\n", len(c2)) + c2 + L + "\r\nzz NOOP\r\n"
	}
	dgot := shape(converse(t, dv.Addr, true, payload("d")))
	got := shape(converse(t, p.Addrs()[0], true, payload("p")))
	t.Logf("Dovecot: %q; idlemux: %q", dgot, got)
	if slices.Contains(got, "d OK") {
		t.Errorf("through idlemux: got %q: the literal of c ran as command d", got)
	}
	if boxes := mailboxesLike(t, direct, "smuggledSPp"); len(boxes) > 0 {
		t.Errorf("through idlemux: the literal of c ran as a command: mailbox %q exists (wire %q)", boxes, got)
	}
}

// TestFramingStartTLSListenerBypass: on a STARTTLS listener with
// insecure_auth false, the reader is the only gate (imapserver runs with
// InsecureAuth true). Commands the reader does not frame reach imapserver
// ungated, and a CAPABILITY with a trailing space goes to imapserver,
// which lists neither STARTTLS nor LOGINDISABLED.
func TestFramingStartTLSListenerBypass(t *testing.T) {
	p := startProxy(t, tlsListenerConfig(t, config.TLSStartTLS))
	addr := p.Addrs()[0]
	t.Run("LOGIN after a bare CR", func(t *testing.T) {
		got := converse(t, addr, false, "a NOOP x\rb LOGIN "+testUser+" "+testPass+"\r\nzz NOOP\r\n")
		for _, l := range got {
			if strings.HasPrefix(l, "b OK") {
				t.Errorf("got %q: LOGIN succeeded without TLS on a listener that requires it", got)
			}
		}
	})
	t.Run("CAPABILITY with a trailing space", func(t *testing.T) {
		got := converse(t, addr, false, "a CAPABILITY \r\nzz NOOP\r\n")
		if len(got) == 0 || !strings.Contains(got[0], "STARTTLS") || !strings.Contains(got[0], "LOGINDISABLED") {
			t.Errorf("got %q, want STARTTLS and LOGINDISABLED listed (as for \"a CAPABILITY\")", got)
		}
	})
	t.Run("plaintext pipelined after STARTTLS never runs", func(t *testing.T) {
		got := converse(t, addr, false, "a STARTTLS\r\nb LOGIN "+testUser+" "+testPass+"\r\nzz NOOP\r\n")
		if want := []string{"a OK Begin TLS negotiation now", "<closed>"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestFramingIdleHandoffMidLineTaken: the idle fast path writes straight to
// the socket, and when a write would block hands "the rest of the bytes"
// to sess.writeRaw, which goes through clientConn.Write. That rest starts
// mid-line, but observe takes it for the start of a line: a rest starting
// with the IDLE tag and a space marks IDLE answered. DONE is then framed
// as a command, and the client's next command's first line is read by
// imapserver as IDLE's end; the rest of that command (its literal) is
// handed over as commands.
func TestFramingIdleHandoffMidLineTaken(t *testing.T) {
	lit := "x\r\nb DELETE INBOX\r\n"
	cc, pc := testReader("2 IDLE\r\nDONE\r\nc CREATE "+literalOf(lit, true)+"\r\n", true)
	p := make([]byte, 4096)
	n, _ := cc.Read(p)
	if got := string(p[:n]); got != "2 IDLE\r\n" {
		t.Fatalf("command: got %q", got)
	}
	cc.Write([]byte("+ idling\r\n"))
	// The fast path wrote "* 1" itself (straight to the socket); the
	// rest goes through writeRaw.
	pc.out.WriteString("* 1")
	writeAround(cc, []byte("2 EXISTS\r\n"), time.Second) // as sess.writeRaw does
	n, _ = cc.Read(p)
	if got, want := string(p[:n]), "DONE\r\n"; got != want {
		t.Errorf("IDLE's end: imapserver read %q, want %q (client got %q)", got, want, pc.out.String())
	}
}

// TestFramingSpoolTempFiles: an APPEND message over 64 KiB is spooled to
// a temp file; none is left when the client goes away mid-literal, or
// after the message was handed on.
func TestFramingSpoolTempFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	_, p, _ := setup(t, 1)
	addr := p.Addrs()[0]
	big := strings.Repeat("x", 200<<10)
	for _, tt := range []struct{ name, payload string }{
		{"client gone mid-literal", fmt.Sprintf("s APPEND INBOX {%d+}\r\n", 300<<10) + big},
		{"whole message, then gone", fmt.Sprintf("s APPEND INBOX {%d+}\r\n", len(big)) + big + "\r\n"},
		{"mailbox missing", fmt.Sprintf("s APPEND nosuchbox {%d+}\r\n", len(big)) + big + "\r\nzz NOOP\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.cmd("l", "LOGIN "+testUser+" "+testPass)
			rc.c.Write([]byte(tt.payload))
			time.Sleep(200 * time.Millisecond)
			rc.c.Close()
			deadline := time.Now().Add(3 * time.Second)
			for {
				left, _ := os.ReadDir(dir)
				var names []string
				for _, e := range left {
					if strings.HasPrefix(e.Name(), "idlemux-append-") {
						names = append(names, e.Name())
					}
				}
				if len(names) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("temp files left: %q", names)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestFramingErrorAfterLiteralRunsRestOfLine: imapserver refuses an
// argument right after reading it as a literal (here not valid mUTF-7);
// DiscardLine does nothing (the decoder's crlf flag is still set from the
// literal's "{n}\r\n"), and what follows the literal on the same line,
// already in imapserver's buffer since the reader hands the literal's last
// line and the command's rest in one Read, is parsed as the next command.
// Dovecot: "a NO Mailbox name is not valid mUTF-7", "zz OK". A literal
// with a CRLF inside fails the same way: idlemux closed the connection
// ("expected atom") where Dovecot answers NO and goes on.
func TestFramingErrorAfterLiteralRunsRestOfLine(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := directClient(t, dv.Addr)
	tests := []struct{ name, payload string }{
		{"rest of the line runs", "a SELECT {5+}\r\n&Jjo!b CREATE smuggledU7\r\nzz NOOP\r\n"},
		{"CRLF in a literal name", "a CREATE {5+}\r\nx\r\nyz\r\nzz NOOP\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dgot := shape(converse(t, dv.Addr, true, tt.payload))
			got := shape(converse(t, p.Addrs()[0], true, tt.payload))
			if want := []string{"a NO", "zz OK"}; !slices.Equal(dgot, want) {
				t.Fatalf("directly against Dovecot: got %q, want %q (the reference changed)", dgot, want)
			}
			if !slices.Equal(got, dgot) {
				t.Errorf("through idlemux: got %q, want Dovecot's %q", got, dgot)
			}
		})
	}
	if boxes := mailboxesLike(t, direct, "smuggledU7"); len(boxes) > 0 {
		t.Errorf("mailbox %q exists: text after a refused literal ran as a command", boxes)
	}
}

// TestFramingSlowLongLinesMemory: a client in the middle of sending a
// 48 KiB command line (after login, so no 30 s pre-login deadline
// applies) holds at most that line more than an idle one: bounded per
// connection. Run alone and without -race for figures:
// go test -count=1 -run TestFramingSlowLongLinesMemory -v ./proxy/
func TestFramingSlowLongLinesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	_, p, _ := setup(t, 1)
	addr := p.Addrs()[0]
	const n = 500
	idle := slowLines(t, addr, n, "")
	midLine := slowLines(t, addr, n, "a NOOP "+strings.Repeat("x", maxCommandBytes-100))
	if extra, limit := midLine-idle, uint64(maxCommandBytes+16<<10)>>10; extra > limit {
		t.Errorf("a client mid-way through a %d-byte line holds %d KiB more than an idle one, want at most %d KiB", maxCommandBytes, extra, limit)
	}
}

// slowLines returns the heap per client, in KiB, of n logged-in clients
// that each sent line without its end.
func slowLines(t *testing.T, addr string, n int, line string) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	conns := make([]*rawConn, 0, n)
	for i := 0; i < n; i++ {
		rc := dialRaw(t, addr)
		rc.cmd("l", "LOGIN "+testUser+" "+testPass)
		rc.c.Write([]byte(line))
		conns = append(conns, rc)
	}
	time.Sleep(time.Second)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d clients mid-line (%d bytes each): heap in use grew by %d KiB, %d KiB per client",
		n, len(line), (ms.HeapInuse-before)>>10, (ms.HeapInuse-before)>>10/uint64(n))
	for _, rc := range conns {
		rc.c.Close()
	}
	if ms.HeapInuse < before {
		return 0
	}
	return (ms.HeapInuse - before) >> 10 / uint64(n)
}
