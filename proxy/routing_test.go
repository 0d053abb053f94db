package proxy

import (
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"

	"github.com/idlemux/idlemux/config"
)

// twoMemRoutes is a map-mode config over two memory upstreams: "a" takes
// a.example, "b" is the default; every virtual user maps to testUser.
func twoMemRoutes(t *testing.T) (cfg *config.Config, upA, upB *memUpstream) {
	t.Helper()
	upA, upB = startMemUpstream(t), startMemUpstream(t)
	cfg = testConfig(upA.addr)
	ua, ub := cfg.Upstream, cfg.Upstream
	ua.Name, ua.Domains = "a", []string{"a.example"}
	ub.Name, ub.Address = "b", upB.addr
	cfg.Upstreams, cfg.DefaultUpstream = []config.Upstream{ua, ub}, "b"
	cfg.Auth.Mode = "map"
	h, err := bcrypt.GenerateFromPassword([]byte("vpass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ user, upstream string }{
		{"pinned@b.example", "a"}, {"v@a.example", ""}, {"v@z.example", ""}, {"plain", ""},
	} {
		cfg.Auth.Users = append(cfg.Auth.Users, config.MappedUser{User: u.user, PasswordHash: string(h),
			UpstreamUser: testUser, UpstreamPassword: testPass, Upstream: u.upstream})
	}
	return cfg, upA, upB
}

// TestRoutesMapAndDefault: a map entry's upstream wins over its domain, a
// listed domain goes to its upstream, and anything else to
// default_upstream; the session works on that upstream's mailboxes.
func TestRoutesMapAndDefault(t *testing.T) {
	cfg, upA, _ := twoMemRoutes(t)
	if err := directClient(t, upA.addr).Create("OnlyOnA", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cfg.Metrics.Address = "127.0.0.1:0"
	p := startProxy(t, cfg)
	tests := []struct {
		name, user string
		wantA      bool
	}{
		{"map entry's upstream beats its domain", "pinned@b.example", true},
		{"listed domain", "v@a.example", true},
		{"unlisted domain to the default", "v@z.example", false},
		{"no domain to the default", "plain", false},
	}
	outer := t
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := imapclient.DialInsecure(p.Addrs()[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			outer.Cleanup(func() { c.Close() }) // open until the metrics are read
			if err := c.Login(tt.user, "vpass").Wait(); err != nil {
				t.Fatalf("login %s: got %v, want OK", tt.user, err)
			}
			_, err = c.Select("OnlyOnA", nil).Wait()
			if gotA := err == nil; gotA != tt.wantA {
				t.Errorf("%s: SELECT OnlyOnA (a mailbox only upstream a has): got %v, want OK %v", tt.user, err, tt.wantA)
			}
		})
	}
	// Every virtual user maps to testUser: one account on each upstream.
	_, body := scrape(t, "http://"+p.MetricsAddr()+"/metrics")
	for _, series := range []string{`idlemux_upstream_accounts{upstream="a"}`, `idlemux_upstream_accounts{upstream="b"}`} {
		if got := metricValue(body, series); got != 1 {
			t.Errorf("%s: got %v, want 1", series, got)
		}
	}
}
