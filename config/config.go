// Package config loads and validates idlemux's YAML configuration.
//
// Loading is strict and happens in two stages. The YAML is first decoded,
// with unknown keys rejected, into raw structs whose pointer fields keep
// "unset" distinguishable from a zero value. The raw structs are then
// validated onto Default(), producing the typed Config below. Every problem
// found on the way is collected and reported at once, each tagged with the
// YAML key it is about, so an operator fixes a config in one round trip
// instead of one error per restart.
package config

import (
	"net/netip"
	"time"
)

// TLSMode says how TLS is used on a connection.
type TLSMode string

// The TLS modes accepted for listeners and the upstream.
const (
	TLSNone     TLSMode = "none"     // plaintext
	TLSStartTLS TLSMode = "starttls" // plaintext, upgraded with STARTTLS
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (port 993 style)
)

// Config is a complete, validated idlemux configuration.
type Config struct {
	Listeners []Listener
	TLS       TLS
	// Upstream is the one upstream of a config written with upstream:.
	// A config written with upstreams: leaves it at its defaults and
	// lists its upstreams in Upstreams; use Routes to read either.
	Upstream  Upstream
	Upstreams []Upstream // key upstreams; empty when upstream: is used
	// DefaultUpstream names the upstream of logins whose domain no
	// upstream lists (key default_upstream); "" refuses them.
	DefaultUpstream string
	Log             Log
	Fanout          Fanout
	Cache           Cache
	// Keepalive is how often an idling client is sent "* OK Still here",
	// so NAT mappings and stateful firewalls keep the connection; spread
	// per client with jitter. 0 disables. Key keepalive, default 4m.
	Keepalive time.Duration
	// Compress offers COMPRESS=DEFLATE (RFC 4978) to clients after login;
	// idlemux compresses itself, whatever the upstream offers. Key
	// compress, default true. Off, COMPRESS is an unknown command, as on
	// a Dovecot without imap_zlib.
	Compress bool
	Metrics  Metrics
	Limits   Limits
	Auth     Auth
	// ShutdownTimeout bounds the graceful shutdown (BYE to clients, LOGOUT
	// upstream). Key shutdown_timeout, default 10s.
	ShutdownTimeout time.Duration
}

// Auth says how downstream logins are checked.
type Auth struct {
	// Mode: "passthrough" (default): a client's credentials are checked by
	// logging in upstream with them. "map": clients log in as the users
	// listed here (bcrypt hashes), and idlemux logs in upstream as the
	// account each one maps to, so many virtual users share one account.
	Mode  string
	Users []MappedUser
}

// MappedUser is one downstream user of map mode.
type MappedUser struct {
	User                 string
	PasswordHash         string // bcrypt
	UpstreamUser         string
	UpstreamPassword     string
	UpstreamPasswordFile string // read at each upstream login, so a rotated file takes effect
	OAuth2TokenFile      string // a bearer token, read at each upstream login (refreshed by an external agent)
	OAuth2Mechanism      string // xoauth2 | oauthbearer; default: the user's upstream's oauth2_mechanism
	// Upstream names the upstream this user's account lives on (key
	// auth.users[].upstream); "" routes by the login's domain.
	Upstream string
}

// Limits protect the proxy and the upstream from abuse. Zero disables a
// count limit.
type Limits struct {
	MaxConnectionsPerIP   int           // limits.max_connections_per_ip, default 0 (none)
	MaxConnectionsPerUser int           // limits.max_connections_per_user, default 0 (none)
	LoginTimeout          time.Duration // limits.login_timeout, default 60s: unauthenticated sessions end after it
	AppendLimit           int64         // limits.append_limit, default 64 MiB: advertised as APPENDLIMIT and enforced
	MaxLoginDelay         time.Duration // limits.max_login_delay, default 5s: cap of the growing delay after failed logins
	// MaxParallelLoginsPerIP caps the login checks (upstream logins,
	// bcrypt, failure delays) running at once for one client address;
	// more wait in line, at most MaxQueuedLoginsPerIP of them, and the
	// rest are answered NO [UNAVAILABLE] at once. Logins answered from
	// verified credentials pass freely.
	MaxParallelLoginsPerIP int // limits.max_parallel_logins_per_ip, default 4 (0: no cap)
	MaxQueuedLoginsPerIP   int // limits.max_queued_logins_per_ip, default 128
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Address serves /metrics, /healthz and /readyz over plain HTTP; empty
	// disables it. Key metrics.address.
	Address string
}

