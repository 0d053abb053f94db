package config

import (
	"reflect"
	"strings"
	"testing"
)

const twoUpstreams = `listeners:
  - address: 127.0.0.1:1143
upstreams:
  - name: a
    address: imap.a.example:993
    domains: [a.example, A2.Example]
  - name: b
    address: imap.b.example:143
    tls: starttls
    idle_refresh: 9m
    domains: [b.example]
`

func TestRoutesParse(t *testing.T) {
	c := mustParse(t, twoUpstreams+"default_upstream: b\n")
	ups, def := c.Routes()
	if def != "b" {
		t.Errorf("default: got %q, want %q", def, "b")
	}
	want := Default().Upstream
	want.Name, want.Address, want.ServerName, want.Domains = "a", "imap.a.example:993", "imap.a.example", []string{"a.example", "a2.example"}
	if len(ups) != 2 || !reflect.DeepEqual(ups[0], want) {
		t.Fatalf("upstreams[0]: got %+v, want %+v", ups, want)
	}
	if got := ups[1]; got.TLS != TLSStartTLS || got.IdleRefresh.String() != "9m0s" || got.MaxConnectionsPerAccount != defaultMaxConnectionsPerAccount {
		t.Errorf("upstreams[1]: got %+v, want starttls, 9m, default connection cap", got)
	}
}

func TestRoutesSingleUpstreamIsDefault(t *testing.T) {
	c := mustParse(t, base)
	ups, def := c.Routes()
	if len(ups) != 1 || ups[0].Name != "default" || def != "default" || ups[0].Address != "imap.example.com:993" {
		t.Errorf("got %+v default %q, want one upstream \"default\" at imap.example.com:993", ups, def)
	}
}

func TestRoute(t *testing.T) {
	withDef := mustParse(t, twoUpstreams+"default_upstream: b\n")
	noDef := mustParse(t, twoUpstreams)
	single := mustParse(t, base)
	tests := []struct {
		name, login, mapped string
		cfg                 *Config
		want                string
		ok                  bool
	}{
		{"domain a", "alice@a.example", "", noDef, "a", true},
		{"domain case-insensitive", "alice@A2.EXAMPLE", "", noDef, "a", true},
		{"domain b", "bob@b.example", "", noDef, "b", true},
		{"last @ counts", "x@b.example@a.example", "", noDef, "a", true},
		{"unknown domain, no default", "carol@c.example", "", noDef, "", false},
		{"no domain, no default", "carol", "", noDef, "", false},
		{"unknown domain, default", "carol@c.example", "", withDef, "b", true},
		{"map entry wins", "alice@a.example", "b", noDef, "b", true},
		{"single upstream takes all", "anyone@z.example", "", single, "default", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.cfg.Route(tt.login, tt.mapped)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Route(%q, %q): got %q %v, want %q %v", tt.login, tt.mapped, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRoutesErrors(t *testing.T) {
	const head = "listeners:\n  - address: 127.0.0.1:1143\n"
	const mapUser = "auth:\n  mode: map\n  users:\n    - user: u\n      password_hash: $2a$04$abcdefghijklmnopqrstuu5Dh8PEsPUHtzOUe1Bq3MzZIu3DaqzCi\n      upstream_user: x\n      upstream_password: y\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"both forms", twoUpstreams + "upstream:\n  address: imap.example.com:993\n",
			[]string{"upstreams: set either upstream (one upstream) or upstreams (several), not both"}},
		{"empty list", head + "upstreams: []\n",
			[]string{"upstreams: must list at least one upstream"}},
		{"name required", head + "upstreams:\n  - address: h:1\n    domains: [a.example]\n",
			[]string{"upstreams[0].name: required"}},
		{"bad name", head + "upstreams:\n  - name: A b\n    address: h:1\n    domains: [a.example]\n",
			[]string{`upstreams[0].name: must be 1-32 of a-z, 0-9, _ and -, starting with a letter or digit, got "A b"`}},
		{"duplicate name", head + "upstreams:\n  - name: a\n    address: h:1\n    domains: [a.example]\n  - name: a\n    address: h:2\n    domains: [b.example]\n",
			[]string{`upstreams[1].name: duplicate of upstreams[0].name "a"`}},
		{"duplicate domain", head + "upstreams:\n  - name: a\n    address: h:1\n    domains: [a.example]\n  - name: b\n    address: h:2\n    domains: [b.example, A.example]\n",
			[]string{`upstreams[1].domains[1]: duplicate of upstreams[0].domains[0] "a.example": a domain routes to one upstream`}},
		{"bad domain", head + "upstreams:\n  - name: a\n    address: h:1\n    domains: [\"@a.example\", \"*.b.example\"]\n",
			[]string{`upstreams[0].domains[0]: must be a domain such as "example.com" (no "@", no wildcard), got "@a.example"`,
				`upstreams[0].domains[1]: must be a domain such as "example.com" (no "@", no wildcard), got "*.b.example"`,
				`upstreams[0]: upstream "a" gets no logins: give it domains, make it default_upstream, or name it in auth.users[].upstream`}},
		{"per-upstream keys are checked", head + "upstreams:\n  - name: a\n    domains: [a.example]\n    idle_refresh: 31m\n",
			[]string{"upstreams[0].address: required", `upstreams[0].idle_refresh: must be <= 29m, got "31m"`}},
		{"unknown key in entry", head + "upstreams:\n  - name: a\n    address: h:1\n    domain: [a.example]\n",
			[]string{`upstreams[0].domain: unknown key (did you mean "domains"?) (line 6)`,
				`upstreams[0]: upstream "a" gets no logins: give it domains, make it default_upstream, or name it in auth.users[].upstream`}},
		{"unknown default", twoUpstreams + "default_upstream: c\n",
			[]string{`default_upstream: unknown upstream "c"; upstreams are "a", "b"`}},
		{"default without upstreams", base + "default_upstream: default\n",
			[]string{"default_upstream: only used with upstreams"}},
		{"unreachable upstream", head + "upstreams:\n  - name: a\n    address: h:1\n    domains: [a.example]\n  - name: b\n    address: h:2\n",
			[]string{`upstreams[1]: upstream "b" gets no logins: give it domains, make it default_upstream, or name it in auth.users[].upstream`}},
		{"unknown user upstream", twoUpstreams + mapUser + "      upstream: c\n",
			[]string{`auth.users[0].upstream: unknown upstream "c"; upstreams are "a", "b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			got := problemsOf(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestRoutesMapUserUpstream(t *testing.T) {
	const yaml = "listeners:\n  - address: 127.0.0.1:1143\nupstreams:\n  - name: a\n    address: h:1\n    domains: [a.example]\n  - name: b\n    address: h:2\n" +
		"auth:\n  mode: map\n  users:\n    - user: u\n      password_hash: $2a$04$abcdefghijklmnopqrstuu5Dh8PEsPUHtzOUe1Bq3MzZIu3DaqzCi\n      upstream_user: x\n      upstream_password: y\n      upstream: b\n"
	c := mustParse(t, yaml) // b is reachable only through the map user
	if got := c.Auth.Users[0].Upstream; got != "b" {
		t.Errorf("auth.users[0].upstream: got %q, want %q", got, "b")
	}
}
