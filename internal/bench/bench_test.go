package bench

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
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

func TestOptionsRejected(t *testing.T) {
	s := &setup{plain: "127.0.0.1:1", upstream: "127.0.0.1:2"}
	for _, tt := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"remote proxy", func(o *Options) { o.Proxy = "10.0.0.1:143" }, "not a loopback address"},
		{"remote metrics", func(o *Options) { o.MetricsURL = "http://10.0.0.1:9911/metrics" }, "metrics URL: 10.0.0.1:9911 is not a loopback address"},
		{"metrics not a URL", func(o *Options) { o.MetricsURL = "127.0.0.1:9911" }, "want http://HOST:PORT/metrics"},
		{"no clients", func(o *Options) { o.Clients = 0 }, "clients must be at least 1"},
		{"negative connecting", func(o *Options) { o.Connecting = -1 }, "connecting must be 0"},
		{"negative workers", func(o *Options) { o.Workers = -2 }, "workers must be 0"},
		{"CA without TLS", func(o *Options) { o.TLSCAFile = "ca.pem" }, "need implicit TLS or STARTTLS"},
		{"unknown TLS", func(o *Options) { o.TLS = "maybe" }, `unknown TLS mode "maybe"`},
		{"missing CA", func(o *Options) { o.TLS, o.TLSCAFile = TLSImplicit, "/nonexistent/ca.pem" }, "no such file"},
	} {
		o := s.options(1, 1)
		tt.edit(&o)
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestRunAgainstInProcessProxy: a small run through a real idlemux in front
// of an in-memory upstream sees every message on every client once; the
// memory of the given pid is reported, before and after connecting.
func TestRunAgainstInProcessProxy(t *testing.T) {
	s := startSetup(t)
	o := s.options(50, 5)
	o.MetricsURL = s.metrics
	o.PIDs, o.RSSBaseline = []int{os.Getpid()}, true
	res, err := Run(context.Background(), o)
	checkComplete(t, res, err, o)
	if res.Workers != 0 {
		t.Errorf("workers: got %d, want 0 (in-process)", res.Workers)
	}
	if res.UpstreamConnections < 1 || res.UpstreamConnections > 5 {
		t.Errorf("upstream connections: got %v", res.UpstreamConnections)
	}
	// 50 logins of one account: one upstream login checks the password
	// (the rest share it or hit the cache), one more is the watcher's.
	if got := res.UpstreamLoginsWhileConnecting; got == nil || *got < 1 || *got > 3 {
		t.Errorf("upstream logins while 50 clients logged in: got %v, want 1 to 3", got)
	}
	// The run's upstream commands: those logins, the watcher's IDLE, and
	// not one SELECT or EXAMINE per client.
	if up := res.UpstreamCommands; up["LOGIN"] < 1 || up["LOGIN"] > 3 || up["IDLE"] < 1 || up["SELECT"]+up["EXAMINE"] >= 50 {
		t.Errorf("upstream commands of 50 clients: got %v, want LOGIN 1 to 3, an IDLE, fewer than 50 SELECT and EXAMINE", up)
	}
	if res.FanoutLatencyMeanSeconds <= 0 || res.FanoutLatencyP99AtMost <= 0 {
		t.Errorf("fan-out latency of this run: got mean %v, p99 at most %v; want both above 0", res.FanoutLatencyMeanSeconds, res.FanoutLatencyP99AtMost)
	}
	if res.RSSProcesses != 1 || res.RSSKiB <= 0 || res.PSSKiB <= 0 || res.RSSPerClientKiB <= 0 {
		t.Errorf("memory after: got %d processes, RSS %d KiB, PSS %d KiB, %.1f KiB per client", res.RSSProcesses, res.RSSKiB, res.PSSKiB, res.RSSPerClientKiB)
	}
	if res.RSSProcessesBefore != 1 || res.RSSBeforeKiB <= 0 || res.PSSBeforeKiB <= 0 {
		t.Errorf("memory before: got %d processes, RSS %d KiB, PSS %d KiB", res.RSSProcessesBefore, res.RSSBeforeKiB, res.PSSBeforeKiB)
	}
	if want := float64(res.RSSKiB-res.RSSBeforeKiB) / 50; res.RSSPerClientOverBaselineKiB != want {
		t.Errorf("RSS per client over baseline: got %v, want %v", res.RSSPerClientOverBaselineKiB, want)
	}
}

// TestRunWorkers: the clients spread over three worker processes (this
// test binary in worker mode) see every message once, with latencies
// measured across the process boundary by wall clock. Memory sampled by
// command name leaves out the bench's own processes.
func TestRunWorkers(t *testing.T) {
	s := startSetup(t)
	o := s.options(60, 5)
	o.Workers, o.WorkerCmd = 3, testWorkers(0)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	o.RSSProcs = strings.TrimSpace(string(comm))
	res, err := Run(context.Background(), o)
	checkComplete(t, res, err, o)
	if res.Workers != 3 {
		t.Errorf("workers: got %d, want 3", res.Workers)
	}
	if res.RSSProcesses != 0 {
		t.Errorf("processes named %q measured: got %d, want 0 (the bench and its workers are left out)", o.RSSProcs, res.RSSProcesses)
	}
}

// TestRunWorkerDies: a worker dying while the others wait for their
// notifications fails the run at once, naming it, with its stderr.
func TestRunWorkerDies(t *testing.T) {
	s := startSetup(t)
	o := s.options(30, 3)
	o.Wait = time.Minute
	o.Workers, o.WorkerCmd = 3, testWorkers(2, dieEnv+"=2") // start and connect, then gone
	t0 := time.Now()
	res, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "worker 1 (clients 10-19): exited: exit status 3") ||
		!strings.Contains(err.Error(), "dying as asked") {
		t.Fatalf("got %v, want worker 1's death with its stderr", err)
	}
	if res == nil || res.Connected != 30 || res.FirstError == "" {
		t.Fatalf("got %+v, want the partial result: 30 connected, the error", res)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Fatalf("took %v: the run waited for the dead worker", d)
	}
}

