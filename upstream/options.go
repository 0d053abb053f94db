// Package upstream is idlemux's side toward the real IMAP server: per-account
// connection pools with pass-through login, and one watcher per (account,
// mailbox) that holds the only upstream IDLE and feeds the fanout model.
package upstream

import (
	"crypto/tls"
	"time"

	"go.uber.org/zap"
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

	// NoNotify keeps polled mailboxes polled even where the upstream
	// offers NOTIFY (RFC 5465): the operator's capability override
	// (upstream.capabilities) leaves it out.
	NoNotify bool

	// ForwardClientAddress sends the client's address in ID before the
	// login that checks a client's password (announceClient).
	ForwardClientAddress bool

	Log *zap.Logger
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.MaxConns < 2 {
		out.MaxConns = 2
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&out.IdleRefresh, 25*time.Minute)
	def(&out.ResponseTimeout, 30*time.Second)
	def(&out.DialTimeout, 15*time.Second)
	def(&out.CommandLinger, 2*time.Minute)
	def(&out.WatcherLinger, 30*time.Second)
	def(&out.PollInterval, 30*time.Second)
	if out.MaxLag <= 0 {
		out.MaxLag = 10000
	}
	if out.Log == nil {
		out.Log = zap.NewNop()
	}
	if out.TLS == "" {
		out.TLS = TLSImplicit
	}
	return out
}
