package upstream

import (
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/fanout"
)

// appendPost is an APPENDed message's post (UIDVALIDITY 1), as
// PostAppended sends it.
func appendPost(uid imap.UID, flags ...imap.Flag) *flagPost {
	return &flagPost{states: []FlagState{{UID: uid, ModSeq: 20 + uint64(uid), Flags: flags}}, done: make(chan bool, 1), added: 1}
}

// TestPostAppendedOrder: an APPENDed message's post goes into the model
// at its UIDNEXT; a post above a gap waits for the posts below it (out of
// order from concurrent APPENDs) and is refused once appendParkDelay has
// passed without them; a post the watcher cannot place is refused at
// once and the caller Syncs.
func TestPostAppendedOrder(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(w *Watcher)
		uids     []imap.UID // posted in this order
		expire   bool       // appendParkDelay passes after the posts
		wantDone []string   // per post: "ok", "refused" or "waiting"
		wantUIDs []imap.UID // the model's UIDs after
	}{
		{"at UIDNEXT", nil, []imap.UID{4}, false, []string{"ok"}, []imap.UID{1, 2, 3, 4}},
		{"in order", nil, []imap.UID{4, 5}, false, []string{"ok", "ok"}, []imap.UID{1, 2, 3, 4, 5}},
		{"out of order: the later waits for the earlier", nil, []imap.UID{5, 4}, false,
			[]string{"ok", "ok"}, []imap.UID{1, 2, 3, 4, 5}},
		{"three out of order", nil, []imap.UID{6, 5, 4}, false,
			[]string{"ok", "ok", "ok"}, []imap.UID{1, 2, 3, 4, 5, 6}},
		{"a gap waits", nil, []imap.UID{5}, false, []string{"waiting"}, []imap.UID{1, 2, 3}},
		{"a gap never closed is refused", nil, []imap.UID{5}, true, []string{"refused"}, []imap.UID{1, 2, 3}},
		{"already in the model (the watcher read it first)", nil, []imap.UID{2, 4}, false,
			[]string{"ok", "ok"}, []imap.UID{1, 2, 3, 4}},
		{"below UIDNEXT and not in the model: expunged since, refused",
			func(w *Watcher) { w.box.Load().Update(func(tx *fanout.Tx) { tx.Expunge(3) }) }, []imap.UID{3}, false,
			[]string{"refused"}, []imap.UID{1, 2}},
		{"refused while not live", func(w *Watcher) { w.live.Store(false) }, []imap.UID{4}, false,
			[]string{"refused"}, []imap.UID{1, 2, 3}},
		{"refused without an exact read", func(w *Watcher) { w.readInexact() }, []imap.UID{4}, false,
			[]string{"refused"}, []imap.UID{1, 2, 3}},
		{"a new reconnection refuses what waits", nil, []imap.UID{5}, false, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := postWatcher(t)
			if tc.setup != nil {
				tc.setup(w)
			}
			posts := make([]*flagPost, len(tc.uids))
			for i, uid := range tc.uids {
				posts[i] = appendPost(uid)
				w.applyPosts([]*flagPost{posts[i]})
			}
			if tc.wantDone == nil { // the reconnection case
				w.readInexact()
				if got := <-posts[0].done; got {
					t.Errorf("post parked across a reconnection: got true, want refused")
				}
				return
			}
			if tc.expire {
				for i := range w.parked {
					w.parked[i].at = time.Now().Add(-2 * appendParkDelay)
				}
				if w.appendDue() {
					t.Errorf("appendDue: got a NOOP round asked for, want none (nothing added)")
				}
			}
			for i, p := range posts {
				got := "waiting"
				select {
				case ok := <-p.done:
					got = map[bool]string{true: "ok", false: "refused"}[ok]
				default:
				}
				if got != tc.wantDone[i] {
					t.Errorf("post of UID %d: got %s, want %s", tc.uids[i], got, tc.wantDone[i])
				}
			}
			if got := w.box.Load().UIDs(); !slices.Equal(got, tc.wantUIDs) {
				t.Errorf("model UIDs: got %v, want %v", got, tc.wantUIDs)
			}
		})
	}
}

// TestSettleAppended: a message added from its APPEND is confirmed once
// the watcher's mirror holds it; a NOOP round whose mirror still lacks it
// expunges it (gone upstream before the watcher's session saw it); a
// round without NOOP decides nothing.
func TestSettleAppended(t *testing.T) {
	tests := []struct {
		name        string
		mirror      []imap.UID
		noop        bool
		inexactNew  bool // the round read new messages without MODSEQ first (readNew)
		wantGone    []imap.UID
		wantPending int
	}{
		{"seen by the watcher's session", []imap.UID{1, 2, 3, 4, 5}, false, false, nil, 0},
		{"not yet seen, no NOOP", []imap.UID{1, 2, 3}, false, false, nil, 2},
		{"one seen, one not, no NOOP", []imap.UID{1, 2, 3, 4}, false, false, nil, 1},
		{"gone after a NOOP", []imap.UID{1, 2, 3, 4}, true, false, []imap.UID{5}, 0},
		{"both gone after a NOOP", []imap.UID{1, 2, 3}, true, false, []imap.UID{4, 5}, 0},
		// A new message read without MODSEQ in the same round must not
		// make the round forget what it still has to settle: 5 would stay
		// in the model for good.
		{"gone after a NOOP, a new message read without MODSEQ", []imap.UID{1, 2, 3, 4, 6}, true, true, []imap.UID{5}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := postWatcher(t)
			w.applyPosts([]*flagPost{appendPost(4), appendPost(5)})
			if len(w.appended) != 2 {
				t.Fatalf("pending after two posts: got %d, want 2", len(w.appended))
			}
			if tc.inexactNew {
				w.readNew(listing{uids: []imap.UID{6}, flags: [][]imap.Flag{nil}})
			}
			gone := w.settleAppended(tc.mirror, tc.noop)
			if !slices.Equal(gone, tc.wantGone) {
				t.Errorf("gone: got %v, want %v", gone, tc.wantGone)
			}
			if len(w.appended) != tc.wantPending {
				t.Errorf("still pending: got %d, want %d", len(w.appended), tc.wantPending)
			}
		})
	}
}
