package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestConnectionLimits: past limits.max_connections_per_ip a new connection
// is greeted with BYE; past max_connections_per_user the login gets BYE.
func TestConnectionLimits(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Limits.MaxConnectionsPerIP = 2
	cfg.Limits.MaxConnectionsPerUser = 1
	p := startProxy(t, cfg)
	addr := p.Addrs()[0]

	a := dialRaw(t, addr)
	if l := a.cmd("a", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "a OK") {
		t.Fatalf("first login: %q", l)
	}
	b := dialRaw(t, addr)
	lines := b.cmdUntilClose("b", "LOGIN "+testUser+" "+testPass)
	if !strings.Contains(strings.Join(lines, "\n"), "* BYE Too many connections for this user") {
		t.Fatalf("second login of the user: got %q, want * BYE Too many connections for this user", lines)
	}
	b.c.Close()
	_ = dialRaw(t, addr) // second connection from this address: allowed
	if got := greeting(t, addr, nil); !strings.HasPrefix(got, "* BYE Too many connections from your address") {
		t.Fatalf("third connection from one address: got %q, want * BYE", got)
	}
}

// TestLoginTimeout: a connection that never logs in is closed.
func TestLoginTimeout(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Limits.LoginTimeout = 300 * time.Millisecond
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "NOOP") // activity does not count: only a login does
	lines := rc.cmdUntilClose("b", "CAPABILITY")
	for len(lines) > 0 && !strings.HasPrefix(lines[len(lines)-1], "* BYE") {
		more := rc.cmdUntilClose("c", "NOOP")
		if len(more) == 0 {
			break
		}
		lines = append(lines, more...)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "* BYE Login timeout") {
		t.Fatalf("unauthenticated connection: got %q, want * BYE Login timeout", lines)
	}
}

// TestFailedLoginsThrottled: repeated wrong passwords get growing delays
// and reach the upstream once; the right password still works at once.
func TestFailedLoginsThrottled(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Limits.MaxLoginDelay = 400 * time.Millisecond
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	before := up.logins.Load()
	var took []time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		if l := rc.cmd("a", "LOGIN "+testUser+" guess"); !strings.Contains(l[len(l)-1], "AUTHENTICATIONFAILED") {
			t.Fatalf("wrong password: got %q", l)
		}
		took = append(took, time.Since(start))
	}
	if n := up.logins.Load() - before; n != 1 {
		t.Fatalf("upstream saw %d logins for 5 identical wrong passwords, want 1", n)
	}
	// 100, 200, 400 (capped), 400, 400 ms.
	if took[0] < 90*time.Millisecond || took[2] < 350*time.Millisecond || took[4] > 2*time.Second {
		t.Fatalf("delays %v, want growing from 100 ms to the 400 ms cap", took)
	}
	if l := rc.cmd("b", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "b OK") {
		t.Fatalf("right password after failures: %q", l)
	}
}

// TestAppendLimit: APPENDLIMIT is advertised and a larger APPEND refused
// before its literal is read.
func TestAppendLimit(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Limits.AppendLimit = 1000
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	l := rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	if !strings.Contains(l[len(l)-1], "APPENDLIMIT=1000") {
		t.Fatalf("capabilities after login: %q, want APPENDLIMIT=1000", l)
	}
	lines := rc.cmd("b", "APPEND INBOX {2000}")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "b NO [TOOBIG]") {
		t.Fatalf("APPEND over the limit: got %q, want NO [TOOBIG]", lines)
	}
}

// TestGuessingElsewhereDoesNotLockOutUser: wrong passwords flooding in from
// one address slow that address only; the real user logging in from
// another address gets in at once.
func TestGuessingElsewhereDoesNotLockOutUser(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Limits.MaxLoginDelay = 2 * time.Second
	p := startProxy(t, cfg)
	attacker := dialRaw(t, p.Addrs()[0]) // from 127.0.0.1
	for i := 0; i < 4; i++ {
		attacker.cmd("a", "LOGIN "+testUser+" guess")
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", p.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	real := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	real.line()
	start := time.Now()
	if l := real.cmd("b", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "b OK") {
		t.Fatalf("real user from another address: %q", l)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("real user from another address waited %v behind the attacker's delays", took)
	}
}
