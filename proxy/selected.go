package proxy

import (
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// Select attaches the session to the mailbox's shared watcher and opens its
// own view at the model's head: the upstream sees no new SELECT per client.
func (sess *session) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	sess.settle()
	sess.unselect()
	name := canonical(mailbox)
	ctx, cancel := sess.ctx()
	defer cancel()
	w, started, err := sess.acct.WatchNew(ctx, name)
	var mark uint64 // before the round below, if any: FreshSince
	if err == nil {
		mark = w.RoundMark()
		if started {
			mark = 0 // its first round, begun for this SELECT
		}
	}
	if err != nil {
		return nil, sess.fail("SELECT", err)
	}
	// The watcher may hear of a change late (quirks.LateNotifications);
	// SELECT must report the mailbox as it is now (RFC 3501 6.3.1), so
	// have the watcher ask first (concurrent SELECTs share one round),
	// unless it read the mailbox for this very SELECT.
	if quirks.LateNotifications && !started {
		if err := w.Sync(ctx); err != nil {
			sess.log.Warn("mailbox watcher did not confirm the mailbox state in time", zap.Error(err))
		}
	}
	readOnly := options != nil && options.ReadOnly
	v, sd, err := w.Mailbox().OpenView(readOnly)
	if err != nil {
		w.Unwatch()
		return nil, sess.fail("SELECT", &upstream.UnavailableError{Err: err})
	}
	sess.sel = &selection{name: name, w: w, v: v, readOnly: readOnly, uidValidity: sd.UIDValidity, curMark: mark,
		condstore: sess.condstoreFlag()}
	if cc := sess.reader(); cc != nil {
		cc.setSelected(w, sd.HighestModSeq) // one snapshot with the view
	}
	sess.s.metrics.selected.Add(1)
	sess.log = sess.baseLog.WithLazy(zap.String("mailbox", name))
	if err := sess.qresyncSelect(); err != nil { // qresync_select.go
		sess.unselect()
		return nil, err
	}
	return &imap.SelectData{
		Flags:             sd.Flags,
		PermanentFlags:    permanentFlags(sd.Flags, sd.PermanentFlags, sess.sel.readOnly),
		NumMessages:       sd.NumMessages,
		NumRecent:         sd.NumRecent, // idlemux's own recency (fanout/recent.go)
		FirstUnseenSeqNum: sd.FirstUnseen,
		UIDNext:           sd.UIDNext,
		UIDValidity:       sd.UIDValidity,
	}, nil
}

// Unselect detaches from the watcher (which lingers, then stops if no one
// else watches the mailbox).
func (sess *session) Unselect() error {
	sess.settle()
	sess.unselect()
	return nil
}

func (sess *session) unselect() {
	if sess.sel == nil {
		return
	}
	if cc := sess.reader(); cc != nil {
		cc.setSelected(nil, 0)
	}
	sess.sel.v.Close()
	sess.sel.w.Unwatch()
	sess.sel = nil
	sess.carried = nil // UIDs of the mailbox left
	sess.s.metrics.selected.Add(-1)
}

// Poll runs after every command; it delivers what changed since, through
// the session's own writer (unsolicited.go), not imapserver's UpdateWriter.
func (sess *session) Poll(_ *imapserver.UpdateWriter, allowExpunge bool) error {
	sess.settle()
	allow := allowExpunge && !sess.noExpunge
	sess.noExpunge = false
	defer sess.forgetReported()
	if sess.sel == nil {
		return nil
	}
	if sess.sel.holdGone {
		sess.sel.holdGone = false // the next command's Poll says BYE
		return nil
	}
	sess.syncPolled(sess.sel)
	sess.mergeCarried(sess.sel)
	err := sess.deliver(sess.sel, allow, false)
	sess.carryReported(sess.sel)
	return err
}

