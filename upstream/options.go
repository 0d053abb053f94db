// Package upstream is idlemux's side toward the real IMAP server: per-account
// connection pools with pass-through login, and one watcher per (account,
// mailbox) that holds the only upstream IDLE and feeds the fanout model.
package upstream

import (
	"crypto/tls"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
)

// TLS modes for the upstream connection.
const (
	TLSNone     = "none"
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
)

// Options configures a Manager.
type Options struct {
	Address   string
	TLS       string      // TLSNone, TLSStartTLS or TLSImplicit
	TLSConfig *tls.Config // for TLSStartTLS and TLSImplicit

	MaxConns        int           // per account, watchers included (>= 2)
	IdleRefresh     time.Duration // re-issue IDLE at least this often (RFC 2177: < 29m)
	ResponseTimeout time.Duration // an answer later than this means the connection is dead
	DialTimeout     time.Duration
	CommandLinger   time.Duration // idle command connections close after this
	WatcherLinger   time.Duration // a watcher outlives its last session by this
	PollInterval    time.Duration // NOOP polling when the upstream lacks IDLE
	MaxLag          int           // fanout: undelivered changes before a session is closed
	// WritesPerMailbox bounds the commands changing one mailbox that run
	// upstream at once, per account (writeslots.go); 0: config's default,
	// below 0: no bound.
	WritesPerMailbox int

	// NoNotify keeps polled mailboxes polled even where the upstream
	// offers NOTIFY (RFC 5465): the operator's capability override
	// (upstream.capabilities) leaves it out.
	NoNotify bool

	// ForwardClientAddress sends the client's address in ID before the
	// login that checks a client's password (announceClient).
	ForwardClientAddress bool

	Log *zap.Logger
}

// withDefaults fills what o leaves unset (zero) from config's defaults,
// which are set in config/ alone (config.Default): a Manager built
// without a config file (tests, the demo) behaves as a config that names
// only the address. A cap under config's minimum is raised to it.
func (o *Options) withDefaults() Options {
	out := *o
	d := config.Default()
	up := &d.Upstream
	out.MaxConns = max(out.MaxConns, config.MinConnectionsPerAccount)
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&out.IdleRefresh, up.IdleRefresh)
	def(&out.ResponseTimeout, up.ResponseTimeout)
	def(&out.DialTimeout, up.DialTimeout)
	def(&out.CommandLinger, up.CommandLinger)
	def(&out.WatcherLinger, up.WatcherLinger)
	def(&out.PollInterval, up.PollInterval)
	if out.WritesPerMailbox == 0 {
		out.WritesPerMailbox = up.MaxWritesPerMailbox
	}
	if out.MaxLag <= 0 {
		out.MaxLag = d.Fanout.MaxLag
	}
	if out.Log == nil {
		out.Log = zap.NewNop()
	}
	if out.TLS == "" {
		out.TLS = string(up.TLS)
	}
	return out
}
