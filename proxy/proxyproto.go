package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"go.uber.org/zap"
)

// proxyHeaderTimeout bounds the wait for a PROXY header; IMAP's server
// speaks first, so a client without one would otherwise sit silent.
const proxyHeaderTimeout = 5 * time.Second

// proxyLn is a PROXY-protocol listener (v1 and v2) and the limiter of the
// log lines about the connections it refuses.
type proxyLn struct {
	*proxyproto.Listener
	refusals logLimiter
}

// proxyListener wraps ln for the PROXY protocol: every connection must
// carry a header. Whether its source may send one (proxy_trusted) is
// decided by checkProxyHeader, off the accept loop, where the refusal can
// be logged: go-proxyproto's own REJECT closes it inside Accept, silently.
func proxyListener(ln net.Listener, trusted []netip.Prefix) net.Listener {
	return &proxyLn{Listener: &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: proxyHeaderTimeout,
		ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			return proxyproto.REQUIRE, nil
		},
	}}
}

func isTrusted(addr net.Addr, trusted []netip.Prefix) bool {
	ip := addrOf(addr)
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkProxyHeader closes a connection from a source outside
// proxy_trusted before reading anything from it, else reads the header
// (off the accept loop: it may take up to proxyHeaderTimeout). A refused
// connection is logged, at most once a minute per source address, as the
// README promises: a flood of them must not become a flood of log lines.
func (l *listener) checkProxyHeader(c net.Conn) bool {
	pc, ok := c.(*proxyproto.Conn)
	if !ok {
		return true
	}
	peer := pc.Raw().RemoteAddr()
	why := ""
	switch {
	case !isTrusted(peer, l.cfg.ProxyTrusted):
		why = "closing connection from a source not in proxy_trusted"
	case pc.ProxyHeader() == nil:
		why = "closing connection without a valid PROXY header"
	default:
		return true
	}
	if pl, ok := l.ln.(*proxyLn); ok {
		if log, suppressed := pl.refusals.allow(addrOf(peer), time.Now()); log {
			l.log.Warn(why, zap.Stringer("peer", peer), zap.Uint64("unlogged_since_last", suppressed))
		}
	}
	c.Close()
	return false
}

// Bounds of logLimiter: one line per address per logEvery, and at most
// logAddrs addresses remembered (a few tens of KiB).
const (
	logEvery = time.Minute
	logAddrs = 1024
)

// logLimiter decides which refusals are logged: the first from an
// address, then at most one per logEvery. When more than logAddrs
// addresses were logged within logEvery, new ones are not logged until
// the table has room. Each logged line carries how many went unlogged
// since the previous one, so nothing is hidden, only summarised.
type logLimiter struct {
	mu         sync.Mutex
	last       map[netip.Addr]time.Time
	swept      time.Time // the table is swept at most once per second
	suppressed uint64
}

func (ll *logLimiter) allow(ip netip.Addr, now time.Time) (log bool, suppressed uint64) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if t, ok := ll.last[ip]; ok && now.Sub(t) < logEvery {
		ll.suppressed++
		return false, 0
	}
	if ll.last == nil {
		ll.last = make(map[netip.Addr]time.Time)
	}
	if len(ll.last) >= logAddrs && now.Sub(ll.swept) >= time.Second {
		ll.swept = now
		for a, t := range ll.last {
			if now.Sub(t) >= logEvery {
				delete(ll.last, a)
			}
		}
	}
	if _, ok := ll.last[ip]; !ok && len(ll.last) >= logAddrs {
		ll.suppressed++
		return false, 0
	}
	ll.last[ip] = now
	suppressed, ll.suppressed = ll.suppressed, 0
	return true, suppressed
}
