package proxy

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// linesUntilQuiet reads what an idling rc is sent: the first line within
// waitLong, then every line until none comes for quiet (Dovecot batches
// a change's responses within its 500 ms notify delay).
func linesUntilQuiet(t *testing.T, rc *rawConn, quiet time.Duration) []string {
	t.Helper()
	out := []string{rc.line()}
	for {
		rc.c.SetReadDeadline(time.Now().Add(quiet))
		l, err := rc.r.ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return out
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, strings.TrimRight(l, "\r\n"))
	}
}

// withoutRecent is lines without "* n RECENT" for a non-zero n, and
// without keepalives (Dovecot sends its own at moments spread by client
// address, idlemux its own).
func withoutRecent(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		return strings.HasSuffix(l, " RECENT") && l != "* 0 RECENT" || l+"\r\n" == stillHere
	})
}

// wantLogin asserts that u logs in through addr and selects INBOX.
func wantLogin(t *testing.T, addr string, u routeUser) {
	t.Helper()
	rc := dialRaw(t, addr)
	for _, c := range []struct{ tag, cmd string }{{"a", "LOGIN " + u.user + " " + u.pass}, {"b", "SELECT INBOX"}} {
		if got := rc.cmd(c.tag, c.cmd); !strings.HasPrefix(got[len(got)-1], c.tag+" OK") {
			t.Errorf("%s: %s through idlemux: got %q, want %s OK", u.user, strings.Fields(c.cmd)[0], got[len(got)-1], c.tag)
		}
	}
}

// wantLogged asserts that logs hold exactly one line msg for upstream.
func wantLogged(t *testing.T, logs *observer.ObservedLogs, msg, upstream string) {
	t.Helper()
	n := 0
	for _, e := range logs.FilterMessage(msg).All() {
		if e.ContextMap()["upstream"] == upstream {
			n++
		}
	}
	if n != 1 {
		t.Errorf("log %q for upstream %s: got %d lines, want 1", msg, upstream, n)
	}
}

// TestDovecotReloadUpstreams: two of alice's sessions idle on Dovecot A
// through idlemux, next to one idling on A directly, while a reload
// removes upstream B and a message is APPENDed on A directly at the same
// time. Bob's session on B gets the BYE and idlemux logs out of B; alice's
// sessions get what the direct session gets, line for line, and nothing
// else. With B gone bob is refused as an unknown user; a reload adding B
// back lets him log in again, and one adding C with a new domain routes
// carol there. Each change is logged with the upstream's name.
func TestDovecotReloadUpstreams(t *testing.T) {
	cfg, a, b := twoDovecotConfig(t)
	c := routeUser{user: "carol@c.example", pass: "pass-c"}
	c.dv = dovecottest.Start(t, dovecottest.Options{Users: map[string]string{c.user: c.pass}})
	core, logs := observer.New(zap.InfoLevel)
	p := startProxyLogging(t, cfg, zap.New(core))
	addr := p.Addrs()[0]
	onA := []*rawConn{idleRaw(t, addr, a.user, a.pass), idleRaw(t, addr, a.user, a.pass)}
	direct := idleRaw(t, a.dv.Addr, a.user, a.pass)
	onB := idleRaw(t, addr, b.user, b.pass)
	waitUpstreamIdles(t, a, 2) // idlemux's watcher and the direct session
	waitUpstreamIdles(t, b, 1)

	mgrA := p.routes()[0].mgr
	loginsA := mgrA.Stats().Logins
	withoutB := *cfg
	withoutB.Upstreams = cfg.Upstreams[:1]
	appended := make(chan error, 1)
	go func() {
		_, err := a.dv.Append(a.user, "INBOX", []byte(testMessage("during the reload")))
		appended <- err
	}()
	if err := p.ApplyConfig(&withoutB); err != nil {
		t.Fatalf("reload removing b: got %v, want nil", err)
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	wantBye(t, "bob's session on removed upstream b", onB)
	want := linesUntilQuiet(t, direct, time.Second)
	if !slices.ContainsFunc(want, func(l string) bool { return strings.HasSuffix(l, " EXISTS") }) {
		t.Fatalf("Dovecot A directly: got %q, want an EXISTS", want)
	}
	// \Recent goes to one session only (RFC 3501 2.3.2): Dovecot gives
	// it to the direct session or to idlemux's watcher, and idlemux to one
	// of its sessions at most. Everything else is Dovecot's, line for line.
	recent := 0
	for i, rc := range onA {
		got := linesUntilQuiet(t, rc, time.Second)
		recent += strings.Count(strings.Join(got, "\n"), " RECENT") - strings.Count(strings.Join(got, "\n"), "* 0 RECENT")
		if !slices.Equal(withoutRecent(got), withoutRecent(want)) {
			t.Errorf("alice's session %d through idlemux: got %q, want Dovecot's %q (RECENT aside)", i, got, want)
		}
	}
	if recent > 1 {
		t.Errorf("alice's sessions through idlemux: got %d with a non-zero RECENT, want at most 1", recent)
	}
	if p.routes()[0].mgr != mgrA {
		t.Errorf("upstream a's manager: got a new one, want the same")
	}
	if got := mgrA.Stats().Logins; got != loginsA {
		t.Errorf("logins idlemux made to Dovecot A across the reload: got %d more, want none (its pools and watcher are untouched)", got-loginsA)
	}
	waitUpstreamSessions(t, b, "sessions after b was removed", 0, func(titles []string) int { return len(titles) })
	wantLogged(t, logs, "upstream removed: its sessions were closed", "b")

	refused := dialRaw(t, addr).cmd("a", "LOGIN "+b.user+" "+b.pass)
	if got, want := refused[len(refused)-1], "a NO [AUTHENTICATIONFAILED] Authentication failed."; got != want {
		t.Errorf("bob with b removed: got %q, want %q", got, want)
	}

	if err := p.ApplyConfig(cfg); err != nil {
		t.Fatalf("reload adding b back: got %v, want nil", err)
	}
	wantLogin(t, addr, b)
	wantLogged(t, logs, "upstream added", "b")

	withC := *cfg
	uc := cfg.Upstreams[0]
	uc.Name, uc.Domains, uc.Address = "c", []string{"c.example"}, c.dv.Addr
	withC.Upstreams = append(slices.Clone(cfg.Upstreams), uc)
	if err := p.ApplyConfig(&withC); err != nil {
		t.Fatalf("reload adding c: got %v, want nil", err)
	}
	wantLogin(t, addr, c)
	wantLogged(t, logs, "upstream added", "c")

	for i, rc := range append(onA, direct) {
		wantQuietIdle(t, fmt.Sprintf("alice's session %d after the reloads", i), rc)
	}
}
