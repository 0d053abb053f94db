package fanout

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestModSeqFollowsMessages: the model keeps each message's MODSEQ as
// reported (RFC 7162 3.1.4), aligned with its UID through adds and
// expunges, never lowered, and hands it with the flag update a view is
// told; a MODSEQ alone logs nothing.
func TestModSeqFollowsMessages(t *testing.T) {
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDs: []imap.UID{1, 2, 3}, MsgFlags: make([][]imap.Flag, 3), ModSeqs: []uint64{4, 0, 6}}, 100)
	v, _, _ := m.NewView()
	if n := m.Update(func(tx *Tx) { tx.SetModSeq(2, 9) }); n != 0 {
		t.Errorf("SetModSeq alone: got %d changes logged, want 0", n)
	}
	m.Update(func(tx *Tx) {
		tx.Expunge(1)
		tx.Add(7, nil)
		tx.SetModSeq(7, 11)
		tx.SetFlags(3, []imap.Flag{imap.FlagSeen})
		tx.SetModSeq(3, 12)
		tx.SetModSeq(3, 10)  // older: ignored
		tx.SetModSeq(99, 13) // not in the model
	})
	for _, tt := range []struct {
		uid  imap.UID
		want uint64
	}{{1, 0}, {2, 9}, {3, 12}, {7, 11}, {99, 0}} {
		if got := m.ModSeq(tt.uid); got != tt.want {
			t.Errorf("ModSeq(%d): got %d, want %d", tt.uid, got, tt.want)
		}
	}
	ups, _, err := v.Pending(true)
	if err != nil {
		t.Fatal(err)
	}
	var got []Update
	for _, u := range ups {
		if u.Kind == UpdateFlags {
			got = append(got, u)
		}
	}
	if len(got) != 1 || got[0].UID != 3 || got[0].ModSeq != 12 {
		t.Errorf("flag updates: got %+v, want UID 3 with MODSEQ 12", got)
	}
}

// TestModSeqColumnLazy: a model whose upstream reports no MODSEQ keeps
// no column for it; the first one reported sizes it to the model.
func TestModSeqColumnLazy(t *testing.T) {
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDs: []imap.UID{1, 2}, MsgFlags: make([][]imap.Flag, 2)}, 100)
	m.Update(func(tx *Tx) { tx.Add(3, nil) })
	if m.modseqs != nil {
		t.Fatalf("got a MODSEQ column of %d, want none", len(m.modseqs))
	}
	m.Update(func(tx *Tx) { tx.SetModSeq(3, 5); tx.Add(4, nil); tx.Expunge(1) })
	if got, want := len(m.modseqs), len(m.uids); got != want {
		t.Fatalf("column: got %d entries, want %d", got, want)
	}
	if m.ModSeq(3) != 5 || m.ModSeq(4) != 0 {
		t.Errorf("got MODSEQ %d and %d, want 5 and 0", m.ModSeq(3), m.ModSeq(4))
	}
}

// TestModSeqRiseLogsFlags: a MODSEQ that rises while the flags stay as
// they were (changed and changed back upstream) is one flag change for
// the views, with the new MODSEQ; none when the flag change itself was
// logged in the same transaction, nor when the MODSEQ was unknown.
func TestModSeqRiseLogsFlags(t *testing.T) {
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDs: []imap.UID{1, 2, 3}, MsgFlags: make([][]imap.Flag, 3), ModSeqs: []uint64{4, 4, 0}}, 100)
	v, _, _ := m.NewView()
	for _, tt := range []struct {
		name string
		fn   func(tx *Tx)
		want int
	}{
		{"rise, same flags", func(tx *Tx) { tx.SetFlags(1, nil); tx.SetModSeq(1, 6) }, 1},
		{"rise with a flag change", func(tx *Tx) { tx.SetFlags(2, []imap.Flag{imap.FlagSeen}); tx.SetModSeq(2, 7) }, 1},
		{"first known", func(tx *Tx) { tx.SetModSeq(3, 8) }, 0},
		{"same value again", func(tx *Tx) { tx.SetModSeq(1, 6) }, 0},
	} {
		if got := m.Update(tt.fn); got != tt.want {
			t.Errorf("%s: got %d changes logged, want %d", tt.name, got, tt.want)
		}
	}
	ups, _, _ := v.Pending(true)
	if len(ups) != 2 || ups[0].UID != 1 || ups[0].ModSeq != 6 || ups[1].UID != 2 || ups[1].ModSeq != 7 {
		t.Errorf("got %+v, want flag updates of 1 (MODSEQ 6) and 2 (MODSEQ 7)", ups)
	}
}
