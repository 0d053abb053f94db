package tlsconf

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	other := newCA(t)
	cert, key := ca.leaf(t, "imap.test")
	paths := writeFiles(t, dir, "s.crt", cert, "s.key", key, "ca.pem", ca.pem, "other.pem", other.pem)
	s, err := NewServer(paths[0], paths[1])
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config())

	tests := []struct {
		name       string
		caFile     string
		serverName string
		insecure   bool
		wantErr    string // "" means the handshake succeeds
	}{
		{"private CA", paths[2], "imap.test", false, ""},
		{"no CA file: unknown authority", "", "imap.test", false, "certificate signed by unknown authority"},
		{"wrong CA", paths[3], "imap.test", false, "certificate signed by unknown authority"},
		{"wrong server name", paths[2], "other.test", false, "not other.test"},
		{"insecure skip verify", "", "whatever", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Client(tt.caFile, tt.serverName, tt.insecure)
			if err != nil {
				t.Fatalf("Client: %v", err)
			}
			if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != tt.serverName || cfg.InsecureSkipVerify != tt.insecure {
				t.Errorf("got MinVersion %x ServerName %q InsecureSkipVerify %v, want %x %q %v",
					cfg.MinVersion, cfg.ServerName, cfg.InsecureSkipVerify, tls.VersionTLS12, tt.serverName, tt.insecure)
			}
			c, err := tls.Dial("tcp", addr, cfg)
			if c != nil {
				c.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("handshake: got %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("handshake: got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestClientCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	paths := writeFiles(t, dir, "junk.pem", []byte("junk"))
	tests := []struct {
		name, caFile, want string
	}{
		{"missing", filepath.Join(dir, "missing.pem"), "no such file"},
		{"not PEM", paths[0], "no PEM certificates found in CA file " + paths[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Client(tt.caFile, "x", false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, %v; want error containing %q", cfg, err, tt.want)
			}
		})
	}
}
