// Package proxy is idlemux's downstream side: listeners, imapserver sessions
// and pass-through authentication.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/tlsconf"
)

// Stats is a point-in-time view of the proxy for status lines and tests.
type Stats struct {
	Sessions         int // downstream sessions open
	UpstreamConns    int // upstream connections open, watchers included
	MailboxesWatched int // (account, mailbox) pairs with a running watcher
}

// tcpKeepAlive keeps NAT mappings and finds dead peers on downstream sockets.
const tcpKeepAlive = 2 * time.Minute

// Server runs every configured listener in front of the upstreams.
type Server struct {
	cfg *config.Config
	log *zap.Logger
	// reloadMu orders reloads (routes_reload.go) and shutdown's logout
	// of the upstreams.
	reloadMu sync.Mutex
	routeGen uint64          // reloads that built routes; under reloadMu
	tls      *tlsconf.Server // downstream certificate, nil without TLS listeners

	mu        sync.Mutex
	listeners []*listener
	closed    bool
	live      map[*session]struct{}

	metrics     *metrics
	cache       *fetchCache // nil when cache.enabled is false
	metricsAddr string
	lim         *limiter
	dynamic     atomic.Pointer[dynamic] // reloadable settings, the upstreams (routes.go) among them

	idleMu   sync.Mutex
	idleSets map[*fanout.Mailbox]*idleSet // plain-TCP sessions idling, by mailbox

	// statusFlight lets identical STATUS requests share one upstream
	// command (statuslocal.go statusShared).
	statusFlight singleflight.Group

	sessions  atomic.Int64
	sessionID atomic.Uint64
	wg        sync.WaitGroup // accept loops and imapservers
	sessWG    sync.WaitGroup // live sessions; Add only while open
}

// New validates what it can without touching the network.
func New(cfg *config.Config, log *zap.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, lim: newLimiter()}
	needTLS := false
	for _, l := range cfg.Listeners {
		needTLS = needTLS || l.TLS == config.TLSStartTLS || l.TLS == config.TLSImplicit
	}
	if needTLS {
		ts, err := tlsconf.NewServer(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = ts
	}
	routes, err := newRoutes(cfg, log)
	if err != nil {
		return nil, err
	}
	s.dynamic.Store(newDynamic(cfg, routes))
	if cfg.Cache.Enabled {
		s.cache = newFetchCache(cfg.Cache.MaxBytes, cfg.Cache.MaxMessageBytes)
	}
	s.metrics = newMetrics(s)
	return s, nil
}

// MetricsAddr returns the bound metrics address ("" when disabled).
func (s *Server) MetricsAddr() string { return s.metricsAddr }

// Start opens every listener and returns once they accept connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, lc := range s.cfg.Listeners {
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			for _, l := range s.listeners {
				l.close()
			}
			s.listeners = nil
			return fmt.Errorf("listeners[%d].address: %w", i, err)
		}
		l := newListener(s, lc, ln)
		s.listeners = append(s.listeners, l)
		s.log.Info("listening", zap.String("address", ln.Addr().String()), zap.String("tls", string(lc.TLS)))
	}
	if addr := s.cfg.Metrics.Address; addr != "" {
		bound, err := s.metrics.serve(addr, s.log)
		if err != nil {
			for _, l := range s.listeners {
				l.close()
			}
			s.listeners = nil
			return fmt.Errorf("metrics.address: %w", err)
		}
		s.metricsAddr = bound
		s.log.Info("metrics listening", zap.String("address", bound))
	}
	for _, l := range s.listeners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.acceptLoop()
		}()
	}
	s.metrics.ready.Store(true)
	return nil
}

// Addrs returns the bound listener addresses, in config order (useful with port 0).
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.ln.Addr().String()
	}
	return out
}

// Stats reports current counts.
func (s *Server) Stats() Stats {
	us := s.upStats()
	return Stats{
		Sessions:         int(s.sessions.Load()),
		UpstreamConns:    us.Conns,
		MailboxesWatched: us.Watchers,
	}
}

// Reload reads the downstream certificate and key again (SIGHUP, after a
// renewal). Sessions are not dropped: new TLS handshakes use the new pair.
// On error the old pair stays in use.
func (s *Server) Reload() error {
	if s.tls == nil {
		return nil
	}
	return s.tls.Reload()
}

// Shutdown stops accepting, says BYE to clients, logs out upstream and
// returns when done or when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.metrics.ready.Store(false)
	ls := s.listeners
	s.mu.Unlock()
	if !already {
		for _, l := range ls {
			l.stopAccepting()
		}
		for _, l := range ls {
			l.byeAll(ctx, "Server shutting down")
		}
	}
	err := s.shutdownRoutes(ctx)
	for _, l := range ls {
		l.close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.sessWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	s.metrics.shutdown(ctx)
	return err
}
