package upstream

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// Where the upstream offers NOTIFY (RFC 5465), one connection per account
// watches every polled mailbox (polled.go) of it: it sends NOTIFY SET
// (mailboxes <the polled mailboxes> (MessageNew MessageExpunge
// FlagChange)), and on each untagged STATUS the upstream sends for one of
// them (section 5: events of mailboxes that are not selected) it nudges
// that mailbox's watcher, which resyncs at once instead of at its next
// poll. Such a mailbox is in "notify" mode (Watcher.Mode); its poll goes
// on at PollInterval as a safety net.
//
// The connection holds one slot of the account's cap (slots.go): where the
// upstream offers NOTIFY, one of the watchers' MaxConns-1 slots is kept
// for it (notifyReserveLocked), since it serves any number of mailboxes
// where an IDLE watcher serves one; IDLE watchers get MaxConns-2. It runs
// only while some polled mailbox has a client idling (or NOOPing again and
// again) on it: a folder-by-folder sync costs no login of its own; the set
// it watches is then every polled mailbox, re-issued when that set
// changes. When the set empties it logs out and gives its slot back.
//
// Trouble (the connection cut, NO or BAD to NOTIFY, BYE) takes every
// mailbox back to plain polling at once, each with a catch-up round,
// logged once per incident; the loop retries with backoff (1 s doubling
// to 5 min) within the watchers' login budget.
type notifier struct {
	a   *Account
	log *zap.Logger

	kick   chan struct{} // capacity 1: the set of polled mailboxes may have changed
	signal chan struct{} // capacity 1: events were heard

	mu       sync.Mutex
	heard    map[string]struct{} // names reported (as the upstream spelt them) and not yet delivered
	overflow bool                // an event could not be kept: resync every mailbox
	stopped  bool                // the upstream said NOTIFICATIONOVERFLOW: it notifies no more

	rfcOnly bool // loop only: the upstream refused names spelt in UTF-8 too (notifyCommand)
}

// maxHeard bounds the names kept between two deliveries; past it every
// mailbox is resynced, as after NOTIFICATIONOVERFLOW.
const maxHeard = 4096

// notifyGap is the least time between two deliveries: a burst of events
// (a mass delete, say) becomes one round per mailbox.
const notifyGap = 20 * time.Millisecond

// Backoff of the notify connection's retries. A session counts as healthy
// (the backoff starts again from notifyRetryMin, and the next trouble is a
// new incident, logged again) once NOTIFY has been up for notifyStable: an
// upstream that accepts NOTIFY and then fails at once, again and again,
// backs off and is logged once.
var (
	notifyRetryMin = time.Second
	notifyRetryMax = 5 * time.Minute
	notifyStable   = time.Minute
)

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// kickNotifier tells the account's notifier that its set may have
// changed, and starts one when the upstream offers NOTIFY and a polled
// mailbox has a client waiting on it.
func (a *Account) kickNotifier() {
	m := a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.NoNotify || m.closed {
		return
	}
	if a.notifier != nil {
		poke(a.notifier.kick)
		return
	}
	if !quirks.Has(a.caps, quirks.Notify) || !a.wantsNotifyLocked() {
		return
	}
	n := &notifier{
		a:      a,
		log:    a.log.With(zap.String("role", "notify")),
		kick:   make(chan struct{}, 1),
		signal: make(chan struct{}, 1),
		heard:  make(map[string]struct{}),
	}
	a.notifier = n
	m.wg.Add(1)
	go n.run()
}

// wantsNotifyLocked says whether a polled mailbox has a client waiting on
// it. m.mu must be held.
func (a *Account) wantsNotifyLocked() bool {
	for _, w := range a.watchers {
		if w.polled.Load() && w.wantsPush.Load() {
			return true
		}
	}
	return false
}

