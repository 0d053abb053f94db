package config

import (
	"net"
	"time"
)

// Default values, exported through Default(). They live in one place so the
// docs, the validator and tests agree.
const (
	defaultUpstreamTLS              = TLSImplicit
	defaultMaxConnectionsPerAccount = 5
	defaultMaxWritesPerMailbox      = 1 // Dovecot's locks serialise a mailbox's writes anyway: queued here they do not contend (BENCHMARKS.md, issue 11)
	defaultIdleRefresh              = 25 * time.Minute
	defaultResponseTimeout          = 30 * time.Second
	defaultDialTimeout              = 15 * time.Second
	defaultCommandLinger            = 2 * time.Minute
	defaultWatcherLinger            = 30 * time.Second
	defaultPollInterval             = 30 * time.Second
	defaultLogLevel                 = "info"
	defaultLogFormat                = "json"
	defaultMaxLag                   = 10000
	defaultKeepalive                = 4 * time.Minute
	defaultCacheMaxBytes            = 64 << 20
	defaultCacheMaxMessageBytes     = 256 << 10

	// maxIdleRefresh keeps IDLE re-issued before the 30 minute inactivity
	// timeout RFC 2177 allows servers to enforce, with a minute of slack.
	maxIdleRefresh         = 29 * time.Minute
	defaultOAuth2Mechanism = "xoauth2"
	defaultShutdownTimeout = 10 * time.Second

	// MinConnectionsPerAccount is one watcher plus one command
	// connection: the least max_connections_per_account takes, and what
	// upstream.Options raises a smaller cap to.
	MinConnectionsPerAccount = 2
)

// Default returns a config holding every default: no listeners and an empty
// upstream address, so it is not valid for serving on its own.
func Default() *Config {
	return &Config{
		Upstream: Upstream{
			Name:                     DefaultUpstreamName,
			TLS:                      defaultUpstreamTLS,
			MaxConnectionsPerAccount: defaultMaxConnectionsPerAccount,
			MaxWritesPerMailbox:      defaultMaxWritesPerMailbox,
			IdleRefresh:              defaultIdleRefresh,
			ResponseTimeout:          defaultResponseTimeout,
			DialTimeout:              defaultDialTimeout,
			CommandLinger:            defaultCommandLinger,
			WatcherLinger:            defaultWatcherLinger,
			PollInterval:             defaultPollInterval,
			OAuth2Mechanism:          defaultOAuth2Mechanism,
		},
		Log:             Log{Level: defaultLogLevel, Format: defaultLogFormat},
		Fanout:          Fanout{MaxLag: defaultMaxLag},
		Cache:           Cache{Enabled: true, MaxBytes: defaultCacheMaxBytes, MaxMessageBytes: defaultCacheMaxMessageBytes},
		Keepalive:       defaultKeepalive,
		Compress:        true,
		Auth:            Auth{Mode: "passthrough"},
		ShutdownTimeout: defaultShutdownTimeout,
		Limits: Limits{
			LoginTimeout:  60 * time.Second,
			AppendLimit:   64 << 20,
			MaxLoginDelay: 5 * time.Second,

			MaxParallelLoginsPerIP: 4,
			MaxQueuedLoginsPerIP:   128,
		},
	}
}

// DemoListenAddress is where the demo listener binds.
const DemoListenAddress = "127.0.0.1:1143"

// Demo returns the config used by `idlemux demo`: one plaintext loopback
// listener with LOGIN allowed, in front of a plaintext upstream at
// upstreamAddr. Logs are console-formatted because a human is watching.
func Demo(upstreamAddr string) *Config {
	c := Default()
	c.Listeners = []Listener{{Address: DemoListenAddress, TLS: TLSNone, InsecureAuth: true}}
	c.Upstream.Address = upstreamAddr
	c.Upstream.TLS = TLSNone
	if host, _, err := net.SplitHostPort(upstreamAddr); err == nil {
		c.Upstream.ServerName = host
	}
	c.Log.Format = "console"
	return c
}
