package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/idlemux/idlemux/internal/bench"
)

const benchSynopsis = "bench --proxy ADDR --user U --password P --upstream ADDR [flags]"

// runBench drives a load run against a running idlemux (loopback only).
func runBench(args []string, stdout, stderr io.Writer) int {
	// The hidden worker mode: the parent bench re-executes this binary with
	// bench.WorkerArgs and talks to it over stdin and stdout.
	if slices.Equal(append([]string{"bench"}, args...), bench.WorkerArgs) {
		if err := bench.ServeWorker(os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "idlemux bench worker: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	var o bench.Options
	var asJSON, implicitTLS, startTLS bool
	var limit time.Duration
	var pids pidList
	fs := newFlagSet("bench", benchSynopsis, stderr)
	fs.StringVar(&o.Proxy, "proxy", "127.0.0.1:1143", "idlemux `ADDR` (loopback)")
	fs.StringVar(&o.User, "user", "", "user every client logs in as")
	fs.StringVar(&o.UserTemplate, "user-template", "", "per-client user, %d is the client index (e.g. user%d)")
	fs.StringVar(&o.Password, "password", "", "client password (visible in ps: prefer --password-file)")
	passwordFile := fs.String("password-file", "", "read the client password (and the upstream's, unless given) from the first line of `FILE`")
	fs.StringVar(&o.Mailbox, "mailbox", "INBOX", "mailbox to SELECT and IDLE on")
	fs.IntVar(&o.Clients, "clients", 100, "number of clients")
	fs.IntVar(&o.Connecting, "connecting", 100, "clients connecting at once; 0: all of them dial at the same moment (a login storm)")
	fs.BoolVar(&implicitTLS, "tls", false, "connect clients with implicit TLS")
	fs.BoolVar(&startTLS, "starttls", false, "connect clients in plaintext and STARTTLS before LOGIN")
	fs.BoolVar(&o.TLSInsecure, "tls-insecure", false, "with --tls/--starttls: do not verify the proxy's certificate")
	fs.StringVar(&o.TLSCAFile, "tls-ca", "", "with --tls/--starttls: verify the proxy's certificate against the PEM `FILE` (server name: --proxy's host)")
	fs.StringVar(&o.Upstream, "upstream", "", "upstream `ADDR` to append to directly (loopback, plaintext)")
	fs.StringVar(&o.UpstreamUser, "upstream-user", "", "upstream user (default: --user)")
	fs.StringVar(&o.UpstreamPassword, "upstream-password", "", "upstream password (default: --password)")
	fs.IntVar(&o.Messages, "messages", 10, "messages to append")
	fs.Float64Var(&o.Rate, "rate", 2, "messages per second")
	fs.DurationVar(&o.Wait, "wait", 30*time.Second, "how long to wait for the last notification")
	fs.IntVar(&o.Workers, "workers", 0, "worker processes holding the clients; 0: only when --clients exceed what one process may open (the bench itself then holds none)")
	fs.StringVar(&o.MetricsURL, "metrics", "", "idlemux /metrics `URL`")
	fs.Var(&pids, "pid", "report RSS and PSS of the processes `PID[,PID...]`, summed (e.g. idlemux's)")
	fs.StringVar(&o.RSSProcs, "rss-procs", "", "also sum RSS and PSS over every process whose /proc/PID/comm is `NAME` (e.g. imap, Dovecot's per-connection processes)")
	fs.BoolVar(&o.RSSBaseline, "rss-baseline", false, "also measure memory before any client connects and report the growth per client")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.DurationVar(&limit, "timeout", 10*time.Minute, "hard limit for the whole run")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if msg := benchUsageError(&o, implicitTLS, startTLS); msg != "" {
		fmt.Fprintln(stderr, "idlemux bench: "+msg)
		fs.Usage()
		return exitUsage
	}
	o.PIDs = pids
	if o.UpstreamUser == "" {
		o.UpstreamUser = o.User
	}
	if *passwordFile != "" && o.Password != "" {
		fmt.Fprintln(stderr, "idlemux bench: give --password or --password-file, not both")
		return exitUsage
	}
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			fmt.Fprintf(stderr, "idlemux bench: --password-file: %v\n", err)
			return exitUsage
		}
		line, _, _ := strings.Cut(string(b), "\n")
		o.Password = strings.TrimRight(line, "\r")
	}
	if o.UpstreamPassword == "" {
		o.UpstreamPassword = o.Password
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o.Progress = stderr
	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "idlemux bench: %v\n", err)
		if res == nil {
			return exitFailure
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "idlemux bench: writing the result: %v\n", err)
			return exitFailure
		}
	} else {
		printBench(stdout, res)
	}
	if err != nil || res.Missed > 0 || res.Connected < res.Clients {
		return exitFailure
	}
	return exitOK
}

