package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

var reHostname = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$`)

// splitAddress checks a host:port address. Listeners may leave the host
// empty (all interfaces) and use port 0 (pick a free port); the upstream may
// not.
func splitAddress(addr string, listener bool) (host string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("must be host:port, got %q", addr)
	}
	if host == "" && !listener {
		return "", fmt.Errorf("must include a host, got %q", addr)
	}
	if host != "" && !validHost(host) {
		return "", fmt.Errorf("invalid host %q in %q", host, addr)
	}
	n, err := strconv.Atoi(port)
	minPort := 1
	if listener {
		minPort = 0
	}
	if err != nil || n < minPort || n > 65535 {
		return "", fmt.Errorf("port must be a number from %d to 65535, got %q", minPort, port)
	}
	return host, nil
}

func validHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return reHostname.MatchString(host)
}

// isLoopback reports whether host is localhost, 127.0.0.0/8 or ::1: the only
// places where a plaintext password never crosses a wire.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
