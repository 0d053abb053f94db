package upstream

import (
	"sync/atomic"
	"time"
)

// Guard closes a command connection that makes no progress for its
// period: imapclient waits for a response without any deadline, so a hung
// or half-open upstream would otherwise hang the client's command forever.
// Streaming work (a large FETCH body, an APPEND upload) calls Touch as
// bytes move, and Pause while it waits on the client, so only upstream
// silence counts, not length nor a slow client.
type Guard struct {
	t     *time.Timer
	d     time.Duration
	fired atomic.Bool
}

// Guard starts a guard on c.
func (c *Conn) Guard(d time.Duration) *Guard {
	return newGuard(d, func() { c.Client.Close() })
}

// newGuard calls closeFn unless touched at least every d. The watcher's
// exchanges and the dial use it too, as one-shot bounds.
func newGuard(d time.Duration, closeFn func()) *Guard {
	g := &Guard{d: d}
	g.t = time.AfterFunc(d, func() {
		g.fired.Store(true)
		closeFn()
	})
	return g
}

// Touch records progress.
func (g *Guard) Touch() { g.t.Reset(g.d) }

// Pause stops counting while the caller waits on something else than the
// upstream; Touch resumes.
func (g *Guard) Pause() { g.t.Stop() }

// Stop ends the guard and reports whether it had closed the connection.
// The timer is always armed here (Pause is always followed by Touch), so a
// false Stop means it fired, even if its callback has not finished yet.
func (g *Guard) Stop() bool {
	return !g.t.Stop() || g.fired.Load()
}
