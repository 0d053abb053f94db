package proxy

import (
	"fmt"
	"reflect"

	"github.com/idlemux/idlemux/config"
)

// dynamic is the part of the config a reload may change while sessions
// run: each session reads it when it needs it.
type dynamic struct {
	cfg    config.Config // only Keepalive, Limits and Auth are read
	mapped mappedUsers
}

func newDynamic(cfg *config.Config) *dynamic {
	return &dynamic{cfg: *cfg, mapped: newMappedUsers(cfg.Auth.Users)}
}

func (s *Server) dyn() *dynamic { return s.dynamic.Load() }

// ApplyConfig takes a new, already validated config (SIGHUP): keepalive,
// limits and map-mode users apply to new logins and IDLEs at once, and the
// certificate is reloaded. Listeners, upstream, fanout and cache settings need a
// restart: a change to them is refused, naming the keys, and nothing is
// applied. Sessions are never dropped.
func (s *Server) ApplyConfig(cfg *config.Config) error {
	var fixed []string
	if !reflect.DeepEqual(cfg.Listeners, s.cfg.Listeners) {
		fixed = append(fixed, "listeners")
	}
	if !reflect.DeepEqual(cfg.Upstream, s.cfg.Upstream) {
		fixed = append(fixed, "upstream")
	}
	// Adding, removing or changing upstreams under live sessions is
	// issue 13's next step; until then a changed list is refused whole.
	if !reflect.DeepEqual(cfg.Upstreams, s.cfg.Upstreams) {
		fixed = append(fixed, "upstreams")
	}
	if cfg.DefaultUpstream != s.cfg.DefaultUpstream {
		fixed = append(fixed, "default_upstream")
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
	if len(fixed) > 0 {
		return fmt.Errorf("these keys need a restart, nothing was applied: %v", fixed)
	}
	if err := s.Reload(); err != nil {
		return err
	}
	s.dynamic.Store(newDynamic(cfg))
	s.log.Info("configuration reloaded")
	return nil
}
