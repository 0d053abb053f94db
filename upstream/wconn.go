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

// budget is a token bucket: burst tokens, one more every refill.
type budget struct {
	burst  int
	refill time.Duration
	tokens float64
	last   time.Time
}

// take spends a token at now, and returns how much later than now one is
// there to spend (0 when one is there at once).
func (b *budget) take(now time.Time) time.Duration {
	if b.last.IsZero() {
		b.tokens, b.last = float64(b.burst), now
	}
	if now.After(b.last) {
		b.tokens = min(float64(b.burst), b.tokens+float64(now.Sub(b.last))/float64(b.refill))
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	d := time.Duration((1 - b.tokens) * float64(b.refill))
	b.tokens, b.last = 0, now.Add(d)
	return d
}
