package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/faultrelay"
)

// quietFor is how long a session that a reload must not touch is watched
// for stray bytes: a BYE is written while ApplyConfig runs, so anything
// the reload sends is on the wire well within it.
const quietFor = 300 * time.Millisecond

// idleRaw logs user in through addr, selects INBOX and starts IDLE.
func idleRaw(t *testing.T, addr, user, pass string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr)
	if got := rc.cmd("a", "LOGIN "+user+" "+pass); !strings.HasPrefix(got[len(got)-1], "a OK") {
		t.Fatalf("%s: LOGIN: got %q, want a OK", user, got)
	}
	rc.cmd("b", "SELECT INBOX")
	fmt.Fprintf(rc.c, "c IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("%s: IDLE: got %q, want a continuation", user, l)
	}
	return rc
}

// wantQuietIdle asserts that nothing but a keepalive reaches rc within
// quietFor and that its IDLE still ends with OK: the reload left the
// session alone. (Dovecot spreads its keepalives over the interval by
// client address, so a direct session may get one at any moment.)
func wantQuietIdle(t *testing.T, name string, rc *rawConn) {
	t.Helper()
	deadline := time.Now().Add(quietFor)
	for {
		rc.c.SetReadDeadline(deadline)
		l, err := rc.r.ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		if err != nil || l != stillHere {
			t.Errorf("%s: during the reload got %q (%v), want nothing", name, l, err)
			break
		}
	}
	fmt.Fprintf(rc.c, "DONE\r\n")
	if got := rc.line(); !strings.HasPrefix(got, "c OK") {
		t.Errorf("%s: DONE after the reload: got %q, want c OK", name, got)
	}
}

// wantBye asserts that rc got the reload's BYE and then the end of the
// connection.
func wantBye(t *testing.T, name string, rc *rawConn) {
	t.Helper()
	want := "* BYE " + byeUpstreamRemoved
	if got := rc.line(); got != want {
		t.Errorf("%s: got %q, want %q", name, got, want)
	}
	rc.c.SetReadDeadline(time.Now().Add(waitLong))
	if l, err := rc.r.ReadString('\n'); err == nil {
		t.Errorf("%s: after BYE got %q, want the connection closed", name, l)
	}
}

// TestApplyConfigUpstreams: a reload adds, removes and changes upstreams
// under idling sessions. A session on an unchanged upstream sees nothing
// and keeps its manager; one on a removed or changed upstream gets BYE
// (ours: Dovecot itself never reconfigures under a session, so there is
// no direct wire to compare with); new logins follow the new routing.
func TestApplyConfigUpstreams(t *testing.T) {
	tests := []struct {
		name string
		// change edits the next config; c is a third memory upstream.
		change func(next *config.Config, c *memUpstream)
		// byeB: the session on b gets BYE; zLandsOn: the upstream a
		// new login of v@z.example reaches ("a", "b" or "c").
		byeB     bool
		zLandsOn string
	}{
		{"b removed", func(n *config.Config, _ *memUpstream) {
			n.Upstreams, n.DefaultUpstream = n.Upstreams[:1], "a"
		}, true, "a"},
		{"b's address changed", func(n *config.Config, c *memUpstream) {
			n.Upstreams[1].Address = c.addr
		}, true, "c"},
		{"b's domains changed only", func(n *config.Config, _ *memUpstream) {
			n.Upstreams[1].Domains = []string{"y.example"}
		}, false, "b"},
		{"c added with a new domain", func(n *config.Config, c *memUpstream) {
			uc := n.Upstreams[0]
			uc.Name, uc.Domains, uc.Address = "c", []string{"z.example"}, c.addr
			n.Upstreams = append(n.Upstreams, uc)
		}, false, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, upA, upB := twoMemRoutes(t)
			upC := startMemUpstream(t)
			for _, u := range []struct {
				up  *memUpstream
				box string
			}{{upA, "OnlyOnA"}, {upB, "OnlyOnB"}, {upC, "OnlyOnC"}} {
				if err := directClient(t, u.up.addr).Create(u.box, nil).Wait(); err != nil {
					t.Fatal(err)
				}
			}
			p := startProxy(t, cfg)
			onA := idleRaw(t, p.Addrs()[0], "v@a.example", "vpass")
			onB := idleRaw(t, p.Addrs()[0], "v@z.example", "vpass")
			mgrA := p.routes()[0].mgr

			next := *cfg
			next.Upstreams = append([]config.Upstream(nil), cfg.Upstreams...)
			tt.change(&next, upC)
			if err := p.ApplyConfig(&next); err != nil {
				t.Fatalf("ApplyConfig: got %v, want nil", err)
			}
			if got := p.routes()[0].mgr; got != mgrA {
				t.Errorf("upstream a's manager: got a new one, want the same (a is unchanged)")
			}
			if tt.byeB {
				wantBye(t, "session on b", onB)
			} else {
				wantQuietIdle(t, "session on b", onB)
			}
			wantQuietIdle(t, "session on a", onA)

			rc := dialRaw(t, p.Addrs()[0])
			rc.cmd("a", "LOGIN v@z.example vpass")
			for _, up := range []string{"a", "b", "c"} {
				got := rc.cmd("s"+up, "SELECT OnlyOn"+strings.ToUpper(up))
				if ok := strings.HasPrefix(got[len(got)-1], "s"+up+" OK"); ok != (up == tt.zLandsOn) {
					t.Errorf("new login of v@z.example: SELECT OnlyOn%s answered %q, want OK only on upstream %s", strings.ToUpper(up), got[len(got)-1], tt.zLandsOn)
				}
			}
		})
	}
}

