package proxy

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/idlemux/idlemux/config"
)

// dynamic is the part of the config a reload may change while sessions
// run: each session reads it when it needs it.
type dynamic struct {
	cfg    config.Config // Keepalive, Limits, Auth and the routing keys are read
	mapped mappedUsers
	routes []*route // the upstreams cfg names, in its order (routes.go)
}

func newDynamic(cfg *config.Config, routes []*route) *dynamic {
	return &dynamic{cfg: *cfg, mapped: newMappedUsers(cfg.Auth.Users), routes: routes}
}

func (s *Server) dyn() *dynamic { return s.dynamic.Load() }

// ApplyConfig takes a new, already validated config (SIGHUP): keepalive,
// limits and map-mode users apply to new logins and IDLEs at once, and the
// certificate is reloaded. Upstreams may be added, removed or changed and
// routing switches for new logins at once (routes_reload.go): sessions on
// an unchanged upstream are untouched, those on a removed or changed one
// get BYE. Listeners, fanout and cache settings need a restart: a change
// to them is refused, naming the keys, and nothing is applied.
func (s *Server) ApplyConfig(cfg *config.Config) error {
	if fixed := s.fixedChanges(cfg); len(fixed) > 0 {
		return fmt.Errorf("these keys need a restart, nothing was applied: %v", fixed)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("shutting down: nothing was applied")
	}
	ch, err := s.planRoutes(cfg)
	if err != nil {
		return fmt.Errorf("nothing was applied: %w", err)
	}
	if err := s.Reload(); err != nil {
		shutdownAll(ch.added)
		return err
	}
	s.dynamic.Store(newDynamic(cfg, ch.next))
	s.applyRoutes(ch, s.cfg.ShutdownTimeout)
	s.log.Info("configuration reloaded")
	return nil
}

// fixedChanges names the keys of cfg that differ from the running config
// and that only a restart applies.
func (s *Server) fixedChanges(cfg *config.Config) []string {
	var fixed []string
	if !reflect.DeepEqual(cfg.Listeners, s.cfg.Listeners) {
		fixed = append(fixed, "listeners")
	}
	if cfg.Fanout != s.cfg.Fanout {
		fixed = append(fixed, "fanout")
	}
	if cfg.Cache != s.cfg.Cache {
		fixed = append(fixed, "cache") // sized once, shared by every session
	}
	if cfg.Metrics != s.cfg.Metrics {
		fixed = append(fixed, "metrics")
	}
	if cfg.TLS != s.cfg.TLS {
		fixed = append(fixed, "tls")
	}
	if cfg.ShutdownTimeout != s.cfg.ShutdownTimeout {
		fixed = append(fixed, "shutdown_timeout")
	}
	if cfg.Auth.Mode != s.cfg.Auth.Mode {
		fixed = append(fixed, "auth.mode")
	}
	return fixed
}