// Listener is one downstream address idlemux accepts IMAP clients on.
type Listener struct {
	Address string  // host:port; port 0 picks a free port
	TLS     TLSMode // default none
	// InsecureAuth allows LOGIN/AUTHENTICATE without TLS. It defaults to true
	// only on loopback addresses, where there is no wire to sniff.
	InsecureAuth bool
	// ProxyProtocol expects a PROXY protocol v1/v2 header (HAProxy and the
	// like) carrying the real client address; only from ProxyTrusted.
	ProxyProtocol bool
	ProxyTrusted  []netip.Prefix
}

// TLS is the server certificate shared by every starttls/implicit listener.
type TLS struct {
	CertFile, KeyFile string
}

// Upstream describes one IMAP server idlemux fronts.
type Upstream struct {
	// Name is how routes refer to it: key upstreams[].name, "default"
	// for the single upstream: form.
	Name string
	// Domains are the login domains (after the last "@", lower case)
	// routed here. Key upstreams[].domains.
	Domains []string
	// Preset names the provider whose settings (presets.go) were filled
	// in before the explicit keys; key preset, "" for none.
	Preset                   string
	Address                  string        // host:port, required in serve mode
	TLS                      TLSMode       // default implicit
	CAFile                   string        // extra roots, added to the system pool
	ServerName               string        // default: host part of Address
	TLSInsecureSkipVerify    bool          // key tls_insecure_skip_verify
	MaxConnectionsPerAccount int           // default 5, must be >= 2 (one watcher + one command conn)
	MaxWritesPerMailbox      int           // default 1, 0 for no bound: STOREs, APPENDs, EXPUNGEs of one mailbox upstream at once (upstream/writeslots.go)
	IdleRefresh              time.Duration // default 25m; > 0 and <= 29m (RFC 2177)
	ResponseTimeout          time.Duration // default 30s
	DialTimeout              time.Duration // default 15s
	CommandLinger            time.Duration // default 2m: idle command connections close after this
	WatcherLinger            time.Duration // default 30s: a watcher outlives its last client by this
	PollInterval             time.Duration // default 30s: polling of mailboxes beyond the watcher slots, and when the upstream lacks IDLE
	Capabilities             []string      // optional override of the upstream's capability list
	// ForwardClientAddress sends ID ("x-originating-ip" ...) before the
	// login that checks a client's password, so the upstream's per-address
	// penalties hit the client, not the proxy. Dovecot honours it only from
	// login_trusted_networks. Key forward_client_address, default false.
	ForwardClientAddress bool
	// OAuth2Mechanism is how a map-mode user's oauth2_token_file goes to
	// this upstream when the user's entry names none: xoauth2 (default)
	// or oauthbearer. Key oauth2_mechanism; presets set the provider's.
	OAuth2Mechanism string
}

// Log configures the zap logger.
type Log struct {
	Level  string // debug|info|warn|error, default info
	Format string // json|console, default json
}

// Cache bounds the shared cache of immutable per-message FETCH data
// (ENVELOPE, BODYSTRUCTURE, header sections, bodies...), kept as the
// upstream's own bytes and shared by every session of an account.
type Cache struct {
	Enabled bool // key cache.enabled, default true
	// MaxBytes bounds the bytes the cache holds (values, keys and a
	// per-entry overhead). Key cache.max_bytes, default 64 MiB.
	MaxBytes int64
	// MaxMessageBytes is the largest item value kept (a body above it is
	// always fetched upstream). Key cache.max_message_bytes, default 256 KiB.
	MaxMessageBytes int64
}

// Fanout configures delivery of upstream changes to downstream sessions.
type Fanout struct {
	// MaxLag is how many changes a session may fall behind before it is
	// closed with BYE; bounded queues keep one stuck client from growing
	// memory without limit.
	MaxLag int // key fanout.max_lag, default 10000
}
