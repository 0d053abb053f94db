package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// ErrUIDValidityChanged ends the sessions that had the mailbox selected: the
// one upstream change idlemux cannot hide (RFC 3501 section 2.3.1.1).
var ErrUIDValidityChanged = errors.New("mailbox UIDVALIDITY changed upstream")

// A Watcher is an actor: its run goroutine (the loop: run, session,
// pollSlot, wait, process) is the only one that reads or writes its state —
// the reference count, the linger timer, whether a session idled (the slot
// request of polled.go), the Syncs waiting for a round, the upstream
// connection and its mirror — and the model's only writer. Everyone else
// sends it messages through its inbox (inbox.go), which never blocks the
// sender, and the loop takes them in every select it waits in (the IDLE
// wait, the poll loop, the reconnect backoff):
//
//	ref, unref   Watch, Unwatch: at 0 the loop starts its linger timer; at
//	             expiry it stops if still unused (lingerExpired)
//	idling       Idling: the first makes a polled watcher ask for a slot
//	sync         Sync: requests taken together get one upstream round
//	post         PostFlags: a STORE's reported flags, into the model at once
//	stop, gone   the account's retireLocked (the linger's expiry, a
//	             lingering watcher's slot wanted by another, MailboxGone,
//	             Shutdown, a permanent failure): also cancels the loop's
//	             context, which ends a dial or a wait for a pool connection
//
// The loop publishes what others read, without a lock of the watcher's
// own: the model (box), whether it is polled, the outcome of its last
// connection attempt (for Watch), and its reference count, inside the
// inbox (users), so that the account's decisions under m.mu — which
// watcher Watching returns, which lingering one gives its slot up — count
// the references sent and not yet taken too. The account's m.mu guards only
// its watchers map; a watcher leaves it when stopped (retireLocked), and
// Watch sends its ref under m.mu, so a watcher that stops for want of users
// never misses one sent meanwhile. Lock order: m.mu, then an inbox's mu.
//
// Watcher holds the single upstream connection that SELECTs (read-only) and
// IDLEs on one mailbox of one account, and keeps the fanout model current.
type Watcher struct {
	acct *Account
	name string
	log  *zap.Logger
	q    *eventQueue // upstream news, from the connection's reader
	in   *inbox      // control messages, from everyone else

	ctx    context.Context // cancelled with the stop message
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	box    atomic.Pointer[fanout.Mailbox]
	polled atomic.Bool // no connection of its own: polled (polled.go)
	// notify: polled, and in the account's NOTIFY set (notifier.go); set
	// by the notifier once the upstream accepted the set.
	notify atomic.Bool
	// wantsPush: a session idled on the mailbox (idleAsked, published for
	// the notifier, which runs only for mailboxes clients wait on).
	wantsPush atomic.Bool
	tried     atomic.Pointer[attempt]
	live      atomic.Bool   // IDLE on its own connection, resynced (changes.go)
	synced    atomic.Uint64 // the account's generation at the last round's start
	// roundsBegun numbers the poll rounds begun; roundDone is the number
	// of the latest one completed (FreshSince).
	roundsBegun atomic.Uint64
	roundDone   atomic.Uint64

	// Owned by the run goroutine.
	refs      int
	linger    *time.Timer // running while refs is 0
	idleAsked bool        // a session idled on the mailbox: ask for a slot
	nudged    bool        // the notify connection heard of a change: poll now
	syncs     []chan struct{}
	modseq    uint64                 // the upstream MODSEQ the model is known to include (CONDSTORE)
	exact     bool                   // modseq comes from a read with per-message MODSEQ (flagpost.go)
	posted    map[imap.UID]uint64    // per message, a MODSEQ above modseq whose state the model holds (flagpost.go)
	appended  map[imap.UID]time.Time // added from their APPEND, not yet seen by the watcher's session (appendpost.go)
	parked    []parkedPost           // APPENDs' posts waiting for a UID below theirs (appendpost.go)
	// withModSeq: listings read MODSEQ (CONDSTORE, and the mailbox has them)
	withModSeq bool
	sessions   int // upstream connections started, for the login reason
}

// attempt is the outcome of the loop's last connection attempt, for Watch
// while there is no model yet; next is closed when the next one is known.
type attempt struct {
	err  error
	next chan struct{}
}

// permanentError stops the watcher's retries.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Watch returns the running watcher of mailbox, starting it if needed, once
// it has a model. The caller must call Unwatch.
func (a *Account) Watch(ctx context.Context, mailbox string) (*Watcher, error) {
	w, _, err := a.WatchNew(ctx, mailbox)
	return w, err
}

// WatchNew is Watch that also says whether this call started the
// watcher: its model was then read from the upstream just now, and a
// SELECT need not ask the upstream again.
func (a *Account) WatchNew(ctx context.Context, mailbox string) (*Watcher, bool, error) {
	m := a.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, false, ErrClosed
	}
	w := a.watchers[mailbox]
	started := w == nil
	if w == nil {
		w = a.newWatcher(mailbox)
		a.watchers[mailbox] = w
		w.in.ref(1) // before the loop starts: it never lingers for nothing
		m.wg.Add(1)
		go w.run()
	} else {
		w.in.ref(1) // under m.mu: see lingerExpired
	}
	m.mu.Unlock()
	if err := w.ready(ctx); err != nil {
		return nil, false, err
	}
	return w, started, nil
}

