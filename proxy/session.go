package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream"
)

// syncTimeout bounds how long a command waits for the watcher to bring its
// own change into the model before answering anyway.
const syncTimeout = 10 * time.Second

// session is one downstream client. imapserver calls its methods from the
// connection goroutine, and Idle from a second goroutine while the first
// waits for DONE; they never overlap on the selected state.
type session struct {
	id      uint64
	s       *Server
	l       *listener
	conn    *imapserver.Conn
	log     *zap.Logger
	baseLog *zap.Logger // without the mailbox field, which SELECT replaces

	acct *upstream.Account
	up   *route // the upstream acct lives on, set with it at login
	user string
	sel  *selection

	ip          netip.Addr  // the client's address (the PROXY header's, when used)
	userCounted bool        // counted in the per-user connection limit
	loginTimer  *time.Timer // ends an unauthenticated session

	// noExpunge is set by FETCH, STORE and SEARCH (UID versions too) so the
	// Poll imapserver runs after them holds EXPUNGE back (RFC 3501 7.4.1).
	noExpunge bool
	// reported holds the UIDs whose flags this command already reported, so
	// the same change is not sent twice when it comes back from the model
	// (carried past the next Poll while the change is held back:
	// reportedcarry.go).
	reported map[imap.UID][]imap.Flag
	// carried holds what earlier commands reported that lies past an
	// expunge held back from their Poll (reportedcarry.go).
	carried map[imap.UID]carriedFlags
	// guard watches the upstream while a command runs (nil otherwise).
	guard *upstream.Guard
	// wrote says the running command already sent part of its answer, so
	// it cannot be retried.
	wrote bool

	byeOnce sync.Once
	byeDone atomic.Bool
	writeMu sync.Mutex // serializes everything written around imapserver (unsolicited.go)

	fast     *fastIdle     // set while idling on the fast path (under writeMu)
	fastWake chan struct{} // capacity 1: a fast-path worker found writeMu held

	// cmdMu is held by Idle for its whole run: imapserver may start the
	// next command (or Close) while Idle still runs (after a line other
	// than DONE, or when the client vanishes), and settle waits on it.
	cmdMu  sync.Mutex
	mu     sync.Mutex
	closed bool
}

// selection is the selected mailbox: its watcher and this session's view.
type selection struct {
	name     string
	w        *upstream.Watcher
	v        *fanout.View
	readOnly bool
	// uidValidity is the view's (RFC 3501 2.3.1.1): a pool connection that
	// selects the mailbox and finds another is not used for the view's UIDs.
	uidValidity uint32
	polls       uint8 // NOOPs, CHECKs and writes in a polled mailbox, up to 2 (pollsync.go)
	// prevMark and curMark are the watcher's RoundMark at the start of the
	// session's previous command and of its current one (settle): a
	// polled model fresh since prevMark may answer (searchlocal.go
	// modelCurrent).
	prevMark, curMark uint64
	// holdGone keeps the BYE for a mailbox this session's own command just
	// deleted or renamed out of that command's Poll: Dovecot answers the
	// command OK and says BYE at the next one. goneText is that BYE's text
	// when it is not quirks.ByeMailboxGone.
	holdGone bool
	goneText string
	// condstore is the reader's CONDSTORE flag (nil: none): an enabled
	// session's unsolicited FETCH carries MODSEQ (condstore_updates.go).
	condstore *atomic.Bool
}

