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
)

// metrics are idlemux's Prometheus series. Gauges are read from the live
// state at scrape time, so they cannot drift from it.
type metrics struct {
	reg             *prometheus.Registry
	authFailures    *prometheus.CounterVec
	laggingClosed   prometheus.Counter
	fanoutEvents    prometheus.Counter
	fanoutLatency   prometheus.Histogram
	localAnswers    *prometheus.CounterVec
	storeConfirmed  *prometheus.CounterVec
	appendConfirmed *prometheus.CounterVec
	authenticated   atomic.Int64
	selected        atomic.Int64
	ready           atomic.Bool
	httpSrv         *http.Server
	httpDone        chan struct{}
	listenerAddress string
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idlemux_auth_failures_total",
		Help: "Logins refused, by upstream: the one that rejected the credentials, \"none\" when no upstream was asked (map mode's own check, a domain routed nowhere, a refusal before login).",
	}, []string{"upstream"})
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
	m.appendConfirmed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idlemux_append_confirmations_total",
		Help: "APPENDs brought into the shared model before their OK, by how: answer (APPENDUID and a UID FETCH on the same connection, no watcher round) or sync (a watcher round upstream).",
	}, []string{"by"})
	sessions := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "idlemux_downstream_sessions", Help: "Downstream sessions by state."}, []string{"state"})
	m.reg.MustRegister(m.authFailures, m.laggingClosed, m.fanoutEvents, m.fanoutLatency, m.localAnswers, m.storeConfirmed, m.appendConfirmed,
		&sessionCollector{s: s, desc: sessions},
		newUpstreamCollector(s),
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

// authFailed counts a refused login against up, the upstream that refused
// it (nil: none was asked). Names come from the config, so the series are
// bounded by the upstreams ever configured.
func (m *metrics) authFailed(up *route) {
	name := "none"
	if up != nil {
		name = up.cfg.Name
	}
	m.authFailures.WithLabelValues(name).Inc()
}

// answeredLocally counts a client command answered from the shared model
// or cache, with no upstream round trip (issue 11): the figure operators
// compare with idlemux_upstream_commands_total to see the load taken off
// the provider. command is the IMAP command name in upper case ("FETCH").
func (m *metrics) answeredLocally(command string) {
	m.localAnswers.WithLabelValues(command).Inc()
}
