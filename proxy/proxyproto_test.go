package proxy

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/config"
)

// startObservedProxy starts a proxy whose logs the test can inspect.
func startObservedProxy(t *testing.T, cfg *config.Config) (*Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	return startProxyLogging(t, cfg, zap.New(core)), logs
}

// greeting dials addr, sends prefix, and returns the first line (or "").
func greeting(t *testing.T, addr string, prefix []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(prefix)
	c.SetReadDeadline(time.Now().Add(waitLong))
	l, _ := bufio.NewReader(c).ReadString('\n')
	return l
}

func remoteSeen(logs *observer.ObservedLogs, want string) bool {
	for _, e := range logs.FilterMessage("session started").All() {
		if r, ok := e.ContextMap()["remote"].(string); ok && strings.HasPrefix(r, want+":") {
			return true
		}
	}
	return false
}

// TestProxyProtocol: v1 and v2 headers from a trusted source give the real
// client address; an untrusted source and a malformed header are closed
// without a greeting; none of it stops the listener.
func TestProxyProtocol(t *testing.T) {
	up := startMemUpstream(t)
	cfg := testConfig(up.addr)
	cfg.Listeners = []config.Listener{
		{Address: "127.0.0.1:0", InsecureAuth: true, ProxyProtocol: true, ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{Address: "127.0.0.1:0", InsecureAuth: true, ProxyProtocol: true, ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}
	p, logs := startObservedProxy(t, cfg)
	trusted, untrusted := p.Addrs()[0], p.Addrs()[1]

	v2 := proxyproto.HeaderProxyFromAddrs(2,
		&net.TCPAddr{IP: net.ParseIP("198.51.100.9"), Port: 40000},
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 143})
	v2bytes, err := v2.Format()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		addr       string
		prefix     []byte
		wantGreet  bool
		wantRemote string
	}{
		{"v1 from trusted", trusted, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 143\r\n"), true, "203.0.113.7"},
		{"v2 from trusted", trusted, v2bytes, true, "198.51.100.9"},
		{"malformed from trusted", trusted, []byte("PROXY GARBAGE\r\n"), false, ""},
		{"no header from trusted", trusted, []byte("a LOGIN x y\r\n"), false, ""},
		{"untrusted source", untrusted, []byte("PROXY TCP4 203.0.113.8 127.0.0.1 5555 143\r\n"), false, ""},
		{"listener still serves", trusted, []byte("PROXY TCP4 203.0.113.10 127.0.0.1 5555 143\r\n"), true, "203.0.113.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := greeting(t, tt.addr, tt.prefix)
			if greeted := strings.HasPrefix(got, "* OK"); greeted != tt.wantGreet {
				t.Fatalf("got first line %q, want greeting %v", got, tt.wantGreet)
			}
			if tt.wantRemote != "" && !remoteSeen(logs, tt.wantRemote) {
				t.Fatalf("no session logged with remote %s", tt.wantRemote)
			}
		})
	}
	// Both bad headers came from 127.0.0.1: logged once a minute
	// (TestProxyRefusalsLogged).
	if logs.FilterMessageSnippet("without a valid PROXY header").Len() != 1 {
		t.Fatalf("malformed and missing headers were not logged once")
	}
	if logs.FilterMessageSnippet("not in proxy_trusted").Len() != 1 {
		t.Fatalf("the untrusted source was not logged")
	}
}

// TestProxyProtocolIdleFastPath: a client behind a PROXY header idles on
// the fast path (its socket is under the proxyproto.Conn) and gets its
// EXISTS from there.
func TestProxyProtocolIdleFastPath(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("seed"))
	cfg := testConfig(up.addr)
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", InsecureAuth: true, ProxyProtocol: true,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	p := startProxy(t, cfg)
	conn, err := net.Dial("tcp", p.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 143\r\n"))
	conn.SetDeadline(time.Now().Add(waitLong))
	c, err := startIdler(conn)
	if err != nil {
		t.Fatal(err)
	}
	waitFastIdle(t, p)
	appendMsg(t, direct, "INBOX", testMessage("pushed"))
	got := make(chan uint32, 4)
	go c.exists(func(n uint32) { got <- n })
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("EXISTS: got %d, want 2", n)
		}
	case <-time.After(waitLong):
		t.Fatal("no EXISTS through the PROXY-protocol connection")
	}
}