func (l *listener) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s := l.s
	sess := &session{s: s, l: l, conn: conn, fastWake: make(chan struct{}, 1)}
	id := s.sessionID.Add(1)
	sess.id = id
	// WithLazy: the fields are encoded only if the session logs; an eager
	// With gives every (mostly silent) idle session a 1 KiB buffer.
	sess.log = s.log.WithLazy(zap.Uint64("session", id), zap.String("remote", conn.NetConn().RemoteAddr().String()))
	sess.ip = addrOf(conn.NetConn().RemoteAddr())
	accepted, counted := l.takeEarly(transportOf(conn.NetConn()))
	if !counted && !acquire(s.lim, s.lim.perIP, sess.ip, s.dyn().cfg.Limits.MaxConnectionsPerIP) {
		sess.log.Warn("connection refused: too many from this address")
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Too many connections from your address"}
	}
	if !s.register(sess) {
		release(s.lim, s.lim.perIP, sess.ip)
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	if d := s.dyn().cfg.Limits.LoginTimeout; d > 0 {
		if counted { // the TLS handshake already used part of it
			d = max(d-time.Since(accepted), time.Millisecond)
		}
		sess.loginTimer = time.AfterFunc(d, func() { sess.bye("Login timeout, closing connection") })
	}
	sess.baseLog = sess.log
	if cc := sess.reader(); cc != nil {
		cc.onFailedLogin = sess.refusedByReader
	}
	sess.log.Debug("session started")
	return sess, nil, nil
}

// register and unregister keep the set of live sessions for BYE at shutdown.
func (s *Server) register(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.live == nil {
		s.live = make(map[*session]struct{})
	}
	s.live[sess] = struct{}{}
	s.sessions.Add(1)
	s.sessWG.Add(1)
	return true
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live[sess]; ok {
		delete(s.live, sess)
		s.sessions.Add(-1)
		s.sessWG.Done()
	}
}

func (s *Server) sessionsOf(l *listener) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for sess := range s.live {
		if sess.l == l {
			out = append(out, sess)
		}
	}
	return out
}

// saidBye reports whether bye already ran.
func (sess *session) saidBye() bool { return sess.byeDone.Load() }

// Close is called by imapserver when the connection ends, however it ends.
func (sess *session) Close() error {
	sess.mu.Lock()
	sess.closed = true
	sess.mu.Unlock()
	sess.settle() // a running Idle's stop channel is closed: it returns soon
	sess.unselect()
	if sess.acct != nil {
		sess.acct.Unref()
		sess.acct = nil
		sess.s.metrics.authenticated.Add(-1)
	}
	sess.log.Debug("session ended")
	if sess.loginTimer != nil {
		sess.loginTimer.Stop()
	}
	release(sess.s.lim, sess.s.lim.perIP, sess.ip)
	if sess.userCounted {
		release(sess.s.lim, sess.s.lim.perUser, limitKey(sess.up, sess.user))
	}
	if cc := sess.reader(); cc != nil {
		cc.finish() // a spooled APPEND imapserver never read
	}
	sess.s.unregister(sess) // last: Shutdown waits for it
	return nil
}

// login checks the password by logging in upstream (or against bcrypt in
// map mode, or the salted hash of a password verified before). The
// password is never logged. Each refusal counts as a failed login and
// waits its delay holding the address's login slot (logingate.go). It
// runs on a goroutine of its own (Login, loginstack.go).
func (sess *session) login(username, password string) error {
	dyn := sess.s.dyn()
	lim, limits := sess.s.lim, dyn.cfg.Limits
	ctx, cancel := context.WithTimeout(context.Background(), loginQueueWait+sess.s.loginWait())
	defer cancel()
	t := lim.ticket(sess.ip, limits)
	defer t.release()
	if len(username) > maxUserName {
		// No upstream takes it: refused here, with Dovecot's own answer.
		sess.loginFailed(ctx, t, nil, username, "")
		sess.bye("Input buffer full, aborting")
		return errDovecotAuthFailed
	}
	acct, up, err := sess.loginOn(ctx, t, dyn, username, password)
	if errors.Is(err, errRouteRetired) {
		// A reload retired the upstream this login was routed to while
		// it ran: once more under the settings now in place.
		sess.log.Info("login's upstream was removed by a reload; trying the new routing", zap.String("upstream", up.cfg.Name))
		acct, up, err = sess.loginOn(ctx, t, sess.s.dyn(), username, password)
	}
	if errors.Is(err, errRouteRetired) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Upstream server unavailable, try again later"}
	}
	if err != nil {
		return err
	}
	if cc := sess.reader(); cc != nil {
		caps := upstreamCaps(&up.cfg, acct)
		cc.caps.Store(postLoginCaps(caps))
		cc.mu.Lock()
		cc.cs.offered = condstoreOffered(caps)
		cc.qr.offered = qresyncOffered(caps)
		cc.mu.Unlock()
		cc.authenticated.Store(true)
	}
	sess.acct = acct
	sess.user = username
	sess.s.metrics.authenticated.Add(1)
	sess.log = sess.log.WithLazy(userField(username), zap.String("upstream", up.cfg.Name))
	sess.baseLog = sess.log
	if cc := sess.reader(); cc != nil {
		cc.mu.Lock()
		cc.sessLog = sess.log
		cc.mu.Unlock()
	}
	// Logged through the server's logger with the fields spelled out: the
	// session's own logger stays lazy (unencoded) for as long as it is
	// silent, which for an idle client is its whole life.
	sess.s.log.Info("logged in", zap.Uint64("session", sess.id),
		zap.String("remote", sess.conn.NetConn().RemoteAddr().String()), userField(username), zap.String("upstream", up.cfg.Name))
	return nil
}

