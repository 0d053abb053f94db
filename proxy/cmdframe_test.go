package proxy

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/imapframe"
)

// pipeConn is a client that sent in and reads what the server wrote.
type pipeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *pipeConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
func testReader(input string, authenticated bool) (*clientConn, *pipeConn) {
	pc := &pipeConn{in: bytes.NewReader([]byte(input))}
	l := &listener{cfg: config.Listener{TLS: config.TLSNone, InsecureAuth: true}, log: zap.NewNop()}
	cc := newClientConnFor(l, pc, false, func() uint32 { return 100000 })
	cc.authenticated.Store(authenticated)
	return cc, pc
}

// readAll is imapserver reading every command to the end, through a
// 4 KiB buffer as its bufio.Reader does.
func readAll(cc *clientConn) string {
	var got bytes.Buffer
	p := make([]byte, 4096)
	for {
		n, err := cc.Read(p)
		got.Write(p[:n])
		if err != nil {
			return got.String()
		}
	}
}

func TestCommandReader(t *testing.T) {
	tests := []struct {
		name, in string
		auth     bool
		// toServer is what imapserver reads; toClient what the reader
		// answered itself.
		toServer, toClient string
	}{
		{"plain", "a NOOP\r\n", true, "a NOOP\r\n", ""},
		{"bare LF", "a NOOP\n", true, "a NOOP\r\n", ""},
		{"sync literal", "a LOGIN {3}\r\nbob {2}\r\npw\r\n", false, "a LOGIN {3+}\r\nbob {2+}\r\npw\r\n", "+ OK\r\n+ OK\r\n"},
		{"non-sync literal", "a SELECT {5+}\r\nINBOX\r\n", true, "a SELECT {5+}\r\nINBOX\r\n", ""},
		{"literal holding CRLF and a command", "a CREATE {9+}\r\nx\r\nb NOOP\r\n", true, "a CREATE {9+}\r\nx\r\nb NOOP\r\n", ""},
		{"quoted braces are no literal", "a SELECT \"{5}\"\r\nb NOOP\r\n", true, "a SELECT \"{5}\"\r\nb NOOP\r\n", ""},
		{"escaped quote", "a SELECT \"x\\\" {5}\"\r\n", true, "a SELECT \"x\\\" {5}\"\r\n", ""},
		{"APPEND spooled", "a APPEND INBOX (\\Seen) {5}\r\nhello\r\n", true, "a APPEND INBOX (\\Seen) {5+}\r\nhello\r\n", "+ OK\r\n"},
		{"APPEND mailbox literal then message", "a APPEND {5}\r\nINBOX {3+}\r\nmsg\r\n", true, "a APPEND {5+}\r\nINBOX {3+}\r\nmsg\r\n", "+ OK\r\n"},
		{"literal8", "a APPEND INBOX ~{3+}\r\nmsg\r\n", true, "a APPEND INBOX ~{3+}\r\nmsg\r\n", ""},
		{"sync over 4096", "a CREATE {5000}\r\nb NOOP\r\n", true, "b NOOP\r\n", "a NO [TOOBIG] Literals are limited to 4096 bytes for this command\r\n"},
		{"non-sync over 4096 dropped", "a CREATE {4097+}\r\n" + strings.Repeat("b NOOP\r\n", 512) + "x\r\nc NOOP\r\n", true, "c NOOP\r\n", "a NO [TOOBIG] Literals are limited to 4096 bytes for this command\r\n"},
		{"APPEND before login is held to 4096", "a APPEND INBOX {5000}\r\nb NOOP\r\n", false, "b NOOP\r\n", "a NO [TOOBIG] Literals are limited to 4096 bytes for this command\r\n"},
		{"APPEND over its limit", "a APPEND INBOX {100001}\r\nb NOOP\r\n", true, "b NOOP\r\n", "a NO [TOOBIG] Literals are limited to 100000 bytes for this command\r\n"},
		{"literal past 64 KiB", "a CREATE {70000}\r\nb NOOP\r\n", true, "", "* BYE Literal size too large\r\n"},
		{"invalid literal size", "a CREATE {99999999999}\r\nb NOOP\r\n", true, "", "* BYE Literal size too large\r\n"},
		{"tag alone", "x4\r\nb NOOP\r\n", true, "b NOOP\r\n", "x4 BAD Error in IMAP command: Invalid command name\r\n"},
		{"empty line", "\r\nb NOOP\r\n", true, "b NOOP\r\n", "* BAD Error in IMAP tag: Invalid tag\r\n"},
		{"bad tag hides a literal", "a(b CREATE {8+}\r\nc NOOP\r\n\r\nd NOOP\r\n", true, "d NOOP\r\n", "* BAD Error in IMAP tag: Invalid tag\r\n"},
		{"unterminated quote", "a SELECT \"x {8+}\r\nb NOOP\r\n", true, "b NOOP\r\n", "a BAD Error in IMAP command: Missing '\"'\r\n"},
		{"line too long", "a NOOP " + strings.Repeat("x", maxCommandBytes) + "\r\nb NOOP\r\n", true, "b NOOP\r\n", "a BAD Error in IMAP command: Command line too long\r\n"},
		{"UID without a command", "a UID\r\nb NOOP\r\n", true, "b NOOP\r\n", "a BAD Error in IMAP command UID: Missing command\r\n"},
		{"SEARCH too deep", "a SEARCH " + strings.Repeat("NOT ", 300) + "ALL\r\nb NOOP\r\n", true, "b NOOP\r\n", "a BAD [LIMIT] Search criteria nested too deeply (limit 256 levels)\r\n"},
		{"CAPABILITY before login", "a CAPABILITY\r\n", false, "", "* CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\na OK CAPABILITY completed\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, pc := testReader(tt.in, tt.auth)
			got := readAll(cc)
			if got != tt.toServer {
				t.Errorf("imapserver read %q, want %q", cut(got, 200), cut(tt.toServer, 200))
			}
			if pc.out.String() != tt.toClient {
				t.Errorf("the client got %q, want %q", pc.out.String(), tt.toClient)
			}
		})
	}
}

