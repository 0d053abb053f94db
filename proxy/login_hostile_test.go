package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/dovecottest"
)

// dialFrom connects to addr from the loopback source address src (Linux
// routes all of 127.0.0.0/8 locally) and reads the greeting.
func dialFrom(t testing.TB, addr, src string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitLong}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReaderSize(c, 1<<16)}
	rc.line()
	return rc
}

// talk sends one line and returns the lines answered up to the tagged one,
// or up to the end of the connection, then marked "<closed>".
func (rc *rawConn) talk(tag, text string, wait time.Duration) []string {
	rc.c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(rc.c, "%s %s\r\n", tag, text); err != nil {
		return []string{"<closed>"}
	}
	var out []string
	for {
		rc.c.SetReadDeadline(time.Now().Add(wait))
		l, err := rc.r.ReadString('\n')
		if l != "" {
			out = append(out, strings.TrimRight(l, "\r\n"))
		}
		if err != nil {
			return append(out, "<closed>")
		}
		if strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
}

// addrFailures is how many failed logins the limiter counts for ip.
func addrFailures(p *Server, ip string) int {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	return p.lim.addrFails[netip.MustParseAddr(ip)].n
}

// TestHostileLongUserName (issue "Hostile input" P4): a 4 KiB or 50 kB
// user name gets, through idlemux, Dovecot's own answer to it (measured
// in the same test: BYE, then the connection closes), without any upstream
// login, and counts as a failed login with its delay.
func TestHostileLongUserName(t *testing.T) {
	dv := startDovecot(t)
	cfg := testConfig(dv.Addr)
	cfg.Limits.MaxLoginDelay = time.Second
	p := startProxy(t, cfg)
	// 50,000 bytes: imapserver itself refuses command lines over 50 KiB
	// (NO [SERVERBUG], before Login runs).
	for i, n := range []int{4 << 10, 50000} {
		t.Run(fmt.Sprintf("%dbytes", n), func(t *testing.T) {
			line := "LOGIN " + strings.Repeat("u", n) + " pw"
			direct := dialFrom(t, dv.Addr, "127.0.0.1").talk("a", line, waitLong)
			if want := []string{"* BYE Input buffer full, aborting", "<closed>"}; !slices.Equal(direct, want) {
				t.Fatalf("Dovecot directly: got %q, want %q (the reference changed)", direct, want)
			}
			logins := p.upStats().Logins
			start := time.Now()
			via := dialFrom(t, p.Addrs()[0], "127.0.0.1").talk("a", line, waitLong)
			took := time.Since(start)
			if !slices.Equal(via, direct) {
				t.Fatalf("through idlemux: got %q, want Dovecot's %q", via, direct)
			}
			if got := p.upStats().Logins - logins; got != 0 {
				t.Errorf("upstream logins for a %d-byte user name: got %d, want 0", n, got)
			}
			if got, want := addrFailures(p, "127.0.0.1"), i+1; got != want {
				t.Errorf("failures counted for the address: got %d, want %d", got, want)
			}
			if want := 90 * time.Millisecond << i; took < want {
				t.Errorf("answered after %v, want the failure delay (at least %v)", took, want)
			}
		})
	}
}

// TestHostileAbortedLoginCounts (P4): a login the upstream aborts (a
// 2000-byte password overflows Dovecot's 1 KiB login buffer: Dovecot
// closes the connection, as measured here directly) counts as a failed login with
// its delay. The client gets NO [UNAVAILABLE], not Dovecot's BYE: idlemux
// cannot tell why the upstream dropped the connection, and the session
// stays usable. The password is not remembered as bad: the same login is
// checked upstream again.
func TestHostileAbortedLoginCounts(t *testing.T) {
	dv := startDovecot(t)
	cfg := testConfig(dv.Addr)
	cfg.Limits.MaxLoginDelay = time.Second
	p := startProxy(t, cfg)
	line := "LOGIN " + testUser + " " + strings.Repeat("p", 2000)
	direct := dialFrom(t, dv.Addr, "127.0.0.1").talk("a", line, waitLong)
	if want := []string{"* BYE Input buffer full, aborting", "<closed>"}; !slices.Equal(direct, want) {
		t.Fatalf("Dovecot directly: got %q, want %q (the reference changed)", direct, want)
	}
	rc := dialFrom(t, p.Addrs()[0], "127.0.0.1")
	for i := range 2 {
		logins := p.upStats().Logins
		start := time.Now()
		via := rc.talk("a", line, waitLong)
		took := time.Since(start)
		if len(via) != 1 || !strings.HasPrefix(via[0], "a NO [UNAVAILABLE]") {
			t.Fatalf("attempt %d through idlemux: got %q, want a NO [UNAVAILABLE]", i+1, via)
		}
		if got := p.upStats().Logins - logins; got != 1 {
			t.Errorf("attempt %d: upstream logins %d, want 1 (not answered from the bad-password cache)", i+1, got)
		}
		if got := addrFailures(p, "127.0.0.1"); got != i+1 {
			t.Errorf("attempt %d: failures counted %d, want %d", i+1, got, i+1)
		}
		if want := 90 * time.Millisecond << i; took < want {
			t.Errorf("attempt %d answered after %v, want the failure delay (at least %v)", i+1, took, want)
		}
	}
}

// countingUpstream is a minimal IMAP server that refuses every LOGIN after
// hold and records how many LOGINs it served at once at most.
type countingUpstream struct {
	addr              string
	now, peak, logins atomic.Int64
	hold              time.Duration
}

func startCountingUpstream(t *testing.T, hold time.Duration) *countingUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &countingUpstream{addr: ln.Addr().String(), hold: hold}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); u.serve(c) }()
		}
	}()
	return u
}

