package upstream

import (
	"context"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
)

// Flag states a STORE reported (flagreport.go) reach the model through
// the watcher's loop, the model's one writer, without an upstream round:
// a STORE through idlemux used to Sync the watcher (IDLE's DONE, NOOP,
// FETCH CHANGEDSINCE, NOOP, IDLE again) before its OK, and that round was
// most of the time of a mixed workload (issue 11).
//
// A state is put in only when it is newer than what the model holds: its
// MODSEQ above the watcher's own reads (w.modseq: a FETCH CHANGEDSINCE
// answers from a snapshot that holds every change up to the highest
// MODSEQ it shows, RFC 7162 3.1.2.1) and above any state put in before
// for the same message (w.posted), so two STOREs on the same message
// reported out of order leave the later one. A state not newer is already
// in the model, or overtaken there. The watcher takes states only while
// it idles on its own connection with CONDSTORE and its MODSEQ comes from
// such a read (w.exact); otherwise the caller Syncs as before.

// maxPosted bounds w.posted between two watcher reads: past it, posts are
// refused (the caller Syncs, and that round's read empties it).
const maxPosted = 4096

// flagPost is one STORE's report, sent to the loop through the inbox.
type flagPost struct {
	states []FlagState
	gen    uint64    // the account's generation once the STORE was counted
	done   chan bool // buffered: true once the states are in the model
	// added is the UIDVALIDITY of an APPENDed message's post
	// (appendpost.go), 0 for a STORE's report.
	added uint32
}

// PostFlags puts the flag states a STORE reported into the model, through
// the watcher's loop, and says whether it did. gen is the account's
// Generation read after the STORE's connection was released: the model
// then counts as holding every change through idlemux up to it
// (Current), unless one was left unconfirmed (Unconfirmed). false: the
// caller Syncs.
func (w *Watcher) PostFlags(ctx context.Context, states []FlagState, gen uint64) bool {
	return w.postAndWait(ctx, &flagPost{states: states, gen: gen, done: make(chan bool, 1)})
}

// postAndWait sends p to the loop and waits for its answer: false when
// the watcher stops or ctx ends first.
func (w *Watcher) postAndWait(ctx context.Context, p *flagPost) bool {
	w.in.post(p)
	select {
	case ok := <-p.done:
		return ok
	case <-w.ctx.Done():
		return false
	case <-ctx.Done():
		return false
	}
}

// applyPosts answers the posts taken from the inbox (loop only).
func (w *Watcher) applyPosts(posts []*flagPost) {
	for _, p := range posts {
		if p.added != 0 {
			w.applyAppended(p) // answers p, now or once parked
			continue
		}
		p.done <- w.applyPost(p)
	}
}

// applyPost puts one post's states into the model (loop only).
func (w *Watcher) applyPost(p *flagPost) bool {
	box := w.box.Load()
	if box == nil || !w.live.Load() || !w.exact || len(w.posted)+len(p.states) > maxPosted {
		return false
	}
	known, _ := box.MailboxFlags()
	var fresh []FlagState
	for _, st := range p.states {
		if st.ModSeq <= w.modseq || st.ModSeq <= w.posted[st.UID] {
			continue // in the model already, or overtaken there
		}
		for _, f := range st.Flags {
			if !slices.Contains(known, f) {
				// A new keyword: the mailbox's FLAGS as the upstream
				// words them come with the watcher's own round.
				return false
			}
		}
		fresh = append(fresh, st)
	}
	if len(fresh) > 0 {
		box.Update(func(tx *fanout.Tx) {
			for _, st := range fresh {
				tx.SetFlags(st.UID, st.Flags)
				tx.SetModSeq(st.UID, st.ModSeq) // after SetFlags: one change logged
			}
		})
		if w.posted == nil {
			w.posted = make(map[imap.UID]uint64)
		}
		for _, st := range fresh {
			w.posted[st.UID] = st.ModSeq
		}
	}
	w.confirmGen(p.gen)
	if ce := w.log.Check(zap.DebugLevel, "reported flags applied"); ce != nil {
		ce.Write(zap.Int("states", len(p.states)), zap.Int("fresh", len(fresh)))
	}
	return true
}

// confirmGen records that the model holds every change through idlemux
// up to the account's generation gen (Current), unless one was left
// unconfirmed (loop only).
func (w *Watcher) confirmGen(gen uint64) {
	if gen > w.synced.Load() && w.acct.unconfirmedAt(w.name) <= w.synced.Load() {
		w.synced.Store(gen)
	}
}

// readExact records a read of the upstream's flags with their MODSEQ
// (loop only): w.modseq now bounds what the model holds, and posted
// states it covers are dropped.
func (w *Watcher) readExact() {
	w.exact = true
	for uid, m := range w.posted {
		if m <= w.modseq {
			delete(w.posted, uid)
		}
	}
}

// readInexact records a read whose MODSEQ is not known per message (a
// new connection's listing): posts wait for the next exact read.
func (w *Watcher) readInexact() {
	w.dropPosts()
	clear(w.appended) // a new connection's listing holds or lacks them, as upstream
}

// dropPosts stops taking posts until the next exact read (loop only).
// Messages added from their APPEND stay to be settled against the
// mirror: a round that read new messages without MODSEQ still checks
// them (settleAppended).
func (w *Watcher) dropPosts() {
	w.exact = false
	clear(w.posted)
	w.refuseParked(time.Time{})
}

// noteModSeq records the MODSEQ of the message at index i of a listing
// read with them.
func (l *listing) noteModSeq(i int, modseq uint64) {
	if l.modseqs != nil {
		l.modseqs[i] = modseq
	}
}

// top is the highest MODSEQ of a listing, and whether every message came
// with one: the listing then holds every change up to it (its FETCH
// answers from one snapshot of the mailbox, RFC 7162 3.1.2.1), and
// nothing after.
func (l *listing) top() (uint64, bool) {
	if l.modseqs == nil {
		return 0, len(l.uids) == 0
	}
	top := l.bound
	for _, m := range l.modseqs {
		if m == 0 && l.bound == 0 {
			return 0, false
		}
		top = max(top, m)
	}
	return top, true
}

// readNew records the MODSEQ of new messages the watcher read (loop
// only): a STORE's report on one of them older than what was read must
// not overwrite it. Without them, no report is taken until the next
// exact read.
func (w *Watcher) readNew(added listing) {
	if _, exact := added.top(); !exact {
		w.dropPosts()
		return
	}
	if w.posted == nil {
		w.posted = make(map[imap.UID]uint64)
	}
	for i, uid := range added.uids {
		if m := added.modseqs[i]; m > w.modseq && m > w.posted[uid] {
			w.posted[uid] = m
		}
	}
}
