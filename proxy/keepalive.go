package proxy

import (
	"math/rand/v2"
	"time"
)

// stillHere is the untagged keepalive sent to idling clients. RFC 2177
// section 3 lets a server send it; it keeps NAT mappings and stateful
// firewalls from dropping a quiet connection.
const stillHere = "* OK Still here\r\n"

// firstKeepalive spreads the first keepalive of each client uniformly over
// (d/2, d], so a fleet that started idling together does not send them in
// one burst; later ones follow every d.
func firstKeepalive(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2) + 1
}
