package config

import (
	"os"
	"path/filepath"
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
			u.MaxWritesPerMailbox = hostedWrites
		}},
		{"explicit keys win", head + "upstream:\n  preset: outlook\n  idle_refresh: 2m\n  max_connections_per_account: 3\n  max_writes_per_mailbox: 0\n  address: eu.example:993\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName, u.IdleRefresh, u.MaxConnectionsPerAccount = "outlook", "eu.example:993", "eu.example", 2*time.Minute, 3
			u.MaxWritesPerMailbox = 0
		}},
		{"fastmail keeps the default idle_refresh", head + "upstream:\n  preset: fastmail\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName, u.MaxWritesPerMailbox = "fastmail", "imap.fastmail.com:993", "imap.fastmail.com", hostedWrites
		}},
		{"dovecot with the operator's address", head + "upstream:\n  preset: dovecot\n  address: mail.example.org:993\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName = "dovecot", "mail.example.org:993", "mail.example.org"
		}},
		{"yahoo fills oauthbearer", head + "upstream:\n  preset: yahoo\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName, u.IdleRefresh, u.OAuth2Mechanism = "yahoo", "imap.mail.yahoo.com:993", "imap.mail.yahoo.com", 4*time.Minute, "oauthbearer"
			u.MaxWritesPerMailbox = hostedWrites
		}},
		{"explicit oauth2_mechanism and tls win", head + "upstream:\n  preset: yahoo\n  oauth2_mechanism: xoauth2\n  tls: starttls\n  address: imap.mail.yahoo.com:143\n", func(u *Upstream) {
			u.Preset, u.Address, u.ServerName, u.IdleRefresh, u.TLS = "yahoo", "imap.mail.yahoo.com:143", "imap.mail.yahoo.com", 4*time.Minute, TLSStartTLS
			u.MaxWritesPerMailbox = hostedWrites
		}},
		{"oauth2_mechanism without a preset", head + "upstream:\n  address: mail.example.org:993\n  oauth2_mechanism: oauthbearer\n", func(u *Upstream) {
			u.Address, u.ServerName, u.OAuth2Mechanism = "mail.example.org:993", "mail.example.org", "oauthbearer"
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
		{"unknown oauth2_mechanism", head + "upstream:\n  preset: gmail\n  oauth2_mechanism: plain\n",
			`upstream.oauth2_mechanism: must be one of xoauth2, oauthbearer, got "plain"`},
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

// TestUserMechanism: a map-mode user's OAuth2 token goes with its own
// oauth2_mechanism when it names one, else with that of the upstream its
// logins are routed to (by its upstream key or its login's domain), a
// preset's included.
func TestUserMechanism(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	const hash = "$2a$04$abcdefghijklmnopqrstuu5Dh8PEsPUHtzOUe1Bq3MzZIu3DaqzCi"
	head := "listeners:\n  - address: 127.0.0.1:1143\n" +
		"upstreams:\n  - name: y\n    preset: yahoo\n    domains: [yahoo.com]\n" +
		"  - name: own\n    address: mail.example.org:993\n    domains: [example.org]\n    oauth2_mechanism: oauthbearer\n" +
		"  - name: g\n    preset: gmail\n" +
		"default_upstream: g\n"
	user := func(login, extra string) string {
		return "auth:\n  mode: map\n  users:\n    - user: " + login + "\n      password_hash: \"" + hash +
			"\"\n      upstream_user: x\n      oauth2_token_file: " + token + "\n" + extra
	}
	tests := []struct{ name, yaml, want string }{
		{"routed by domain to a preset", user("a@yahoo.com", ""), "oauthbearer"},
		{"routed by name", user("a", "      upstream: own\n"), "oauthbearer"},
		{"routed to the default", user("a@other.org", ""), "xoauth2"},
		{"own key wins", user("a@yahoo.com", "      oauth2_mechanism: xoauth2\n"), "xoauth2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, head+tt.yaml)
			if got := cfg.Auth.Users[0].OAuth2Mechanism; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