// pushSet returns the polled watchers by name, and the names sorted, when
// the notifier is still wanted (nil otherwise).
func (a *Account) pushSet() (map[string]*Watcher, []string) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	if a.m.closed || !a.wantsNotifyLocked() {
		return nil, nil
	}
	set := make(map[string]*Watcher)
	for name, w := range a.watchers {
		if w.polled.Load() {
			set[name] = w
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return set, names
}

// run keeps a notify connection while it is wanted.
func (n *notifier) run() {
	a, m := n.a, n.a.m
	defer m.wg.Done()
	bo := newBackoff(notifyRetryMin, notifyRetryMax)
	logins := &budget{burst: loginBurst, refill: loginRefill}
	for {
		m.mu.Lock()
		if m.closed || !a.wantsNotifyLocked() {
			a.notifier = nil
			m.mu.Unlock()
			n.fallBack()
			return
		}
		m.mu.Unlock()
		accepted, err := n.session()
		n.fallBack()
		if errors.Is(err, ErrClosed) {
			return
		}
		if !accepted.IsZero() && time.Since(accepted) >= notifyStable {
			// A healthy session: the next trouble is a new incident,
			// logged again and retried within a second.
			bo.reset()
			a.notifyDown, a.notifyBack = false, false
		}
		if err == nil {
			continue // no longer wanted, or wanted again: the top decides
		}
		d := bo.next()
		d += logins.take(time.Now().Add(d))
		if !a.notifyDown {
			a.notifyDown = true
			n.log.Warn("NOTIFY connection failed; its mailboxes are polled until it is back", zap.Error(err), zap.Duration("retry_in", d))
		} else {
			n.log.Debug("NOTIFY connection failed again", zap.Error(err), zap.Duration("retry_in", d))
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-m.stop:
			t.Stop()
			return
		}
	}
}

// fallBack takes every mailbox of the account out of notify mode, each
// with a catch-up round: what the upstream reported while the connection
// was going away is not lost.
func (n *notifier) fallBack() {
	a := n.a
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	for _, w := range a.watchers {
		if w.notify.Swap(false) {
			w.log.Debug("mailbox no longer pushed by NOTIFY; polled", zap.String("mode", w.Mode()))
			w.in.nudge()
		}
	}
}

// session holds one notify connection: a watcher slot, a login, NOTIFY
// SET whenever the set of polled mailboxes changes, events to watchers.
// It returns nil once no longer wanted; accepted is when the upstream
// first accepted a NOTIFY SET (zero if it never did).
func (n *notifier) session() (accepted time.Time, err error) {
	a, m := n.a, n.a.m
	if err := n.slot(); errors.Is(err, errUnwanted) {
		return accepted, nil
	} else if err != nil {
		return accepted, err
	}
	defer a.release(slotNotify)
	if _, names := a.pushSet(); names == nil {
		return accepted, nil
	}
	m.mu.Lock()
	pass, mech := a.pass, a.mech
	m.mu.Unlock()
	if pass == "" {
		return accepted, ErrAuthFailed
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	cl, rc, err := m.dialFramed(ctx, LoginNotify, a.user, pass, mech, nil)
	if err != nil {
		return accepted, err
	}
	c := &Conn{Client: cl, acct: a, raw: rc}
	wc := &wconn{Client: cl, timeout: m.opts.ResponseTimeout}
	defer func() {
		wc.bounded(func() error { return cl.Logout().Wait() })
		cl.Close()
	}()
	rc.r.setTap(n.onStatus)
	if quirks.Has(cl.Caps(), quirks.CondStore) {
		// A flag change that moves no count then still shows, as a
		// new HIGHESTMODSEQ (RFC 7162 section 3.1.2.1).
		// imapclient's Enable refuses CONDSTORE: a raw command.
		if err := n.exchange(c, "ENABLE CONDSTORE"); err != nil {
			return accepted, err
		}
	}
	return n.watch(c, wc)
}

// slot waits for a watcher slot in the account's queue; it gives up with
// errUnwanted when no polled mailbox needs the notifier any more.
func (n *notifier) slot() error {
	a, m := n.a, n.a.m
	wt := a.enqueue(slotNotify, "")
	for {
		select {
		case <-wt.done:
			return wt.err
		case <-n.kick:
			if _, names := a.pushSet(); names == nil {
				a.cancel(wt)
				return errUnwanted
			}
		case <-m.stop:
			a.cancel(wt)
			return ErrClosed
		}
	}
}

// errUnwanted: the notifier stopped waiting for a slot it no longer needs.
var errUnwanted = errors.New("NOTIFY no longer wanted")

// watch re-issues NOTIFY SET as the set changes and delivers events, until
// the set empties (nil), the connection fails, or the manager closes.
func (n *notifier) watch(c *Conn, wc *wconn) (accepted time.Time, err error) {
	a, m := n.a, n.a.m
	var cur map[string]*Watcher
	var curNames, inSet []string // the polled mailboxes; those in the NOTIFY set
	refresh := time.NewTicker(m.opts.IdleRefresh)
	defer refresh.Stop()
	for {
		set, names := a.pushSet()
		if names == nil {
			return accepted, nil
		}
		if !slices.Equal(names, curNames) {
			included, err := n.set(c, names)
			if err != nil {
				return accepted, err
			}
			if accepted.IsZero() {
				accepted = time.Now()
				if a.notifyDown && !a.notifyBack {
					a.notifyBack = true
					n.log.Info("NOTIFY connection back; its mailboxes are pushed again")
				}
			}
			curNames, inSet = names, names[:included]
		}
		cur = n.adopt(set, cur, inSet)
		if n.deliver(cur, inSet) {
			return accepted, unavailable("upstream stopped notifying: NOTIFICATIONOVERFLOW")
		}
		select {
		case <-n.kick:
		case <-n.signal:
			time.Sleep(notifyGap)
		case <-refresh.C:
			// Keep the session from the upstream's inactivity logout
			// (RFC 3501 5.4: at least 30 minutes).
			if err := wc.bounded(func() error { return c.Noop().Wait() }); err != nil {
				return accepted, err
			}
		case <-c.Closed():
			return accepted, unavailable("NOTIFY connection closed by the upstream")
		case <-m.stop:
			return accepted, ErrClosed
		}
	}
}

// adopt puts the watchers of included (the names the upstream accepted
// in its set) in notify mode, nudging those new to it (a change between
// their last poll and the NOTIFY SET would otherwise wait for the next
// poll), and takes the others out. It returns the set now pushed.
func (n *notifier) adopt(set, cur map[string]*Watcher, included []string) map[string]*Watcher {
	next := make(map[string]*Watcher, len(included))
	for _, name := range included {
		w := set[name]
		next[name] = w
		if cur[name] != w {
			w.notify.Store(true)
			w.in.nudge()
			w.log.Debug("mailbox pushed by NOTIFY", zap.String("mode", w.Mode()))
		}
	}
	for name, w := range cur {
		if next[name] != w && w.notify.Swap(false) {
			w.log.Debug("mailbox left the NOTIFY set", zap.String("mode", w.Mode()))
		}
	}
	return next
}

// set sends NOTIFY SET for names and returns how many of them fit in the
// command (maxNotifyLen); the rest stay polled. Names whose UTF-8 differs
// from their modified UTF-7 are named both ways (notifyCommand) while the
// upstream takes it; one that refuses it gets the RFC spelling alone.
func (n *notifier) set(c *Conn, names []string) (int, error) {
	dual := !n.rfcOnly && quirks.Has(c.Caps(), quirks.UTF8Names)
	cmd, k := notifyCommand(names, maxNotifyLen, dual)
	if k < len(names) {
		n.log.Warn("too many mailboxes for one NOTIFY command; the rest stay polled",
			zap.Int("notified", k), zap.Int("polled", len(names)-k))
	}
	err := n.exchange(c, cmd)
	if _, proto := IsProtocol(err); proto && dual && needsDual(names[:k]) {
		n.log.Info("upstream refuses mailbox names in UTF-8 in NOTIFY; naming them in modified UTF-7 only", zap.Error(err))
		n.rfcOnly = true
		return n.set(c, names)
	}
	if err != nil {
		return 0, err
	}
	n.log.Debug("NOTIFY SET accepted", zap.Int("mailboxes", k))
	return k, nil
}

// exchange runs cmd as a raw command on the notify connection, bounded by
// the response timeout: STATUS events that come before its tagged answer
// go where the tap sends them, anything else untagged is dropped. The
// answer is nil (OK) or the upstream's NO or BAD.
func (n *notifier) exchange(c *Conn, cmd string) error {
	g := c.Guard(n.a.m.opts.ResponseTimeout)
	err := c.Raw(cmd, func(r RawReader) error {
		for {
			resp, err := readResponse(r.Reader, maxEventLen)
			if err != nil {
				return unavailable("reading the answer to %s: %v", cmd, err)
			}
			if rest, ok := bytes.CutPrefix(resp, []byte(r.Tag+" ")); ok {
				return taggedResult(rest)
			}
			if bytes.HasPrefix(bytes.ToUpper(resp), []byte("* BYE")) {
				return unavailable("upstream closed the NOTIFY connection: %s", bytes.TrimSpace(resp))
			}
			n.onStatus(resp, false)
		}
	})
	if g.Stop() {
		name, _, _ := strings.Cut(cmd, " ")
		return unavailable("no answer to %s within %v", name, n.a.m.opts.ResponseTimeout)
	}
	return err
}

// taggedResult turns a tagged completion's text after the tag into nil
// (OK) or the upstream's NO or BAD as an *imap.Error.
func taggedResult(rest []byte) error {
	text := strings.TrimRight(string(rest), "\r\n")
	word, tail, _ := strings.Cut(text, " ")
	switch strings.ToUpper(word) {
	case "OK":
		return nil
	case "NO":
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: tail}
	case "BAD":
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: tail}
	}
	return unavailable("upstream answered NOTIFY with %q", text)
}

