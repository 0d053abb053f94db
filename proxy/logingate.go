package proxy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/idlemux/idlemux/config"
)

// loginQueueWait bounds how long a login waits in its address's line.
const loginQueueWait = 30 * time.Second

// errLoginsQueued answers a login that found its address's line full or
// waited in it too long: NO [UNAVAILABLE], no upstream contact.
var errLoginsQueued = errors.New("too many logins in progress from this address")

// gate is one address's running login checks: at most the configured
// number run, the next ones wait first come, first served. A gate exists
// only while a check runs, so the table holds at most one entry per
// address with a session in Login.
type gate struct {
	active  int
	waiters []chan struct{} // closed when handed a slot
}

// enter takes a slot for ip, or a place in line (the channel to wait
// on), or fails when the line already holds queue waiters.
func (l *limiter) enter(ip netip.Addr, parallel, queue int) (chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.gates[ip]
	if g == nil {
		g = &gate{}
		l.gates[ip] = g
	}
	if g.active < parallel {
		g.active++
		return nil, nil
	}
	if len(g.waiters) >= queue {
		return nil, errLoginsQueued
	}
	ch := make(chan struct{})
	g.waiters = append(g.waiters, ch)
	return ch, nil
}

// exit hands ip's slot to the first waiter, or frees it.
func (l *limiter) exit(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.gates[ip]
	if len(g.waiters) > 0 {
		close(g.waiters[0])
		g.waiters = slices.Delete(g.waiters, 0, 1)
		return
	}
	if g.active--; g.active == 0 {
		delete(l.gates, ip)
	}
}

// leave takes a waiter out of line; false if it was handed a slot already.
func (l *limiter) leave(ip netip.Addr, ch chan struct{}) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.gates[ip]
	i := slices.Index(g.waiters, ch)
	if i < 0 {
		return false
	}
	g.waiters = slices.Delete(g.waiters, i, i+1)
	return true
}

// loginTicket is one Login's place at its address's gate. It is taken
// only for work that costs (an upstream login, bcrypt, a failure's delay)
// and held until Login returns, its delay included: a failure slows every
// connection of the address, not just its own. Used by one goroutine.
type loginTicket struct {
	l               *limiter
	ip              netip.Addr
	parallel, queue int
	held            bool
}

func (l *limiter) ticket(ip netip.Addr, lim config.Limits) *loginTicket {
	return &loginTicket{l: l, ip: ip, parallel: lim.MaxParallelLoginsPerIP, queue: lim.MaxQueuedLoginsPerIP}
}

// take waits for a slot (at most loginQueueWait and ctx); a no-op once held.
func (t *loginTicket) take(ctx context.Context) error {
	if t.held || t.parallel <= 0 {
		return nil
	}
	ch, err := t.l.enter(t.ip, t.parallel, t.queue)
	if err != nil {
		return err
	}
	if ch != nil {
		timer := time.NewTimer(loginQueueWait)
		defer timer.Stop()
		select {
		case <-ch:
		case <-ctx.Done():
		case <-timer.C:
		}
		select {
		case <-ch:
		default:
			if t.l.leave(t.ip, ch) {
				return errLoginsQueued
			}
			<-ch // handed a slot just as the wait ended: take it
		}
	}
	t.held = true
	return nil
}

// release gives the slot back, if taken.
func (t *loginTicket) release() {
	if t.held {
		t.held = false
		t.l.exit(t.ip)
	}
}