// TestApplyConfigUpstreamsRejectedWhole: a reload whose new upstream
// cannot be set up (its CA file is not a certificate) changes nothing:
// the routing is the same and the sessions keep running.
func TestApplyConfigUpstreamsRejectedWhole(t *testing.T) {
	cfg, _, _ := twoMemRoutes(t)
	p := startProxy(t, cfg)
	onB := idleRaw(t, p.Addrs()[0], "v@z.example", "vpass")
	before := p.dyn()
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := *cfg
	uc := cfg.Upstreams[0]
	uc.Name, uc.Domains, uc.TLS, uc.CAFile = "c", []string{"c.example"}, config.TLSImplicit, bad
	next.Upstreams = []config.Upstream{cfg.Upstreams[0], uc} // b removed too
	next.DefaultUpstream = "a"
	if err := p.ApplyConfig(&next); err == nil || !strings.Contains(err.Error(), "nothing was applied") {
		t.Fatalf("ApplyConfig: got %v, want an error saying nothing was applied", err)
	}
	if p.dyn() != before {
		t.Errorf("settings and routing: got new ones, want the old ones kept")
	}
	wantQuietIdle(t, "session on b", onB)
}

// twoPassRoutes is a pass-through config over two memory upstreams named
// b (the default) and c; testUser has no domain, so default_upstream
// alone routes it.
func twoPassRoutes(t testing.TB) (cfg *config.Config, upB, upC *memUpstream) {
	t.Helper()
	upB, upC = startMemUpstream(t), startMemUpstream(t)
	cfg = testConfig(upB.addr)
	ub, uc := cfg.Upstream, cfg.Upstream
	ub.Name, uc.Name, uc.Address = "b", "c", upC.addr
	uc.Domains = []string{"c.example"}
	cfg.Upstreams, cfg.DefaultUpstream = []config.Upstream{ub, uc}, "b"
	cfg.Limits.MaxLoginDelay = 0
	return cfg, upB, upC
}

// TestReloadLimitsByUpstream: the per-user limits are kept per (upstream,
// user). With one connection per user allowed, a session on b does not
// count against the same login routed to c by a reload; a password b
// refused is not answered locally once c takes the login: c is asked.
func TestReloadLimitsByUpstream(t *testing.T) {
	tests := []struct {
		name      string
		pass      string // the second login's password
		wantLast  string // the second login's tagged answer, prefix
		wantCAsks int64  // LOGINs c sees
		refusedBy []any  // the upstream field of each "authentication failed" line
	}{
		{"connection limit per upstream", testPass, "b OK", 1, nil},
		{"bad password remembered per upstream", "wrong-pw", "b NO [AUTHENTICATIONFAILED]", 1, []any{"b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, upC := twoPassRoutes(t)
			cfg.Limits.MaxConnectionsPerUser = 1
			core, logs := observer.New(zap.InfoLevel)
			p := startProxyLogging(t, cfg, zap.New(core))
			first := dialRaw(t, p.Addrs()[0])
			if tt.pass == testPass {
				first.cmd("a", "LOGIN "+testUser+" "+testPass) // holds b's one connection
			} else {
				first.cmd("a", "LOGIN "+testUser+" "+tt.pass) // b refuses: remembered as bad
			}
			next := *cfg
			next.DefaultUpstream = "c"
			if err := p.ApplyConfig(&next); err != nil {
				t.Fatal(err)
			}
			before := upC.logins.Load()
			got := dialRaw(t, p.Addrs()[0]).cmd("b", "LOGIN "+testUser+" "+tt.pass)
			if last := got[len(got)-1]; !strings.HasPrefix(last, tt.wantLast) {
				t.Errorf("second login, now routed to c: got %q, want %s", last, tt.wantLast)
			}
			if n := upC.logins.Load() - before; n != tt.wantCAsks {
				t.Errorf("LOGINs upstream c saw: got %d, want %d", n, tt.wantCAsks)
			}
			var refusedBy []any
			for _, e := range logs.FilterMessage("authentication failed").All() {
				refusedBy = append(refusedBy, e.ContextMap()["upstream"])
			}
			if want := tt.refusedBy; !slices.Equal(refusedBy, want) {
				t.Errorf("\"authentication failed\" log lines' upstream: got %v, want %v", refusedBy, want)
			}
		})
	}
}