// benchUsageError checks the flags that depend on each other and sets the
// TLS mode; it returns what is wrong, or "".
func benchUsageError(o *bench.Options, implicitTLS, startTLS bool) string {
	switch {
	case o.User == "" && o.UserTemplate == "" || o.Upstream == "":
		return "--user (or --user-template) and --upstream are required"
	case implicitTLS && startTLS:
		return "--tls and --starttls exclude each other"
	case (o.TLSInsecure || o.TLSCAFile != "") && !implicitTLS && !startTLS:
		return "--tls-insecure and --tls-ca need --tls or --starttls"
	case o.TLSInsecure && o.TLSCAFile != "":
		return "--tls-insecure and --tls-ca exclude each other"
	case o.Connecting < 0:
		return "--connecting must be 0 (all at once) or more"
	case o.Workers < 0:
		return "--workers must be 0 (as needed) or more"
	}
	if implicitTLS {
		o.TLS = bench.TLSImplicit
	} else if startTLS {
		o.TLS = bench.TLSStartTLS
	}
	return ""
}

// pidList is --pid: one pid or a comma-separated list.
type pidList []int

func (p *pidList) String() string {
	s := make([]string, len(*p))
	for i, n := range *p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (p *pidList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a pid", f)
		}
		*p = append(*p, n)
	}
	return nil
}

func printBench(w io.Writer, r *bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "clients connected\t%d / %d\n", r.Connected, r.Clients)
	if r.Workers > 0 {
		fmt.Fprintf(tw, "worker processes\t%d\n", r.Workers)
	}
	fmt.Fprintf(tw, "connect (all)\t%v\n", r.ConnectTotal.Round(time.Millisecond))
	fmt.Fprintf(tw, "connect per client p50 / max\t%v / %v\n", r.ConnectP50.Round(time.Microsecond), r.ConnectMax.Round(time.Microsecond))
	fmt.Fprintf(tw, "messages appended\t%d\n", r.Messages)
	fmt.Fprintf(tw, "EXISTS latency p50 / p90 / p99 / max\t%v / %v / %v / %v\n",
		r.LatencyP50.Round(time.Microsecond), r.LatencyP90.Round(time.Microsecond), r.LatencyP99.Round(time.Microsecond), r.LatencyMax.Round(time.Microsecond))
	fmt.Fprintf(tw, "notifications delivered / missed / duplicated\t%d / %d / %d\n", r.Deliveries, r.Missed, r.Dups)
	if r.RSSProcesses > 0 {
		fmt.Fprintf(tw, "RSS / PSS (%d processes)\t%d KiB / %d KiB (%.1f / %.1f KiB per client)\n",
			r.RSSProcesses, r.RSSKiB, r.PSSKiB, r.RSSPerClientKiB, r.PSSPerClientKiB)
	}
	if r.RSSBaseline {
		fmt.Fprintf(tw, "RSS / PSS before connecting (%d processes)\t%d KiB / %d KiB\n", r.RSSProcessesBefore, r.RSSBeforeKiB, r.PSSBeforeKiB)
		fmt.Fprintf(tw, "RSS / PSS per client over that\t%.1f / %.1f KiB\n", r.RSSPerClientOverBaselineKiB, r.PSSPerClientOverBaselineKiB)
	}
	if r.UpstreamConnections > 0 {
		fmt.Fprintf(tw, "idlemux upstream connections\t%.0f\n", r.UpstreamConnections)
		if r.UpstreamLoginsWhileConnecting != nil {
			fmt.Fprintf(tw, "idlemux upstream logins while clients logged in\t%.0f\n", *r.UpstreamLoginsWhileConnecting)
		}
		p99 := fmt.Sprintf("%.1f ms", r.FanoutLatencyP99AtMost*1000)
		if r.FanoutLatencyP99Over {
			p99 = "over " + p99
		}
		fmt.Fprintf(tw, "idlemux fan-out latency mean / p99 (at most)\t%.3f ms / %s\n", r.FanoutLatencyMeanSeconds*1000, p99)
	}
	if r.UpstreamCommands != nil {
		fmt.Fprintf(tw, "idlemux upstream commands during the run\t%s\n", commandCounts(r.UpstreamCommands))
	}
	if r.FirstError != "" {
		fmt.Fprintf(tw, "first error\t%s\n", r.FirstError)
	}
	tw.Flush()
}

// commandCounts writes upstream commands by name as "total (NAME n, ...)",
// names in order.
func commandCounts(by map[string]float64) string {
	total := 0.0
	var each []string
	for _, name := range slices.Sorted(maps.Keys(by)) {
		total += by[name]
		each = append(each, fmt.Sprintf("%s %.0f", name, by[name]))
	}
	if len(each) == 0 {
		return "0"
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(each, ", "))
}