// TestCommandReaderDropsTheRestOfAnAnsweredCommand: when imapserver
// answers a command before reading all of it (a syntax error before its
// literal), the rest is never handed over as the next command.
func TestCommandReaderDropsTheRestOfAnAnsweredCommand(t *testing.T) {
	cc, _ := testReader("a FOO {14+}\r\nb DELETE xyz\r\n\r\nc NOOP\r\n", true)
	p := make([]byte, 4096)
	n, _ := cc.Read(p)
	if got, want := string(p[:n]), "a FOO {14+}\r\n"; got != want {
		t.Fatalf("first read: got %q, want %q (one line at a time)", got, want)
	}
	cc.Write([]byte("a BAD Unknown command\r\n"))
	n, _ = cc.Read(p)
	if got, want := string(p[:n]), "c NOOP\r\n"; got != want {
		t.Fatalf("after the answer: got %q, want %q", got, want)
	}
}

// TestCommandReaderContinuation: after imapserver asks for a continuation
// line ("+"), the client's next line is handed over as it is, and one too
// long for imapserver becomes "*" (cancel).
func TestCommandReaderContinuation(t *testing.T) {
	long := strings.Repeat("A", 9000)
	cc, _ := testReader("a AUTHENTICATE PLAIN\r\n"+long+"{5}\r\nb NOOP\r\n", false)
	p := make([]byte, 4096)
	n, _ := cc.Read(p)
	if got := string(p[:n]); got != "a AUTHENTICATE PLAIN\r\n" {
		t.Fatalf("command: got %q", got)
	}
	cc.Write([]byte("+ \r\n"))
	n, _ = cc.Read(p)
	if got, want := string(p[:n]), "*\r\n"; got != want {
		t.Fatalf("continuation: got %q, want %q", got, want)
	}
	cc.Write([]byte("a BAD AUTHENTICATE cancelled\r\n"))
	n, _ = cc.Read(p)
	if got, want := string(p[:n]), "b NOOP\r\n"; got != want {
		t.Fatalf("next command: got %q, want %q", got, want)
	}
}

func TestReadLineTail(t *testing.T) {
	tests := []struct {
		name, in, end string
		room          int
		overflow      bool
	}{
		{"short", "a {5}\r\n", "a {5}", 100, false},
		// The window keeps lineTail bytes with the CR: lineTail-1 of content.
		{"exactly the tail", strings.Repeat("x", lineTail) + "\r\n", strings.Repeat("x", lineTail-1), 100, false},
		{"long, stored", strings.Repeat("x", 100) + "{5}\r\n", strings.Repeat("x", lineTail-4) + "{5}", 200, false},
		{"long, not stored", strings.Repeat("x", 100) + "{5}\r\n", strings.Repeat("x", lineTail-4) + "{5}", 10, true},
		{"long, bare LF", strings.Repeat("x", 100) + "{5}\n", strings.Repeat("x", lineTail-3) + "{5}", 10, true},
		{"bare LF", "ab\n", "ab", 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, _ := testReader(tt.in, true)
			_, li, err := cc.readLine(nil, tt.room)
			if err != nil {
				t.Fatal(err)
			}
			if string(li.end()) != tt.end || li.overflow != tt.overflow {
				t.Fatalf("got end %q overflow %v, want %q %v", li.end(), li.overflow, tt.end, tt.overflow)
			}
		})
	}
}

// FuzzCommandReader: whatever a client sends, what imapserver reads is a
// sequence of well-framed commands: every literal announced at a line's
// end is non-synchronizing (the reader sent the continuation request) and
// within the limits, and its bytes follow whole.
func FuzzCommandReader(f *testing.F) {
	for _, s := range []string{
		"a NOOP\r\n", "a LOGIN {3}\r\nbob {2+}\r\npw\r\n", "a CREATE {5000+}\r\n" + strings.Repeat("y", 5000) + "\r\n",
		"a APPEND INBOX {10}\r\n0123456789\r\n", "x4\r\n", "\r\n", "a SELECT \"{5}\r\n", "a UID\r\n",
		"a SEARCH OR OR A B C\r\n", "a(b CREATE {3+}\r\nabc\r\n", "a CREATE ~{2+}\r\nab\r\n",
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, auth bool) {
		cc, _ := testReader(string(in), auth)
		out := []byte(readAll(cc))
		for len(out) > 0 {
			i := bytes.IndexByte(out, '\n')
			if i < 0 {
				t.Fatalf("handed over a line without LF: %q", out)
			}
			line := bytes.TrimSuffix(out[:i], []byte("\r"))
			out = out[i+1:]
			lit, _, ok := imapframe.LiteralMarker(line)
			if !ok || inQuotes(line) {
				continue
			}
			if !lit.Valid || !lit.NonSync {
				t.Fatalf("handed over a line announcing %+v: %q", lit, line)
			}
			if lit.Size > 100000 {
				t.Fatalf("handed over a literal of %d bytes", lit.Size)
			}
			if uint64(len(out)) < lit.Size {
				t.Fatalf("literal of %d bytes cut at %d", lit.Size, len(out))
			}
			out = out[lit.Size:]
		}
	})
}

func inQuotes(line []byte) bool {
	var q quoteScan
	q.scan(line)
	return q.in
}
