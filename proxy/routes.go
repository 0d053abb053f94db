package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/tlsconf"
	"github.com/idlemux/idlemux/upstream"
)

// route is one named upstream and the manager of its accounts. Each
// upstream has a manager of its own, so pools, watchers and the verified
// password cache of one never mix with another's (issue 13: accounts are
// keyed by upstream and user).
type route struct {
	cfg config.Upstream
	mgr *upstream.Manager
	// key names the route's accounts in the shared FETCH cache: the name
	// and the reload generation that built the manager, so a changed
	// upstream of the same name never answers from the old server's bytes.
	key string
	// retired is set, under Server.mu, when a reload removed or replaced
	// the upstream: a login finishing on it after that is refused.
	retired bool
}

// routes are the current upstreams, in config order. They live in the
// reloadable settings (reload.go dynamic) with the rules that pick one at
// login, so a reload swaps both at once: a login sees the old routing or
// the new one, never a mix.
func (s *Server) routes() []*route { return s.dyn().routes }

// newRoute starts the manager of upstream u; gen tells routes of the same
// name apart across reloads.
func newRoute(cfg *config.Config, u config.Upstream, gen uint64, log *zap.Logger) (*route, error) {
	mgr, err := newManager(cfg, u, log)
	if err != nil {
		return nil, err
	}
	return &route{cfg: u, mgr: mgr, key: fmt.Sprintf("%s#%d", u.Name, gen)}, nil
}

// newRoutes starts one manager per configured upstream, in config order.
func newRoutes(cfg *config.Config, log *zap.Logger) ([]*route, error) {
	ups, _ := cfg.Routes()
	var out []*route
	for _, u := range ups {
		r, err := newRoute(cfg, u, 0, log)
		if err != nil {
			shutdownAll(out)
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// shutdownAll closes the managers of routes no session has used yet.
func shutdownAll(rs []*route) {
	for _, r := range rs {
		r.mgr.Shutdown(context.Background())
	}
}

// newManager builds the manager of upstream u.
func newManager(cfg *config.Config, u config.Upstream, log *zap.Logger) (*upstream.Manager, error) {
	key := "upstream"
	if len(cfg.Upstreams) > 0 {
		key = "upstreams " + u.Name
	}
	var upTLS *tls.Config
	if u.TLS != config.TLSNone {
		var err error
		upTLS, err = tlsconf.Client(u.CAFile, u.ServerName, u.TLSInsecureSkipVerify)
		if err != nil {
			return nil, fmt.Errorf("%s TLS: %w", key, err)
		}
	}
	if u.TLSInsecureSkipVerify {
		log.Warn(key+".tls_insecure_skip_verify is set: the upstream's certificate is NOT verified; anyone on the path can read passwords and mail",
			zap.String("upstream", u.Name))
	}
	return upstream.NewManager(upstream.Options{
		Address:   u.Address,
		TLS:       string(u.TLS),
		TLSConfig: upTLS,
		MaxConns:  u.MaxConnectionsPerAccount,
		// 0 in the config is no bound; 0 in Options is the default.
		WritesPerMailbox: cmp.Or(u.MaxWritesPerMailbox, -1),
		IdleRefresh:      u.IdleRefresh,
		ResponseTimeout:  u.ResponseTimeout,
		DialTimeout:      u.DialTimeout,
		CommandLinger:    u.CommandLinger,
		WatcherLinger:    u.WatcherLinger,
		PollInterval:     u.PollInterval,
		MaxLag:           cfg.Fanout.MaxLag,

		NoNotify:             capsHideNotify(u.Capabilities),
		ForwardClientAddress: u.ForwardClientAddress,
		Log:                  log.Named("upstream").With(zap.String("upstream", u.Name)),
	}), nil
}

// route names the upstream of a login (config.Route) under these
// settings, nil when none takes it.
func (d *dynamic) route(login, mapped string) *route {
	name, ok := d.cfg.Route(login, mapped)
	if !ok {
		return nil
	}
	for _, r := range d.routes {
		if r.cfg.Name == name {
			return r
		}
	}
	return nil
}

// upCfg is the settings of the session's upstream; before login, those of
// the first upstream (only timeouts are read then).
func (sess *session) upCfg() *config.Upstream {
	if sess.up != nil {
		return &sess.up.cfg
	}
	return &sess.s.routes()[0].cfg
}

// loginWait bounds a login's upstream exchange whichever upstream it is
// routed to: the routing of a map-mode user is known only after its
// password is checked.
func (s *Server) loginWait() (d time.Duration) {
	for _, r := range s.routes() {
		d = max(d, r.cfg.DialTimeout+r.cfg.ResponseTimeout)
	}
	return d
}

// upStats sums the counts of every upstream's manager.
func (s *Server) upStats() upstream.Stats {
	var t upstream.Stats
	for _, r := range s.routes() {
		st := r.mgr.Stats()
		t.Accounts += st.Accounts
		t.Conns += st.Conns
		t.WatcherConns += st.WatcherConns
		t.CheckConns += st.CheckConns
		t.Watchers += st.Watchers
		t.Polled += st.Polled
		t.Notify += st.Notify
		t.NotifyConns += st.NotifyConns
		t.Live += st.Live
		t.Reconnects += st.Reconnects
		t.Logins += st.Logins
		t.Ignored += st.Ignored
		for i, n := range st.LoginsBy {
			t.LoginsBy[i] += n
		}
		if t.Commands == nil {
			t.Commands = maps.Clone(st.Commands)
			continue
		}
		for name, n := range st.Commands {
			t.Commands[name] += n
		}
	}
	return t
}

// shutdownRoutes logs every upstream's accounts out.
func (s *Server) shutdownRoutes(ctx context.Context) error {
	s.reloadMu.Lock() // a reload in progress finishes its swap first
	defer s.reloadMu.Unlock()
	var errs []error
	for _, r := range s.routes() {
		errs = append(errs, r.mgr.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// acctKey names the session's account across upstreams, for the shared
// FETCH cache: the same upstream user name on two upstreams (or on one
// upstream before and after a reload changed it) is two accounts.
func (sess *session) acctKey() string {
	return sess.up.key + "\x00" + sess.acct.User()
}
