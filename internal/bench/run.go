package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Run performs one bench run: start the shards (worker processes, or one
// in-process set of clients), connect every client, measure memory, inject
// the messages, let every shard wait for and measure its notifications,
// merge. A failing worker fails the run with whatever was measured so far.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Mailbox == "" {
		o.Mailbox = "INBOX"
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	shards, err := plan(o)
	if err != nil {
		return nil, err
	}
	defer closeShards(shards)
	exclude := shardPIDs(shards)
	res := &Result{Clients: o.Clients, Messages: o.Messages, Workers: len(exclude)}
	start := time.Now()
	if err := eachShard(ctx, shards, func(ctx context.Context, s shard) error { return s.ready(ctx) }); err != nil {
		return nil, fmt.Errorf("starting workers: %w", err)
	}
	var before memSample
	if o.RSSBaseline {
		before = sampleMemory(o.PIDs, o.RSSProcs, exclude)
	}
	var m0, m1 metricsSample
	if o.MetricsURL != "" {
		m0 = scrape(o.MetricsURL)
	}

	if err := connectAll(ctx, o, shards, res); err != nil {
		return failed(res, start, fmt.Errorf("connecting: %w", err))
	}
	if res.Connected == 0 {
		return nil, fmt.Errorf("no client connected: %s", res.FirstError)
	}
	if len(o.PIDs) > 0 || o.RSSProcs != "" {
		res.memory(sampleMemory(o.PIDs, o.RSSProcs, exclude), before, o.RSSBaseline)
	}

	if o.MetricsURL != "" {
		m1 = scrape(o.MetricsURL)
		if m0.ok && m1.ok {
			n := m1.logins - m0.logins
			res.UpstreamLoginsWhileConnecting = &n
		}
	}

	base, appended, err := inject(ctx, o)
	if err != nil {
		return failed(res, start, fmt.Errorf("injecting: %w", err))
	}
	if err := measureAll(ctx, o, shards, res, base, appended); err != nil {
		return failed(res, start, fmt.Errorf("waiting for notifications: %w", err))
	}
	if o.MetricsURL != "" {
		if m2 := scrape(o.MetricsURL); m2.ok {
			res.UpstreamConnections = m2.upstreamConns
			if m1.ok {
				res.FanoutLatencyMeanSeconds, res.FanoutLatencyP99AtMost, res.FanoutLatencyP99Over = m2.fanoutSince(m1)
			}
			if m0.ok {
				res.UpstreamCommands = m2.commandsSince(m0)
			}
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// failed returns the partial result of a run stopped by err, so the caller
// can still show what was measured.
func failed(res *Result, start time.Time, err error) (*Result, error) {
	res.Duration = time.Since(start)
	if res.FirstError == "" {
		res.FirstError = err.Error()
	}
	return res, err
}

// memory fills in the memory figures from the samples after connecting
// and, with a baseline, before.
func (r *Result) memory(after, before memSample, baseline bool) {
	r.RSSKiB, r.PSSKiB, r.RSSProcesses = after.RSSKiB, after.PSSKiB, after.Procs
	n := float64(r.Connected)
	r.RSSPerClientKiB = float64(after.RSSKiB) / n
	r.PSSPerClientKiB = float64(after.PSSKiB) / n
	if baseline {
		r.RSSBaseline = true
		r.RSSBeforeKiB, r.PSSBeforeKiB, r.RSSProcessesBefore = before.RSSKiB, before.PSSKiB, before.Procs
		r.RSSPerClientOverBaselineKiB = float64(after.RSSKiB-before.RSSKiB) / n
		r.PSSPerClientOverBaselineKiB = float64(after.PSSKiB-before.PSSKiB) / n
	}
}

// connectAll has every shard connect its clients, all shards at once, and
// merges their reports into res.
func connectAll(ctx context.Context, o Options, shards []shard, res *Result) error {
	t0 := time.Now()
	reports := make([]*connectReport, len(shards))
	stop := showProgress(o.Progress, func() string {
		c, _ := counts(shards)
		return fmt.Sprintf("%s connected %d/%d", bar(c, o.Clients), c, o.Clients)
	})
	err := eachShard(ctx, shards, func(ctx context.Context, s shard) (err error) {
		reports[s.id()], err = s.connect(ctx)
		return err
	})
	stop()
	res.ConnectTotal = time.Since(t0)
	var connTimes []time.Duration
	for _, r := range reports {
		if r == nil {
			continue
		}
		res.Connected += r.Connected
		connTimes = append(connTimes, r.Times...)
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	res.ConnectP50, _, _, res.ConnectMax = quantiles(connTimes)
	return err
}

// measureAll has every shard wait for the last message's EXISTS and
// measure its clients, and merges their latencies and counts into res.
func measureAll(ctx context.Context, o Options, shards []shard, res *Result, base uint32, appended []time.Time) error {
	target := base + uint32(len(appended))
	until := time.Now().Add(o.Wait)
	measured := make([]*measureReport, len(shards))
	stop := showProgress(o.Progress, func() string {
		_, d := counts(shards)
		return fmt.Sprintf("%s waiting for EXISTS %d: %d/%d clients", bar(d, res.Connected), target, d, res.Connected)
	})
	err := eachShard(ctx, shards, func(ctx context.Context, s shard) (err error) {
		measured[s.id()], err = s.measure(ctx, base, appended, until)
		return err
	})
	stop()
	var lats []time.Duration
	for _, m := range measured {
		if m == nil {
			continue
		}
		lats = append(lats, m.Latencies...)
		res.Deliveries += m.Deliveries
		res.Missed += m.Missed
		res.Dups += m.Dups
	}
	res.LatencyP50, res.LatencyP90, res.LatencyP99, res.LatencyMax = quantiles(lats)
	return err
}
