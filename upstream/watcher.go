package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
)

// ErrUIDValidityChanged ends the sessions that had the mailbox selected: the
// one upstream change idlemux cannot hide (RFC 3501 section 2.3.1.1).
var ErrUIDValidityChanged = errors.New("mailbox UIDVALIDITY changed upstream")

// Watcher holds the single upstream connection that SELECTs (read-only) and
// IDLEs on one mailbox of one account, and keeps the fanout model current.
// Its goroutine (run) is the only one that talks to that connection.
type Watcher struct {
	acct *Account
	name string
	log  *zap.Logger
	q    *eventQueue

	// guarded by acct.m.mu
	refs      int
	linger    *time.Timer
	stopped   bool
	idlers    int           // sessions idling on the mailbox
	idleAsked bool          // wantIdle is closed
	wantIdle  chan struct{} // closed when a session first idles (polled.go)

	stop chan struct{} // closed to stop the watcher
	done chan struct{} // closed when run returns

	box    atomic.Pointer[fanout.Mailbox]
	polled atomic.Bool // no connection of its own: polled (polled.go)

	// Owned by the run goroutine.
	modseq   uint64 // the upstream MODSEQ the model is known to include (CONDSTORE)
	sessions int    // upstream connections started, for the login reason

	stMu    sync.Mutex
	lastErr error         // last failure while there is no model yet
	attempt chan struct{} // closed and replaced after each connection attempt
}

// permanentError stops the watcher's retries.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Watch returns the running watcher of mailbox, starting it if needed, once
// it has a model. The caller must call Unwatch.
func (a *Account) Watch(ctx context.Context, mailbox string) (*Watcher, error) {
	m := a.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	w := a.watchers[mailbox]
	if w == nil {
		w = &Watcher{
			acct:    a,
			name:    mailbox,
			log:     a.log.With(zap.String("mailbox", mailbox)),
			q:       newEventQueue(),
			stop:    make(chan struct{}),
			done:    make(chan struct{}),
			attempt: make(chan struct{}),

			wantIdle: make(chan struct{}),
		}
		a.watchers[mailbox] = w
		m.wg.Add(1)
		go w.run()
	}
	w.refs++
	if w.linger != nil {
		w.linger.Stop()
		w.linger = nil
	}
	m.mu.Unlock()

	for {
		if box := w.box.Load(); box != nil {
			return w, nil
		}
		w.stMu.Lock()
		err, ch := w.lastErr, w.attempt
		w.stMu.Unlock()
		if err != nil {
			w.Unwatch()
			return nil, err
		}
		select {
		case <-ch:
		case <-w.done:
			w.Unwatch()
			w.stMu.Lock()
			err := w.lastErr
			w.stMu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return nil, err
		case <-ctx.Done():
			w.Unwatch()
			return nil, unavailable("mailbox %q not ready: %v", mailbox, ctx.Err())
		}
	}
}

// Unwatch drops a reference; the watcher stops WatcherLinger after the last.
func (w *Watcher) Unwatch() {
	m := w.acct.m
	m.mu.Lock()
	defer m.mu.Unlock()
	w.refs--
	if w.refs > 0 || w.stopped {
		return
	}
	w.linger = time.AfterFunc(m.opts.WatcherLinger, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if w.refs == 0 {
			w.stopLocked()
		}
	})
}

// stopLocked stops the watcher and forgets it. m.mu must be held.
func (w *Watcher) stopLocked() {
	if w.stopped {
		return
	}
	w.stopped = true
	close(w.stop)
	w.acct.markRecentLocked(w.name, w.box.Load())
	if w.acct.watchers[w.name] == w {
		delete(w.acct.watchers, w.name)
	}
}

// Mailbox returns the current model (never nil after Watch succeeded). It
// changes only when UIDVALIDITY changed; the old one is closed then.
func (w *Watcher) Mailbox() *fanout.Mailbox { return w.box.Load() }

// Sync makes the watcher ask the upstream for news now (NOOP) and returns
// once the model includes everything the upstream had reported by then. A
// session calls it after its own change so that the change reaches its own
// responses, through the same path as everyone else's.
func (w *Watcher) Sync(ctx context.Context) error {
	ch := make(chan struct{})
	w.q.addSync(ch)
	select {
	case <-ch:
		return nil
	case <-w.done:
		return ErrClosed
	case <-ctx.Done():
		return unavailable("mailbox %q sync: %v", w.name, ctx.Err())
	}
}

func (w *Watcher) noteAttempt(err error) {
	w.stMu.Lock()
	if w.box.Load() == nil {
		w.lastErr = err
	}
	close(w.attempt)
	w.attempt = make(chan struct{})
	w.stMu.Unlock()
}

// A watcher's logins are bounded by a budget: loginBurst quick ones, for
// isolated faults that each reconnect within a second, then one per
// loginRefill. An upstream that breaks right after each resync was logged
// in to every half second (108 logins in 45 s); with the budget, about 10.
var (
	loginBurst  = 4
	loginRefill = 8 * time.Second
)

