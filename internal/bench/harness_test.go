package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/memidle"
	"github.com/idlemux/idlemux/internal/testcert"
	"github.com/idlemux/idlemux/proxy"
)

// A test binary started with workerEnv set is a bench worker, as the
// idlemux binary is with `bench --worker`; with dieEnv=N it exits, status
// 3, as soon as the parent sends more than N lines.
const (
	workerEnv = "IDLEMUX_BENCH_TEST_WORKER"
	dieEnv    = "IDLEMUX_BENCH_TEST_WORKER_DIE_AFTER"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "" {
		os.Exit(m.Run())
	}
	var in io.Reader = os.Stdin
	if n, err := strconv.Atoi(os.Getenv(dieEnv)); err == nil {
		in = &dieReader{r: os.Stdin, lines: n}
	}
	if err := ServeWorker(in, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "test worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// dieReader kills the process on the first byte after lines newlines.
type dieReader struct {
	r     io.Reader
	lines int
}

func (d *dieReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	for _, b := range p[:n] {
		if d.lines == 0 {
			fmt.Fprintln(os.Stderr, "test worker dying as asked")
			os.Exit(3)
		}
		if b == '\n' {
			d.lines--
		}
	}
	return n, err
}

// testWorkers runs this test binary as the worker; the die'th worker
// started (counting from 1) gets env too.
func testWorkers(die int, env ...string) func([]string) *exec.Cmd {
	var started atomic.Int64
	return func([]string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		if int(started.Add(1)) == die {
			cmd.Env = append(cmd.Env, env...)
		}
		return cmd
	}
}

// setup is an in-memory upstream with user u/p and an in-process idlemux
// in front of it, listening plaintext, implicit TLS and STARTTLS.
type setup struct {
	plain, implicit, starttls string
	upstream, metrics         string
	caFile                    string // the listeners' self-signed certificate
}

func startSetup(t *testing.T) *setup {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("u", "p")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	up := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return memidle.Wrap(mem.NewSession()), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testcert.Write(t, cert, key, "bench", "127.0.0.1")
	cfg := config.Default()
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
	cfg.Listeners = []config.Listener{
		{Address: "127.0.0.1:0", TLS: config.TLSNone, InsecureAuth: true},
		{Address: "127.0.0.1:0", TLS: config.TLSImplicit},
		{Address: "127.0.0.1:0", TLS: config.TLSStartTLS},
	}
	cfg.Upstream.Address, cfg.Upstream.TLS = ln.Addr().String(), config.TLSNone
	cfg.Metrics.Address = "127.0.0.1:0"
	p, err := proxy.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	a := p.Addrs()
	return &setup{
		plain: a[0], implicit: a[1], starttls: a[2],
		upstream: ln.Addr().String(), metrics: "http://" + p.MetricsAddr() + "/metrics", caFile: cert,
	}
}

// options for n clients on the plaintext listener and m messages.
func (s *setup) options(n, m int) Options {
	return Options{
		Proxy: s.plain, User: "u", Password: "p", Clients: n, Connecting: 100,
		Upstream: s.upstream, UpstreamUser: "u", UpstreamPassword: "p",
		Messages: m, Rate: 20, Wait: 10 * time.Second,
	}
}

// checkComplete asserts every client connected and saw every message once,
// with plausible latencies: positive, and within the wait.
func checkComplete(t *testing.T, res *Result, err error, o Options) {
	t.Helper()
	if err != nil {
		t.Fatalf("run: %v (result %+v)", err, res)
	}
	if res.Connected != o.Clients || res.Missed != 0 || res.Dups != 0 || res.Deliveries != o.Clients*o.Messages {
		t.Fatalf("got %+v, want %d connected, %d deliveries, none missed or duplicated", res, o.Clients, o.Clients*o.Messages)
	}
	if res.LatencyP50 <= 0 || res.LatencyMax < res.LatencyP50 || res.LatencyMax > o.Wait {
		t.Fatalf("latencies p50 %v max %v: want 0 < p50 <= max <= %v", res.LatencyP50, res.LatencyMax, o.Wait)
	}
	if res.ConnectP50 <= 0 || res.ConnectMax < res.ConnectP50 || res.ConnectTotal < res.ConnectMax {
		t.Fatalf("connect p50 %v max %v total %v: want 0 < p50 <= max <= total", res.ConnectP50, res.ConnectMax, res.ConnectTotal)
	}
}
