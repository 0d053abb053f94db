package proxy

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/dovecottest"
)

// TestDovecotFetchLayoutPerUpstream: two upstreams (Dovecot and go-imap's
// imapmemserver) answer the same FETCH items in different orders (Dovecot
// in the request's, imapmemserver in its own fixed one; RFC 3501 7.4.2
// leaves it to the server). Through one idlemux, whose cache both share,
// each client gets, from the upstream and then from the cache, exactly
// what its own upstream sends directly: what one upstream's answers
// taught is never used for the other's.
func TestDovecotFetchLayoutPerUpstream(t *testing.T) {
	const fetch = "UID FETCH 1 (RFC822.SIZE INTERNALDATE)"
	mem, dv, memDirect := twoServersOneMessage(t, "layout per upstream")
	dvDirect := dialRaw(t, dv.Addr)
	dvDirect.cmd("l", "LOGIN "+testUser+" "+testPass)
	want := map[string][]string{}
	for name, rc := range map[string]*rawConn{"mem": memDirect, "dv": dvDirect} {
		rc.cmd("s", "SELECT INBOX")
		want[name] = rc.cmd("f", fetch)
		if len(want[name]) != 2 {
			t.Fatalf("%s directly: got %q, want one FETCH response", name, want[name])
		}
	}
	// The test can fail only if the two servers differ.
	order := func(l string) bool { return strings.Index(l, "RFC822.SIZE") < strings.Index(l, "INTERNALDATE") }
	if order(want["mem"][0]) == order(want["dv"][0]) {
		t.Fatalf("both upstreams answer in one order (%q, %q): want them to differ", want["mem"][0], want["dv"][0])
	}

	p := startProxy(t, twoServerRoutes(t, mem.addr, dv.Addr))
	proxied := map[string]*rawConn{}
	for name, user := range map[string]string{"mem": "m@m.example", "dv": "d@d.example"} {
		rc := dialRaw(t, p.Addrs()[0])
		if l := rc.cmd("l", "LOGIN "+user+" vpass"); !strings.HasPrefix(l[len(l)-1], "l OK") {
			t.Fatalf("%s: LOGIN: got %q", user, l)
		}
		rc.cmd("s", "SELECT INBOX")
		proxied[name] = rc
	}
	for _, tc := range []struct {
		name, up  string
		wantLocal float64
	}{
		{"memory upstream, first", "mem", 0},
		{"memory upstream, from the cache", "mem", 1},
		{"Dovecot, first", "dv", 0},
		{"Dovecot, from the cache", "dv", 1},
		{"memory upstream, from the cache again", "mem", 1},
		{"Dovecot, from the cache again", "dv", 1},
	} {
		checkCounts(t, p, tc.name, tc.wantLocal, -1, func() {
			got := proxied[tc.up].cmd("f", fetch)
			if !equalUntagged(got, want[tc.up]) || !sameStatus(got[len(got)-1], want[tc.up][1]) {
				t.Errorf("%s: got %q, want %q (the %s upstream's own)", tc.name, got, want[tc.up], tc.up)
			}
		})
	}
}

// twoServersOneMessage starts a memory upstream and a Dovecot, each with
// one message of the given subject in testUser's INBOX, and a raw
// connection logged in to the memory upstream directly.
func twoServersOneMessage(t *testing.T, subject string) (*memUpstream, *dovecottest.Server, *rawConn) {
	t.Helper()
	mem, dv := startMemUpstream(t), startDovecot(t)
	msg := testMessage(subject)
	memDirect := dialRaw(t, mem.addr)
	memDirect.cmd("l", "LOGIN "+testUser+" "+testPass)
	if l := memDirect.appendLiteral("a", "INBOX", msg); !strings.HasPrefix(l[len(l)-1], "a OK") {
		t.Fatalf("APPEND to the memory upstream: got %q", l)
	}
	if _, err := dv.Append(testUser, "INBOX", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	return mem, dv, memDirect
}

// twoServerRoutes is a map-mode config over two upstreams: "mem" takes
// m.example, "dv" d.example; the users m@m.example and d@d.example (password
// vpass) map to testUser on each.
func twoServerRoutes(t *testing.T, memAddr, dvAddr string) *config.Config {
	t.Helper()
	cfg := testConfig(memAddr)
	um, ud := cfg.Upstream, cfg.Upstream
	um.Name, um.Domains = "mem", []string{"m.example"}
	ud.Name, ud.Domains, ud.Address = "dv", []string{"d.example"}, dvAddr
	cfg.Upstreams = []config.Upstream{um, ud}
	cfg.Auth.Mode = "map"
	h, err := bcrypt.GenerateFromPassword([]byte("vpass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"m@m.example", "d@d.example"} {
		cfg.Auth.Users = append(cfg.Auth.Users, config.MappedUser{User: u, PasswordHash: string(h),
			UpstreamUser: testUser, UpstreamPassword: testPass})
	}
	return cfg
}

// TestDovecotFetchLayoutAfterReload: a reload points upstream "dv" from
// Dovecot at the memory upstream, which orders the same FETCH items
// differently. What idlemux learnt of Dovecot's order is never used for
// the new server: each FETCH after the reload, the relayed ones and one
// answered from the cache, is what the new server sends directly. (A
// layout keyed by the upstream's name outlived the reload: the cache,
// filled by other items from the new server, answered Dovecot's items in
// Dovecot's order.)
func TestDovecotFetchLayoutAfterReload(t *testing.T) {
	const (
		fetch = "UID FETCH 1 (RFC822.SIZE INTERNALDATE)"
		// The same items with UID among them: the memory upstream's
		// answer to it is not in Dovecot's order, so it teaches no names
		// (fetchlayout.go) and fills the cache for both items.
		fill = "UID FETCH 1 (RFC822.SIZE UID INTERNALDATE)"
	)
	mem, dv, memDirect := twoServersOneMessage(t, "layout after reload")
	memDirect.cmd("s", "SELECT INBOX")
	cfg := twoServerRoutes(t, mem.addr, dv.Addr)
	p := startProxy(t, cfg)
	login := func() *rawConn {
		rc := dialRaw(t, p.Addrs()[0])
		if l := rc.cmd("l", "LOGIN d@d.example vpass"); !strings.HasPrefix(l[len(l)-1], "l OK") {
			t.Fatalf("LOGIN: got %q", l)
		}
		rc.cmd("s", "SELECT INBOX")
		return rc
	}
	before := login()
	for range 2 { // learnt from Dovecot's answer, then answered from the cache
		before.cmd("f", fetch)
	}

	next := *cfg
	next.Upstreams = append([]config.Upstream(nil), cfg.Upstreams...)
	next.Upstreams[1].Address = mem.addr
	if err := p.ApplyConfig(&next); err != nil {
		t.Fatalf("ApplyConfig: got %v, want nil", err)
	}
	wantBye(t, "session on the old dv", before)
	after := login()
	for _, tc := range []struct {
		name, cmd string
		wantLocal float64
	}{
		{"other items, filling the cache", fill, 0},
		{"the order Dovecot answered before the reload", fetch, 0},
		{"that order again, from the cache", fetch, 1},
	} {
		checkCounts(t, p, tc.name, tc.wantLocal, -1, func() {
			want := memDirect.cmd("f", tc.cmd)
			got := after.cmd("f", tc.cmd)
			if len(want) != 2 || !equalUntagged(got, want) || !sameStatus(got[len(got)-1], want[1]) {
				t.Errorf("%s: got %q, want %q (the new server's own)", tc.name, got, want)
			}
		})
	}
}
