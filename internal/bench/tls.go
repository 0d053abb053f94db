package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// clientTLS builds the clients' TLS configuration, nil for plaintext. The
// server name is the proxy address's host, so a certificate for 127.0.0.1
// or localhost verifies against TLSCAFile; TLSInsecure skips verification,
// acceptable because bench only talks to loopback.
func clientTLS(s shardSpec) (*tls.Config, error) {
	switch s.TLS {
	case TLSNone:
		if s.TLSInsecure || s.TLSCAFile != "" {
			return nil, errors.New("TLS verification options need implicit TLS or STARTTLS")
		}
		return nil, nil
	case TLSImplicit, TLSStartTLS:
	default:
		return nil, fmt.Errorf("unknown TLS mode %q", s.TLS)
	}
	host, _, err := net.SplitHostPort(s.Proxy)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: host, InsecureSkipVerify: s.TLSInsecure}
	if s.TLS == TLSImplicit {
		cfg.NextProtos = []string{"imap"} // as imapclient.DialTLS offers
	}
	if s.TLSCAFile != "" {
		pem, err := os.ReadFile(s.TLSCAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate found", s.TLSCAFile)
		}
	}
	return cfg, nil
}
