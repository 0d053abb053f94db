package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPresets(t *testing.T) {
	const head = "listeners:\n  - address: 127.0.0.1:1143\n"
	tests := []struct {
		name, yaml string
		want       func(u *Upstream)
	}{
		{"gmail fills address, tls, idle_refresh, cap", head + "upstream:\n  preset: gmail\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName, u.IdleRefresh, u.MaxConnectionsPerAccount = "gmail", "imap.gmail.com:993", "imap.gmail.com", 9*time.Minute, 8
		}},
		{"explicit keys win", head + "upstream:\n  preset: outlook\n  idle_refresh: 2m\n  max_connections_per_account: 3\n  address: eu.example:993\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName, u.IdleRefresh, u.MaxConnectionsPerAccount = "outlook", "eu.example:993", "eu.example", 2*time.Minute, 3
		}},
		{"fastmail keeps the default idle_refresh", head + "upstream:\n  preset: fastmail\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName = "fastmail", "imap.fastmail.com:993", "imap.fastmail.com"
		}},
		{"dovecot with the operator's address", head + "upstream:\n  preset: dovecot\n  address: mail.example.org:993\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName = "dovecot", "mail.example.org:993", "mail.example.org"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.yaml).Upstream
			want := Default().Upstream
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestPresetErrors(t *testing.T) {
	const head = "listeners:\n  - address: 127.0.0.1:1143\n"
	tests := []struct{ name, yaml, want string }{
		{"unknown preset", head + "upstream:\n  preset: aol\n",
			`upstream.preset: must be one of dovecot, fastmail, gmail, icloud, outlook, yahoo, got "aol"`},
		{"dovecot needs an address", head + "upstream:\n  preset: dovecot\n", "upstream.address: required"},
		{"in upstreams", head + "upstreams:\n  - name: g\n    preset: gmial\n    domains: [gmail.com]\n",
			`upstreams[0].preset: must be one of dovecot, fastmail, gmail, icloud, outlook, yahoo, got "gmial"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			got := problemsOf(t, err)
			if !strings.Contains(strings.Join(got, "\n"), tt.want) {
				t.Errorf("got %q, want a problem %q", got, tt.want)
			}
		})
	}
}

// TestPresetsMatchProvidersDoc keeps configs/providers.md's preset table
// what presets.go holds.
func TestPresetsMatchProvidersDoc(t *testing.T) {
	doc, err := os.ReadFile("../configs/providers.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := presetsMarkdown(); !strings.Contains(string(doc), want) {
		t.Errorf("configs/providers.md lacks the preset table of presets.go; want it to contain:\n%s", want)
	}
}
