package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap/zaptest"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/testcert"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with common name
// cn to dir/cert.pem and dir/key.pem.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testcert.Write(t, certFile, keyFile, cn, "127.0.0.1")
	return certFile, keyFile
}

// tlsListenerConfig is a proxy config with one TLS listener of the given
// mode (self-signed certificate) in front of a fresh in-memory upstream.
func tlsListenerConfig(t *testing.T, mode config.TLSMode) *config.Config {
	t.Helper()
	up := startMemUpstream(t)
	cert, key := writeCert(t, t.TempDir(), "idlemux-test")
	cfg := testConfig(up.addr)
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", TLS: mode}}
	return cfg
}

// TestDownstreamTLS: implicit TLS and STARTTLS listeners serve the
// configured certificate; a STARTTLS listener without insecure_auth
// advertises LOGINDISABLED and refuses LOGIN until STARTTLS; Reload swaps
// the certificate for new handshakes while existing sessions go on.
func TestDownstreamTLS(t *testing.T) {
	up := startMemUpstream(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "first")
	cfg := testConfig(up.addr)
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
	cfg.Listeners = []config.Listener{
		{Address: "127.0.0.1:0", TLS: config.TLSImplicit},
		{Address: "127.0.0.1:0", TLS: config.TLSStartTLS, InsecureAuth: false},
	}
	p := startProxy(t, cfg)
	implicit, starttls := p.Addrs()[0], p.Addrs()[1]
	insecure := &tls.Config{InsecureSkipVerify: true}

	peerCN := func() string {
		c, err := tls.Dial("tcp", implicit, insecure)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := peerCN(); got != "first" {
		t.Fatalf("implicit TLS certificate: got %q, want first", got)
	}
	old, err := imapclient.DialTLS(implicit, &imapclient.Options{TLSConfig: insecure})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("LOGIN over implicit TLS: %v", err)
	}

	// STARTTLS listener: LOGINDISABLED before, LOGIN refused, fine after.
	rc := dialRaw(t, starttls)
	caps := rc.cmd("a", "CAPABILITY")
	if !strings.Contains(caps[0], "LOGINDISABLED") || !strings.Contains(caps[0], "STARTTLS") {
		t.Fatalf("CAPABILITY before STARTTLS: got %q, want LOGINDISABLED and STARTTLS", caps[0])
	}
	if l := rc.cmd("b", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "b NO") {
		t.Fatalf("LOGIN before STARTTLS: got %q, want NO", l)
	}
	sc, err := imapclient.DialStartTLS(starttls, &imapclient.Options{TLSConfig: insecure})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer sc.Close()
	if err := sc.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}

	// Reload: new handshakes get the new certificate, old sessions live on.
	writeCert(t, dir, "second")
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := peerCN(); got != "second" {
		t.Fatalf("certificate after reload: got %q, want second", got)
	}
	if _, err := old.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("session from before the reload: %v", err)
	}
	os.WriteFile(cert, []byte("garbage"), 0o600)
	if err := p.Reload(); err == nil {
		t.Fatal("Reload accepted a broken certificate")
	}
	if got := peerCN(); got != "second" {
		t.Fatalf("certificate after a failed reload: got %q, want second (kept)", got)
	}
}

// TestDovecotUpstreamTLS: an upstream certificate that does not verify is
// NO [UNAVAILABLE] to the client (never a hang, never accepted); with the
// CA in upstream.ca_file, the same login works over implicit TLS.
func TestDovecotUpstreamTLS(t *testing.T) {
	dv := startDovecot(t)
	cfg := testConfig(dv.TLSAddr)
	cfg.Upstream.TLS = config.TLSImplicit
	cfg.Upstream.ServerName = "127.0.0.1"
	p := startProxy(t, cfg)
	c, err := imapclient.DialInsecure(p.Addrs()[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(testUser, testPass).Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeUnavailable {
		t.Fatalf("LOGIN through an unverifiable upstream: got %v, want NO [UNAVAILABLE]", err)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, dv.CertPEM, 0o600)
	cfg2 := testConfig(dv.TLSAddr)
	cfg2.Upstream.TLS = config.TLSImplicit
	cfg2.Upstream.CAFile = ca
	cfg2.Upstream.ServerName = "127.0.0.1"
	p2 := startProxy(t, cfg2)
	vc := dialView(t, p2.Addrs()[0], "tls-upstream")
	vc.login()
	vc.selectBox("INBOX")
}

// TestApplyConfig: a reload changes limits for new connections at once,
// and a change that needs a restart is refused whole.
func TestApplyConfig(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	p := startProxy(t, cfg)
	_ = dialRaw(t, p.Addrs()[0])
	next := *cfg
	next.Limits.MaxConnectionsPerIP = 1
	if err := p.ApplyConfig(&next); err != nil {
		t.Fatal(err)
	}
	if got := greeting(t, p.Addrs()[0], nil); !strings.HasPrefix(got, "* BYE Too many connections") {
		t.Fatalf("after lowering max_connections_per_ip: got %q, want BYE", got)
	}
	bad := next
	bad.Limits.MaxConnectionsPerIP = 0
	bad.Fanout.MaxLag++
	if err := p.ApplyConfig(&bad); err == nil || !strings.Contains(err.Error(), "fanout") {
		t.Fatalf("changing fanout.max_lag: got %v, want a refusal naming fanout", err)
	}
	if got := greeting(t, p.Addrs()[0], nil); !strings.HasPrefix(got, "* BYE Too many connections") {
		t.Fatalf("a refused reload changed the limits: got %q", got)
	}
	bad = next
	bad.Cache.MaxBytes = 1 << 20
	if err := p.ApplyConfig(&bad); err == nil || !strings.Contains(err.Error(), "cache") {
		t.Fatalf("changing cache.max_bytes: got %v, want a refusal naming cache", err)
	}
}

// TestTLSHandshakeBounded: on an implicit-TLS listener a peer that never
// completes the handshake gets no session and is dropped after
// login_timeout; one still in its handshake does not hold up shutdown.
func TestTLSHandshakeBounded(t *testing.T) {
	cfg := tlsListenerConfig(t, config.TLSImplicit)
	cfg.Limits.LoginTimeout = 300 * time.Millisecond
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0]

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("silent peer: read %d bytes, %v; want the connection closed after login_timeout", n, err)
	}
	if got := s.Stats().Sessions; got != 0 {
		t.Errorf("sessions after a handshake that never happened: got %d, want 0", got)
	}

	// A working client still gets in.
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("LOGIN over implicit TLS: %v", err)
	}
	c.Close()

	// Shutdown with a peer stuck in its handshake, which login_timeout
	// alone would keep for a minute.
	longer := *cfg
	longer.Limits.LoginTimeout = time.Hour
	if err := s.ApplyConfig(&longer); err != nil {
		t.Fatal(err)
	}
	stuck, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	time.Sleep(50 * time.Millisecond) // let the handshake start
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a handshake in progress: %v, want a clean shutdown", err)
	}
}

