package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlemux/idlemux/upstream"
)

// The series below describe accounts, so each carries the label upstream
// (issue 13): the name from the config ("default" for the single
// upstream: form), so their number is bounded by the config. A reload
// that removes an upstream ends its series; one that changes it starts
// its counters again from zero (a counter reset to Prometheus).

// routeStats is one upstream's name and its manager's counts.
type routeStats struct {
	name string
	st   upstream.Stats
}

// statsByRoute reads each current upstream's counts, in config order.
func (s *Server) statsByRoute() []routeStats {
	rs := s.routes()
	out := make([]routeStats, len(rs))
	for i, r := range rs {
		out[i] = routeStats{name: r.cfg.Name, st: r.mgr.Stats()}
	}
	return out
}

// routeSeries is a collector of series computed from each upstream's
// counts: each desc's variable labels are its own labels, then upstream.
type routeSeries struct {
	s     *Server
	descs []*prometheus.Desc
	emit  func(st upstream.Stats, send func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string))
}

func (c *routeSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *routeSeries) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.s.statsByRoute() {
		c.emit(r.st, func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, t, v, append(labels, r.name)...)
		})
	}
}

var (
	// With several upstreams, this one shows how accounts spread over them.
	accountsDesc = prometheus.NewDesc("idlemux_upstream_accounts",
		"Upstream accounts held (logged in, with pools and watchers), by upstream name (\"default\" for the single upstream: form).",
		[]string{"upstream"}, nil)
	watchedDesc = prometheus.NewDesc("idlemux_mailboxes_watched",
		"(account, mailbox) pairs with a running watcher, by upstream.", []string{"upstream"}, nil)
	polledDesc = prometheus.NewDesc("idlemux_mailboxes_polled",
		"Of the watched mailboxes, those without an upstream IDLE connection of their own, for want of a watcher slot under upstream.max_connections_per_account: polled every upstream.poll_interval, or pushed by the account's NOTIFY connection (idlemux_mailboxes_by_mode); by upstream.",
		[]string{"upstream"}, nil)
	reconnectsDesc = prometheus.NewDesc("idlemux_upstream_reconnects_total",
		"Watcher reconnects after an upstream failure, by upstream.", []string{"upstream"}, nil)
	connDesc = prometheus.NewDesc("idlemux_upstream_connections",
		"Upstream connections by role and upstream.", []string{"role", "upstream"}, nil)
	modeDesc = prometheus.NewDesc("idlemux_mailboxes_by_mode",
		"Watched mailboxes by how changes made elsewhere reach them: idle (an upstream IDLE of their own), notify (the account's NOTIFY connection), polled (every upstream.poll_interval); by upstream.",
		[]string{"mode", "upstream"}, nil)
	// Providers count and rate-limit logins, and the reasons show where
	// churn comes from.
	loginDesc = prometheus.NewDesc("idlemux_upstream_logins_total",
		"Logins made to the upstream (providers rate-limit them), by reason: check (a client's password), command (a new pool connection), watcher, reconnect (a watcher after a failure), notify (the account's NOTIFY connection); and by upstream.",
		[]string{"reason", "upstream"}, nil)
	// What idlemux asks of the provider, to set against
	// idlemux_commands_local_total (issue 11).
	upstreamCmdDesc = prometheus.NewDesc("idlemux_upstream_commands_total",
		"Commands sent to the upstream, on watcher and pool connections alike, by name: a UID command is named with its prefix (\"UID FETCH\"), IDLE's end is DONE, names idlemux does not know are OTHER; and by upstream.",
		[]string{"command", "upstream"}, nil)
	// How much the per-mailbox write queue holds writes back
	// (upstream/writeslots.go): many "unqueued" mean the bound is too low
	// for the upstream's pace.
	writeWaitDesc = prometheus.NewDesc("idlemux_upstream_writes_total",
		"Writes to a mailbox (STORE, APPEND, EXPUNGE) under upstream.max_writes_per_mailbox, by how they reached the upstream: at_once (a slot was free), queued (after others of the mailbox), unqueued (after 2 s of waiting, without a slot); and by upstream.",
		[]string{"how", "upstream"}, nil)
)

// newUpstreamCollector reports every per-upstream series above.
func newUpstreamCollector(s *Server) prometheus.Collector {
	return &routeSeries{s: s,
		descs: []*prometheus.Desc{accountsDesc, watchedDesc, polledDesc, reconnectsDesc, connDesc, modeDesc, loginDesc, upstreamCmdDesc, writeWaitDesc},
		emit: func(st upstream.Stats, send func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
			gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
			send(accountsDesc, gauge, float64(st.Accounts))
			send(watchedDesc, gauge, float64(st.Watchers))
			send(polledDesc, gauge, float64(st.Polled))
			send(reconnectsDesc, counter, float64(st.Reconnects))
			send(connDesc, gauge, float64(st.WatcherConns), "watcher")
			send(connDesc, gauge, float64(st.NotifyConns), "notify")
			send(connDesc, gauge, float64(st.Conns-st.WatcherConns-st.NotifyConns), "command")
			send(modeDesc, gauge, float64(st.Watchers-st.Polled), upstream.ModeIdle)
			send(modeDesc, gauge, float64(st.Notify), upstream.ModeNotify)
			send(modeDesc, gauge, float64(st.Polled-st.Notify), upstream.ModePolled)
			for r, n := range st.LoginsBy {
				send(loginDesc, counter, float64(n), upstream.LoginReason(r).String())
			}
			for name, n := range st.Commands {
				send(upstreamCmdDesc, counter, float64(n), name)
			}
			for how, n := range st.WriteWaits {
				send(writeWaitDesc, counter, float64(n), upstream.WriteWait(how).String())
			}
		}}
}