// onStatus takes one untagged response from the notify connection (on the
// reader goroutine: it never blocks): a STATUS names a mailbox to resync;
// an OK [NOTIFICATIONOVERFLOW] says the upstream stopped notifying (RFC
// 5465 section 5.8), which the loop answers as a failure: poll, then
// start again.
func (n *notifier) onStatus(resp []byte, over bool) {
	name, err := parseStatusEvent(resp)
	if errors.Is(err, errNotStatus) && !over {
		if bytes.Contains(bytes.ToUpper(resp), []byte("[NOTIFICATIONOVERFLOW]")) {
			n.mu.Lock()
			n.stopped = true
			n.mu.Unlock()
			poke(n.signal)
		}
		return
	}
	n.mu.Lock()
	switch {
	case over || err != nil || len(n.heard) >= maxHeard:
		n.overflow = true
	default:
		n.heard[name] = struct{}{}
	}
	n.mu.Unlock()
	poke(n.signal)
}

// deliver nudges the watchers of the mailboxes heard of (named in UTF-8,
// as Dovecot does, or in modified UTF-7, as RFC 3501 says; inSet are the
// names notified), and says whether the upstream stopped notifying.
func (n *notifier) deliver(cur map[string]*Watcher, inSet []string) (stopped bool) {
	n.mu.Lock()
	stopped, n.stopped = n.stopped, false
	var heard map[string]struct{}
	if len(n.heard) > 0 {
		heard, n.heard = n.heard, make(map[string]struct{})
	}
	overflow := n.overflow
	n.overflow = false
	n.mu.Unlock()
	if overflow {
		n.log.Debug("NOTIFY events lost; resyncing every notified mailbox")
		for _, w := range cur {
			w.in.nudge()
		}
		return stopped
	}
	if len(heard) == 0 {
		return stopped
	}
	for _, name := range inSet {
		_, utf8 := heard[name]
		_, wire := heard[encodeMailboxName(name)]
		if w := cur[name]; w != nil && (utf8 || wire) {
			n.log.Debug("NOTIFY reported a change", zap.String("mailbox", name))
			w.in.nudge()
		}
	}
	return stopped
}
