// Package tlsconf builds the TLS configurations idlemux uses on both sides:
// a reloadable server certificate for downstream listeners and a verifying
// client config for the upstream.
package tlsconf

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// Server loads cert/key, TLS 1.2 minimum, and serves the current certificate
// via GetCertificate so Reload swaps it without dropping sessions: existing
// connections keep the certificate they negotiated, new handshakes get the
// new one.
type Server struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewServer loads the key pair, failing if it cannot be used.
func NewServer(certFile, keyFile string) (*Server, error) {
	s := &Server{certFile: certFile, keyFile: keyFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns a new tls.Config serving the current certificate. Each call
// returns a fresh copy, so callers may adjust it (NextProtos, say) freely.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.getCertificate,
	}
}

// Reload reads the key pair again, e.g. after certificate renewal. On error
// the previous certificate stays in use.
func (s *Server) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("tlsconf: loading %s and %s: %w", s.certFile, s.keyFile, err)
	}
	s.cert.Store(&cert)
	return nil
}

// Certificate returns the certificate currently served.
func (s *Server) Certificate() *tls.Certificate {
	return s.cert.Load()
}

func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}