// TestReloadMetricsByUpstream: the account series carry the upstream's
// name, and a reload that removes an upstream ends its series.
func TestReloadMetricsByUpstream(t *testing.T) {
	cfg, _, _ := twoPassRoutes(t)
	cfg.Metrics.Address = "127.0.0.1:0"
	p := startProxy(t, cfg)
	idleRaw(t, p.Addrs()[0], testUser, testPass) // on b, the default
	_, body := scrape(t, "http://"+p.MetricsAddr()+"/metrics")
	for _, tt := range []struct {
		series string
		want   float64
	}{
		{`idlemux_upstream_accounts{upstream="b"}`, 1},
		{`idlemux_upstream_accounts{upstream="c"}`, 0},
		{`idlemux_mailboxes_watched{upstream="b"}`, 1},
		{`idlemux_upstream_connections{role="watcher",upstream="b"}`, 1},
		{`idlemux_upstream_logins_total{reason="check",upstream="b"}`, 1},
		{`idlemux_upstream_logins_total{reason="check",upstream="c"}`, 0},
	} {
		if got := metricValue(body, tt.series); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.series, got, tt.want)
		}
	}
	next := *cfg
	next.Upstreams, next.DefaultUpstream = cfg.Upstreams[1:], "c"
	if err := p.ApplyConfig(&next); err != nil {
		t.Fatal(err)
	}
	_, body = scrape(t, "http://"+p.MetricsAddr()+"/metrics")
	if strings.Contains(body, `upstream="b"`) {
		t.Errorf("/metrics after b was removed: got series of b, want none")
	}
	if got := metricValue(body, `idlemux_upstream_accounts{upstream="c"}`); got != 0 {
		t.Errorf(`idlemux_upstream_accounts{upstream="c"}: got %v, want 0`, got)
	}
}

// TestReloadDuringLogin: a login whose upstream a reload changes while
// the upstream is still answering it is tried again under the new
// settings: the client sees OK and works on the new upstream, as if it had
// logged in a moment later. The old address is a relay that delays each
// chunk, so the login is surely in flight when the reload runs.
func TestReloadDuringLogin(t *testing.T) {
	cfg, upB, upC := twoPassRoutes(t)
	if err := directClient(t, upC.addr).Create("OnlyOnC", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	slow := faultrelay.Start(t, upB.addr)
	slow.SetDelay(300 * time.Millisecond)
	cfg.Upstreams[0].Address = slow.Addr()
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	fmt.Fprintf(rc.c, "a LOGIN %s %s\r\n", testUser, testPass)
	for deadline := time.Now().Add(waitLong); slow.Conns() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the login never reached upstream b")
		}
	}
	next := *cfg
	next.Upstreams = slices.Clone(cfg.Upstreams)
	next.Upstreams[0].Address = upC.addr // b changed: now the server c is
	if err := p.ApplyConfig(&next); err != nil {
		t.Fatal(err)
	}
	if got := rc.answer("a"); !strings.HasPrefix(got[len(got)-1], "a OK") {
		t.Fatalf("login in flight during the reload: got %q, want a OK", got)
	}
	if got := rc.cmd("b", "SELECT OnlyOnC"); !strings.HasPrefix(got[len(got)-1], "b OK") {
		t.Errorf("SELECT of a mailbox only the new b has: got %q, want b OK", got)
	}
}

// TestUpstreamKeyChanges: the log line of a changed upstream names the
// keys as the config file spells them.
func TestUpstreamKeyChanges(t *testing.T) {
	base := config.Default().Upstream
	tests := []struct {
		name   string
		change func(u *config.Upstream)
		want   []string
	}{
		{"address and tls", func(u *config.Upstream) { u.Address, u.TLS = "127.0.0.1:1", config.TLSStartTLS }, []string{"address", "tls"}},
		{"acronym before a word", func(u *config.Upstream) { u.CAFile = "/x.pem" }, []string{"ca_file"}},
		{"acronym first", func(u *config.Upstream) { u.TLSInsecureSkipVerify = true }, []string{"tls_insecure_skip_verify"}},
		{"several words", func(u *config.Upstream) { u.MaxConnectionsPerAccount++ }, []string{"max_connections_per_account"}},
		{"a list", func(u *config.Upstream) { u.Capabilities = []string{"IDLE"} }, []string{"capabilities"}},
		{"nothing", func(*config.Upstream) {}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base
			tt.change(&next)
			if got := upstreamKeyChanges(base, next); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
