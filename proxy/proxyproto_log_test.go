package proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/idlemux/idlemux/config"
)

// TestProxyRefusalsLogged: connections from a source outside proxy_trusted
// are closed without a greeting and logged, once a minute per source
// address however many arrive, each line counting those left unlogged.
func TestProxyRefusalsLogged(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", InsecureAuth: true, ProxyProtocol: true,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	p, logs := startObservedProxy(t, cfg)
	const n = 50
	for i := range n {
		if got := greeting(t, p.Addrs()[0], []byte("PROXY TCP4 203.0.113.8 127.0.0.1 5555 143\r\n")); got != "" {
			t.Fatalf("connection %d from an untrusted source: got %q, want it closed", i, got)
		}
	}
	deadline := time.Now().Add(waitLong)
	for logs.FilterMessageSnippet("not in proxy_trusted").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := logs.FilterMessageSnippet("not in proxy_trusted").Len(); got != 1 {
		t.Fatalf("%d connections from one untrusted address: got %d log lines, want 1", n, got)
	}
}

func TestLogLimiter(t *testing.T) {
	var ll logLimiter
	t0 := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	steps := []struct {
		name           string
		ip             netip.Addr
		at             time.Duration
		log            bool
		wantSuppressed uint64
	}{
		{"first from a", a, 0, true, 0},
		{"a again at once", a, time.Second, false, 0},
		{"a within the minute", a, 59 * time.Second, false, 0},
		{"first from b", b, 59 * time.Second, true, 2},
		{"a after the minute", a, 61 * time.Second, true, 0},
	}
	for _, s := range steps {
		log, sup := ll.allow(s.ip, t0.Add(s.at))
		if log != s.log || sup != s.wantSuppressed {
			t.Errorf("%s: got log %v suppressed %d, want %v %d", s.name, log, sup, s.log, s.wantSuppressed)
		}
	}
}

// TestLogLimiterBounded: a flood from more addresses than the table holds
// keeps it at logAddrs entries; new addresses are logged again once the
// old entries have expired.
func TestLogLimiterBounded(t *testing.T) {
	var ll logLimiter
	t0 := time.Unix(1000, 0)
	logged := 0
	for i := range 3 * logAddrs {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if log, _ := ll.allow(ip, t0); log {
			logged++
		}
	}
	if logged != logAddrs || len(ll.last) != logAddrs {
		t.Fatalf("%d addresses at once: logged %d, table %d; want %d and %d", 3*logAddrs, logged, len(ll.last), logAddrs, logAddrs)
	}
	log, sup := ll.allow(netip.MustParseAddr("192.0.2.9"), t0.Add(logEvery))
	if !log || sup != 2*logAddrs {
		t.Fatalf("a new address a minute later: got log %v suppressed %d, want true %d", log, sup, 2*logAddrs)
	}
	if len(ll.last) != 1 {
		t.Fatalf("table after expiry: %d entries, want 1", len(ll.last))
	}
}
