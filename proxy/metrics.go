package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream"
)

// metrics are idlemux's Prometheus series. Gauges are read from the live
// state at scrape time, so they cannot drift from it.
type metrics struct {
	reg             *prometheus.Registry
	authFailures    prometheus.Counter
	laggingClosed   prometheus.Counter
	fanoutEvents    prometheus.Counter
	fanoutLatency   prometheus.Histogram
	localAnswers    *prometheus.CounterVec
	storeConfirmed  *prometheus.CounterVec
	authenticated   atomic.Int64
	selected        atomic.Int64
	ready           atomic.Bool
	httpSrv         *http.Server
	httpDone        chan struct{}
	listenerAddress string
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.authFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "idlemux_auth_failures_total", Help: "Logins refused because the upstream rejected the credentials.",
	})
	m.laggingClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "idlemux_clients_closed_lagging_total", Help: "Sessions closed with BYE for falling too far behind on mailbox changes.",
	})
	m.fanoutEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "idlemux_fanout_events_total", Help: "Untagged updates (EXISTS, EXPUNGE, FETCH FLAGS) written to sessions.",
	})
	m.fanoutLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "idlemux_fanout_latency_seconds",
		Help:    "Time from the watcher reading a change off the upstream connection to a session writing it.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 5},
	})
	m.localAnswers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idlemux_commands_local_total",
		Help: "Client commands answered without an upstream round trip (from the shared model or cache), by command.",
	}, []string{"command"})
	m.storeConfirmed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idlemux_store_confirmations_total",
		Help: "STOREs brought into the shared model before their OK, by how: answer (the STORE's own answer, no upstream round trip) or sync (a watcher round upstream).",
	}, []string{"by"})
	sessions := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "idlemux_downstream_sessions", Help: "Downstream sessions by state."}, []string{"state"})
	m.reg.MustRegister(m.authFailures, m.laggingClosed, m.fanoutEvents, m.fanoutLatency, m.localAnswers, m.storeConfirmed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idlemux_mailboxes_watched", Help: "(account, mailbox) pairs with a running watcher."},
			func() float64 { return float64(s.upStats().Watchers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idlemux_mailboxes_polled", Help: "Of the watched mailboxes, those without an upstream IDLE connection of their own, for want of a watcher slot under upstream.max_connections_per_account: polled every upstream.poll_interval, or pushed by the account's NOTIFY connection (idlemux_mailboxes_by_mode)."},
			func() float64 { return float64(s.upStats().Polled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "idlemux_upstream_reconnects_total", Help: "Watcher reconnects after an upstream failure."},
			func() float64 { return float64(s.upStats().Reconnects) }),
		&sessionCollector{s: s, desc: sessions},
		&connCollector{s: s},
		&loginCollector{s: s},
		&modeCollector{s: s},
		&upstreamCmdCollector{s: s},
		&routeCollector{s: s},
	)
	if s.cache != nil {
		m.reg.MustRegister(s.cache.collectors()...)
	}
	return m
}

// sessionCollector reports idlemux_downstream_sessions{state}.
type sessionCollector struct {
	s    *Server
	desc *prometheus.GaugeVec
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) { c.desc.Describe(ch) }
func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	all := c.s.sessions.Load()
	auth := c.s.metrics.authenticated.Load()
	sel := c.s.metrics.selected.Load()
	c.desc.WithLabelValues("unauthenticated").Set(float64(all - auth))
	c.desc.WithLabelValues("authenticated").Set(float64(auth - sel))
	c.desc.WithLabelValues("selected").Set(float64(sel))
	c.desc.Collect(ch)
}

// connCollector reports idlemux_upstream_connections{role}.
type connCollector struct{ s *Server }

var connDesc = prometheus.NewDesc("idlemux_upstream_connections", "Upstream connections by role.", []string{"role"}, nil)

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) { ch <- connDesc }
func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.upStats()
	ch <- prometheus.MustNewConstMetric(connDesc, prometheus.GaugeValue, float64(st.WatcherConns), "watcher")
	ch <- prometheus.MustNewConstMetric(connDesc, prometheus.GaugeValue, float64(st.NotifyConns), "notify")
	ch <- prometheus.MustNewConstMetric(connDesc, prometheus.GaugeValue, float64(st.Conns-st.WatcherConns-st.NotifyConns), "command")
}

