// Package hostileup is a fake IMAP server for tests that speaks just
// enough IMAP (RFC 3501) for idlemux to log in and open a mailbox, and
// misbehaves where a test's script says: a line of 100 MB, a literal of
// 2^40 bytes, response types nobody knows, a connection that breaks
// after the mailbox is opened. It stands for a broken or hostile upstream,
// which Dovecot cannot be made into.
package hostileup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// Script handles one command before the defaults do; it returns true
// when it answered the command (or broke the connection) itself. verb is
// upper-case; args is the rest of the line, literals not expanded.
type Script func(c *Conn, tag, verb, args string) bool

// Server is a running fake upstream.
type Server struct {
	Addr     string
	greeting string
	ln       net.Listener
	script   Script
	logins   atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// defaultGreeting is what Start's fake greets with.
const defaultGreeting = "* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] hostile fake ready\r\n"

// Start listens on 127.0.0.1:0 and serves until the test ends.
func Start(t testing.TB, script Script) *Server {
	t.Helper()
	return StartGreeting(t, defaultGreeting, script)
}

// StartGreeting is Start with greeting (a whole line, CRLF included) in
// place of the default one: a fake with other capabilities before login.
func StartGreeting(t testing.TB, greeting string, script Script) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), greeting: greeting, ln: ln, script: script, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

// Logins counts the LOGIN commands received.
func (s *Server) Logins() int64 { return s.logins.Load() }

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(&Conn{Conn: nc, r: bufio.NewReader(nc)})
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

func (s *Server) close() {
	s.ln.Close()
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Conn is one client connection.
type Conn struct {
	net.Conn
	r *bufio.Reader
}

// Send writes s as it is, within a bounded time.
func (c *Conn) Send(s string) error {
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(c.Conn, s)
	return err
}

// SendLong writes prefix, then n bytes of filler, then suffix, from one
// small buffer: the fake holds nothing however long the line.
func (c *Conn) SendLong(prefix string, n int64, suffix string) error {
	if err := c.Send(prefix); err != nil {
		return err
	}
	chunk := []byte(strings.Repeat("a", 64<<10))
	for n > 0 {
		k := min(n, int64(len(chunk)))
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Conn.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return c.Send(suffix)
}

func (s *Server) handle(c *Conn) {
	if c.Send(s.greeting) != nil {
		return
	}
	for {
		tag, verb, args, err := c.readCommand()
		if err != nil {
			return
		}
		if verb == "LOGIN" || verb == "AUTHENTICATE" {
			s.logins.Add(1)
		}
		if s.script != nil && s.script(c, tag, verb, args) {
			continue
		}
		if c.Send(defaultAnswer(c, tag, verb)) != nil || verb == "LOGOUT" {
			return
		}
	}
}

// defaultAnswer is a minimal well-behaved server: an empty INBOX.
func defaultAnswer(c *Conn, tag, verb string) string {
	switch verb {
	case "CAPABILITY":
		return "* CAPABILITY IMAP4rev1 IDLE LITERAL+\r\n" + tag + " OK done\r\n"
	case "LOGIN", "AUTHENTICATE":
		return tag + " OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] logged in\r\n"
	case "SELECT", "EXAMINE":
		return "* FLAGS (\\Seen)\r\n* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n" +
			tag + " OK [READ-ONLY] opened\r\n"
	case "LIST":
		return "* LIST () \"/\" INBOX\r\n" + tag + " OK done\r\n"
	case "IDLE":
		if c.Send("+ idling\r\n") != nil {
			return ""
		}
		c.SetReadDeadline(time.Now().Add(time.Minute))
		c.r.ReadString('\n') // DONE
		return tag + " OK idle done\r\n"
	case "LOGOUT":
		return "* BYE bye\r\n" + tag + " OK bye\r\n"
	}
	return tag + " OK done\r\n"
}

// readCommand reads one command line, taking in its literals (RFC 3501
// 4.3; a synchronizing one gets its "+" first, RFC 7888 LITERAL+ not).
func (c *Conn) readCommand() (tag, verb, args string, err error) {
	var line strings.Builder
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", "", "", err
		}
		l = strings.TrimRight(l, "\r\n")
		line.WriteString(l)
		lit, _, ok := imapframe.LiteralMarker([]byte(l))
		if !ok {
			break
		}
		if !lit.Valid || lit.Size > 1<<20 {
			return "", "", "", errors.New("literal too large for the fake")
		}
		if !lit.NonSync {
			if err := c.Send("+ go\r\n"); err != nil {
				return "", "", "", err
			}
		}
		buf := make([]byte, lit.Size)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return "", "", "", err
		}
		line.Write(buf)
	}
	f := strings.SplitN(line.String(), " ", 3)
	if len(f) < 2 {
		return "", "", "", fmt.Errorf("bad command %q", line.String())
	}
	if len(f) == 3 {
		args = f[2]
	}
	return f[0], strings.ToUpper(f[1]), args, nil
}

// LiteralLine is "* LIST () "/" {size}\r\n": a LIST response announcing a
// literal mailbox name of size bytes, which never comes.
func LiteralLine(size uint64) string {
	return "* LIST () \"/\" {" + strconv.FormatUint(size, 10) + "}\r\n"
}
