package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"go.uber.org/zap"
)

// proxyHeaderTimeout bounds the wait for a PROXY header; IMAP's server
// speaks first, so a client without one would otherwise sit silent.
const proxyHeaderTimeout = 5 * time.Second

// proxyListener wraps ln for the PROXY protocol (v1 and v2): a connection
// from a trusted source must carry a header, which gives the real client
// address; one from anywhere else is closed (go-proxyproto denies it
// without stopping Accept).
func proxyListener(ln net.Listener, trusted []netip.Prefix) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: proxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if isTrusted(o.Upstream, trusted) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.REJECT, fmt.Errorf("%w: %v is not in proxy_trusted", proxyproto.ErrInvalidUpstream, o.Upstream)
		},
	}
}

func isTrusted(addr net.Addr, trusted []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkProxyHeader reads the header (off the accept loop: it may take up to
// proxyHeaderTimeout) and reports whether the connection may go on. A
// missing or malformed header is logged and the connection closed.
func (l *listener) checkProxyHeader(c net.Conn) bool {
	pc, ok := c.(*proxyproto.Conn)
	if !ok {
		return true
	}
	if pc.ProxyHeader() == nil {
		l.log.Warn("closing connection without a valid PROXY header", zap.Stringer("peer", pc.Raw().RemoteAddr()))
		c.Close()
		return false
	}
	return true
}
