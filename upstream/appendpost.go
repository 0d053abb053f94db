package upstream

import (
	"context"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// A message APPENDed through idlemux reaches the model through the
// watcher's loop, without the watcher's round (DONE, NOOP, FETCH, IDLE)
// before the APPEND's OK. The tagged OK's APPENDUID (RFC 4315 3) names
// the new message's UID; one UID FETCH of it (UID FLAGS MODSEQ) on the
// connection that appended reads its flags (what the client gave, plus
// what the server adds) and its MODSEQ (RFC 7162 3.1.4), which APPEND's
// answer does not carry. The loop adds the message to the model only
// when nothing can be missing before it: its UID is the model's UIDNEXT
// (no other message arrived that the model lacks), the UIDVALIDITY is the
// model's, and the watcher idles with exact MODSEQs, as for a STORE's
// report (flagpost.go). Otherwise the caller Syncs as before.
//
// The watcher's own session hears of the message later (IDLE's EXISTS):
// its mirror takes the UID then, and the model, which has the message
// already, logs nothing new (Tx.Add of a known UID is a flag update,
// equal flags change nothing). Until then the UID is pending
// (w.appended). A message expunged upstream before the watcher's session
// saw it is never announced to that session, and so never expunged
// through its mirror: a round that sent NOOP after the message was added
// (the NOOP's answer includes every message then in the mailbox) and
// still lacks it expunges it from the model, and a message pending for
// appendConfirmDelay gets such a round.

// appendConfirmDelay is how long a message added from its APPEND may wait
// for the watcher's own session to report it before the watcher asks with
// a NOOP. Dovecot tells an idling session within about 0.5 s (its
// NOTIFY_DELAY_MSECS), plus mailbox_idle_check_interval when it misses
// the notification.
const appendConfirmDelay = 3 * time.Second

// maxAppended bounds the messages pending confirmation: past it, posts
// are refused (the caller Syncs).
const maxAppended = 1024

// CanReadAppended says whether ReadAppended works on c for a message
// appended to mailbox: c has it selected with that UIDVALIDITY, and the
// upstream has CONDSTORE (MODSEQ orders the state against the watcher's
// reads).
func (c *Conn) CanReadAppended(mailbox string, uidValidity uint32) bool {
	return c.selected == mailbox && c.uidValidity == uidValidity && uidValidity != 0 &&
		quirks.Has(c.Caps(), quirks.CondStore)
}

// ReadAppended reads the flags and MODSEQ of the message c just appended
// to its selected mailbox (CanReadAppended). false: the answer did not
// show it (expunged meanwhile, or not yet visible to c's session).
func (c *Conn) ReadAppended(uid imap.UID) (FlagState, bool, error) {
	cmd := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true})
	var got FlagState
	found := false
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		if st, ok := flagState(msg); ok && st.UID == uid {
			got, found = st, true
		}
	}
	if err := cmd.Close(); err != nil {
		return FlagState{}, false, err
	}
	return got, found, nil
}

// PostAppended puts a message APPENDed through idlemux into the model,
// through the watcher's loop, and says whether the model now holds it.
// The loop counts the change (Changed) once the model holds it, with the
// watcher's synced generation at it (changedInModel): reads that wait for
// changes through idlemux (Current, statusShared's key) see it counted
// before the APPEND's OK, and never Sync for it. false: the caller Syncs.
func (w *Watcher) PostAppended(ctx context.Context, st FlagState, uidValidity uint32) bool {
	return w.postAndWait(ctx, &flagPost{states: []FlagState{st}, done: make(chan bool, 1), added: uidValidity})
}

// An APPEND's post may reach the loop before the post of another APPEND
// that got the UID just below (concurrent APPENDs: the upstream numbers
// them in one order, the sessions' UID FETCHes answer in another). Such a
// post waits (w.parked) for the gap to close, at most appendParkDelay,
// rather than being refused at once: a refusal costs a watcher round.

// appendParkDelay bounds a parked post's wait; a concurrent APPEND's post
// follows its UID FETCH by one loop turn.
const appendParkDelay = 50 * time.Millisecond

// maxParked bounds the parked posts; past it, a post with a gap is
// refused.
const maxParked = 64

// parkedPost is a post waiting for the UIDs below its own.
type parkedPost struct {
	p  *flagPost
	at time.Time
}

// verdict is what tryAppended did with a post.
type verdict int

const (
	refused  verdict = iota
	accepted         // the model holds the message
	gap              // a UID below it is missing from the model
)

// applyAppended answers a posted new message (loop only): added to the
// model, parked behind a gap, or refused.
func (w *Watcher) applyAppended(p *flagPost) {
	switch w.tryAppended(p) {
	case accepted:
		p.done <- true
		w.retryParked()
	case gap:
		if len(w.parked) < maxParked {
			w.parked = append(w.parked, parkedPost{p: p, at: time.Now()})
			return
		}
		p.done <- false
	default:
		p.done <- false
	}
}

