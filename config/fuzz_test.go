package config

import (
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that it returns
// either a config or an error, never both or neither.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "null", "[]", "- a", "{}", "hello", "listeners: 5", "{{{", "a: &a [*a]",
		base, base + "  idle_refersh: 1m\n", "listeners:\n  - &l {address: 127.0.0.1:1}\n  - *l\n",
		"upstream: &u {address: a:1}\nlisteners: [{address: 127.0.0.1:1}]\nfanout: *u\n",
		"listeners:\n- address: 127.0.0.1:1\n  address: 127.0.0.1:2\n", "---\n---\n", "\t", "%YAML 1.1\n---\n",
		twoUpstreams, twoUpstreams + "default_upstream: a\nupstream: {preset: gmail}\n", "upstreams: [{preset: x, domains: [\"\"]}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse(%q) = %v, %v: want exactly one of config and error", data, c, err)
		}
	})
}

// FuzzRoute: a login name comes from the client; routing it never
// panics, names a configured upstream or none, and LoginDomain returns a
// lower-case suffix of the login with no "@".
func FuzzRoute(f *testing.F) {
	for _, seed := range []string{"", "@", "a@", "alice@a.example", "x@b.example@A2.EXAMPLE", "\xff@\xfe", "İ@K.example"} {
		f.Add(seed)
	}
	c, err := Parse([]byte(twoUpstreams + "default_upstream: b\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, login string) {
		d := LoginDomain(login)
		if strings.Contains(d, "@") || d != strings.ToLower(d) {
			t.Fatalf("LoginDomain(%q) = %q: want lower case, no @", login, d)
		}
		if name, ok := c.Route(login, ""); !ok || (name != "a" && name != "b") {
			t.Fatalf("Route(%q) = %q, %v: want a or b", login, name, ok)
		}
	})
}
