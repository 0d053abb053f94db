package proxy

import (
	"math/rand/v2"
	"time"
)

// stillHere is the untagged keepalive sent to idling clients. RFC 2177
// section 3 lets a server send it; it keeps NAT mappings and stateful
// firewalls from dropping a quiet connection.
const stillHere = "* OK Still here\r\n"

// keepaliveWriteTimeout bounds one keepalive write to a dead peer.
const keepaliveWriteTimeout = 30 * time.Second

// firstKeepalive spreads the first keepalive of each client uniformly over
// (d/2, d], so a fleet that started idling together does not send them in
// one burst; later ones follow every d.
func firstKeepalive(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2) + 1
}

// sendStillHere writes the keepalive straight to the connection.
// imapserver has no hook for untagged OK: this is safe because it runs on
// the IDLE goroutine, the only one writing responses while the client
// idles (imapserver flushes each response whole, so nothing is half
// written), and bye, the only other writer, takes writeMu too.
func (sess *session) sendStillHere() error {
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	if f := sess.fast; f != nil && f.handoff {
		return nil // a fast-path write was cut short: its rest goes first
	}
	return sess.writeRaw([]byte(stillHere), keepaliveWriteTimeout)
}