// errRouteRetired is loginOn's error when a reload retired the upstream
// the login was routed to while it ran.
var errRouteRetired = errors.New("the login's upstream was removed by a reload")

// loginOn routes a login under the settings dyn and checks its password:
// a pass-through login's upstream is known from its name, a map-mode
// one's only once its password is checked here. It returns the account
// with a reference for the session and the upstream, bound to the session
// (admit); errRouteRetired, with that upstream, when a reload retired it
// meanwhile.
func (sess *session) loginOn(ctx context.Context, t *loginTicket, dyn *dynamic, username, password string) (*upstream.Account, *route, error) {
	mapped := sess.s.cfg.Auth.Mode == "map"
	var up *route
	if !mapped {
		if up = dyn.route(username, ""); up == nil {
			return nil, nil, sess.unrouted(ctx, t, username)
		}
	}
	lim := sess.s.lim
	if lim.knownBad(limitKey(up, username), password) {
		return nil, nil, sess.refuse(ctx, t, up, username, password) // rejected moments ago: do not ask again
	}
	upUser, upPass, upMech := username, password, ""
	if mapped {
		mu, err := dyn.mapped.check(ctx, username, password, t.take)
		switch {
		case err != nil:
			return nil, nil, sess.loginBusy(err)
		case mu == nil:
			return nil, nil, sess.refuse(ctx, t, nil, username, password)
		}
		secret, mech, err := mu.upstreamSecret()
		if err != nil {
			return nil, nil, sess.fail("LOGIN", &upstream.UnavailableError{Err: err})
		}
		upUser, upPass, upMech = mu.cfg.UpstreamUser, secret, mech
		if up = dyn.route(username, mu.cfg.Upstream); up == nil {
			return nil, nil, sess.unrouted(ctx, t, username)
		}
	}
	acct, err := up.mgr.LoginMech(upstream.WithLoginCall(ctx, sess.clientAddrPort(), t.take), upUser, upPass, upMech)
	if errors.Is(err, upstream.ErrClosed) && sess.s.isRetired(up) {
		return nil, up, errRouteRetired
	}
	if err != nil {
		return nil, nil, sess.upstreamLoginError(ctx, t, err, up, username, password, upUser)
	}
	lim.succeeded(sess.ip, username)
	if err := sess.admit(up, acct, username, dyn.cfg.Limits.MaxConnectionsPerUser); err != nil {
		return nil, up, err
	}
	return acct, up, nil
}

// admit counts a login the upstream accepted against the per-user limit
// (keyed by upstream and user) and binds the session to its upstream,
// unless a reload retired the upstream meanwhile (errRouteRetired) or the
// login timed out; on error acct is released.
func (sess *session) admit(up *route, acct *upstream.Account, username string, maxPerUser int) error {
	lim, key := sess.s.lim, limitKey(up, username)
	if !acquire(lim, lim.perUser, key, maxPerUser) {
		acct.Unref()
		sess.bye("Too many connections for this user")
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many connections for this user"}
	}
	if !sess.s.adopt(sess, up) {
		release(lim, lim.perUser, key)
		acct.Unref()
		return errRouteRetired
	}
	// After adopt, which may send the login to another upstream: the
	// timer stops once.
	if sess.loginTimer != nil && !sess.loginTimer.Stop() {
		release(lim, lim.perUser, key)
		acct.Unref()
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Login timeout"}
	}
	sess.userCounted = true
	return nil
}