// run connects, watches, and reconnects with backoff until stopped or a
// permanent error.
func (w *Watcher) run() {
	m := w.acct.m
	defer m.wg.Done()
	defer close(w.done)
	bo := newBackoff(500*time.Millisecond, 2*time.Minute)
	logins := &budget{burst: loginBurst, refill: loginRefill}
	for {
		var opened time.Time
		err := w.session(&opened)
		select {
		case <-w.stop:
			return
		default:
		}
		var perm *permanentError
		if errors.As(err, &perm) || errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrClosed) {
			w.log.Warn("mailbox watcher stopped", zap.Error(err))
			w.noteAttempt(err)
			if box := w.box.Load(); box != nil {
				box.Close(err)
			}
			m.mu.Lock()
			w.stopLocked()
			m.mu.Unlock()
			return
		}
		w.noteAttempt(err)
		if !opened.IsZero() {
			// It logged in and resynced: the next failure is a new
			// incident, retried within a second again, as far as the
			// login budget allows.
			bo.reset()
		}
		d := bo.next()
		d += logins.take(time.Now().Add(d))
		m.reconnects.Add(1)
		w.log.Info("mailbox watcher reconnecting", zap.Error(err), zap.Duration("in", d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			return
		}
	}
}

// stopCtx is a context cancelled when the watcher stops.
func (w *Watcher) stopCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// session runs one upstream connection's life: login, EXAMINE, resync,
// then IDLE (or NOOP polling) until it fails or the watcher stops.
// opened is set once the mailbox is open and resynced.
func (w *Watcher) session(opened *time.Time) error {
	a, m := w.acct, w.acct.m
	ctx, cancel := w.stopCtx()
	defer cancel()
	if err := w.pollSlot(ctx, opened); err != nil {
		return err
	}
	defer a.release(slotWatcher)
	if !opened.IsZero() {
		// Polled until now: this connection's EXAMINE resyncs the model
		// again, and only the next failure is a new incident.
		*opened = time.Time{}
	}

	m.mu.Lock()
	pass, mech := a.pass, a.mech
	m.mu.Unlock()
	if pass == "" {
		return ErrAuthFailed // forgotten after a rejection: stop, do not log in with nothing
	}
	gen := w.q.reset()
	why := LoginWatcher
	if w.sessions > 0 {
		why = LoginReconnect
	}
	w.sessions++
	cl, err := m.dial(ctx, why, a.user, pass, mech, w.q.handler(gen))
	if err != nil {
		a.forgetIfRejected(pass, err)
		if errors.Is(err, ErrAuthFailed) && !definitelyRejected(err) {
			return unavailable("login refused: %v", err) // maybe temporary: retry with backoff
		}
		return err
	}
	a.confirmed(pass)
	c := &wconn{Client: cl, timeout: m.opts.ResponseTimeout}
	defer func() {
		c.bounded(func() error { return cl.Logout().Wait() })
		cl.Close()
	}()
	a.noteCaps(cl.Caps())

	st, err := w.open(c)
	if err != nil {
		return err
	}
	*opened = time.Now()
	w.noteAttempt(nil)

	refresh := time.NewTimer(m.opts.IdleRefresh)
	defer refresh.Stop()
	canIdle := cl.Caps().Has(imap.CapIdle) || cl.Caps().Has(imap.CapIMAP4rev2)
	for {
		if !w.q.pending() {
			if err := w.wait(c, canIdle, refresh); err != nil {
				return err
			}
		}
		select {
		case <-w.stop:
			return nil
		default:
		}
		if err := w.process(c, st); err != nil {
			return err
		}
	}
}

// wait idles (or sleeps, without IDLE) until there is news, a sync request,
// the refresh is due, or the watcher stops.
func (w *Watcher) wait(c *wconn, canIdle bool, refresh *time.Timer) error {
	m := w.acct.m
	var idle *imapclient.IdleCommand
	if canIdle {
		if err := c.bounded(func() (err error) { idle, err = c.Idle(); return err }); err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
	}
	var poll <-chan time.Time
	if !canIdle {
		t := time.NewTimer(m.opts.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	select {
	case <-w.q.signal:
	case <-refresh.C:
	case <-poll:
		w.q.requestNoop()
	case <-w.stop:
	case <-c.Closed():
	}
	refresh.Reset(m.opts.IdleRefresh)
	if idle == nil {
		return nil
	}
	return c.bounded(func() error {
		if err := idle.Close(); err != nil {
			return err
		}
		return idle.Wait()
	})
}

// Model returns the model of mailbox when a watcher has one, or nil: for
// answers about a mailbox (STATUS RECENT) without starting a watcher.
func (a *Account) Model(mailbox string) *fanout.Mailbox {
	a.m.mu.Lock()
	w := a.watchers[mailbox]
	a.m.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.box.Load()
}