// Idle pushes changes as the model learns them, until DONE, through the
// session's own writer (unsolicited.go), not imapserver's UpdateWriter.
//
// imapserver runs it on a goroutine of its own and may call Close, or start
// the next command, without waiting for it: Idle holds cmdMu so those wait
// (settle) until it has left.
func (sess *session) Idle(_ *imapserver.UpdateWriter, stop <-chan struct{}) error {
	sess.cmdMu.Lock()
	defer sess.cmdMu.Unlock()
	select {
	case <-stop:
		return nil // the next command already started: stay out of its way
	default:
	}
	sess.mu.Lock()
	closed := sess.closed
	sess.mu.Unlock()
	if closed {
		return nil
	}
	sel := sess.sel
	clear(sess.reported) // only the command just answered may skip updates
	if sel != nil && len(sess.carried) > 0 {
		// What earlier commands reported past an expunge held back is
		// told here with the skip (reportedcarry.go), before the fast
		// path, which skips nothing.
		sess.mergeCarried(sel)
		err := sess.deliver(sel, true, true)
		sess.carried = nil
		sess.forgetReported()
		if err != nil {
			return err
		}
	}
	if sel != nil {
		// A mailbox clients idle on gets an IDLE connection of its own
		// (upstream/polled.go).
		sel.w.Idling(true)
		defer sel.w.Idling(false)
	}

	period := sess.s.dyn().cfg.Keepalive
	var keepalive <-chan time.Time // stays nil when keepalives are disabled
	var timer *time.Timer
	if period > 0 {
		timer = time.NewTimer(firstKeepalive(period))
		defer timer.Stop()
		keepalive = timer.C
	}
	if sel != nil {
		if raw := rawConnOf(sess.conn.NetConn()); raw != nil {
			done, err := sess.idleFast(sel, raw, stop, keepalive, func() error {
				timer.Reset(period)
				return sess.sendStillHere()
			})
			if done {
				return err
			}
		}
	}
	for {
		var changed <-chan struct{} // nil without a mailbox: only keepalives
		if sel != nil {
			changed = sel.v.Changed()
			if err := sess.deliver(sel, true, true); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-keepalive:
			if err := sess.sendStillHere(); err != nil {
				return err
			}
			timer.Reset(period)
		case <-stop:
			return nil
		}
	}
}

// deliver writes the view's pending updates and moves its cursor. A failed
// view (lagging too far, or the mailbox's UIDVALIDITY changed) ends the
// session with BYE: the client must reselect, and cannot on this connection
// without confusing its numbering.
// idling says the client waits in IDLE: only then is the time since the
// change a fan-out latency (otherwise it includes the client's own pace).
func (sess *session) deliver(sel *selection, allowExpunge, idling bool) error {
	_, err := sess.deliverTold(sel, allowExpunge, idling)
	return err
}

// deliverTold is deliver, returning the updates written (valid until the
// view's next Pending).
func (sess *session) deliverTold(sel *selection, allowExpunge, idling bool) ([]fanout.Update, error) {
	v := sel.v
	ups, to, err := v.Pending(allowExpunge)
	if err != nil {
		return nil, sess.viewFailed(err)
	}
	if len(ups) > 0 {
		if err := sess.deliverUpdates(sel, ups); err != nil {
			return nil, err
		}
	}
	v.Commit(to)
	if !idling {
		sess.noteSync(sel, ups) // condstore_syncpoint.go
	}
	if len(ups) > 0 {
		sess.s.metrics.fanoutEvents.Add(float64(len(ups)))
		if idling {
			sess.s.metrics.fanoutLatency.Observe(time.Since(sel.w.Mailbox().UpdatedAt()).Seconds())
		}
	}
	return ups, nil
}

// viewFailed ends the session when its view failed (lagging too far, or the
// mailbox's UIDVALIDITY changed): the client must reselect, and cannot on
// this connection without confusing its numbering.
func (sess *session) viewFailed(err error) error {
	text := "Mailbox state lost, please reconnect"
	switch {
	case errors.Is(err, fanout.ErrLagging):
		text = "Too far behind on mailbox changes, please reconnect"
		if !sess.saidBye() {
			sess.s.metrics.laggingClosed.Inc()
		}
	case errors.Is(err, upstream.ErrUIDValidityChanged):
		text = "Mailbox UIDVALIDITY changed, please reconnect"
	case errors.Is(err, upstream.ErrMailboxGone):
		text = quirks.ByeMailboxGone // deleted, renamed or replaced
		if sess.sel != nil && sess.sel.goneText != "" {
			text = sess.sel.goneText
		}
	case errors.Is(err, upstream.ErrAuthFailed):
		text = "The mail server no longer accepts this account's password, please log in again"
	}
	sess.bye(text)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: text}
}

// forgetReported empties the flags the last command reported; a large
// map (a STORE or FETCH of many messages) is dropped, not kept empty with
// its buckets: an idle session stays small.
func (sess *session) forgetReported() {
	if len(sess.reported) > 64 {
		sess.reported = nil
		return
	}
	clear(sess.reported)
}

// unholdOnError drops the FETCH/STORE/SEARCH mark that keeps EXPUNGE out
// of the next Poll (RFC 3501 7.4.1) when the command failed: imapserver runs
// no Poll after a failed command, and the next command's Poll may expunge.
// Deferred by those commands after setting noExpunge.
func (sess *session) unholdOnError(err *error) {
	if *err != nil {
		sess.noExpunge = false
	}
}
