package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/idlemux/idlemux/internal/bench"
)

const benchSynopsis = "bench --proxy ADDR --user U --password P --upstream ADDR [flags]"

// runBench drives a load run against a running idlemux (loopback only).
func runBench(args []string, stdout, stderr io.Writer) int {
	var o bench.Options
	var asJSON bool
	var limit time.Duration
	fs := newFlagSet("bench", benchSynopsis, stderr)
	fs.StringVar(&o.Proxy, "proxy", "127.0.0.1:1143", "idlemux `ADDR` (loopback)")
	fs.StringVar(&o.User, "user", "", "user every client logs in as")
	fs.StringVar(&o.UserTemplate, "user-template", "", "per-client user, %d is the client index (e.g. user%d)")
	fs.StringVar(&o.Password, "password", "", "client password")
	fs.StringVar(&o.Mailbox, "mailbox", "INBOX", "mailbox to SELECT and IDLE on")
	fs.IntVar(&o.Clients, "clients", 100, "number of clients")
	fs.IntVar(&o.Connecting, "connecting", 100, "clients connecting at once")
	fs.StringVar(&o.Upstream, "upstream", "", "upstream `ADDR` to append to directly (loopback, plaintext)")
	fs.StringVar(&o.UpstreamUser, "upstream-user", "", "upstream user (default: --user)")
	fs.StringVar(&o.UpstreamPassword, "upstream-password", "", "upstream password (default: --password)")
	fs.IntVar(&o.Messages, "messages", 10, "messages to append")
	fs.Float64Var(&o.Rate, "rate", 2, "messages per second")
	fs.DurationVar(&o.Wait, "wait", 30*time.Second, "how long to wait for the last notification")
	fs.StringVar(&o.MetricsURL, "metrics", "", "idlemux /metrics `URL`")
	fs.IntVar(&o.PID, "pid", 0, "idlemux's pid, to report its RSS")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.DurationVar(&limit, "timeout", 10*time.Minute, "hard limit for the whole run")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if o.User == "" && o.UserTemplate == "" || o.Upstream == "" {
		fmt.Fprintln(stderr, "idlemux bench: --user (or --user-template) and --upstream are required")
		fs.Usage()
		return exitUsage
	}
	if o.UpstreamUser == "" {
		o.UpstreamUser = o.User
	}
	if o.UpstreamPassword == "" {
		o.UpstreamPassword = o.Password
	}
	if n, err := bench.RaiseFileLimit(); err == nil && uint64(o.Clients)+64 > n {
		fmt.Fprintf(stderr, "idlemux bench: %d clients need more than the %d open files this process may hold\n", o.Clients, n)
		return exitFailure
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
		enc.Encode(res)
	} else {
		printBench(stdout, res)
	}
	if err != nil || res.Missed > 0 || res.Connected < res.Clients {
		return exitFailure
	}
	return exitOK
}

func printBench(w io.Writer, r *bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "clients connected\t%d / %d\n", r.Connected, r.Clients)
	fmt.Fprintf(tw, "connect (all)\t%v\n", r.ConnectTotal.Round(time.Millisecond))
	fmt.Fprintf(tw, "connect per client p50 / max\t%v / %v\n", r.ConnectP50.Round(time.Microsecond), r.ConnectMax.Round(time.Microsecond))
	fmt.Fprintf(tw, "messages appended\t%d\n", r.Messages)
	fmt.Fprintf(tw, "EXISTS latency p50 / p90 / p99 / max\t%v / %v / %v / %v\n",
		r.LatencyP50.Round(time.Microsecond), r.LatencyP90.Round(time.Microsecond), r.LatencyP99.Round(time.Microsecond), r.LatencyMax.Round(time.Microsecond))
	fmt.Fprintf(tw, "notifications delivered / missed / duplicated\t%d / %d / %d\n", r.Deliveries, r.Missed, r.Dups)
	if r.RSSKiB > 0 {
		fmt.Fprintf(tw, "idlemux RSS\t%d KiB (%.1f KiB per client)\n", r.RSSKiB, r.RSSPerClientKiB)
	}
	if r.UpstreamConnections > 0 {
		fmt.Fprintf(tw, "idlemux upstream connections\t%.0f\n", r.UpstreamConnections)
		fmt.Fprintf(tw, "idlemux fan-out latency mean / p99 (at most)\t%.3f ms / %.1f ms\n", r.FanoutLatencyMeanSeconds*1000, r.FanoutLatencyP99AtMost*1000)
	}
	if r.FirstError != "" {
		fmt.Fprintf(tw, "first error\t%s\n", r.FirstError)
	}
	tw.Flush()
}
