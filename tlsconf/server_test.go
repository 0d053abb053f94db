package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve accepts TLS connections with cfg and echoes whatever they send.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with cfg and closes the connection when the test ends.
func dial(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func clientFor(ca *testCA, name string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &tls.Config{RootCAs: pool, ServerName: name}
}

func peerName(c *tls.Conn) string {
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// echo checks that c still carries data both ways.
func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo: got %q, want %q", buf, msg)
	}
}

func TestNewServerErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	certA, keyA := ca.leaf(t, "a.test")
	_, keyB := ca.leaf(t, "b.test")
	paths := writeFiles(t, dir, "a.crt", certA, "a.key", keyA, "b.key", keyB, "junk", []byte("junk"))
	tests := []struct {
		name      string
		cert, key string
		want      string
	}{
		{"missing cert", filepath.Join(dir, "none.crt"), paths[1], "no such file"},
		{"missing key", paths[0], filepath.Join(dir, "none.key"), "no such file"},
		{"mismatched key", paths[0], paths[2], "private key does not match public key"},
		{"junk cert", paths[3], paths[1], "failed to find any PEM data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.cert) {
				t.Errorf("got %v, %v; want an error naming %s and containing %q", s, err, tt.cert, tt.want)
			}
		})
	}
}

func TestServerServesCertificate(t *testing.T) {
	ca := newCA(t)
	cert, key := ca.leaf(t, "a.test")
	paths := writeFiles(t, t.TempDir(), "s.crt", cert, "s.key", key)
	s, err := NewServer(paths[0], paths[1])
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion: got %x, want %x", cfg.MinVersion, tls.VersionTLS12)
	}
	if s.Config() == cfg {
		t.Error("Config returned the same pointer twice, want a fresh copy each call")
	}
	c := dial(t, serve(t, cfg), clientFor(ca, "a.test"))
	if got := peerName(c); got != "a.test" {
		t.Errorf("served certificate: got %q, want %q", got, "a.test")
	}
	if got := s.Certificate().Leaf.Subject.CommonName; got != "a.test" {
		t.Errorf("Certificate(): got %q, want %q", got, "a.test")
	}
}

func TestServerRefusesOldTLS(t *testing.T) {
	ca := newCA(t)
	cert, key := ca.leaf(t, "a.test")
	paths := writeFiles(t, t.TempDir(), "s.crt", cert, "s.key", key)
	s, err := NewServer(paths[0], paths[1])
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())
	cfg := clientFor(ca, "a.test")
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tls.Dial("tcp", addr, cfg); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake: got success, want failure")
	}
}

func TestServerReload(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	certA, keyA := ca.leaf(t, "a.test")
	certB, keyB := ca.leaf(t, "b.test")
	paths := writeFiles(t, dir, "s.crt", certA, "s.key", keyA)
	s, err := NewServer(paths[0], paths[1])
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())

	old := dial(t, addr, clientFor(ca, "a.test"))
	echo(t, old, "before")

	writeFiles(t, dir, "s.crt", certB, "s.key", keyB)
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := peerName(dial(t, addr, clientFor(ca, "b.test"))); got != "b.test" {
		t.Errorf("after reload: got certificate %q, want %q", got, "b.test")
	}
	echo(t, old, "connection made before the reload still works")

	t.Run("bad file keeps the old certificate", func(t *testing.T) {
		if err := os.WriteFile(paths[0], []byte("truncated"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); err == nil {
			t.Fatal("Reload of a broken file: got nil error, want one")
		}
		if got := peerName(dial(t, addr, clientFor(ca, "b.test"))); got != "b.test" {
			t.Errorf("after failed reload: got certificate %q, want %q", got, "b.test")
		}
	})
	t.Run("mismatched pair keeps the old certificate", func(t *testing.T) {
		writeFiles(t, dir, "s.crt", certA, "s.key", keyB)
		if err := s.Reload(); err == nil {
			t.Fatal("Reload of a mismatched pair: got nil error, want one")
		}
		if got := peerName(dial(t, addr, clientFor(ca, "b.test"))); got != "b.test" {
			t.Errorf("after failed reload: got certificate %q, want %q", got, "b.test")
		}
	})
}

// Reload racing handshakes must be safe under -race.
func TestServerReloadConcurrent(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	cert, key := ca.leaf(t, "a.test")
	paths := writeFiles(t, dir, "s.crt", cert, "s.key", key)
	s, err := NewServer(paths[0], paths[1])
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if err := s.Reload(); err != nil {
				t.Errorf("Reload: %v", err)
				return
			}
		}
	}()
	for range 10 {
		dial(t, addr, clientFor(ca, "a.test"))
	}
	<-done
}
