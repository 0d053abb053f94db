package upstream

import (
	"context"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// A mailbox is watched by IDLE on a connection of its own once a client
// idles on it, while the account's cap leaves a watcher slot for it
// (MaxConns-1 of them). Until then, and past that, it is polled: every
// PollInterval, and at once when a session asks (Sync: SELECT, NOOP, or
// after its own change), the watcher borrows one of the account's command
// connections and brings the model up to date, then gives it back. A
// SELECT therefore never waits on the cap and never fails because of it
// (issue 10: a fifth watched mailbox used to hang 45 s and fail), and
// needs no new upstream login. A polled watcher that clients idle on stays
// in line for a watcher slot, and switches to IDLE as soon as one is free:
// a lingering watcher nobody uses gives its slot up at once
// (grantOneLocked).
//
// Latency: a change made through idlemux reaches every session at once
// either way (the command Syncs the watcher); a change made elsewhere
// reaches an IDLE-watched mailbox's sessions as soon as the upstream tells
// (Dovecot: within its notify delay) and a polled one's within
// PollInterval.

// pollSlot polls the mailbox until it has a watcher slot for its own IDLE
// connection. It asks for one only once a session idles on the mailbox
// (Idling): a client that SELECTs folder after folder to sync them
// (offlineimap, mbsync) is served on the command connections, without a
// login per folder, and the watcher slots go to mailboxes clients idle on.
func (w *Watcher) pollSlot(opened *time.Time) (err error) {
	a := w.acct
	var wt *waiter
	var granted <-chan struct{}
	defer func() {
		if err != nil && wt != nil {
			a.cancel(wt)
		}
	}()
	w.polled.Store(true)
	a.kickNotifier()
	defer func() {
		w.polled.Store(false)
		w.notify.Store(false)
		a.kickNotifier()
	}()
	t := time.NewTimer(0) // the first round at once: a SELECT waits for the model
	defer t.Stop()
	for {
		if w.idleAsked && wt == nil {
			wt = a.enqueue(slotWatcher, "")
			granted = wt.done
			select {
			case <-granted:
				return wt.err
			default:
			}
			w.log.Info("no watcher slot free for a mailbox clients idle on; polling it", zap.Duration("every", a.m.opts.PollInterval))
		}
		select {
		case <-granted:
			if wt.err == nil {
				w.log.Info("watcher slot free; the mailbox is watched by IDLE")
			}
			return wt.err
		case <-w.ctx.Done():
			return ErrClosed
		case <-t.C:
		case <-w.in.signal:
			if w.takeMail(); len(w.syncs) == 0 && !w.nudged {
				continue // nothing to poll for; maybe a slot to ask for
			}
			if len(w.syncs) == 0 {
				w.log.Debug("NOTIFY reported a change; resyncing now", zap.String("mode", w.Mode()))
			}
		case <-w.lingerC():
			w.lingerExpired() // a stop cancels ctx: the next select sees it
			continue
		}
		if err := w.pollRound(w.ctx, opened); err != nil {
			return err
		}
		t.Reset(a.m.opts.PollInterval)
	}
}

// pollRound runs one poll and answers the Syncs waiting for it.
func (w *Watcher) pollRound(ctx context.Context, opened *time.Time) error {
	syncs := w.takeSyncs()
	// A session waiting, or NOTIFY saying the mailbox changed: no STATUS
	// first, the SELECT itself answers (pollOnce).
	asked := len(syncs) > 0 || w.nudged
	w.nudged = false
	// Both before the upstream is asked: see FreshSince.
	round, gen := w.roundsBegun.Add(1), w.acct.Generation()
	if err := w.pollOnce(ctx, asked); err != nil {
		w.requeueSyncs(syncs)
		return err
	}
	w.synced.Store(gen)
	w.roundDone.Store(round)
	for _, ch := range syncs {
		close(ch)
	}
	if opened.IsZero() {
		*opened = time.Now()
		w.noteAttempt(nil)
	}
	return nil
}

// Idling tells the watcher whether a session idles on the mailbox. The
// first time one does, a polled watcher asks for a slot of its own, and
// keeps it while it runs: Idling(false) changes nothing.
func (w *Watcher) Idling(on bool) {
	if on {
		w.in.idle()
	}
}

// Polled says whether the mailbox is polled (no IDLE connection of its
// own), in "notify" mode included: a NOOP there still asks the upstream at
// once, as a NOOP directly would report a change at once.
func (w *Watcher) Polled() bool { return w.polled.Load() }

// Watching modes (Mode).
const (
	ModeIdle   = "idle"   // an upstream IDLE connection of its own
	ModeNotify = "notify" // polled, and pushed by the account's NOTIFY connection (notifier.go)
	ModePolled = "polled" // polled every PollInterval only
)

// Mode says how the mailbox is watched now.
func (w *Watcher) Mode() string {
	switch {
	case !w.polled.Load():
		return ModeIdle
	case w.notify.Load():
		return ModeNotify
	}
	return ModePolled
}

// pollOnce brings the model up to date on a borrowed command connection.
// A poll of the timer: with CONDSTORE, a STATUS that shows the same
// UIDVALIDITY, message count and HIGHESTMODSEQ means nothing changed (RFC
// 7162 section 3.1.2.1: every change to a message raises the mailbox's
// HIGHESTMODSEQ), and the connection keeps its selected mailbox.
// Otherwise, and always when a session asked (asked: a SELECT, a NOOP,
// its own change; it is about to use the mailbox), the mailbox is
// SELECTed, which answers the same question (current), and resynced
// if it changed: the session's next command finds the connection
// selected, and a folder-by-folder sync revisiting a folder costs the
// upstream what it would directly (SELECT, then the client's command),
// not a STATUS more.
func (w *Watcher) pollOnce(ctx context.Context, asked bool) error {
	a := w.acct
	c, err := a.Acquire(ctx, "", 0, 0)
	if err != nil {
		return err
	}
	wc := &wconn{Client: c.Client, timeout: a.m.opts.ResponseTimeout}
	if asked {
		// no STATUS: the SELECT below says whether anything changed
	} else if same, err := w.unchanged(wc); err != nil || same {
		a.Release(c, err)
		return err
	}
	// SELECTed read-write, as the pool's commands select it, and left
	// selected: the command that follows a SELECT (a FETCH of the flags,
	// say) finds the connection ready, and a folder-by-folder sync costs
	// the upstream what it would directly.
	epoch, writes := a.curEpoch(), a.writesOf(w.name)
	c.Forget()
	_, uidValidity, err := w.openAs(wc, false)
	if err == nil {
		c.selected, c.epoch, c.uidValidity, c.seen = w.name, epoch, uidValidity, writes
		c.upTo = w.box.Load().MaxUID()
	}
	a.Release(c, err)
	return err
}

// unchanged says whether STATUS shows the model is current (CONDSTORE only).
func (w *Watcher) unchanged(c *wconn) (bool, error) {
	box := w.box.Load()
	if box == nil || w.modseq == 0 || !quirks.Has(c.Caps(), quirks.CondStore) {
		return false, nil
	}
	// A NOOP first brings the connection's own selected mailbox up to
	// date (quirks.StatusOfSelectedLags). Not pipelined: Dovecot may run
	// pipelined commands side by side.
	var st *imap.StatusData
	err := c.bounded(func() (err error) {
		if mb := c.Mailbox(); quirks.StatusOfSelectedLags && mb != nil && mb.Name == w.name {
			if err := c.Noop().Wait(); err != nil {
				return err
			}
		}
		st, err = c.Status(w.name, &imap.StatusOptions{NumMessages: true, UIDValidity: true, HighestModSeq: true}).Wait()
		return err
	})
	if err != nil {
		if _, proto := IsProtocol(err); proto {
			return false, nil // let EXAMINE say what is wrong with the mailbox
		}
		return false, err
	}
	return st.UIDValidity == box.UIDValidity() && st.NumMessages != nil && int(*st.NumMessages) == box.Len() &&
		st.HighestModSeq == w.modseq, nil
}