// serve starts the HTTP endpoint: /metrics, /healthz (the process runs),
// /readyz (listeners accept and no shutdown began).
func (m *metrics) serve(addr string, log *zap.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	// Profiles for capacity work (issue 5): same address as /metrics, which
	// should be bound to a private interface.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	m.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.httpDone = make(chan struct{})
	go func() {
		defer close(m.httpDone)
		if err := m.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	return ln.Addr().String(), nil
}

func (m *metrics) shutdown(ctx context.Context) {
	if m.httpSrv == nil {
		return
	}
	m.httpSrv.Shutdown(ctx)
	<-m.httpDone
}

// modeCollector reports idlemux_mailboxes_by_mode{mode}: how each watched
// mailbox learns of changes made elsewhere (upstream.Watcher.Mode), which
// sets its latency (README, watching many mailboxes).
type modeCollector struct{ s *Server }

var modeDesc = prometheus.NewDesc("idlemux_mailboxes_by_mode",
	"Watched mailboxes by how changes made elsewhere reach them: idle (an upstream IDLE of their own), notify (the account's NOTIFY connection), polled (every upstream.poll_interval).",
	[]string{"mode"}, nil)

func (c *modeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- modeDesc }
func (c *modeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.upStats()
	ch <- prometheus.MustNewConstMetric(modeDesc, prometheus.GaugeValue, float64(st.Watchers-st.Polled), upstream.ModeIdle)
	ch <- prometheus.MustNewConstMetric(modeDesc, prometheus.GaugeValue, float64(st.Notify), upstream.ModeNotify)
	ch <- prometheus.MustNewConstMetric(modeDesc, prometheus.GaugeValue, float64(st.Polled-st.Notify), upstream.ModePolled)
}

// loginCollector reports idlemux_upstream_logins_total{reason}: providers
// count and rate-limit logins, and the reasons show where churn comes from.
type loginCollector struct{ s *Server }

var loginDesc = prometheus.NewDesc("idlemux_upstream_logins_total",
	"Logins made to the upstream (providers rate-limit them), by reason: check (a client's password), command (a new pool connection), watcher, reconnect (a watcher after a failure), notify (the account's NOTIFY connection).",
	[]string{"reason"}, nil)

func (c *loginCollector) Describe(ch chan<- *prometheus.Desc) { ch <- loginDesc }
func (c *loginCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.upStats()
	for r, n := range st.LoginsBy {
		ch <- prometheus.MustNewConstMetric(loginDesc, prometheus.CounterValue, float64(n), upstream.LoginReason(r).String())
	}
}

// upstreamCmdCollector reports idlemux_upstream_commands_total{command}:
// what idlemux asks of the provider, to set against
// idlemux_commands_local_total (issue 11).
type upstreamCmdCollector struct{ s *Server }

var upstreamCmdDesc = prometheus.NewDesc("idlemux_upstream_commands_total",
	"Commands sent to the upstream, on watcher and pool connections alike, by name: a UID command is named with its prefix (\"UID FETCH\"), IDLE's end is DONE, names idlemux does not know are OTHER.",
	[]string{"command"}, nil)

func (c *upstreamCmdCollector) Describe(ch chan<- *prometheus.Desc) { ch <- upstreamCmdDesc }
func (c *upstreamCmdCollector) Collect(ch chan<- prometheus.Metric) {
	for name, n := range c.s.upStats().Commands {
		ch <- prometheus.MustNewConstMetric(upstreamCmdDesc, prometheus.CounterValue, float64(n), name)
	}
}

// answeredLocally counts a client command answered from the shared model
// or cache, with no upstream round trip (issue 11): the figure operators
// compare with idlemux_upstream_commands_total to see the load taken off
// the provider. command is the IMAP command name in upper case ("FETCH").
func (m *metrics) answeredLocally(command string) {
	m.localAnswers.WithLabelValues(command).Inc()
}
