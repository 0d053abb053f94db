package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Client returns the TLS config for connecting to the upstream: the system
// roots plus, if caFile is set, the certificates in it (for private CAs),
// verifying serverName, TLS 1.2 minimum. insecureSkipVerify disables
// verification altogether; it exists for test rigs with throwaway
// certificates and should never be set in production.
func Client(caFile, serverName string, insecureSkipVerify bool) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		// No system pool (e.g. a scratch container): the CA file, if any,
		// is all there is to trust.
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: reading CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsconf: no PEM certificates found in CA file %s", caFile)
		}
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            roots,
		ServerName:         serverName,
		InsecureSkipVerify: insecureSkipVerify,
	}, nil
}
