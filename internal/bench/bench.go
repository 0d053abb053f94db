// Package bench is idlemux's load harness (`idlemux bench`): N clients log
// in through a running idlemux and IDLE on a mailbox, M messages are
// appended directly on the upstream, and for every client the time from
// each APPEND's completion to that client's "* N EXISTS" is measured, with
// missed and duplicated notifications counted. It only ever targets
// loopback addresses and stops by itself.
//
// One process can hold only as many clients as it may open files, so a
// large run spreads its clients over worker processes (worker.go, speaking
// protocol.go); the parent then holds no clients itself, it only injects
// the messages and merges what the workers measured.
package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"sort"
	"syscall"
	"time"
)

// TLS modes for the clients' connections to the proxy.
const (
	TLSNone     = ""         // plaintext
	TLSImplicit = "implicit" // TLS from the first byte
	TLSStartTLS = "starttls" // plaintext, upgraded with STARTTLS before LOGIN
)

// Options configure one run.
type Options struct {
	Proxy        string // idlemux address (loopback)
	User         string // or UserTemplate with %d (client index)
	UserTemplate string
	Password     string
	Mailbox      string
	Clients      int
	// Connecting is how many clients dial at once; 0 means all of them at
	// the same moment (every client waits at a gate that opens once all
	// are ready to dial), to measure a login storm.
	Connecting int

	TLS         string // TLSNone, TLSImplicit or TLSStartTLS
	TLSInsecure bool   // skip certificate verification (loopback only)
	TLSCAFile   string // PEM roots to verify the proxy's certificate with

	Upstream         string // upstream address (loopback), plaintext
	UpstreamUser     string
	UpstreamPassword string
	Messages         int
	Rate             float64       // messages per second
	Wait             time.Duration // how long to wait for the last EXISTS

	// Workers is the number of worker processes holding the clients. 0
	// runs in this process unless Clients exceed what it may hold (its
	// open-file limit minus fileMargin), in which case just enough
	// workers are started. With workers, this process holds no clients.
	Workers int
	// WorkerCmd builds the command for one worker process, once per
	// worker in index order, from the arguments that select worker mode
	// (WorkerArgs). Nil runs this program again (os.Executable). Tests,
	// whose executable is the test binary, set it.
	WorkerCmd func(args []string) *exec.Cmd

	MetricsURL  string // idlemux /metrics, optional
	PIDs        []int  // processes whose memory is reported, optional
	RSSProcs    string // also every process whose /proc/PID/comm (15 bytes at most) is this, e.g. imap
	RSSBaseline bool   // also measure memory before any client connects
	Progress    io.Writer
}

// Result is what a run measured. Memory figures sum over the processes
// named by Options.PIDs and Options.RSSProcs; per-client figures divide by
// the clients connected.
type Result struct {
	Clients, Connected       int
	Workers                  int `json:",omitempty"` // worker processes; 0: clients held in-process
	ConnectTotal             time.Duration
	ConnectP50, ConnectMax   time.Duration
	LatencyP50, LatencyP90   time.Duration
	LatencyP99, LatencyMax   time.Duration
	Deliveries, Missed, Dups int

	RSSKiB          int     `json:",omitempty"`
	PSSKiB          int     `json:",omitempty"` // proportional: shared pages split among their sharers
	RSSProcesses    int     `json:",omitempty"` // processes measured
	RSSPerClientKiB float64 `json:",omitempty"`
	PSSPerClientKiB float64 `json:",omitempty"`

	RSSBaseline                 bool    `json:",omitempty"` // the figures below were measured
	RSSBeforeKiB                int     `json:",omitempty"` // before any client connected
	PSSBeforeKiB                int     `json:",omitempty"`
	RSSProcessesBefore          int     `json:",omitempty"`
	RSSPerClientOverBaselineKiB float64 `json:",omitempty"`
	PSSPerClientOverBaselineKiB float64 `json:",omitempty"`

	UpstreamConnections float64 `json:",omitempty"`
	// UpstreamLoginsWhileConnecting is how many upstream logins idlemux
	// made while the clients logged in (0 when its credential cache
	// already knew the password); nil when not measured.
	UpstreamLoginsWhileConnecting *float64 `json:",omitempty"`
	// UpstreamCommands is how many commands idlemux sent upstream during
	// the run (from before the first client connected to after the last
	// notification), by name (idlemux_upstream_commands_total: logins,
	// the watcher's IDLE and DONE, each client's reads); nil when not
	// measured.
	UpstreamCommands         map[string]float64 `json:",omitempty"`
	FanoutLatencyMeanSeconds float64            `json:",omitempty"`
	FanoutLatencyP99AtMost   float64            `json:",omitempty"` // upper bound of the histogram bucket holding p99
	FanoutLatencyP99Over     bool               `json:",omitempty"` // p99 is above FanoutLatencyP99AtMost, the largest finite bucket
	Messages                 int
	Duration                 time.Duration
	FirstError               string `json:",omitempty"`
}

// CheckLoopback refuses any address that is not on this machine's loopback.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: bench only targets 127.0.0.0/8 and ::1", addr)
	}
	return nil
}

// RaiseFileLimit lifts the soft open-files limit to the hard one.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	return r.Cur, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
}

// fileMargin is the open files a process keeps for itself besides one per
// client: the runtime, pipes, the upstream connection, /proc reads.
const fileMargin = 100

// perProcess raises the open-file limit and returns how many clients this
// process may hold.
func perProcess() int {
	n, err := RaiseFileLimit()
	if err != nil || n > 1<<30 {
		n = 1 << 30
	}
	return max(0, int(n)-fileMargin)
}

func (o *Options) check() error {
	for _, a := range []string{o.Proxy, o.Upstream} {
		if err := CheckLoopback(a); err != nil {
			return err
		}
	}
	if o.MetricsURL != "" {
		u, err := url.Parse(o.MetricsURL)
		if err != nil || u.Host == "" {
			return fmt.Errorf("metrics URL %q: want http://HOST:PORT/metrics", o.MetricsURL)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		if err := CheckLoopback(host); err != nil {
			return fmt.Errorf("metrics URL: %w", err)
		}
	}
	switch {
	case o.Clients <= 0:
		return errors.New("clients must be at least 1")
	case o.Connecting < 0:
		return errors.New("connecting must be 0 (all at once) or more")
	case o.Workers < 0:
		return errors.New("workers must be 0 (as needed) or more")
	}
	_, err := clientTLS(o.spec(0, 0))
	return err
}

func quantiles(d []time.Duration) (p50, p90, p99, max time.Duration) {
	if len(d) == 0 {
		return
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.90), at(0.99), s[len(s)-1]
}