// AppendLimit is advertised as APPENDLIMIT (RFC 7889); imapserver refuses a
// larger APPEND with NO [TOOBIG] before reading it.
func (sess *session) AppendLimit() uint32 {
	return uint32(sess.s.dyn().cfg.Limits.AppendLimit)
}

// fail maps an error to what the client sees. The upstream's own NO/BAD
// pass through; transport trouble is logged and becomes NO [UNAVAILABLE];
// anything else is our bug: logged, NO [SERVERBUG].
func (sess *session) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type != imap.StatusResponseTypeBye {
		if _, up := upstream.IsProtocol(err); up {
			sess.log.Debug("upstream refused command", zap.String("command", op), zap.Error(err))
		}
		return ie
	}
	if errors.Is(err, upstream.ErrAuthFailed) {
		// The upstream no longer takes the account's password: this
		// session cannot do anything useful any more.
		sess.log.Warn("upstream rejects the account's credentials", zap.String("command", op), zap.Error(err))
		sess.bye("The mail server no longer accepts this account's password, please log in again")
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Upstream login failed"}
	}
	var ue *upstream.UnavailableError
	if errors.As(err, &ue) || errors.Is(err, upstream.ErrClosed) {
		sess.log.Warn("upstream unavailable", zap.String("command", op), zap.Error(err))
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Upstream server unavailable, try again later"}
	}
	sess.log.Error("command failed", zap.String("command", op), zap.Error(err))
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"}
}

// ctx bounds one command's upstream work.
func (sess *session) ctx() (context.Context, context.CancelFunc) {
	up := sess.upCfg()
	return context.WithTimeout(context.Background(), up.ResponseTimeout+up.DialTimeout)
}

// changesSelected lists the commands that change the mailbox they run in.
// A FETCH that sets \Seen does too; Fetch marks it itself.
var changesSelected = map[string]bool{"STORE": true, "EXPUNGE": true, "MOVE": true}

// idempotent lists the commands retried once on a fresh connection when
// the upstream connection fails under them. The others (APPEND, STORE,
// COPY, MOVE, EXPUNGE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE)
// fail with NO [UNAVAILABLE]: they may have been applied, and applying
// them twice is worse than telling the client.
var idempotent = map[string]bool{
	"FETCH": true, "SEARCH": true, "STATUS": true, "LIST": true, "NAMESPACE": true,
}

// withConn runs f on a pooled upstream connection (with mailbox selected
// when not empty) and gives the connection back, closed if it broke. A
// guard closes the connection if the upstream goes silent for the
// response timeout; f reports streaming progress through sess.guard.
//
// A transport failure is retried once on a fresh connection for
// idempotent commands, unless part of the answer already reached the
// client. A panic in f (a bug, or a library's) is contained: both
// connections are closed, the pool slot is given back, the process lives.
func (sess *session) withConn(op, mailbox string, f func(c *upstream.Conn) error) error {
	return sess.withConnNaming(op, mailbox, 0, f)
}