// retryParked answers the parked posts the model can now take, in UID
// order (loop only); the rest stay parked.
func (w *Watcher) retryParked() {
	slices.SortFunc(w.parked, func(a, b parkedPost) int { return int(a.p.states[0].UID) - int(b.p.states[0].UID) })
	keep := w.parked[:0]
	for _, pp := range w.parked {
		switch w.tryAppended(pp.p) {
		case accepted:
			pp.p.done <- true
		case gap:
			keep = append(keep, pp)
		default:
			pp.p.done <- false
		}
	}
	clear(w.parked[len(keep):])
	w.parked = keep
}

// refuseParked refuses the parked posts parked before cutoff (loop only):
// their callers Sync. The zero cutoff refuses them all.
func (w *Watcher) refuseParked(cutoff time.Time) {
	keep := w.parked[:0]
	for _, pp := range w.parked {
		if cutoff.IsZero() || pp.at.Before(cutoff) {
			pp.p.done <- false
			continue
		}
		keep = append(keep, pp)
	}
	clear(w.parked[len(keep):])
	w.parked = keep
}

// tryAppended adds a posted new message to the model when nothing can
// be missing before it (loop only).
func (w *Watcher) tryAppended(p *flagPost) verdict {
	box := w.box.Load()
	if box == nil || !w.live.Load() || !w.exact || len(p.states) != 1 || box.UIDValidity() != p.added ||
		len(w.appended) >= maxAppended || len(w.posted) >= maxPosted {
		return refused
	}
	st := p.states[0]
	known, _ := box.MailboxFlags()
	for _, f := range st.Flags {
		if !slices.Contains(known, f) {
			return refused // a new keyword: FLAGS as the upstream words it come with a round
		}
	}
	v, added := accepted, false
	box.Update(func(tx *fanout.Tx) {
		switch {
		case tx.Has(st.UID):
			// The watcher read it already, after the APPEND: the model's
			// state is at least as new.
		case st.UID > tx.UIDNext():
			v = gap // a message before it is missing from the model
		case st.UID < tx.UIDNext() || tx.Add(st.UID, st.Flags) != nil:
			v = refused // expunged since, as the model knows
		default:
			tx.SetModSeq(st.UID, st.ModSeq)
			added = true
		}
	})
	if v != accepted {
		return v
	}
	if added {
		if w.posted == nil {
			w.posted = make(map[imap.UID]uint64)
		}
		w.posted[st.UID] = max(w.posted[st.UID], st.ModSeq)
		if w.appended == nil {
			w.appended = make(map[imap.UID]time.Time)
		}
		w.appended[st.UID] = time.Now()
	}
	w.acct.changedInModel(w)
	if ce := w.log.Check(zap.DebugLevel, "appended message applied"); ce != nil {
		ce.Write(zap.Uint32("uid", uint32(st.UID)), zap.Bool("added", added))
	}
	return accepted
}

// settleAppended checks the pending messages against the mirror of the
// watcher's session after a round (loop only): one the mirror holds is
// confirmed; after a round that sent NOOP, one it lacks is gone upstream
// and returned, to be expunged from the model.
func (w *Watcher) settleAppended(mirror []imap.UID, noop bool) (gone []imap.UID) {
	for uid := range w.appended {
		if _, in := slices.BinarySearch(mirror, uid); in {
			delete(w.appended, uid)
			continue
		}
		if noop {
			gone = append(gone, uid)
			delete(w.appended, uid)
			delete(w.posted, uid)
		}
	}
	slices.Sort(gone)
	return gone
}

// appendCheck is the watcher's wait (loop only) for the next deadline of
// appendpost.go: a parked post's appendParkDelay, the oldest pending
// message's appendConfirmDelay. Armed when one is due, which a post
// taken during the wait may make so.
type appendCheck struct {
	t  *time.Timer
	at time.Time
}

// arm starts the timer for at, unless zero or one runs for sooner.
func (a *appendCheck) arm(at time.Time) {
	if at.IsZero() || (a.t != nil && !at.Before(a.at)) {
		return
	}
	a.stop()
	a.t, a.at = time.NewTimer(time.Until(at)), at
}

// c is the timer's channel, nil (never ready) when unarmed.
func (a *appendCheck) c() <-chan time.Time {
	if a.t == nil {
		return nil
	}
	return a.t.C
}

// fired records that the timer fired: the next arm starts another.
func (a *appendCheck) fired() { a.t = nil }

func (a *appendCheck) stop() {
	if a.t != nil {
		a.t.Stop()
		a.t = nil
	}
}

// appendDeadline is when appendDue has something to do, zero when
// nothing is parked or pending (loop only).
func (w *Watcher) appendDeadline() time.Time {
	var at time.Time
	sooner := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	for _, pp := range w.parked {
		sooner(pp.at.Add(appendParkDelay))
	}
	for _, t := range w.appended {
		sooner(t.Add(appendConfirmDelay))
	}
	return at
}

// appendDue refuses the parked posts past appendParkDelay and says
// whether a pending message is past appendConfirmDelay: the watcher then
// runs a NOOP round (loop only).
func (w *Watcher) appendDue() bool {
	now := time.Now()
	w.refuseParked(now.Add(-appendParkDelay + time.Millisecond))
	for _, t := range w.appended {
		if now.Sub(t) >= appendConfirmDelay-time.Millisecond {
			return true
		}
	}
	return false
}
