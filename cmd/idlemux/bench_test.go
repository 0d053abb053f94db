package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/bench"
	"github.com/idlemux/idlemux/internal/demo"
	"github.com/idlemux/idlemux/proxy"
)

// TestMain lets this test binary be a bench worker: `idlemux bench` with
// --workers re-executes os.Executable(), which in a test is this binary,
// with bench.WorkerArgs, so the CLI's own worker mode is exercised.
func TestMain(m *testing.M) {
	if slices.Equal(os.Args[1:], bench.WorkerArgs) {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
	}
	os.Exit(m.Run())
}

func TestBenchFlagErrors(t *testing.T) {
	base := []string{"bench", "--user", "u", "--upstream", "127.0.0.1:1"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "--user (or --user-template) and --upstream are required"},
		{append(base, "--tls", "--starttls"), "--tls and --starttls exclude each other"},
		{append(base, "--tls-ca", "ca.pem"), "--tls-insecure and --tls-ca need --tls or --starttls"},
		{append(base, "--tls", "--tls-ca", "ca.pem", "--tls-insecure"), "exclude each other"},
		{append(base, "--connecting", "-1"), "--connecting must be 0"},
		{append(base, "--workers", "-1"), "--workers must be 0"},
		{append(base, "--pid", "12,x"), `invalid value "12,x" for flag -pid: "x" is not a pid`},
		{append(base, "--password", "p", "--password-file", "pw"), "give --password or --password-file, not both"},
		{append(base, "--password-file", "/nonexistent/pw"), "--password-file: open /nonexistent/pw"},
	} {
		code, _, stderr := execute(t, nil, tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: got %d, %q; want %d and %q", tt.args, code, stderr, exitUsage, tt.want)
		}
	}
}

func TestPIDList(t *testing.T) {
	var p pidList
	if err := p.Set("12"); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("34, 56"); err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "12,34,56" {
		t.Errorf("got %q, want 12,34,56", got)
	}
}

// reUpstreamCommands is the summary's line of upstream commands.
var reUpstreamCommands = regexp.MustCompile(`idlemux upstream commands during the run +(\d+) \((.*)\)\n`)

// checkUpstreamCommands: the summary reports the run's upstream commands
// with a plausible count for 20 clients: one to three logins (the
// password check, the watcher's, perhaps the pool's), the watcher's IDLE,
// fewer SELECTs and EXAMINEs than clients, at most 40 in all.
func checkUpstreamCommands(t *testing.T, stdout string) {
	t.Helper()
	m := reUpstreamCommands.FindStringSubmatch(stdout)
	if m == nil {
		t.Errorf("stdout %s\nwant a line of idlemux upstream commands", stdout)
		return
	}
	total, _ := strconv.Atoi(m[1])
	by := map[string]int{}
	for _, f := range strings.Split(m[2], ", ") {
		sp := strings.LastIndexByte(f, ' ') // names may hold one: "UID FETCH 3"
		by[f[:max(sp, 0)]], _ = strconv.Atoi(f[sp+1:])
	}
	if total > 40 || by["LOGIN"] < 1 || by["LOGIN"] > 3 || by["IDLE"] < 1 || by["SELECT"]+by["EXAMINE"] >= 20 {
		t.Errorf("upstream commands of 20 clients: got %d (%s), want at most 40 with LOGIN 1 to 3, an IDLE, fewer than 20 SELECT and EXAMINE", total, m[2])
	}
}

// TestBenchRun: `idlemux bench` against the demo upstream and an
// in-process idlemux, in-process and with two worker processes (this
// binary, see TestMain), reports every client and notification, the
// memory asked for and the upstream commands of the run.
func TestBenchRun(t *testing.T) {
	up, err := demo.Start(zap.NewNop(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cfg := config.Demo(up.Addr())
	cfg.Listeners[0].Address = "127.0.0.1:0"
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
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(demo.Password+"\r\nnot the password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"bench", "--proxy", p.Addrs()[0], "--user", demo.Username, "--password-file", pwFile,
		"--upstream", up.Addr(), "--clients", "20", "--messages", "2", "--rate", "50", "--wait", "10s",
		"--connecting", "0", "--pid", strconv.Itoa(os.Getpid()), "--rss-baseline", "--timeout", "1m",
		"--metrics", "http://" + p.MetricsAddr() + "/metrics"}

	code, stdout, stderr := execute(t, nil, args...)
	if code != exitOK {
		t.Fatalf("in-process: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{"clients connected", "20 / 20", "40 / 0 / 0", "RSS / PSS (1 processes)", "per client over that"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("in-process: stdout %s\nwant it to contain %q", stdout, want)
		}
	}
	checkUpstreamCommands(t, stdout)
	if strings.Contains(stdout, "worker processes") {
		t.Errorf("in-process: stdout %s\nwant no workers", stdout)
	}

	code, stdout, stderr = execute(t, nil, append(args, "--workers", "2", "--json")...)
	if code != exitOK {
		t.Fatalf("workers: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("workers: %v in %s", err, stdout)
	}
	if res.Workers != 2 || res.Connected != 20 || res.Deliveries != 40 || res.Missed != 0 || res.Dups != 0 ||
		res.RSSProcesses != 1 || res.RSSBeforeKiB <= 0 || res.LatencyP50 <= 0 {
		t.Errorf("workers: got %+v", res)
	}
	if !strings.Contains(stderr, "connected 20/20") || !strings.Contains(stderr, "waiting for EXISTS") {
		t.Errorf("workers: progress %q, want the workers' counts summed", stderr)
	}
}
