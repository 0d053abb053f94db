package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// validateTLSFiles checks the server certificate whenever a listener needs
// it or it is configured at all: a typo in a path should fail check-config,
// not the first STARTTLS.
func validateTLSFiles(raw *rawTLS, c *Config, ps *problems) {
	if raw != nil {
		c.TLS.CertFile = str(raw.CertFile)
		c.TLS.KeyFile = str(raw.KeyFile)
	}
	need := ""
	for i, l := range c.Listeners {
		if l.TLS != TLSNone {
			need = fmt.Sprintf("required by listeners[%d].tls: %s", i, l.TLS)
			break
		}
	}
	if need == "" && c.TLS.CertFile == "" && c.TLS.KeyFile == "" {
		return
	}
	if c.TLS.CertFile == "" {
		ps.add("tls.cert_file", "%s", or(need, "required when tls.key_file is set"))
	}
	if c.TLS.KeyFile == "" {
		ps.add("tls.key_file", "%s", or(need, "required when tls.cert_file is set"))
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile != "" {
		checkKeyPair(c.TLS.CertFile, c.TLS.KeyFile, ps)
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkKeyPair attributes a failure to the file at fault where it can.
func checkKeyPair(certFile, keyFile string, ps *problems) {
	certPEM, certErr := os.ReadFile(certFile)
	if certErr != nil {
		ps.add("tls.cert_file", "%v", certErr)
	}
	keyPEM, keyErr := os.ReadFile(keyFile)
	if keyErr != nil {
		ps.add("tls.key_file", "%v", keyErr)
	}
	if certErr != nil || keyErr != nil {
		return
	}
	if !hasCertificate(certPEM) {
		ps.add("tls.cert_file", "no PEM certificate found in %s", certFile)
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		ps.add("tls.key_file", "%s does not go with tls.cert_file %s: %v", keyFile, certFile, err)
	}
}

// hasCertificate reports whether data holds at least one parseable
// CERTIFICATE block.
func hasCertificate(data []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err == nil {
			return true
		}
	}
}

// checkCAFile makes sure a configured CA bundle is usable.
func checkCAFile(key, path string, ps *problems) {
	data, err := os.ReadFile(path)
	if err != nil {
		ps.add(key, "%v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		ps.add(key, "no PEM certificates found in %s", path)
	}
}
