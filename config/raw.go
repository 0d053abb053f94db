package config

// The raw* structs mirror the YAML document. Every scalar is a pointer so
// that validation can tell "unset, use the default" from an explicit zero,
// and durations are strings so a bad one becomes a keyed problem instead of
// aborting the decode.

type rawConfig struct {
	Listeners []rawListener `yaml:"listeners"`
	TLS       *rawTLS       `yaml:"tls"`
	Upstream  *rawUpstream  `yaml:"upstream"`
	// Upstreams and DefaultUpstream route logins to named upstreams
	// (routes.go); Upstream alone is the one upstream "default".
	Upstreams       *[]rawNamedUpstream `yaml:"upstreams"`
	DefaultUpstream *string             `yaml:"default_upstream"`
	Log             *rawLog             `yaml:"log"`
	Fanout          *rawFanout          `yaml:"fanout"`
	Cache           *rawCache           `yaml:"cache"`
	Keepalive       *string             `yaml:"keepalive"`
	Compress        *bool               `yaml:"compress"`
	Metrics         *rawMetrics         `yaml:"metrics"`
	Limits          *rawLimits          `yaml:"limits"`
	Auth            *rawAuth            `yaml:"auth"`

	ShutdownTimeout *string `yaml:"shutdown_timeout"`
}

type rawAuth struct {
	Mode  *string         `yaml:"mode"`
	Users []rawMappedUser `yaml:"users"`
}

type rawMappedUser struct {
	User                 *string `yaml:"user"`
	PasswordHash         *string `yaml:"password_hash"`
	UpstreamUser         *string `yaml:"upstream_user"`
	UpstreamPassword     *string `yaml:"upstream_password"`
	UpstreamPasswordFile *string `yaml:"upstream_password_file"`
	OAuth2TokenFile      *string `yaml:"oauth2_token_file"`
	OAuth2Mechanism      *string `yaml:"oauth2_mechanism"`
	Upstream             *string `yaml:"upstream"`
}

type rawLimits struct {
	MaxConnectionsPerIP   *intValue `yaml:"max_connections_per_ip"`
	MaxConnectionsPerUser *intValue `yaml:"max_connections_per_user"`
	LoginTimeout          *string   `yaml:"login_timeout"`
	AppendLimit           *intValue `yaml:"append_limit"`
	MaxLoginDelay         *string   `yaml:"max_login_delay"`

	MaxParallelLoginsPerIP *intValue `yaml:"max_parallel_logins_per_ip"`
	MaxQueuedLoginsPerIP   *intValue `yaml:"max_queued_logins_per_ip"`
}

type rawMetrics struct {
	Address *string `yaml:"address"`
}

type rawListener struct {
	Address       *string  `yaml:"address"`
	TLS           *string  `yaml:"tls"`
	InsecureAuth  *bool    `yaml:"insecure_auth"`
	ProxyProtocol *bool    `yaml:"proxy_protocol"`
	ProxyTrusted  []string `yaml:"proxy_trusted"`
}

type rawTLS struct {
	CertFile *string `yaml:"cert_file"`
	KeyFile  *string `yaml:"key_file"`
}

type rawUpstream struct {
	Preset                   *string   `yaml:"preset"`
	Address                  *string   `yaml:"address"`
	TLS                      *string   `yaml:"tls"`
	CAFile                   *string   `yaml:"ca_file"`
	ServerName               *string   `yaml:"server_name"`
	TLSInsecureSkipVerify    *bool     `yaml:"tls_insecure_skip_verify"`
	MaxConnectionsPerAccount *intValue `yaml:"max_connections_per_account"`
	MaxWritesPerMailbox      *intValue `yaml:"max_writes_per_mailbox"`
	IdleRefresh              *string   `yaml:"idle_refresh"`
	ResponseTimeout          *string   `yaml:"response_timeout"`
	DialTimeout              *string   `yaml:"dial_timeout"`
	CommandLinger            *string   `yaml:"command_linger"`
	WatcherLinger            *string   `yaml:"watcher_linger"`
	PollInterval             *string   `yaml:"poll_interval"`
	Capabilities             *[]string `yaml:"capabilities"`
	ForwardClientAddress     *bool     `yaml:"forward_client_address"`
	OAuth2Mechanism          *string   `yaml:"oauth2_mechanism"`
}

// rawNamedUpstream is one entry of upstreams: every key of upstream, plus
// the name routes refer to and the login domains routed to it.
type rawNamedUpstream struct {
	Name        *string  `yaml:"name"`
	Domains     []string `yaml:"domains"`
	rawUpstream `yaml:",inline"`
}

type rawLog struct {
	Level  *string `yaml:"level"`
	Format *string `yaml:"format"`
}

type rawCache struct {
	Enabled         *bool     `yaml:"enabled"`
	MaxBytes        *intValue `yaml:"max_bytes"`
	MaxMessageBytes *intValue `yaml:"max_message_bytes"`
}

type rawFanout struct {
	MaxLag *intValue `yaml:"max_lag"`
}
