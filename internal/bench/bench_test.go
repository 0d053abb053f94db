package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/memidle"
	"github.com/idlemux/idlemux/proxy"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:143", true}, {"127.9.9.9:1", true}, {"[::1]:143", true}, {"localhost:1143", true},
		{"10.0.0.1:143", false}, {"192.168.1.1:143", false}, {"example.com:143", false},
	}
	for _, tt := range tests {
		if err := CheckLoopback(tt.addr); (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q): got %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

// TestRunAgainstInProcessProxy: a small run through a real idlemux in front
// of an in-memory upstream sees every message on every client once.
func TestRunAgainstInProcessProxy(t *testing.T) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("u", "p")
	u.Create("INBOX", nil)
	mem.AddUser(u)
	up := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return memidle.Wrap(mem.NewSession()), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(ln)
	defer up.Close()

	cfg := config.Default()
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", TLS: config.TLSNone, InsecureAuth: true}}
	cfg.Upstream.Address, cfg.Upstream.TLS = ln.Addr().String(), config.TLSNone
	cfg.Metrics.Address = "127.0.0.1:0"
	p, err := proxy.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	}()

	res, err := Run(context.Background(), Options{
		Proxy: p.Addrs()[0], User: "u", Password: "p", Clients: 50,
		Upstream: ln.Addr().String(), UpstreamUser: "u", UpstreamPassword: "p",
		Messages: 5, Rate: 20, Wait: 10 * time.Second,
		MetricsURL: "http://" + p.MetricsAddr() + "/metrics",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 50 || res.Missed != 0 || res.Dups != 0 || res.Deliveries != 250 {
		t.Fatalf("got %+v, want 50 connected, 250 deliveries, none missed or duplicated", res)
	}
	if res.UpstreamConnections < 1 || res.UpstreamConnections > 5 || res.LatencyMax <= 0 {
		t.Fatalf("got upstream connections %v, max latency %v", res.UpstreamConnections, res.LatencyMax)
	}
}
