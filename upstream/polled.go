package upstream

import (
	"context"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"
)

// A mailbox is watched by IDLE on a connection of its own while the
// account's cap leaves a watcher slot for it (MaxConns-1 of them). Past
// that, it is polled: every PollInterval, and at once when a session asks
// (Sync: SELECT, or after its own change), the watcher borrows one of the
// account's command connections and brings the model up to date, then
// gives it back. A SELECT therefore never waits on the cap and never fails
// because of it (issue 10: a fifth watched mailbox used to hang 45 s and
// fail). The polled watcher stays in line for a watcher slot, and switches
// to IDLE as soon as one is free: a lingering watcher nobody uses gives
// its slot up at once (grantOneLocked).
//
// Latency: a change made through idlemux reaches every session at once
// either way (the command Syncs the watcher); a change made elsewhere
// reaches an IDLE-watched mailbox's sessions as soon as the upstream tells
// (Dovecot: within its notify delay) and a polled one's within
// PollInterval.

// pollSlot takes a watcher slot for the mailbox's own IDLE connection,
// polling the mailbox until one is granted.
func (w *Watcher) pollSlot(ctx context.Context, opened *time.Time) error {
	a := w.acct
	wt := a.enqueue(slotWatcher, "")
	select {
	case <-wt.done:
		return wt.err
	default:
	}
	w.polled.Store(true)
	defer w.polled.Store(false)
	w.log.Info("no watcher slot free; polling the mailbox", zap.Duration("every", a.m.opts.PollInterval))
	if err := w.poll(ctx, wt.done, opened); err != nil {
		a.cancel(wt)
		return err
	}
	if wt.err == nil {
		w.log.Info("watcher slot free; the mailbox is watched by IDLE again")
	}
	return wt.err
}

// poll keeps the model current by polling until granted is closed.
func (w *Watcher) poll(ctx context.Context, granted <-chan struct{}, opened *time.Time) error {
	t := time.NewTimer(0) // the first round at once: a SELECT waits for the model
	defer t.Stop()
	for {
		select {
		case <-granted:
			return nil
		case <-ctx.Done():
			return ErrClosed
		case <-t.C:
		case <-w.q.signal:
		}
		syncs := w.q.takeSyncs()
		if err := w.pollOnce(ctx); err != nil {
			w.q.requeueSyncs(syncs)
			return err
		}
		for _, ch := range syncs {
			close(ch)
		}
		if opened.IsZero() {
			*opened = time.Now()
			w.noteAttempt(nil)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(w.acct.m.opts.PollInterval)
	}
}

// pollOnce brings the model up to date on a borrowed command connection.
// With CONDSTORE, a STATUS that shows the same UIDVALIDITY, message count
// and HIGHESTMODSEQ means nothing changed (RFC 7162 section 3.1.2.1: every
// change to a message raises the mailbox's HIGHESTMODSEQ), and the
// connection keeps its selected mailbox. Otherwise the mailbox is
// EXAMINEd and resynced as after a reconnect (open).
func (w *Watcher) pollOnce(ctx context.Context) error {
	a := w.acct
	c, err := a.Acquire(ctx, "", 0)
	if err != nil {
		return err
	}
	wc := &wconn{Client: c.Client, timeout: a.m.opts.ResponseTimeout}
	if same, err := w.unchanged(wc); err != nil || same {
		a.Release(c, err)
		return err
	}
	c.Forget() // the EXAMINE replaces the connection's selected mailbox
	_, err = w.open(wc)
	a.Release(c, err)
	return err
}

// unchanged says whether STATUS shows the model is current (CONDSTORE only).
func (w *Watcher) unchanged(c *wconn) (bool, error) {
	box := w.box.Load()
	if box == nil || w.modseq == 0 || !c.Caps().Has(imap.CapCondStore) {
		return false, nil
	}
	var st *imap.StatusData
	err := c.bounded(func() (err error) {
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
