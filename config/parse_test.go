package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// base is the smallest valid config; cases append to or replace it.
const base = `listeners:
  - address: 127.0.0.1:1143
upstream:
  address: imap.example.com:993
`

func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("Parse: got error %v, want none", err)
	}
	return c
}

// problemsOf returns the rendered problems of a Parse/Load error.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want problems")
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got error %T %v, want *config.Error", err, err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestParseMinimalGetsDefaults(t *testing.T) {
	got := mustParse(t, base)
	want := Default()
	want.Listeners = []Listener{{Address: "127.0.0.1:1143", TLS: TLSNone, InsecureAuth: true}}
	want.Upstream.Address = "imap.example.com:993"
	want.Upstream.ServerName = "imap.example.com"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseKeys(t *testing.T) {
	up := func(lines string) string {
		return "listeners:\n  - address: 127.0.0.1:1143\nupstream:\n  address: imap.example.com:993\n" + lines
	}
	tests := []struct {
		name string
		yaml string
		get  func(*Config) any
		want any
	}{
		{"listeners[].address", base, func(c *Config) any { return c.Listeners[0].Address }, "127.0.0.1:1143"},
		{"listeners[].address port 0", "listeners:\n  - address: 127.0.0.1:0\n  - address: 127.0.0.1:0\nupstream:\n  address: a:1\n", func(c *Config) any { return len(c.Listeners) }, 2},
		{"listeners[].address all interfaces", "listeners:\n  - address: :1143\nupstream:\n  address: a:1\n", func(c *Config) any { return c.Listeners[0].Address }, ":1143"},
		{"listeners[].tls default", base, func(c *Config) any { return c.Listeners[0].TLS }, TLSNone},
		{"listeners[].insecure_auth false", "listeners:\n  - address: 127.0.0.1:1143\n    insecure_auth: false\nupstream:\n  address: a:1\n", func(c *Config) any { return c.Listeners[0].InsecureAuth }, false},
		{"listeners[].insecure_auth true off loopback", "listeners:\n  - address: 0.0.0.0:1143\n    insecure_auth: true\nupstream:\n  address: a:1\n", func(c *Config) any { return c.Listeners[0].InsecureAuth }, true},
		{"upstream.address", base, func(c *Config) any { return c.Upstream.Address }, "imap.example.com:993"},
		{"upstream.address ipv6", "listeners:\n  - address: 127.0.0.1:1\nupstream:\n  address: \"[2001:db8::1]:993\"\n", func(c *Config) any { return c.Upstream.ServerName }, "2001:db8::1"},
		{"upstream.tls", up("  tls: starttls\n"), func(c *Config) any { return c.Upstream.TLS }, TLSStartTLS},
		{"upstream.tls none", up("  tls: none\n"), func(c *Config) any { return c.Upstream.TLS }, TLSNone},
		{"upstream.server_name default", base, func(c *Config) any { return c.Upstream.ServerName }, "imap.example.com"},
		{"upstream.server_name", up("  server_name: mail.example.org\n"), func(c *Config) any { return c.Upstream.ServerName }, "mail.example.org"},
		{"upstream.server_name blank means default", up("  server_name: \"\"\n"), func(c *Config) any { return c.Upstream.ServerName }, "imap.example.com"},
		{"upstream.ca_file blank means unset", up("  ca_file: \"\"\n"), func(c *Config) any { return c.Upstream.CAFile }, ""},
		{"upstream.tls_insecure_skip_verify", up("  tls_insecure_skip_verify: true\n"), func(c *Config) any { return c.Upstream.TLSInsecureSkipVerify }, true},
		{"upstream.max_connections_per_account", up("  max_connections_per_account: 2\n"), func(c *Config) any { return c.Upstream.MaxConnectionsPerAccount }, 2},
		{"upstream.max_writes_per_mailbox default", base, func(c *Config) any { return c.Upstream.MaxWritesPerMailbox }, 1},
		{"upstream.max_writes_per_mailbox", up("  max_writes_per_mailbox: 3\n"), func(c *Config) any { return c.Upstream.MaxWritesPerMailbox }, 3},
		{"upstream.max_writes_per_mailbox 0: no bound", up("  max_writes_per_mailbox: 0\n"), func(c *Config) any { return c.Upstream.MaxWritesPerMailbox }, 0},
		{"upstream.idle_refresh", up("  idle_refresh: 10m\n"), func(c *Config) any { return c.Upstream.IdleRefresh }, 10 * time.Minute},
		{"upstream.idle_refresh max", up("  idle_refresh: 29m\n"), func(c *Config) any { return c.Upstream.IdleRefresh }, 29 * time.Minute},
		{"upstream.response_timeout", up("  response_timeout: 1m30s\n"), func(c *Config) any { return c.Upstream.ResponseTimeout }, 90 * time.Second},
		{"upstream.dial_timeout", up("  dial_timeout: 500ms\n"), func(c *Config) any { return c.Upstream.DialTimeout }, 500 * time.Millisecond},
		{"upstream.command_linger", up("  command_linger: 0s\n"), func(c *Config) any { return c.Upstream.CommandLinger }, time.Duration(0)},
		{"upstream.watcher_linger", up("  watcher_linger: 1m\n"), func(c *Config) any { return c.Upstream.WatcherLinger }, time.Minute},
		{"upstream.poll_interval", up("  poll_interval: 5s\n"), func(c *Config) any { return c.Upstream.PollInterval }, 5 * time.Second},
		{"upstream.capabilities", up("  capabilities: [imap4rev1, idle, Move, AUTH=PLAIN]\n"), func(c *Config) any { return c.Upstream.Capabilities }, []string{"IMAP4rev1", "IDLE", "MOVE", "AUTH=PLAIN"}},
		{"upstream.capabilities unset", base, func(c *Config) any { return c.Upstream.Capabilities }, []string(nil)},
		{"log.level", base + "log:\n  level: debug\n", func(c *Config) any { return c.Log.Level }, "debug"},
		{"log.format", base + "log:\n  format: console\n", func(c *Config) any { return c.Log.Format }, "console"},
		{"log empty keeps defaults", base + "log:\n", func(c *Config) any { return c.Log }, Log{Level: "info", Format: "json"}},
		{"fanout.max_lag", base + "fanout:\n  max_lag: 1\n", func(c *Config) any { return c.Fanout.MaxLag }, 1},
		{"trailing empty document", base + "---\n# nothing\n", func(c *Config) any { return c.Upstream.Address }, "imap.example.com:993"},
		{"comments and blank lines", "# idlemux\n\n" + base + "# end\n", func(c *Config) any { return c.Upstream.Address }, "imap.example.com:993"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.yaml)
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestInsecureAuthDefault(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:1143", true},
		{"127.8.9.10:1143", true},
		{"\"[::1]:1143\"", true},
		{"localhost:1143", true},
		{"LOCALHOST:1143", true},
		{"\"[::ffff:127.0.0.1]:1143\"", true},
		{"0.0.0.0:1143", false},
		{":1143", false},
		{"192.0.2.10:1143", false},
		{"\"[2001:db8::1]:1143\"", false},
		{"mail.example.com:143", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			c := mustParse(t, "listeners:\n  - address: "+tt.addr+"\nupstream:\n  address: a:1\n")
			if got := c.Listeners[0].InsecureAuth; got != tt.want {
				t.Errorf("insecure_auth for %s: got %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	up := func(lines string) string { return base + lines }
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty document", "", []string{"listeners: at least one listener is required", "upstream.address: required"}},
		{"null document", "null\n", []string{"listeners: at least one listener is required", "upstream.address: required"}},
		{"no listeners", "listeners: []\nupstream:\n  address: a:1\n", []string{"listeners: at least one listener is required"}},
		{"listener address missing", "listeners:\n  - tls: none\nupstream:\n  address: a:1\n", []string{"listeners[0].address: required"}},
		{"listener address no port", "listeners:\n  - address: 127.0.0.1\nupstream:\n  address: a:1\n", []string{`listeners[0].address: must be host:port, got "127.0.0.1"`}},
		{"listener address bad port", "listeners:\n  - address: 127.0.0.1:imap\nupstream:\n  address: a:1\n", []string{`listeners[0].address: port must be a number from 0 to 65535, got "imap"`}},
		{"listener address port too big", "listeners:\n  - address: 127.0.0.1:70000\nupstream:\n  address: a:1\n", []string{`listeners[0].address: port must be a number from 0 to 65535, got "70000"`}},
		{"listener address bad host", "listeners:\n  - address: \"exa mple:1\"\nupstream:\n  address: a:1\n", []string{`listeners[0].address: invalid host "exa mple" in "exa mple:1"`}},
		{"listener duplicate", "listeners:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:1\nupstream:\n  address: a:1\n", []string{`listeners[1].address: duplicate of listeners[0].address "127.0.0.1:1"`}},
		{"listener tls", "listeners:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:2\n    tls: ssl\nupstream:\n  address: a:1\n", []string{`listeners[1].tls: must be one of none, starttls, implicit, got "ssl"`}},
		{"listener tls needs cert", "listeners:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:2\n    tls: implicit\nupstream:\n  address: a:1\n", []string{"tls.cert_file: required by listeners[1].tls: implicit", "tls.key_file: required by listeners[1].tls: implicit"}},
		{"listener insecure_auth type", "listeners:\n  - address: 127.0.0.1:1\n    insecure_auth: maybe\nupstream:\n  address: a:1\n", []string{"listeners[0].insecure_auth: must be true or false, got \"maybe\" (line 3)"}},
		{"listeners a flow mapping", "listeners: {a: {b: 1}}\nupstream:\n  address: a:1\n", []string{"listeners: must be a list, got a mapping (line 1)"}},
		{"listeners not a list", "listeners:\n  address: 127.0.0.1:1\nupstream:\n  address: a:1\n", []string{"listeners: must be a list, got a mapping (line 2)"}},
		{"listener not a mapping", "listeners:\n  - 127.0.0.1:1\nupstream:\n  address: a:1\n", []string{"listeners[0]: must be a mapping, got \"127.0.0.1:1\" (line 2)"}},
		{"tls key without cert", up("tls:\n  key_file: /nonexistent/key.pem\n"), []string{"tls.cert_file: required when tls.key_file is set"}},
		{"tls cert without key", up("tls:\n  cert_file: /nonexistent/cert.pem\n"), []string{"tls.key_file: required when tls.cert_file is set"}},
		{"tls files missing", up("tls:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n"), []string{
			"tls.cert_file: open /nonexistent/cert.pem: no such file or directory",
			"tls.key_file: open /nonexistent/key.pem: no such file or directory",
		}},
		{"upstream missing", "listeners:\n  - address: 127.0.0.1:1\n", []string{"upstream.address: required"}},
		{"upstream address empty", "listeners:\n  - address: 127.0.0.1:1\nupstream:\n  address: \"\"\n", []string{"upstream.address: required"}},
		{"upstream address no host", "listeners:\n  - address: 127.0.0.1:1\nupstream:\n  address: :993\n", []string{`upstream.address: must include a host, got ":993"`}},
		{"upstream address port 0", "listeners:\n  - address: 127.0.0.1:1\nupstream:\n  address: a:0\n", []string{`upstream.address: port must be a number from 1 to 65535, got "0"`}},
		{"upstream address not host:port", "listeners:\n  - address: 127.0.0.1:1\nupstream:\n  address: imap.example.com\n", []string{`upstream.address: must be host:port, got "imap.example.com"`}},
		{"upstream tls", up("  tls: yes-please\n"), []string{`upstream.tls: must be one of none, starttls, implicit, got "yes-please"`}},
		{"upstream ca_file missing", up("  ca_file: /nonexistent/ca.pem\n"), []string{"upstream.ca_file: open /nonexistent/ca.pem: no such file or directory"}},
		{"upstream tls_insecure_skip_verify type", up("  tls_insecure_skip_verify: 3\n"), []string{"upstream.tls_insecure_skip_verify: must be true or false, got 3 (line 5)"}},
		{"upstream max_connections_per_account", up("  max_connections_per_account: 1\n"), []string{"upstream.max_connections_per_account: must be >= 2, got 1"}},
		{"upstream max_writes_per_mailbox", up("  max_writes_per_mailbox: -1\n"), []string{"upstream.max_writes_per_mailbox: must be >= 0 (0: no bound), got -1"}},
		{"upstream max_connections_per_account type", up("  max_connections_per_account: many\n"), []string{`upstream.max_connections_per_account: must be an integer, got "many" (line 5)`}},
		{"upstream idle_refresh too long", up("  idle_refresh: 30m\n"), []string{`upstream.idle_refresh: must be <= 29m, got "30m"`}},
		{"upstream idle_refresh zero", up("  idle_refresh: 0s\n"), []string{`upstream.idle_refresh: must be > 0, got "0s"`}},
		{"upstream idle_refresh no unit", up("  idle_refresh: 25\n"), []string{`upstream.idle_refresh: must be a duration such as "30s" or "25m", got "25"`}},
		{"upstream response_timeout", up("  response_timeout: -1s\n"), []string{`upstream.response_timeout: must be > 0, got "-1s"`}},
		{"upstream dial_timeout", up("  dial_timeout: soon\n"), []string{`upstream.dial_timeout: must be a duration such as "30s" or "25m", got "soon"`}},
		{"upstream command_linger", up("  command_linger: -1m\n"), []string{`upstream.command_linger: must be >= 0, got "-1m"`}},
		{"upstream watcher_linger", up("  watcher_linger: -1s\n"), []string{`upstream.watcher_linger: must be >= 0, got "-1s"`}},
		{"upstream poll_interval", up("  poll_interval: 0s\n"), []string{`upstream.poll_interval: must be > 0, got "0s"`}},
		{"upstream duration as list", up("  poll_interval: [1s]\n"), []string{"upstream.poll_interval: must be a string, got a list (line 5)"}},
		{"upstream capabilities empty", up("  capabilities: []\n"), []string{"upstream.capabilities: must not be empty; omit it to use the upstream's own list"}},
		{"upstream capabilities no base", up("  capabilities: [IDLE]\n"), []string{"upstream.capabilities: must include IMAP4rev1 or IMAP4rev2"}},
		{"upstream capabilities bad atom", up("  capabilities: [IMAP4rev1, \"BAD CAP\"]\n"), []string{`upstream.capabilities[1]: not a valid capability name: "BAD CAP"`}},
		{"upstream capabilities duplicate", up("  capabilities: [IMAP4rev1, IDLE, idle]\n"), []string{`upstream.capabilities[2]: duplicate of upstream.capabilities[1] "IDLE"`}},
		{"upstream capabilities not a list", up("  capabilities: IDLE\n"), []string{`upstream.capabilities: must be a list of strings, got "IDLE" (line 5)`}},
		{"upstream not a mapping", "listeners:\n  - address: 127.0.0.1:1\nupstream: imap.example.com:993\n", []string{`upstream: must be a mapping, got "imap.example.com:993" (line 3)`}},
		{"log level", base + "log:\n  level: trace\n", []string{`log.level: must be one of debug, info, warn, error, got "trace"`}},
		{"log format", base + "log:\n  format: text\n", []string{`log.format: must be one of json, console, got "text"`}},
		{"fanout max_lag", base + "fanout:\n  max_lag: 0\n", []string{"fanout.max_lag: must be >= 1, got 0"}},
		{"fanout max_lag type", base + "fanout:\n  max_lag: 1.5\n", []string{"fanout.max_lag: must be an integer, got 1.5 (line 6)"}},
		{"fanout max_lag huge", base + "fanout:\n  max_lag: 99999999999999999999\n", []string{"fanout.max_lag: must be an integer, got 99999999999999999999 (line 6)"}},
		{"fanout max_lag mapping", base + "fanout:\n  max_lag: {a: 1}\n", []string{"fanout.max_lag: must be an integer, got a mapping (line 6)"}},
		{"unknown top-level key", base + "upstraem: {}\n", []string{`upstraem: unknown key (did you mean "upstream"?) (line 5)`}},
		{"unknown upstream key", up("  idle_refersh: 10m\n"), []string{`upstream.idle_refersh: unknown key (did you mean "idle_refresh"?) (line 5)`}},
		{"unknown listener key", "listeners:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:2\n    insecure: true\nupstream:\n  address: a:1\n", []string{`listeners[1].insecure: unknown key (line 4)`}},
		{"unknown key far from any", base + "fanout:\n  completely_different: 1\n", []string{"fanout.completely_different: unknown key (line 6)"}},
		{"duplicate key", up("  tls: none\n  tls: implicit\n"), []string{"upstream.tls: duplicate key, first set on line 5 (line 6)"}},
		{"syntax error", "listeners: [\n", []string{"invalid YAML: did not find expected node content (line 1)"}},
		{"tab indentation", "upstream:\n\taddress: a:1\n", []string{"invalid YAML: found character that cannot start any token (line 2)"}},
		{"document not a mapping", "hello\n", []string{`the top level must be a mapping, got "hello" (line 1)`}},
		{"two documents", base + "---\nlog: {}\n", []string{"only one YAML document is allowed (line 5)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if got := problemsOf(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got problems\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestParseCollectsEveryProblem(t *testing.T) {
	yaml := `listeners:
  - address: 127.0.0.1
  - address: 0.0.0.0:993
    tls: implicit
upstream:
  address: imap.example.com
  max_connections_per_account: 1
  idle_refresh: 45m
  idle_refersh: 10m
log:
  level: loud
fanout:
  max_lag: -5
`
	_, err := Parse([]byte(yaml))
	got := problemsOf(t, err)
	want := []string{
		`upstream.idle_refersh: unknown key (did you mean "idle_refresh"?) (line 9)`,
		`listeners[0].address: must be host:port, got "127.0.0.1"`,
		"tls.cert_file: required by listeners[1].tls: implicit",
		"tls.key_file: required by listeners[1].tls: implicit",
		`upstream.address: must be host:port, got "imap.example.com"`,
		"upstream.max_connections_per_account: must be >= 2, got 1",
		`upstream.idle_refresh: must be <= 29m, got "45m"`,
		`log.level: must be one of debug, info, warn, error, got "loud"`,
		"fanout.max_lag: must be >= 1, got -5",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got problems\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: 9 problems:\n") {
		t.Errorf("error text: got %q, want it to start with the problem count", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, "\n  "+w) {
			t.Errorf("error text %q: missing problem %q", msg, w)
		}
	}
}

// A type error on a key must not also be reported as that key missing.
func TestDecodeProblemsSuppressDuplicates(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"address of wrong type", "listeners:\n  - address: 127.0.0.1:1\nupstream:\n  address: [a, b]\n", []string{"upstream.address: must be a string, got a list (line 4)"}},
		{"upstream of wrong type", "listeners:\n  - address: 127.0.0.1:1\nupstream: [a]\n", []string{"upstream: must be a mapping, got a list (line 3)"}},
		{"duplicate inside listener", "listeners:\n  - address: 127.0.0.1:1\n    address: 127.0.0.1:2\nupstream:\n  address: a:1\n", []string{"listeners[0].address: duplicate key, first set on line 2 (line 3)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if got := problemsOf(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorSingleProblemIsOneLine(t *testing.T) {
	_, err := Parse([]byte("listeners:\n  - address: 127.0.0.1:1\n"))
	if got, want := err.Error(), "config: upstream.address: required"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestProblemFields(t *testing.T) {
	_, err := Parse([]byte(base + "  idle_refersh: 10m\n"))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 {
		t.Fatalf("got %v, want one *Error problem", err)
	}
	p := ce.Problems[0]
	if p.Key != "upstream.idle_refersh" || p.Line != 5 {
		t.Errorf("got key %q line %d, want key %q line 5", p.Key, p.Line, "upstream.idle_refersh")
	}
}

func TestKeepalive(t *testing.T) {
	base := "listeners:\n  - address: 127.0.0.1:1143\nupstream:\n  address: imap.example.com:993\n"
	tests := []struct {
		name    string
		yaml    string
		want    time.Duration
		wantErr string
	}{
		{"default", base, 4 * time.Minute, ""},
		{"set", base + "keepalive: 90s\n", 90 * time.Second, ""},
		{"disabled", base + "keepalive: 0s\n", 0, ""},
		{"bad", base + "keepalive: soon\n", 0, "keepalive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parseWant(t, tt.yaml, tt.wantErr)
			if !ok {
				return
			}
			if c.Keepalive != tt.want {
				t.Fatalf("got keepalive %v, want %v", c.Keepalive, tt.want)
			}
		})
	}
}

func TestProxyProtocolKeys(t *testing.T) {
	up := "upstream:\n  address: imap.example.com:993\n"
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"trusted ranges", "listeners:\n  - address: 127.0.0.1:1143\n    proxy_protocol: true\n    proxy_trusted: [10.0.0.0/8, \"::1/128\"]\n" + up, ""},
		{"no ranges", "listeners:\n  - address: 127.0.0.1:1143\n    proxy_protocol: true\n" + up, "listeners[0].proxy_trusted: required"},
		{"bad range", "listeners:\n  - address: 127.0.0.1:1143\n    proxy_protocol: true\n    proxy_trusted: [10.0.0.0/33]\n" + up, "listeners[0].proxy_trusted[0]"},
		{"ranges without protocol", "listeners:\n  - address: 127.0.0.1:1143\n    proxy_trusted: [10.0.0.0/8]\n" + up, "proxy_protocol is not true"},
		{"metrics address", "listeners:\n  - address: 127.0.0.1:1143\n" + up + "metrics:\n  address: nonsense\n", "metrics.address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !c.Listeners[0].ProxyProtocol || len(c.Listeners[0].ProxyTrusted) != 2 {
					t.Fatalf("got %+v", c.Listeners[0])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestAuthMapKeys(t *testing.T) {
	head := "listeners:\n  - address: 127.0.0.1:1143\nupstream:\n  address: imap.example.com:993\n"
	const hash = "$2a$04$E6cz3uDGaJq0U3XJh0l1kOl7T5mG0p5Q0u9m6g8U9o7mH2yLkqM7e"
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"map without users", head + "auth:\n  mode: map\n", "auth.users: required"},
		{"bad mode", head + "auth:\n  mode: ldap\n", "auth.mode"},
		{"bad hash", head + "auth:\n  mode: map\n  users:\n    - user: a\n      password_hash: plain\n      upstream_user: u\n      upstream_password: p\n", "auth.users[0].password_hash"},
		{"both secrets", head + "auth:\n  mode: map\n  users:\n    - user: a\n      password_hash: \"" + hash + "\"\n      upstream_user: u\n      upstream_password: p\n      upstream_password_file: /etc/hostname\n", "exactly one of"},
		{"missing file", head + "auth:\n  mode: map\n  users:\n    - user: a\n      password_hash: \"" + hash + "\"\n      upstream_user: u\n      upstream_password_file: /nonexistent\n", "auth.users[0].upstream_password_file"},
		{"users in passthrough", head + "auth:\n  users:\n    - user: a\n", "only used with auth.mode: map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCompress(t *testing.T) {
	base := "listeners:\n  - address: 127.0.0.1:1143\nupstream:\n  address: imap.example.com:993\n"
	tests := []struct {
		name    string
		yaml    string
		want    bool
		wantErr string
	}{
		{"default on", base, true, ""},
		{"off", base + "compress: false\n", false, ""},
		{"on", base + "compress: true\n", true, ""},
		{"not a bool", base + "compress: maybe\n", false, "compress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parseWant(t, tt.yaml, tt.wantErr)
			if !ok {
				return
			}
			if c.Compress != tt.want {
				t.Fatalf("got compress %v, want %v", c.Compress, tt.want)
			}
		})
	}
}

// parseWant parses yaml and checks its error against wantErr: a
// substring the error must hold, or "" for none. ok reports a config to
// check further (parsed, and meant to be).
func parseWant(t *testing.T, yaml, wantErr string) (c *Config, ok bool) {
	t.Helper()
	c, err := Parse([]byte(yaml))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got error %v, want one naming %q", err, wantErr)
		}
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}
