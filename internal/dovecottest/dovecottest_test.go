package dovecottest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const testMsg = "From: a@example.com\r\nTo: user1@example.com\r\nSubject: hello\r\n\r\nbody\r\n"

// waitConnections polls Connections until it reports want, for up to 2s:
// session processes appear and exit a few ms after the client's view changes.
func waitConnections(t *testing.T, s *Server, user string, want int) {
	t.Helper()
	var n int
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n, err = s.Connections(user); err == nil && n == want {
			return
		}
	}
	t.Fatalf("Connections(%q) = %d, %v; want %d", user, n, err, want)
}

// selectInbox selects INBOX and returns its message count.
func selectInbox(t *testing.T, c *imapclient.Client) uint32 {
	t.Helper()
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	return data.NumMessages
}

func TestAppendSelectKillRestart(t *testing.T) {
	begin := time.Now()
	s := Start(t, Options{})
	t.Logf("Start took %v (Addr %s, TLSAddr %s)", time.Since(begin), s.Addr, s.TLSAddr)

	uid, err := s.Append("user1", "INBOX", []byte(testMsg), imap.FlagSeen)
	if err != nil {
		t.Fatal(err)
	}
	if uid != 1 {
		t.Errorf("first APPENDUID = %d, want 1", uid)
	}
	c := s.Dial(t, "user1", "pass1")
	if n := selectInbox(t, c); n != 1 {
		t.Fatalf("INBOX has %d messages, want 1", n)
	}

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Closed():
	case <-time.After(2 * time.Second):
		t.Fatal("direct client still open 2s after Kill")
	}
	if c, err := imapclient.DialInsecure(s.Addr, nil); err == nil {
		c.Close()
		t.Fatal("dial after Kill succeeded")
	}

	begin = time.Now()
	s.Restart(t)
	t.Logf("Restart took %v", time.Since(begin))
	c = s.Dial(t, "user1", "pass1")
	if n := selectInbox(t, c); n != 1 {
		t.Fatalf("after restart INBOX has %d messages, want 1", n)
	}
	if uid, err := s.Append("user1", "INBOX", []byte(testMsg)); err != nil || uid != 2 {
		t.Fatalf("Append after restart = %d, %v; want 2", uid, err)
	}
}

func TestConnections(t *testing.T) {
	s := Start(t, Options{Users: map[string]string{"alice": "a", "bob": "b"}})
	waitConnections(t, s, "alice", 0)
	a1 := s.Dial(t, "alice", "a")
	waitConnections(t, s, "alice", 1)
	s.Dial(t, "alice", "a")
	waitConnections(t, s, "alice", 2)
	waitConnections(t, s, "bob", 0)
	a1.Logout().Wait()
	a1.Close()
	waitConnections(t, s, "alice", 1)

	out, err := s.Doveadm("who")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "alice") {
		t.Errorf("doveadm who does not list alice:\n%s", out)
	}
}

func TestWrongPassword(t *testing.T) {
	s := Start(t, Options{})
	if _, err := s.dial("user1", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if _, err := s.dial("nobody-here", "pass1"); err == nil {
		t.Fatal("login as an unknown user succeeded")
	}
}

func TestTLSAndSpecialUse(t *testing.T) {
	s := Start(t, Options{})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(s.CertPEM) {
		t.Fatal("CertPEM holds no certificate")
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		c, err := imapclient.DialTLS(s.TLSAddr, &imapclient.Options{
			TLSConfig: &tls.Config{RootCAs: roots, ServerName: name},
		})
		if err != nil {
			t.Fatalf("DialTLS (ServerName %s): %v", name, err)
		}
		defer c.Close()
		if err := c.Login("user1", "pass1").Wait(); err != nil {
			t.Fatalf("login over TLS: %v", err)
		}
		list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		found := map[imap.MailboxAttr]bool{}
		for _, m := range list {
			for _, a := range m.Attrs {
				found[a] = true
			}
		}
		for _, a := range []imap.MailboxAttr{imap.MailboxAttrSent, imap.MailboxAttrTrash, imap.MailboxAttrDrafts, imap.MailboxAttrJunk} {
			if !found[a] {
				t.Errorf("no mailbox has %s: %+v", a, list)
			}
		}
	}
}

// TestManyConnections checks that one user can hold 100 connections from one
// IP (Dovecot's default is 10) and that the 101st is refused.
func TestManyConnections(t *testing.T) {
	s := Start(t, Options{})
	const n = 100
	for i := 0; i < n; i++ {
		s.Dial(t, "user1", "pass1")
	}
	waitConnections(t, s, "user1", n)
	c, err := s.dial("user1", "pass1")
	if err == nil {
		c.Close()
		t.Fatal("connection 101 was accepted")
	}
	if !strings.Contains(err.Error(), "mail_max_userip_connections") {
		t.Errorf("connection 101: %v; want the per user+IP limit", err)
	}
}

// TestParallelInstances starts several instances at once, as parallel tests do.
func TestParallelInstances(t *testing.T) {
	for i := 0; i < 8; i++ {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{})
			s.Dial(t, "user1", "pass1")
			waitConnections(t, s, "user1", 1)
		})
	}
}

// TestRestartWaitsForPort checks that Restart retries while something else
// still holds the port, as a dying process or TIME_WAIT-less listener might.
func TestRestartWaitsForPort(t *testing.T) {
	s := Start(t, Options{})
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Connections("user1"); n != 0 || err != nil {
		t.Errorf("Connections after Kill = %d, %v; want 0", n, err)
	}
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { l.Close() })
	begin := time.Now()
	s.Restart(t)
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Errorf("Restart returned after %v, before the port was free", d)
	}
	s.Dial(t, "user1", "pass1")
}

// TestMaxSessionsConf: the limits a storm of MaxSessions sessions of one
// user from one IP needs are in the config written; below 100 the
// defaults stay.
func TestMaxSessionsConf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		max   int
		wants []string
	}{
		{"default", 0, []string{"mail_max_userip_connections = 100\n", "default_process_limit = 1024\n", "  process_limit = 1024\n", "  client_limit = 4096\n"}},
		{"below the default", 10, []string{"mail_max_userip_connections = 100\n"}},
		{"1,100", 1100, []string{"mail_max_userip_connections = 1100\n", "default_process_limit = 1375\n", "  process_limit = 1375\n", "default_client_limit = 4400\n", "  client_limit = 4400\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := &Server{Dir: dir, Conf: filepath.Join(dir, "dovecot.conf")}
			if err := s.writeConf(Options{MaxSessions: tc.max}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(s.Conf)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.wants {
				if !strings.Contains(string(b), want) {
					t.Errorf("dovecot.conf: got no %q", want)
				}
			}
		})
	}
}
