package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// TestStartTLSToDovecot: the STARTTLS idlemux does itself (so that its
// response reader sits above TLS) logs in to Dovecot and verifies its
// certificate, and the capabilities are those Dovecot announces after TLS.
func TestStartTLSToDovecot(t *testing.T) {
	dc := dovecottest.Start(t, dovecottest.Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(dc.CertPEM)
	tests := []struct {
		name    string
		cfg     *tls.Config
		wantErr bool
	}{
		{"trusted", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, false},
		{"untrusted", &tls.Config{ServerName: "127.0.0.1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(Options{Address: dc.Addr, TLS: TLSStartTLS, TLSConfig: tt.cfg})
			defer m.Shutdown(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a, err := m.Login(ctx, "user1", "pass1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("login: got %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer a.Unref()
			if caps := a.Caps(); !caps.Has("IDLE") || caps.Has("STARTTLS") {
				t.Fatalf("capabilities after STARTTLS: got %v, want IDLE and no STARTTLS", caps)
			}
			// Commands are counted above TLS, STARTTLS where it is written.
			if got := m.Stats().Commands; got["STARTTLS"] != 1 || got["LOGIN"] != 1 || got["OTHER"] != 0 {
				t.Errorf("upstream commands: got %v, want STARTTLS 1, LOGIN 1, no OTHER", got)
			}
		})
	}
}