// TestRunWorkerBroken: a worker command that is not a worker fails the run
// within the run's bound, whether it exits or never answers.
func TestRunWorkerBroken(t *testing.T) {
	s := &setup{plain: "127.0.0.1:1", upstream: "127.0.0.1:2"}
	o := s.options(4, 1)
	o.Workers = 2
	o.WorkerCmd = func([]string) *exec.Cmd { return exec.Command("false") }
	if _, err := Run(context.Background(), o); err == nil || !regexp.MustCompile(`worker [01] \(clients [02]-[13]\): `).MatchString(err.Error()) {
		t.Errorf("exiting worker: got %v, want a worker's failure", err)
	}

	o.WorkerCmd = func([]string) *exec.Cmd { return exec.Command("sleep", "60") }
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "no ready: context deadline exceeded") {
		t.Errorf("silent worker: got %v, want no ready before the deadline", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("silent worker: took %v, want about the 1s bound", d)
	}
}

// TestRunTLS: clients connect with implicit TLS, verifying the proxy's
// certificate, also from workers, and with STARTTLS without verifying;
// Connecting 0 releases all of them at once.
func TestRunTLS(t *testing.T) {
	s := startSetup(t)
	o := s.options(20, 2)
	o.Proxy, o.TLS, o.TLSCAFile, o.Connecting = s.implicit, TLSImplicit, s.caFile, 0
	res, err := Run(context.Background(), o)
	checkComplete(t, res, err, o)

	o.Workers, o.WorkerCmd = 2, testWorkers(0)
	res, err = Run(context.Background(), o)
	checkComplete(t, res, err, o)

	o = s.options(20, 2)
	o.Proxy, o.TLS, o.TLSInsecure, o.Connecting = s.starttls, TLSStartTLS, true, 0
	res, err = Run(context.Background(), o)
	checkComplete(t, res, err, o)

	// Without the CA, verification fails and no client connects.
	o = s.options(2, 1)
	o.Proxy, o.TLS = s.implicit, TLSImplicit
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unverifiable certificate: got %v, want a certificate error", err)
	}
}

// TestSampleMemory: processes by pid and by command name, each once,
// without the excluded ones.
func TestSampleMemory(t *testing.T) {
	self := sampleMemory([]int{os.Getpid(), os.Getpid()}, "", nil)
	if self.Procs != 1 || self.RSSKiB <= 0 || self.PSSKiB <= 0 || self.PSSKiB > self.RSSKiB {
		t.Errorf("self: got %+v, want one process with 0 < PSS <= RSS", self)
	}
	var kids []*exec.Cmd
	for range 2 {
		c := exec.Command("sleep", "30")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { c.Process.Kill(); c.Wait() }()
		kids = append(kids, c)
	}
	time.Sleep(50 * time.Millisecond) // until exec has renamed them
	all := sampleMemory(nil, "sleep", nil)
	less := sampleMemory([]int{kids[0].Process.Pid}, "sleep", []int{kids[1].Process.Pid})
	if all.Procs < 2 || less.Procs != all.Procs-1 || all.RSSKiB <= 0 {
		t.Errorf("sleep processes: got %+v, and %+v with one excluded", all, less)
	}
	if none := sampleMemory([]int{1 << 30}, "no-such-command", nil); none != (memSample{}) {
		t.Errorf("nothing to measure: got %+v", none)
	}
}