func (a *Account) newWatcher(mailbox string) *Watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{
		acct:   a,
		name:   mailbox,
		log:    a.log.With(zap.String("mailbox", mailbox)),
		q:      newEventQueue(),
		in:     newInbox(),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	w.tried.Store(&attempt{next: make(chan struct{})})
	return w
}

// ready waits until the watcher has a model; on failure it drops the
// caller's reference and returns the last connection attempt's error.
func (w *Watcher) ready(ctx context.Context) error {
	for {
		if box := w.box.Load(); box != nil {
			return nil
		}
		at := w.tried.Load()
		if at.err != nil {
			w.Unwatch()
			return at.err
		}
		select {
		case <-at.next:
		case <-w.ctx.Done(): // stopped: done follows, maybe only after an exchange
			w.Unwatch()
			if err := w.tried.Load().err; err != nil {
				return err
			}
			return ErrClosed
		case <-ctx.Done():
			w.Unwatch()
			return unavailable("mailbox %q not ready: %v", w.name, ctx.Err())
		}
	}
}

// Unwatch drops a reference; the watcher stops WatcherLinger after the
// last. It never waits for the watcher.
func (w *Watcher) Unwatch() { w.in.ref(-1) }

// retireLocked sends w stop, with why (nil, ErrMailboxGone, or the loop's
// own permanent failure), and forgets it: the next Watch of its mailbox
// starts a new watcher. m.mu must be held.
func (a *Account) retireLocked(w *Watcher, why error) {
	if !w.in.stop(why) {
		return
	}
	w.cancel()
	a.markRecentLocked(w.name, w.box.Load())
	if a.watchers[w.name] == w {
		delete(a.watchers, w.name)
	}
}

// takeMail applies what the inbox holds (loop only): references start or
// stop the linger, the first idling session asks for a slot, sync requests
// wait for the next round.
func (w *Watcher) takeMail() {
	ml := w.in.take(w.refs)
	w.refs = ml.refs
	if ml.idled && !w.idleAsked {
		w.idleAsked = true
		w.wantsPush.Store(true)
		w.acct.kickNotifier()
	}
	if ml.nudged {
		w.nudged = true
	}
	if ml.sync != nil {
		w.syncs = append(w.syncs, ml.sync)
	}
	w.applyPosts(ml.posts)
	switch {
	case w.refs > 0 && w.linger != nil:
		w.linger.Stop()
		w.linger = nil
	case w.refs <= 0 && w.linger == nil && w.ctx.Err() == nil:
		w.linger = time.NewTimer(w.acct.m.opts.WatcherLinger)
	}
}

// lingerC is the linger timer's channel, nil (never ready) when none runs.
func (w *Watcher) lingerC() <-chan time.Time {
	if w.linger == nil {
		return nil
	}
	return w.linger.C
}

// lingerExpired stops the watcher if still no one uses it. Under m.mu, no
// Watch can add a reference meanwhile, and users counts those sent but not
// yet taken; the stop cancels the loop's context, which its selects see.
func (w *Watcher) lingerExpired() {
	w.linger = nil
	a := w.acct
	a.m.mu.Lock()
	if w.in.users() <= 0 {
		a.retireLocked(w, nil)
	}
	a.m.mu.Unlock()
}

// takeSyncs returns the Syncs waiting, those still in the inbox included:
// the round that starts now answers them.
func (w *Watcher) takeSyncs() []chan struct{} {
	w.takeMail()
	syncs := w.syncs
	w.syncs = nil
	return syncs
}

// requeueSyncs puts back waiters a failed round could not answer; the next
// connection's first round does.
func (w *Watcher) requeueSyncs(syncs []chan struct{}) {
	w.syncs = append(syncs, w.syncs...)
}

// Mailbox returns the current model (never nil after Watch succeeded). It
// changes only when UIDVALIDITY changed; the old one is closed then.
func (w *Watcher) Mailbox() *fanout.Mailbox { return w.box.Load() }

// HighestModSeq is the upstream HIGHESTMODSEQ the model is known to
// include (RFC 7162 3.1.2.1), 0 where the upstream keeps none. It may lag
// the upstream's (changes heard while idling do not raise it): a client
// given it asks for more with CHANGEDSINCE, never for less.
// The model keeps it (fanout/highest.go), published with the changes it
// covers: a value read never bounds a change the model does not hold yet.
func (w *Watcher) HighestModSeq() uint64 {
	if box := w.box.Load(); box != nil {
		return box.HighestModSeq()
	}
	return 0
}

// setModSeq sets modseq, the value the next model update publishes
// (Tx.SetHighestModSeq, after the changes it covers). Run goroutine only.
func (w *Watcher) setModSeq(v uint64) { w.modseq = v }

