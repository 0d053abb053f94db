package main

import (
	"os"
	"path/filepath"
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
  max_writes_per_mailbox: 4
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
  max_writes_per_mailbox: 1
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
  max_writes_per_mailbox: 4
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

// TestCheckConfigExplainTokenUsers: --explain shows each map-mode token
// user's upstream and the mechanism its token goes with: the routed
// upstream's (yahoo's preset: oauthbearer) unless the user names one.
func TestCheckConfigExplainTokenUsers(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	const hash = "$2a$04$abcdefghijklmnopqrstuu5Dh8PEsPUHtzOUe1Bq3MzZIu3DaqzCi"
	path := writeConfig(t, `listeners:
  - address: 127.0.0.1:0
upstreams:
  - name: y
    preset: yahoo
    domains: [yahoo.com]
auth:
  mode: map
  users:
    - user: a@yahoo.com
      password_hash: "`+hash+`"
      upstream_user: a@yahoo.com
      oauth2_token_file: `+token+`
    - user: b@yahoo.com
      password_hash: "`+hash+`"
      upstream_user: b@yahoo.com
      oauth2_token_file: `+token+`
      oauth2_mechanism: xoauth2
    - user: c@yahoo.com
      password_hash: "`+hash+`"
      upstream_user: c@yahoo.com
      upstream_password: p
`)
	var stdout, stderr strings.Builder
	if code := run([]string{"check-config", "--config", path, "--explain"}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("exit code: got %d, want %d; stderr %q", code, exitOK, stderr.String())
	}
	const want = "default_upstream: (none: logins of other domains are refused)\n" +
		"user a@yahoo.com: upstream y, oauth2_mechanism oauthbearer\n" +
		"user b@yahoo.com: upstream y, oauth2_mechanism xoauth2\n" +
		"ok\n"
	if got := stdout.String(); !strings.HasSuffix(got, want) {
		t.Errorf("stdout: got\n%s\nwant it to end with\n%s", got, want)
	}
}