// withConnNaming is withConn for a command that names no UID above
// names (0: any the model holds). A connection must have heard of the
// largest UID the command names before it runs (Acquire's upTo); one that
// has not heard of a newer message the command does not name needs no
// NOOP first: a STORE of message 1 right after another session's APPEND
// does not wait for the server to tell this connection of it.
func (sess *session) withConnNaming(op, mailbox string, names imap.UID, f func(c *upstream.Conn) error) error {
	timeout := sess.upCfg().ResponseTimeout
	for attempt := 0; ; attempt++ {
		ctx, cancel := sess.ctx()
		var upTo imap.UID
		var uidValidity uint32
		if sess.sel != nil && mailbox == sess.sel.name {
			if err := sess.sel.v.Err(); err != nil {
				cancel()
				return sess.viewFailed(err) // its UIDs may name another mailbox's messages now
			}
			upTo, uidValidity = sess.sel.w.Mailbox().MaxUID(), sess.sel.uidValidity
			if names != 0 {
				upTo = min(upTo, names)
			}
		}
		acquire := sess.acct.Acquire
		switch op {
		case "STORE":
			acquire = sess.acct.AcquireToStore // its outcome needs no view of others' changes
		case "APPEND":
			// It names no message: no view of others' changes or of new
			// messages (upTo) is needed. The upstream syncs the session at
			// its end (RFC 3501 5.5), so the new message is visible to the
			// UID FETCH that reads it (appendconfirm.go).
			acquire, upTo = sess.acct.AcquireToStore, 0
		}
		c, err := acquire(ctx, mailbox, upTo, uidValidity)
		cancel()
		if errors.Is(err, upstream.ErrMailboxGone) {
			sess.log.Info("selected mailbox gone or replaced upstream", zap.String("command", op), zap.Error(err))
			return sess.viewFailed(err)
		}
		if err != nil && attempt == 0 && errors.Is(err, upstream.ErrStaleConn) {
			// Nothing was sent yet (a reused connection died under its
			// SELECT or NOOP): any command may try once more.
			sess.log.Info("upstream connection unusable; retrying once", zap.String("command", op), zap.Error(err))
			continue
		}
		if err != nil {
			return sess.fail(op, err)
		}
		if changesSelected[op] {
			c.Wrote() // other connections' views of the mailbox sync first (upstream/writes.go)
		}
		g := c.Guard(timeout)
		sess.guard, sess.wrote = g, false
		err = sess.runContained(op, c, f)
		sess.guard = nil
		fired := g.Stop()

		var gone *clientGone
		var bug *panicError
		switch {
		case errors.As(err, &bug):
			sess.acct.Release(c, err)
			sess.conn.NetConn().Close()
			return err
		case errors.As(err, &gone):
			// The client broke off, or a literal could not be finished:
			// its connection cannot be resynchronised.
			if fired {
				sess.acct.Release(c, err)
			} else {
				sess.acct.Release(c, nil)
			}
			sess.conn.NetConn().Close()
			return err
		case fired:
			err = &upstream.UnavailableError{Err: fmt.Errorf("%s: no answer from upstream within %v", op, timeout)}
		}
		sess.acct.Release(c, err)
		err = upstream.Classify(err)
		var ue *upstream.UnavailableError
		if attempt == 0 && idempotent[op] && !sess.wrote && errors.As(err, &ue) {
			sess.log.Info("upstream connection failed under a command; retrying once", zap.String("command", op), zap.Error(err))
			continue
		}
		return sess.fail(op, err)
	}
}

// panicError is a panic caught while a command ran upstream.
type panicError struct {
	op  string
	val any
}

func (e *panicError) Error() string { return fmt.Sprintf("panic in %s: %v", e.op, e.val) }

func (sess *session) runContained(op string, c *upstream.Conn, f func(c *upstream.Conn) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			sess.log.Error("panic while running a command", zap.String("command", op), zap.Any("panic", v), zap.Stack("stack"))
			err = &panicError{op: op, val: v}
		}
	}()
	return f(c)
}

// canonical spells INBOX the one way (RFC 3501 5.1: it is case-insensitive).
func canonical(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "Mailbox is read-only"}

// settle waits for an IDLE goroutine that imapserver left running: on a
// line other than DONE it answers BAD and reads the next command without
// waiting for Idle to return. Every method that touches the selected state
// calls it first, so the session is never used from two goroutines.
func (sess *session) settle() {
	sess.cmdMu.Lock()
	sess.cmdMu.Unlock() //nolint:staticcheck // an empty critical section: wait for Idle
	if sel := sess.sel; sel != nil {
		sel.prevMark, sel.curMark = sel.curMark, sel.w.RoundMark()
	}
}

// reader is the command reader in front of imapserver for this session
// (nil only for connections not accepted by a listener, as in tests).
func (sess *session) reader() *clientConn {
	cc, _ := sess.conn.NetConn().(*clientConn)
	return cc
}
