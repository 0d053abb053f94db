package upstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// poolCtx bounds a pool test's waits.
func poolCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fullPool logs in with a pool of max connections and takes them all as
// command connections with INBOX selected.
func fullPool(t *testing.T, max int) (*Manager, *Account, context.Context, []*Conn) {
	t.Helper()
	m, a := testLogin(t, Options{Address: memServer(t, 1), TLS: TLSNone, MaxConns: max})
	ctx := poolCtx(t)
	var held []*Conn
	for range max {
		c, err := a.Acquire(ctx, "INBOX", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	return m, a, ctx, held
}

// TestPoolHandsOverReleasedConnection: a command waiting for a full pool
// gets the released connection itself, still logged in, with no LOGOUT and
// no new LOGIN (issue 10: a woken waiter used to log it out and dial).
func TestPoolHandsOverReleasedConnection(t *testing.T) {
	m, a, ctx, held := fullPool(t, 2)
	c1, c2 := held[0], held[1]
	logins := m.Stats().Logins
	got := make(chan *Conn, 1)
	go func() {
		c, err := a.Acquire(ctx, "INBOX", 0, 0)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitQueued(t, a, 1)
	a.Release(c1, nil)
	c3 := <-got
	if c3 != c1 {
		t.Fatalf("waiter got connection %p, want the released %p", c3, c1)
	}
	if n := m.Stats().Logins - logins; n != 0 {
		t.Fatalf("upstream logins during the handover: got %d, want 0", n)
	}
	if st := m.Stats(); st.Conns != 2 {
		t.Fatalf("connections: got %d, want 2", st.Conns)
	}
	a.Release(c2, nil)
	a.Release(c3, nil)
}

// waitQueued waits until n callers wait in a's queue.
func waitQueued(t *testing.T, a *Account, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		a.m.mu.Lock()
		q := len(a.queue)
		a.m.mu.Unlock()
		if q == n {
			return
		}
	}
	t.Fatalf("queue never reached %d waiters", n)
}

// TestPoolServesWaitersInOrder: waiters are served first come, first
// served.
func TestPoolServesWaitersInOrder(t *testing.T) {
	_, a, ctx, held := fullPool(t, 2)
	order := make(chan int, 4)
	conns := make(chan *Conn, 4)
	for i := range 4 {
		go func() {
			c, err := a.Acquire(ctx, "INBOX", 0, 0)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			conns <- c
		}()
		waitQueued(t, a, i+1)
	}
	for i := range 4 {
		c := held[0]
		held = held[1:]
		a.Release(c, nil)
		if got := <-order; got != i {
			t.Fatalf("served waiter %d, want %d (first come, first served)", got, i)
		}
		held = append(held, <-conns)
	}
	for _, c := range held {
		a.Release(c, nil)
	}
}

// TestPoolManySessionsFewLogins: 20 goroutines hammering a pool of 3 log in
// at most 3 times in all.
func TestPoolManySessionsFewLogins(t *testing.T) {
	addr := memServer(t, 3)
	m, a := testLogin(t, Options{Address: addr, TLS: TLSNone, MaxConns: 3})
	ctx := poolCtx(t)
	before := m.Stats().Logins
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 20 {
				c, err := a.Acquire(ctx, "INBOX", 0, 0)
				if err != nil {
					t.Error(err)
					return
				}
				err = c.Noop().Wait()
				a.Release(c, err)
			}
		})
	}
	wg.Wait()
	if n := m.Stats().Logins - before; n > 2 {
		t.Fatalf("upstream logins for 400 commands on a pool of 3 (one already open): got %d, want at most 2", n)
	}
	if st := m.Stats(); st.Conns > 3 {
		t.Fatalf("connections: got %d, want at most 3", st.Conns)
	}
}

