package main

import (
	"strings"
	"testing"
)

// TestCheckConfigExplain: --explain prints what each upstream gets once
// presets and defaults are applied (yahoo's OAUTHBEARER, its IDLE
// refresh), explicit keys winning (gmail's cap, yahoo's TLS and address),
// and where logins go; without it only "ok".
func TestCheckConfigExplain(t *testing.T) {
	path := writeConfig(t, `listeners:
  - address: 127.0.0.1:0
upstreams:
  - name: gmail
    preset: gmail
    domains: [gmail.com]
    max_connections_per_account: 4
  - name: own
    address: 127.0.0.1:1
    tls: none
    domains: [example.org]
  - name: y
    preset: yahoo
    domains: [yahoo.com]
    tls: starttls
    address: imap.mail.yahoo.com:143
`)
	const want = `upstream gmail (preset gmail):
  address: imap.gmail.com:993
  tls: implicit
  server_name: imap.gmail.com
  domains: gmail.com
  idle_refresh: 9m0s
  max_connections_per_account: 4
  response_timeout: 30s
  dial_timeout: 15s
  poll_interval: 30s
  oauth2_mechanism: xoauth2
upstream own:
  address: 127.0.0.1:1
  tls: none
  server_name: 127.0.0.1
  domains: example.org
  idle_refresh: 25m0s
  max_connections_per_account: 5
  response_timeout: 30s
  dial_timeout: 15s
  poll_interval: 30s
  oauth2_mechanism: xoauth2
upstream y (preset yahoo):
  address: imap.mail.yahoo.com:143
  tls: starttls
  server_name: imap.mail.yahoo.com
  domains: yahoo.com
  idle_refresh: 4m0s
  max_connections_per_account: 5
  response_timeout: 30s
  dial_timeout: 15s
  poll_interval: 30s
  oauth2_mechanism: oauthbearer
default_upstream: (none: logins of other domains are refused)
ok
`
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"explain", []string{"check-config", "--config", path, "--explain"}, want},
		{"single dash first", []string{"check-config", "-explain", "--config", path}, want},
		{"plain", []string{"check-config", "--config", path}, "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(tt.args, &stdout, &stderr, nil); code != exitOK {
				t.Fatalf("exit code: got %d, want %d; stderr %q", code, exitOK, stderr.String())
			}
			if got := stdout.String(); got != tt.want {
				t.Errorf("stdout: got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