func (u *countingUpstream) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "* OK [CAPABILITY IMAP4rev1 ID] ready\r\n")
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
		switch cmd, _, _ := strings.Cut(rest, " "); strings.ToUpper(cmd) {
		case "LOGIN":
			u.logins.Add(1)
			n := u.now.Add(1)
			for p := u.peak.Load(); n > p && !u.peak.CompareAndSwap(p, n); p = u.peak.Load() {
			}
			time.Sleep(u.hold)
			u.now.Add(-1)
			fmt.Fprintf(c, "%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", tag)
		case "LOGOUT":
			fmt.Fprintf(c, "* BYE\r\n%s OK\r\n", tag)
			return
		default:
			fmt.Fprintf(c, "%s BAD unexpected\r\n", tag)
		}
	}
}

// TestHostileParallelLoginsCapped (P4): 300 connections from one address,
// each with its own user name, at once: the upstream never sees more than
// limits.max_parallel_logins_per_ip logins at a time, at most
// max_queued_logins_per_ip more wait their turn, the rest are answered
// NO [UNAVAILABLE] at once; and the failure delay is served holding the
// address's slot, so it slows the address, not one connection.
func TestHostileParallelLoginsCapped(t *testing.T) {
	up := startCountingUpstream(t, 20*time.Millisecond)
	cfg := testConfig(up.addr)
	cfg.Limits.MaxLoginDelay = 50 * time.Millisecond
	cfg.Limits.MaxParallelLoginsPerIP = 4
	cfg.Limits.MaxQueuedLoginsPerIP = 40
	p := startProxy(t, cfg)
	const n = 300
	answers := make([]string, n)
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialFrom(t, p.Addrs()[0], "127.0.0.1")
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := rc.talk("a", fmt.Sprintf("LOGIN user%d wrong", i), 2*waitLong)
			answers[i] = l[len(l)-1]
		}()
	}
	wg.Wait()
	took := time.Since(start)
	refused, busy := 0, 0
	for i, a := range answers {
		switch {
		case strings.HasPrefix(a, "a NO [AUTHENTICATIONFAILED]"):
			refused++
		case strings.HasPrefix(a, "a NO [UNAVAILABLE]"):
			busy++
		default:
			t.Fatalf("connection %d: got %q, want NO [AUTHENTICATIONFAILED] or NO [UNAVAILABLE]", i, a)
		}
	}
	if peak := up.peak.Load(); peak > 4 {
		t.Errorf("upstream logins at once: got %d, want at most 4", peak)
	}
	if got := up.logins.Load(); got != int64(refused) || refused < 44 || refused > 100 {
		t.Errorf("upstream logins %d, refused %d, busy %d: want every refusal checked upstream once, 44 and more (4 + 40 queued) but far from 300", got, refused, busy)
	}
	// Each slot is held through its 50 ms delay: 4 slots serve at most 80
	// refusals a second, so the queued ones take at least refused/80 s.
	if min := time.Duration(refused) * time.Second / 80; took < min*9/10 {
		t.Errorf("%d refusals took %v, want at least %v (delays served in the address's slots)", refused, took, min)
	}
	t.Logf("300 parallel logins from one address: %d refused after an upstream check, %d NO [UNAVAILABLE], upstream peak %d, %v", refused, busy, up.peak.Load(), took)
}

// penaltyConf turns Dovecot's per-address auth penalty back on (dovecottest
// turns it off to keep tests fast): each failure from an address delays
// its next logins, up to 15 s.
const penaltyConf = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0600\n  }\n}\n"

