package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	want := &Config{
		Upstream: Upstream{
			Name:                     "default",
			TLS:                      TLSImplicit,
			MaxConnectionsPerAccount: 5,
			MaxWritesPerMailbox:      1,
			IdleRefresh:              25 * time.Minute,
			ResponseTimeout:          30 * time.Second,
			DialTimeout:              15 * time.Second,
			CommandLinger:            2 * time.Minute,
			WatcherLinger:            30 * time.Second,
			PollInterval:             30 * time.Second,
			OAuth2Mechanism:          "xoauth2",
		},
		Log:             Log{Level: "info", Format: "json"},
		Fanout:          Fanout{MaxLag: 10000},
		Cache:           Cache{Enabled: true, MaxBytes: 64 << 20, MaxMessageBytes: 256 << 10},
		Keepalive:       4 * time.Minute,
		Compress:        true,
		Auth:            Auth{Mode: "passthrough"},
		ShutdownTimeout: 10 * time.Second,
		Limits: Limits{LoginTimeout: time.Minute, AppendLimit: 64 << 20, MaxLoginDelay: 5 * time.Second,
			MaxParallelLoginsPerIP: 4, MaxQueuedLoginsPerIP: 128},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.Upstream.MaxConnectionsPerAccount = 99
	if got := Default().Upstream.MaxConnectionsPerAccount; got != 5 {
		t.Errorf("Default() after mutating an earlier copy: got %d, want 5", got)
	}
}

func TestDemo(t *testing.T) {
	c := Demo("127.0.0.1:40123")
	wantListeners := []Listener{{Address: "127.0.0.1:1143", TLS: TLSNone, InsecureAuth: true}}
	if !reflect.DeepEqual(c.Listeners, wantListeners) {
		t.Errorf("listeners: got %+v, want %+v", c.Listeners, wantListeners)
	}
	if c.Upstream.Address != "127.0.0.1:40123" {
		t.Errorf("upstream address: got %q, want %q", c.Upstream.Address, "127.0.0.1:40123")
	}
	if c.Upstream.TLS != TLSNone {
		t.Errorf("upstream tls: got %q, want %q", c.Upstream.TLS, TLSNone)
	}
	if c.Upstream.ServerName != "127.0.0.1" {
		t.Errorf("upstream server name: got %q, want %q", c.Upstream.ServerName, "127.0.0.1")
	}
	if c.Upstream.MaxConnectionsPerAccount != 5 {
		t.Errorf("defaults not applied: got max connections %d, want 5", c.Upstream.MaxConnectionsPerAccount)
	}
}
