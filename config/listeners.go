package config

import (
	"fmt"
	"net/netip"
)

func validateListeners(raw []rawListener, c *Config, ps *problems) {
	if len(raw) == 0 {
		ps.add("listeners", "at least one listener is required")
		return
	}
	seen := map[string]int{}
	c.Listeners = make([]Listener, 0, len(raw))
	for i, rl := range raw {
		l := Listener{TLS: tlsMode(ps, indexKey("listeners", i, "tls"), rl.TLS, TLSNone)}
		key := indexKey("listeners", i, "address")
		host := ""
		switch addr := str(rl.Address); {
		case addr == "":
			ps.add(key, "required")
		default:
			h, err := splitAddress(addr, true)
			if err != nil {
				ps.add(key, "%v", err)
				break
			}
			host = h
			l.Address = addr
			if j, dup := seen[addr]; dup {
				ps.add(key, "duplicate of listeners[%d].address %q", j, addr)
			} else if !hasPortZero(addr) {
				seen[addr] = i
			}
		}
		l.InsecureAuth = isLoopback(host)
		if rl.InsecureAuth != nil {
			l.InsecureAuth = *rl.InsecureAuth
		}
		validateProxyProtocol(rl, &l, i, ps)
		c.Listeners = append(c.Listeners, l)
	}
}

// hasPortZero: several listeners may each ask for "any free port".
func hasPortZero(addr string) bool {
	return len(addr) >= 2 && addr[len(addr)-2:] == ":0"
}

// validateProxyProtocol: a PROXY-protocol listener must say whose headers
// it trusts; a header from anyone else would let them choose their address.
func validateProxyProtocol(rl rawListener, l *Listener, i int, ps *problems) {
	if rl.ProxyProtocol != nil {
		l.ProxyProtocol = *rl.ProxyProtocol
	}
	key := indexKey("listeners", i, "proxy_trusted")
	for j, cidr := range rl.ProxyTrusted {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			ps.add(fmt.Sprintf("%s[%d]", key, j), "must be a CIDR such as 10.0.0.0/8, got %q", cidr)
			continue
		}
		l.ProxyTrusted = append(l.ProxyTrusted, p.Masked())
	}
	switch {
	case l.ProxyProtocol && len(rl.ProxyTrusted) == 0:
		ps.add(key, "required when proxy_protocol is true")
	case !l.ProxyProtocol && len(rl.ProxyTrusted) > 0:
		ps.add(key, "set, but proxy_protocol is not true")
	}
}