// guessThenLogin sends 4 wrong passwords through the proxy from 127.0.0.3
// at once, then logs in rightly from 127.0.0.2, and returns how long that
// login took.
func guessThenLogin(t *testing.T, proxyAddr string) time.Duration {
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		rc := dialFrom(t, proxyAddr, "127.0.0.3")
		go func() {
			defer wg.Done()
			rc.talk("a", fmt.Sprintf("LOGIN %s wrong%d", testUser, i), 4*waitLong)
		}()
	}
	wg.Wait()
	rc := dialFrom(t, proxyAddr, "127.0.0.2")
	start := time.Now()
	l := rc.talk("b", "LOGIN "+testUser+" "+testPass, 4*waitLong)
	took := time.Since(start)
	if !strings.HasPrefix(l[len(l)-1], "b OK") {
		t.Fatalf("right password from 127.0.0.2: got %q", l)
	}
	return took
}

// TestHostileForwardedClientAddress (P4): with upstream.forward_client_address
// and Dovecot's login_trusted_networks covering idlemux, Dovecot sees each
// client's own address (its session title and auth log name it), so its
// per-address penalty for a guessing client no longer delays another
// client's login. Without forwarding, the same scenario makes the right
// login wait out the penalty every failure through idlemux earned.
func TestHostileForwardedClientAddress(t *testing.T) {
	for _, forward := range []bool{true, false} {
		t.Run(fmt.Sprintf("forward=%v", forward), func(t *testing.T) {
			extra := penaltyConf
			if forward {
				extra += "login_trusted_networks = 127.0.0.0/8\n"
			}
			dv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}, ExtraConf: extra})
			cfg := testConfig(dv.Addr)
			cfg.Limits.MaxLoginDelay = 50 * time.Millisecond
			cfg.Upstream.ResponseTimeout = 4 * waitLong // Dovecot's penalty reaches 15 s
			cfg.Upstream.ForwardClientAddress = forward
			p := startProxy(t, cfg)
			took := guessThenLogin(t, p.Addrs()[0])
			t.Logf("forward=%v: the right login from another address took %v", forward, took)
			if !forward {
				if took < time.Second {
					t.Fatalf("without forwarding the right login took %v: Dovecot's penalty no longer reproduces, the test below proves nothing", took)
				}
				return
			}
			if took > 5*time.Second {
				t.Errorf("right login from 127.0.0.2 took %v with the guesser at 127.0.0.3, want well under Dovecot's 15 s penalty", took)
			}
			titles, err := dv.Sessions(testUser)
			if err != nil || len(titles) == 0 || !strings.Contains(titles[0], " 127.0.0.2") {
				t.Errorf("Dovecot's sessions for %s: got %q (%v), want one from 127.0.0.2", testUser, titles, err)
			}
			log, _ := os.ReadFile(filepath.Join(dv.Dir, "dovecot.log"))
			if !strings.Contains(string(log), "("+testUser+",127.0.0.3,") {
				t.Errorf("Dovecot's log names no failed login from 127.0.0.3:\n%s", log)
			}
		})
	}
}

// TestHostileForwardedOverTLS: the client address reaches Dovecot over
// every upstream TLS mode: with STARTTLS the ID goes before STARTTLS
// (Dovecot keeps it across), with implicit TLS inside the TLS session.
func TestHostileForwardedOverTLS(t *testing.T) {
	dv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}, ExtraConf: "login_trusted_networks = 127.0.0.0/8\n"})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, dv.CertPEM, 0o600)
	for _, tc := range []struct {
		mode      config.TLSMode
		addr, src string
	}{
		{config.TLSStartTLS, dv.Addr, "127.0.0.4"},
		{config.TLSImplicit, dv.TLSAddr, "127.0.0.5"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			cfg := testConfig(tc.addr)
			cfg.Upstream.TLS, cfg.Upstream.CAFile, cfg.Upstream.ServerName = tc.mode, ca, "127.0.0.1"
			cfg.Upstream.ForwardClientAddress = true
			p := startProxy(t, cfg)
			l := dialFrom(t, p.Addrs()[0], tc.src).talk("a", "LOGIN "+testUser+" "+testPass, waitLong)
			if !strings.HasPrefix(l[len(l)-1], "a OK") {
				t.Fatalf("login over %s: got %q", tc.mode, l)
			}
			titles, err := dv.Sessions(testUser)
			if err != nil || !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, " "+tc.src+" ") || strings.Contains(s, " "+tc.src+"]") }) {
				t.Errorf("Dovecot's sessions: got %q (%v), want one from %s", titles, err, tc.src)
			}
		})
	}
}