// TestPoolIdleConnectionYieldsToWatcher: a watcher that needs a slot held
// by an idle command connection gets it at once (the idle one is logged
// out), instead of waiting for the command linger.
func TestPoolIdleConnectionYieldsToWatcher(t *testing.T) {
	addr := memServer(t, 1)
	m, a := testLogin(t, Options{Address: addr, TLS: TLSNone, MaxConns: 2, CommandLinger: time.Hour})
	ctx := poolCtx(t)
	c, err := a.Acquire(ctx, "INBOX", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := a.Acquire(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Release(c2, nil)
	a.Release(c, nil)
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatalf("watch with the pool full of idle connections: %v", err)
	}
	defer w.Unwatch()
	w.Idling(true)
	defer w.Idling(false)
	waitStats(t, m, "the watcher's own connection", func(st Stats) bool { return st.WatcherConns == 1 })
	if st := m.Stats(); st.Conns != 2 || st.WatcherConns != 1 {
		t.Fatalf("stats: got %+v, want 2 connections, 1 of them the watcher's", st)
	}
}

// TestPoolGaveUpWaiterLeaksNothing: waiters whose context ends, some just
// as they are served, leave the pool's counts exact.
func TestPoolGaveUpWaiterLeaksNothing(t *testing.T) {
	m, a, ctx, held := fullPool(t, 2)
	c1, c2 := held[0], held[1]
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, time.Duration(i%5)*time.Millisecond)
			defer cancel()
			if c, err := a.Acquire(wctx, "INBOX", 0, 0); err == nil {
				a.Release(c, nil)
			}
		})
	}
	a.Release(c1, nil)
	a.Release(c2, nil)
	wg.Wait()
	a.m.mu.Lock()
	q, idle, total := len(a.queue), len(a.idle), a.total
	a.m.mu.Unlock()
	if q != 0 || total != idle || total > 2 {
		t.Fatalf("after the waiters left: queue %d, idle %d, total %d; want an empty queue and every connection idle", q, idle, total)
	}
	if st := m.Stats(); st.Conns != total {
		t.Fatalf("stats: got %d connections, want %d", st.Conns, total)
	}
}

// TestPolledBeyondWatcherSlots: with every watcher slot taken, another
// mailbox is watched at once by polling on the command connections, its
// model follows upstream changes on Sync, and it switches to IDLE when a
// slot frees (issue 10: the fifth mailbox used to wait 45 s and fail).
func TestPolledBeyondWatcherSlots(t *testing.T) {
	addr := memServer(t, 1)
	direct, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if err := direct.Login("u", "p").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Create("B", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	m, a := testLogin(t, Options{Address: addr, TLS: TLSNone, MaxConns: 2, WatcherLinger: time.Millisecond, PollInterval: time.Hour})
	ctx := poolCtx(t)
	inbox, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Polled != 1 || st.WatcherConns != 0 {
		t.Fatalf("stats with no client idling: got %+v, want the mailbox polled, no watcher connection", st)
	}
	inbox.Idling(true)
	waitStats(t, m, "INBOX's own connection", func(st Stats) bool { return st.WatcherConns == 1 })
	b, err := a.Watch(ctx, "B")
	if err != nil {
		t.Fatalf("watching a second mailbox with the one watcher slot taken: %v", err)
	}
	defer b.Unwatch()
	b.Idling(true)
	defer b.Idling(false)
	if st := m.Stats(); st.Watchers != 2 || st.Polled != 1 || st.WatcherConns != 1 || st.Conns > 2 {
		t.Fatalf("stats: got %+v, want 2 watchers, 1 polled, 1 watcher connection, at most 2 in all", st)
	}
	body := "Subject: b\r\n\r\nx\r\n"
	cmd := direct.Append("B", int64(len(body)), nil)
	cmd.Write([]byte(body))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.Mailbox().UIDs(); len(got) != 1 {
		t.Fatalf("polled model after an upstream APPEND and Sync: got UIDs %v, want one", got)
	}
	inbox.Idling(false)
	inbox.Unwatch() // lingers 1 ms, then its slot goes to B
	waitStats(t, m, "B watched by IDLE after INBOX's watcher ended", func(st Stats) bool { return st.Polled == 0 && st.WatcherConns == 1 })
	if b.Mailbox().Len() != 1 {
		t.Fatalf("model after switching to IDLE: got %d messages, want 1", b.Mailbox().Len())
	}
}

// waitStats waits until the manager's stats satisfy ok.
func waitStats(t testing.TB, m *Manager, what string, ok func(Stats) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(m.Stats()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: stats %+v", what, m.Stats())
		}
	}
}
