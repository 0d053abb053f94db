package upstream

import (
	"math/rand/v2"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// wconn bounds every exchange on an upstream connection: imapclient has no
// deadline while waiting for a response, so a hung or half-open server
// would block forever. On timeout the connection is closed, which fails
// the command.
type wconn struct {
	*imapclient.Client
	timeout time.Duration
}

func (c *wconn) bounded(f func() error) error {
	g := newGuard(c.timeout, func() { c.Client.Close() })
	err := f()
	if g.Stop() {
		return unavailable("no answer from upstream within %v", c.timeout)
	}
	return err
}

// backoff is exponential with jitter; reset after a healthy connection.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) reset() { b.cur = 0 }

// next returns a delay in [cur/2, cur], doubling cur up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}
