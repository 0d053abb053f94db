package fanout

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestHighestModSeqSyncPoint: the model's HIGHESTMODSEQ is read with the
// state it bounds (RFC 7162 3.1.2.1): a view opened reports the value of
// its own snapshot; a view that is told only up to a held-back expunge
// (Pending(false), RFC 3501 7.4.1) keeps the value of its last full
// delivery, below the expunge and every change after it (RFC 7162 3.2),
// and takes the new one only when told everything; the value never
// goes down.
func TestHighestModSeqSyncPoint(t *testing.T) {
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDs: []imap.UID{1, 2, 3, 4}, MsgFlags: make([][]imap.Flag, 4),
		ModSeqs: []uint64{5, 5, 5, 5}, HighestModSeq: 5}, 100)
	v, sd, err := m.NewView()
	if err != nil {
		t.Fatal(err)
	}
	if sd.HighestModSeq != 5 {
		t.Errorf("SelectData.HighestModSeq: got %d, want 5", sd.HighestModSeq)
	}
	m.Update(func(tx *Tx) {
		tx.SetFlags(1, []imap.Flag{imap.FlagSeen})
		tx.SetModSeq(1, 6)
		tx.SetHighestModSeq(6)
	})
	m.Update(func(tx *Tx) {
		tx.Expunge(2)
		tx.SetFlags(3, []imap.Flag{imap.FlagFlagged})
		tx.SetModSeq(3, 8)
		tx.SetHighestModSeq(8)
		tx.SetHighestModSeq(7) // lower: ignored
	})
	v2, sd2, _ := m.NewView()
	if sd2.HighestModSeq != 8 {
		t.Errorf("SelectData.HighestModSeq after the changes: got %d, want 8", sd2.HighestModSeq)
	}
	if got, caught := v2.SyncPoint(); got != 8 || !caught {
		t.Errorf("new view: got SyncPoint %d, %v, want 8, true", got, caught)
	}
	for _, tt := range []struct {
		name         string
		allowExpunge bool
		want         uint64
		wantCaught   bool
	}{
		{"before any delivery", false, 5, false}, // not delivered: SyncPoint read before Pending
		{"up to the held expunge", false, 5, false},
		{"everything", true, 8, true},
	} {
		if tt.name != "before any delivery" {
			_, to, err := v.Pending(tt.allowExpunge)
			if err != nil {
				t.Fatal(err)
			}
			v.Commit(to)
		}
		if got, caught := v.SyncPoint(); got != tt.want || caught != tt.wantCaught {
			t.Errorf("%s: got SyncPoint %d, %v, want %d, %v", tt.name, got, caught, tt.want, tt.wantCaught)
		}
	}
	if got := m.HighestModSeq(); got != 8 {
		t.Errorf("HighestModSeq: got %d, want 8", got)
	}
}
