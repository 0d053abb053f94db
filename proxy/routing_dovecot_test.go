package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/dovecottest"
)

// routeUser is one user of one of the two Dovecots of the routing tests.
type routeUser struct {
	user, pass string
	dv         *dovecottest.Server
}

// startTwoUpstreams starts two private Dovecots, each knowing only its own
// domain's user, and an idlemux routing a.example to the first and
// b.example to the second, with no default_upstream.
func startTwoUpstreams(t *testing.T) (p *Server, a, b routeUser, logs *observer.ObservedLogs) {
	t.Helper()
	cfg, a, b := twoDovecotConfig(t)
	core, logs := observer.New(zap.InfoLevel)
	return startProxyLogging(t, cfg, zap.New(core)), a, b, logs
}

// twoDovecotConfig starts the two Dovecots of startTwoUpstreams and
// returns the config routing to them.
func twoDovecotConfig(t *testing.T) (cfg *config.Config, a, b routeUser) {
	t.Helper()
	a = routeUser{user: "alice@a.example", pass: "pass-a"}
	b = routeUser{user: "bob@b.example", pass: "pass-b"}
	a.dv = dovecottest.Start(t, dovecottest.Options{Users: map[string]string{a.user: a.pass}})
	b.dv = dovecottest.Start(t, dovecottest.Options{Users: map[string]string{b.user: b.pass}})
	cfg = testConfig(a.dv.Addr)
	ua, ub := cfg.Upstream, cfg.Upstream
	ua.Name, ua.Domains = "a", []string{"a.example"}
	ub.Name, ub.Domains, ub.Address = "b", []string{"b.example"}, b.dv.Addr
	cfg.Upstreams = []config.Upstream{ua, ub}
	cfg.Limits.MaxLoginDelay = 0
	return cfg, a, b
}

// TestDovecotRoutesByDomain: users of a.example and b.example log in
// through one idlemux and reach their own Dovecot: an APPEND through
// idlemux lands in the right one; then two clients of each user IDLE at
// once, each Dovecot holds one upstream IDLE for its user (the fan-out),
// and a delivery to each server reaches both of its user's clients.
func TestDovecotRoutesByDomain(t *testing.T) {
	p, a, b, _ := startTwoUpstreams(t)
	users := []routeUser{a, b}
	const perUser = 2
	var clients []*viewClient
	var owners []routeUser
	for _, u := range users {
		for j := 0; j < perUser; j++ {
			vc := dialView(t, p.Addrs()[0], fmt.Sprintf("%s#%d", u.user, j))
			if err := vc.c.Login(u.user, u.pass).Wait(); err != nil {
				t.Fatalf("%s: login through idlemux: got %v, want OK", u.user, err)
			}
			if j == 0 {
				appendMsg(t, vc.c, "INBOX", testMessage("through idlemux to "+u.user))
			}
			vc.selectBox("INBOX")
			clients, owners = append(clients, vc), append(owners, u)
		}
	}
	for _, u := range users {
		direct := u.dv.Dial(t, u.user, u.pass)
		data, err := direct.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got := *data.NumMessages; got != 1 {
			t.Errorf("%s: INBOX on its own Dovecot: got %d messages, want 1 (the APPEND made through idlemux)", u.user, got)
		}
	}
	idles := make([]*imapclient.IdleCommand, len(clients))
	for i, vc := range clients {
		idles[i] = vc.idle()
	}
	for _, u := range users {
		waitUpstreamIdles(t, u, 1)
	}
	for i, u := range users {
		if _, err := u.dv.Append(u.user, "INBOX", []byte(testMessage(fmt.Sprintf("direct %d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	for i, vc := range clients {
		vc.waitFor("EXISTS 2 from "+owners[i].user+"'s server", waitLong, func() bool { return len(vc.uids) == 2 }) // cond runs under vc.mu
		vc.done(idles[i])
	}
}

// waitUpstreamIdles waits until u's Dovecot shows want sessions of u in
// IDLE, and fails if it does not within waitLong.
func waitUpstreamIdles(t *testing.T, u routeUser, want int) {
	t.Helper()
	waitUpstreamSessions(t, u, "IDLE sessions", want, func(titles []string) (idle int) {
		for _, title := range titles {
			if strings.Contains(title, " IDLE]") {
				idle++
			}
		}
		return idle
	})
}

// waitUpstreamSessions waits until count, over the process titles of u's
// sessions on its Dovecot, is want, and fails if it is not within
// waitLong; what names the count in the failure.
func waitUpstreamSessions(t *testing.T, u routeUser, what string, want int, count func(titles []string) int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		titles, err := u.dv.Sessions(u.user)
		if err != nil {
			t.Fatal(err)
		}
		if count(titles) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %d %s on its Dovecot (%q), want %d", u.user, count(titles), what, titles, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDovecotRoutesUnknownDomainRefused: a login whose domain no upstream
// takes, with no default_upstream, is answered as Dovecot answers an
// unknown user, and the log names the domain, never the password.
func TestDovecotRoutesUnknownDomainRefused(t *testing.T) {
	p, a, _, logs := startTwoUpstreams(t)
	const login = "a LOGIN carol@c.example secret-pw"
	direct := dialRaw(t, a.dv.Addr).cmd("a", strings.TrimPrefix(login, "a "))
	proxied := dialRaw(t, p.Addrs()[0]).cmd("a", strings.TrimPrefix(login, "a "))
	want := []string{"a NO [AUTHENTICATIONFAILED] Authentication failed."}
	if !slices.Equal(direct, want) {
		t.Fatalf("Dovecot directly: got %q, want %q", direct, want)
	}
	if !slices.Equal(proxied, direct) {
		t.Errorf("through idlemux: got %q, want Dovecot's %q", proxied, direct)
	}
	entries := logs.FilterMessageSnippet("no upstream for the login's domain").All()
	if len(entries) != 1 {
		t.Fatalf("log: got %d \"no upstream\" lines, want 1", len(entries))
	}
	if got := entries[0].ContextMap()["domain"]; got != "c.example" {
		t.Errorf("log domain field: got %v, want c.example", got)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "secret-pw") {
			t.Errorf("log line %q %v holds the password", e.Message, e.ContextMap())
		}
	}
}
