package upstream

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/fanout"
)

// postWatcher is a live watcher of INBOX, its model holding UIDs 1..3
// without flags, whose last read showed MODSEQ 10; no loop runs, the test
// plays the loop.
func postWatcher(t *testing.T) *Watcher {
	t.Helper()
	a := &Account{m: &Manager{}, log: zap.NewNop()}
	w := a.newWatcher("INBOX")
	t.Cleanup(w.cancel)
	std := []imap.Flag{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`}
	w.box.Store(fanout.NewMailbox(fanout.Snapshot{
		UIDValidity: 1, UIDNext: 4, Flags: std, PermanentFlags: std,
		UIDs: []imap.UID{1, 2, 3}, MsgFlags: make([][]imap.Flag, 3),
	}, 100))
	w.live.Store(true)
	w.modseq = 10
	w.readExact()
	return w
}

// TestPostFlagsOrder: a STORE's reported flag states go into the model
// only when newer (by MODSEQ) than the watcher's read and than earlier
// reports, so reports that reach the loop out of order leave the latest
// state; a state the watcher cannot place (a new keyword, no exact read,
// not live) is refused and the caller Syncs.
func TestPostFlagsOrder(t *testing.T) {
	seen := []imap.Flag{`\Seen`}
	tests := []struct {
		name   string
		setup  func(w *Watcher)
		posts  [][]FlagState
		wantOK []bool
		want   []imap.Flag // UID 1's flags in the model after the posts
	}{
		{"a newer state is applied", nil,
			[][]FlagState{{{UID: 1, ModSeq: 11, Flags: seen}}}, []bool{true}, seen},
		{"a state the watcher read past is in the model already", nil,
			[][]FlagState{{{UID: 1, ModSeq: 10, Flags: seen}}}, []bool{true}, nil},
		{"reports out of order: the later state stays", nil,
			[][]FlagState{{{UID: 1, ModSeq: 13, Flags: seen}}, {{UID: 1, ModSeq: 12, Flags: nil}}}, []bool{true, true}, seen},
		{"reports in order: the later state wins", nil,
			[][]FlagState{{{UID: 1, ModSeq: 12, Flags: seen}}, {{UID: 1, ModSeq: 13, Flags: nil}}}, []bool{true, true}, nil},
		{"a new keyword is refused", nil,
			[][]FlagState{{{UID: 1, ModSeq: 11, Flags: []imap.Flag{"foo"}}}}, []bool{false}, nil},
		{"refused without an exact read", func(w *Watcher) { w.readInexact() },
			[][]FlagState{{{UID: 1, ModSeq: 11, Flags: seen}}}, []bool{false}, nil},
		{"refused while not live", func(w *Watcher) { w.live.Store(false) },
			[][]FlagState{{{UID: 1, ModSeq: 11, Flags: seen}}}, []bool{false}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := postWatcher(t)
			if tc.setup != nil {
				tc.setup(w)
			}
			for i, states := range tc.posts {
				if got := w.applyPost(&flagPost{states: states}); got != tc.wantOK[i] {
					t.Errorf("post %d: got ok %v, want %v", i, got, tc.wantOK[i])
				}
			}
			got, _ := w.Mailbox().Flags(1)
			if !fanout.FlagsEqual(got, tc.want) {
				t.Errorf("UID 1's flags: got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPostFlagsCurrent: a post makes the model count as holding every
// change through idlemux up to its generation, unless a change was left
// unconfirmed after the last round; an exact read drops the reports it
// covers.
func TestPostFlagsCurrent(t *testing.T) {
	tests := []struct {
		name        string
		unconfirmed bool
		wantSynced  uint64
	}{
		{"confirmed", false, 2},
		{"a change left unconfirmed", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := postWatcher(t)
			if tc.unconfirmed {
				w.acct.Unconfirmed("INBOX")
			} else {
				w.acct.Changed("INBOX")
			}
			w.acct.Changed("INBOX")
			if !w.applyPost(&flagPost{states: []FlagState{{UID: 2, ModSeq: 11}}, gen: w.acct.Generation()}) {
				t.Fatal("post refused")
			}
			if got := w.synced.Load(); got != tc.wantSynced {
				t.Errorf("synced: got %d, want %d", got, tc.wantSynced)
			}
			if got := w.acct.lastChange("INBOX") <= w.synced.Load(); got != !tc.unconfirmed {
				t.Errorf("model current: got %v, want %v", got, !tc.unconfirmed)
			}
		})
	}
	w := postWatcher(t)
	for uid := imap.UID(1); uid <= 3; uid++ {
		w.applyPost(&flagPost{states: []FlagState{{UID: uid, ModSeq: 10 + uint64(uid)}}})
	}
	w.modseq = 12
	w.readExact()
	if got := slices.Sorted(maps.Keys(w.posted)); fmt.Sprint(got) != "[3]" {
		t.Errorf("posted after a read up to MODSEQ 12: got %v, want [3]", got)
	}
}

// TestReportable: a STORE reports its changes only for a set the watcher
// would take whole.
func TestReportable(t *testing.T) {
	tests := []struct {
		name string
		uids imap.UIDSet
		want bool
	}{
		{"one message", imap.UIDSetNum(7), true},
		{"ranges up to the bound", imap.UIDSet{{Start: 1, Stop: 10}, {Start: 21, Stop: maxPosted + 10}}, true},
		{"one past the bound", imap.UIDSet{{Start: 1, Stop: maxPosted + 1}}, false},
		{"open-ended", imap.UIDSet{{Start: 1, Stop: 0}}, false},
	}
	for _, tc := range tests {
		if got := reportable(tc.uids); got != tc.want {
			t.Errorf("%s: reportable(%v): got %v, want %v", tc.name, tc.uids, got, tc.want)
		}
	}
}

// TestChangedAfterPost: a CHANGEDSINCE read applied after a posted state
// leaves the posted state where the read is older than it (its MODSEQ
// below the model's), so the model never pairs the read's older flags
// with the post's newer MODSEQ; a read as new or newer is applied.
func TestChangedAfterPost(t *testing.T) {
	seen := []imap.Flag{`\Seen`}
	flagged := []imap.Flag{`\Flagged`}
	tests := []struct {
		name       string
		read       listing
		wantFlags  []imap.Flag
		wantModSeq uint64
	}{
		{"an older read is skipped",
			listing{uids: []imap.UID{1}, flags: [][]imap.Flag{nil}, modseqs: []uint64{11}}, seen, 12},
		{"a read at the post's MODSEQ agrees",
			listing{uids: []imap.UID{1}, flags: [][]imap.Flag{seen}, modseqs: []uint64{12}}, seen, 12},
		{"a newer read is applied",
			listing{uids: []imap.UID{1}, flags: [][]imap.Flag{flagged}, modseqs: []uint64{13}}, flagged, 13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := postWatcher(t)
			if !w.applyPost(&flagPost{states: []FlagState{{UID: 1, ModSeq: 12, Flags: seen}}}) {
				t.Fatal("post refused")
			}
			box := w.Mailbox()
			box.Update(func(tx *fanout.Tx) { applyChanged(tx, tc.read) })
			got, _ := box.Flags(1)
			if !fanout.FlagsEqual(got, tc.wantFlags) {
				t.Errorf("UID 1's flags: got %v, want %v", got, tc.wantFlags)
			}
			if got := box.ModSeq(1); got != tc.wantModSeq {
				t.Errorf("UID 1's MODSEQ: got %d, want %d", got, tc.wantModSeq)
			}
		})
	}
}
