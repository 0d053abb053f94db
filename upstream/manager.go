package upstream

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// janitorEvery is how often idle connections and unused accounts are swept.
const janitorEvery = 5 * time.Second

// Manager owns every upstream account of one upstream server.
type Manager struct {
	opts Options
	log  *zap.Logger

	mu       sync.Mutex
	accounts map[string]*Account
	closed   bool
	vsalt    [16]byte

	reconnects atomic.Uint64
	writeWaits [numWriteWaits]atomic.Uint64 // writes by how they got a slot (writeslots.go)
	logins     [numLoginReasons]atomic.Uint64
	ignored    atomic.Uint64
	cmds       cmdCounts // commands written upstream, by name (cmdcount.go)

	stop    chan struct{}
	wg      sync.WaitGroup // janitor, watchers and logouts
	closing sync.Once
}

// NewManager starts a manager.
func NewManager(opts Options) *Manager {
	m := &Manager{
		opts:     opts.withDefaults(),
		accounts: make(map[string]*Account),
		stop:     make(chan struct{}),
	}
	m.log = m.opts.Log
	rand.Read(m.vsalt[:])
	m.wg.Add(1)
	go m.janitor()
	return m
}

// credentialTTL is how long a verified password is accepted without asking
// the upstream again: a password changed upstream (after a compromise,
// say) stops working through idlemux within this time even while the
// account stays busy.
const credentialTTL = time.Hour

// Stats counts what the manager holds.
type Stats struct {
	Accounts     int
	Conns        int                     // upstream connections, watchers included
	WatcherConns int                     // of which held by watchers
	CheckConns   int                     // of which held by login checks
	Watchers     int                     // running mailbox watchers
	Polled       int                     // of which polled, for want of a watcher slot (polled.go), Notify included
	Notify       int                     // of which pushed by the account's NOTIFY connection (notifier.go)
	NotifyConns  int                     // connections held by NOTIFY loops (notifier.go)
	Live         int                     // of which watching by IDLE, resynced (changes.go Live)
	Reconnects   uint64                  // watcher reconnects after failures, ever
	Logins       uint64                  // upstream logins attempted, ever (what the provider counts)
	LoginsBy     [numLoginReasons]uint64 // of which for each LoginReason
	Ignored      uint64                  // untagged responses of unknown types dropped, ever
	Commands     map[string]uint64       // commands sent upstream, ever, by name (cmdcount.go); zero counts left out
	WriteWaits   [numWriteWaits]uint64   // writes with a bound per mailbox, by WriteWait, ever (writeslots.go)
}

// Stats returns current counts.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Stats
	for _, a := range m.accounts {
		s.Accounts++
		s.Conns += a.total
		s.WatcherConns += a.watching
		s.CheckConns += a.checking
		s.Watchers += len(a.watchers)
		for _, w := range a.watchers {
			switch w.Mode() {
			case ModeNotify:
				s.Notify++
				s.Polled++
			case ModePolled:
				s.Polled++
			}
			if w.live.Load() {
				s.Live++
			}
		}
		s.NotifyConns += a.notifying
	}
	s.Reconnects = m.reconnects.Load()
	for i := range m.logins {
		s.LoginsBy[i] = m.logins[i].Load()
		s.Logins += s.LoginsBy[i]
	}
	s.Ignored = m.ignored.Load()
	for i := range m.writeWaits {
		s.WriteWaits[i] = m.writeWaits[i].Load()
	}
	s.Commands = m.cmds.snapshot()
	return s
}

// Login checks user/pass (from the cache of verified credentials, or by a
// real upstream login) and returns the account with a reference held for
// the caller's session. Release it with Account.Release.
func (m *Manager) Login(ctx context.Context, user, pass string) (*Account, error) {
	return m.LoginMech(ctx, user, pass, "")
}

// LoginMech is Login with an OAuth2 mechanism (MechXOAUTH2,
// MechOAUTHBEARER): secret is then the bearer token.
func (m *Manager) LoginMech(ctx context.Context, user, secret, mech string) (*Account, error) {
	pass := secret
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	a := m.accounts[user]
	if a == nil {
		a = &Account{
			m:        m,
			user:     user,
			log:      m.log.With(zap.String("user", user)),
			watchers: make(map[string]*Watcher),
			verify:   make(map[[32]byte]*verifyCall),
		}
		m.accounts[user] = a
	}
	a.refs++
	if a.cred.Matches(pass, credentialTTL) {
		m.mu.Unlock()
		return a, nil
	}
	key := sha256.Sum256(append(m.vsalt[:], pass...))
	call, shared := a.verify[key]
	if !shared {
		call = &verifyCall{done: make(chan struct{})}
		a.verify[key] = call
	}
	m.mu.Unlock()

	if !shared {
		if call.err = passGate(ctx); call.err == nil {
			call.err = a.verifyUpstream(ctx, pass, mech)
		}
		m.mu.Lock()
		delete(a.verify, key)
		m.mu.Unlock()
		close(call.done)
	} else {
		select {
		case <-call.done:
		case <-ctx.Done():
			a.Unref()
			return nil, unavailable("login of %s: %v", user, ctx.Err())
		}
	}
	if call.err != nil {
		a.Unref()
		return nil, call.err
	}
	return a, nil
}

// verifyUpstream logs in with pass; on success the connection joins the
// pool and pass becomes the account's credential.
//
// The check holds a login-check slot (see checkShare) while it dials and
// logs in; on success the connection becomes a command connection.
func (a *Account) verifyUpstream(ctx context.Context, pass, mech string) error {
	if err := a.reserve(ctx, slotCheck); err != nil {
		return err
	}
	cl, rc, err := a.m.dialFramed(ctx, LoginCheck, a.user, pass, mech, nil)
	if err != nil {
		a.release(slotCheck)
		return err
	}
	a.m.mu.Lock()
	a.checking--
	a.pass, a.mech = pass, mech
	a.cred.Store(pass)
	a.m.mu.Unlock()
	a.noteCaps(cl.Caps())
	a.Release(&Conn{Client: cl, acct: a, raw: rc}, nil)
	return nil
}

// Unref drops a session's reference to the account.
func (a *Account) Unref() {
	a.m.mu.Lock()
	a.refs--
	a.m.mu.Unlock()
}

// janitor closes lingering idle connections and forgets unused accounts
// (and with them the password kept for dialing).
func (m *Manager) janitor() {
	defer m.wg.Done()
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.mu.Lock()
			if m.closed {
				m.mu.Unlock()
				return
			}
			for user, a := range m.accounts {
				a.closeIdleLocked(now)
				if a.refs == 0 && len(a.watchers) == 0 && a.total == 0 && len(a.verify) == 0 {
					delete(m.accounts, user)
				}
			}
			m.mu.Unlock()
		}
	}
}

// Shutdown stops every watcher (DONE and LOGOUT upstream) and logs out idle
// command connections, waiting until done or ctx ends.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.closing.Do(func() {
		m.mu.Lock()
		m.closed = true
		for _, a := range m.accounts {
			for _, w := range a.watchers {
				a.retireLocked(w, nil)
			}
			for _, c := range a.idle {
				a.total--
				m.goLogoutLocked(c)
			}
			a.idle = nil
			a.grantLocked()
		}
		m.mu.Unlock()
		close(m.stop)
	})
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// goLogoutLocked logs c out in the background. m.mu must be held, and either
// the manager is open or Shutdown is the caller: Shutdown waits for it.
func (m *Manager) goLogoutLocked(c *Conn) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		c.logout()
	}()
}