// Sync makes the watcher ask the upstream for news now (NOOP) and returns
// once the model includes everything the upstream had reported by then. A
// session calls it after its own change so that the change reaches its own
// responses, through the same path as everyone else's. A stop sent to the
// watcher ends it at once with ErrClosed, even while the loop is still in
// an exchange.
func (w *Watcher) Sync(ctx context.Context) error {
	ch := w.in.askSync()
	select {
	case <-ch:
		return nil
	case <-w.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return unavailable("mailbox %q sync: %v", w.name, ctx.Err())
	}
}

// noteAttempt publishes a connection attempt's outcome (loop only).
func (w *Watcher) noteAttempt(err error) {
	old := w.tried.Load()
	next := &attempt{err: old.err, next: make(chan struct{})}
	if w.box.Load() == nil {
		next.err = err
	}
	w.tried.Store(next)
	close(old.next)
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
	defer w.exit()
	bo := newBackoff(500*time.Millisecond, 2*time.Minute)
	logins := &budget{burst: loginBurst, refill: loginRefill}
	for {
		var opened time.Time
		err := w.session(&opened)
		if w.ctx.Err() != nil {
			return
		}
		var perm *permanentError
		if errors.As(err, &perm) || errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrClosed) {
			w.log.Warn("mailbox watcher stopped", zap.Error(err))
			w.noteAttempt(err)
			if box := w.box.Load(); box != nil {
				box.Close(err)
			}
			m.mu.Lock()
			w.acct.retireLocked(w, err)
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
		if !w.sleep(d) {
			return
		}
	}
}

// sleep waits d before a reconnect, taking messages meanwhile (Syncs wait
// for the reconnect); false when the watcher stopped.
func (w *Watcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-w.ctx.Done():
			return false
		case <-w.in.signal:
			w.takeMail()
		case <-w.lingerC():
			w.lingerExpired()
		}
	}
}

// exit ends the loop. A model stored after MailboxGone closed the old one
// (by an EXAMINE that was under way then) is closed too; Syncs still
// waiting see done.
func (w *Watcher) exit() {
	if w.linger != nil {
		w.linger.Stop()
	}
	if why := w.in.reason(); errors.Is(why, ErrMailboxGone) {
		if box := w.box.Load(); box != nil {
			box.Close(ErrMailboxGone)
		}
	}
	w.cancel()
	close(w.done)
}

// session runs one upstream connection's life: login, EXAMINE, resync,
// then IDLE (or NOOP polling) until it fails or the watcher stops.
// opened is set once the mailbox is open and resynced.
func (w *Watcher) session(opened *time.Time) error {
	a, m := w.acct, w.acct.m
	ctx := w.ctx
	if err := w.pollSlot(opened); err != nil {
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

	changes := a.Generation()
	st, err := w.open(c)
	if err != nil {
		return err
	}
	*opened = time.Now()
	w.noteAttempt(nil)

	refresh := time.NewTimer(m.opts.IdleRefresh)
	defer refresh.Stop()
	canIdle := quirks.Has(cl.Caps(), quirks.Idle)
	w.synced.Store(changes)
	w.live.Store(canIdle)
	defer w.live.Store(false)
	defer w.refuseParked(time.Time{}) // they wait for this connection's model
	for {
		if !w.q.pending() && len(w.syncs) == 0 {
			if err := w.wait(c, canIdle, refresh); err != nil {
				return err
			}
		}
		if w.ctx.Err() != nil {
			return nil
		}
		if err := w.process(c, st); err != nil {
			return err
		}
	}
}

// wait idles (or sleeps, without IDLE) until there is news, a sync request,
// the refresh is due, or the watcher stops; other messages are taken
// meanwhile.
func (w *Watcher) wait(c *wconn, canIdle bool, refresh *time.Timer) error {
	m := w.acct.m
	var idle *imapclient.IdleCommand
	if canIdle {
		if err := c.bounded(func() (err error) { idle, err = c.Idle(); return err }); err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
	}
	var check appendCheck
	defer check.stop()
	var poll <-chan time.Time
	if !canIdle {
		t := time.NewTimer(m.opts.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	for woke := false; !woke; {
		check.arm(w.appendDeadline())
		select {
		case <-w.q.signal:
			woke = true
		case <-refresh.C:
			woke = true
		case <-poll:
			w.q.requestNoop()
			woke = true
		case <-check.c():
			check.fired()
			if w.appendDue() {
				w.q.requestNoop() // a message added from its APPEND is still unconfirmed
				woke = true
			}
		case <-w.ctx.Done():
			woke = true
		case <-c.Closed():
			woke = true
		case <-w.in.signal:
			// References and idling change nothing upstream: IDLE goes
			// on unless a session waits in Sync.
			w.takeMail()
			woke = len(w.syncs) > 0
		case <-w.lingerC():
			w.lingerExpired() // a stop cancels ctx: the next select sees it
		}
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