// closedWithin reports whether the peer closes c within d.
func closedWithin(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return nil
		case err != nil:
			return err
		}
	}
}

// TestImplicitTLSLimits: on an implicit-TLS listener, connections still
// in their handshake count against max_connections_per_ip (a third is
// closed at once), the count carries over to the session without being
// taken twice, and login_timeout runs from the accept, the handshake
// included.
func TestImplicitTLSLimits(t *testing.T) {
	cfg := tlsListenerConfig(t, config.TLSImplicit)
	cfg.Limits.MaxConnectionsPerIP = 2
	cfg.Limits.LoginTimeout = 2 * time.Second
	p := startProxy(t, cfg)
	addr := p.Addrs()[0]
	insecure := &tls.Config{InsecureSkipVerify: true}

	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	time.Sleep(100 * time.Millisecond) // both are in their handshake
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if err := closedWithin(third, time.Second); err != nil {
		t.Fatalf("third connection from one address while two handshake: %v, want it closed at once", err)
	}
	for _, c := range silent {
		c.Close()
	}

	// Two sessions fit: the handshake's count is the session's, not one more.
	var clients []*imapclient.Client
	deadline := time.Now().Add(waitLong)
	for len(clients) < 2 {
		c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: insecure})
		if err == nil {
			err = c.Login(testUser, testPass).Wait()
			if err == nil {
				clients = append(clients, c)
				continue
			}
			c.Close()
		}
		if time.Now().After(deadline) { // the silent ones are released asynchronously
			t.Fatalf("client %d of 2 within the limit: %v", len(clients)+1, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range clients {
		defer c.Close()
	}
	if c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: insecure}); err == nil {
		err = c.Noop().Wait()
		c.Close()
		if err == nil {
			t.Fatal("a third session from one address was served, want it refused")
		}
	}
	clients[0].Close()

	// login_timeout counts the handshake: a client that takes 1.5 s of a
	// 2 s budget to start TLS is closed about 0.5 s after it.
	var raw net.Conn
	for time.Now().Before(deadline) { // the closed session frees its slot asynchronously
		if raw, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		tc := tls.Client(raw, insecure)
		tc.SetDeadline(time.Now().Add(waitLong))
		if err = tc.Handshake(); err == nil {
			start := time.Now()
			if err := closedWithin(tc, 5*time.Second); err != nil {
				t.Fatalf("session after a slow handshake: %v, want it closed by login_timeout", err)
			}
			if took := time.Since(start); took > 1200*time.Millisecond {
				t.Errorf("session after a 1.5 s handshake closed %v after it, want about 0.5 s (login_timeout 2 s from the accept)", took)
			}
			raw.Close()
			return
		}
		raw.Close()
	}
	t.Fatalf("slow handshake never got through: %v", err)
}

// TestStartTLSSilentClient: a client that sends STARTTLS and then nothing
// is still closed by login_timeout (its BYE cannot go out behind the
// handshake that never happens).
func TestStartTLSSilentClient(t *testing.T) {
	cfg := tlsListenerConfig(t, config.TLSStartTLS)
	cfg.Limits.LoginTimeout = 300 * time.Millisecond
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	if l := rc.cmd("a", "STARTTLS"); !strings.HasPrefix(l[len(l)-1], "a OK") {
		t.Fatalf("STARTTLS: got %q, want a OK", l)
	}
	if err := closedWithin(rc.c, 2*time.Second+5*time.Second); err != nil {
		t.Fatalf("client silent after STARTTLS: %v, want the connection closed", err)
	}
}
