package upstream

import (
	"testing"
	"time"

	"github.com/idlemux/idlemux/config"
)

// TestOptionDefaultsAreConfigs: an Options field left zero gets
// config's default (config/defaults.go is the one place defaults are
// set), a field set keeps its value, and a cap under the minimum is
// raised to it.
func TestOptionDefaultsAreConfigs(t *testing.T) {
	d := config.Default()
	zero := (&Options{}).withDefaults()
	set := (&Options{MaxConns: 7, IdleRefresh: time.Minute, ResponseTimeout: 2 * time.Second, DialTimeout: 3 * time.Second,
		CommandLinger: 4 * time.Second, WatcherLinger: 5 * time.Second, PollInterval: 6 * time.Second, MaxLag: 8, TLS: TLSNone}).withDefaults()
	low := (&Options{MaxConns: 1}).withDefaults()
	tests := []struct {
		name      string
		got, want any
	}{
		{"max_connections_per_account unset", zero.MaxConns, config.MinConnectionsPerAccount},
		{"max_connections_per_account under the minimum", low.MaxConns, config.MinConnectionsPerAccount},
		{"idle_refresh", zero.IdleRefresh, d.Upstream.IdleRefresh},
		{"response_timeout", zero.ResponseTimeout, d.Upstream.ResponseTimeout},
		{"dial_timeout", zero.DialTimeout, d.Upstream.DialTimeout},
		{"command_linger", zero.CommandLinger, d.Upstream.CommandLinger},
		{"watcher_linger", zero.WatcherLinger, d.Upstream.WatcherLinger},
		{"poll_interval", zero.PollInterval, d.Upstream.PollInterval},
		{"fanout.max_lag", zero.MaxLag, d.Fanout.MaxLag},
		{"tls", zero.TLS, string(d.Upstream.TLS)},
		{"set max_connections_per_account", set.MaxConns, 7},
		{"set idle_refresh", set.IdleRefresh, time.Minute},
		{"set response_timeout", set.ResponseTimeout, 2 * time.Second},
		{"set dial_timeout", set.DialTimeout, 3 * time.Second},
		{"set command_linger", set.CommandLinger, 4 * time.Second},
		{"set watcher_linger", set.WatcherLinger, 5 * time.Second},
		{"set poll_interval", set.PollInterval, 6 * time.Second},
		{"set max_lag", set.MaxLag, 8},
		{"set tls", set.TLS, TLSNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}
