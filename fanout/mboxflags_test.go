package fanout

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestMailboxFlagsToldOnceBeforeFetch: a change of the mailbox's FLAGS
// (a new keyword) reaches each view once, before any FETCH in the same
// delivery (RFC 3501 7.2.6), also when an expunge holds the rest of the
// log back; a list equal as a set logs nothing; a session told early by
// TakeMailboxFlags is not told again.
func TestMailboxFlagsToldOnceBeforeFetch(t *testing.T) {
	base := []imap.Flag{imap.FlagSeen, imap.FlagDeleted}
	withKw := []imap.Flag{imap.FlagSeen, imap.FlagDeleted, "$Label1"}
	kw := []imap.Flag{"$Label1"}
	mf := Update{Kind: UpdateMailboxFlags, Flags: withKw}
	tests := []struct {
		name     string
		change   func(tx *Tx)
		take     bool // TakeMailboxFlags before Pending
		allowExp bool
		want     [][]Update // successive Pending+Commit rounds
	}{
		{
			name:     "new keyword: FLAGS then FETCH",
			change:   func(tx *Tx) { tx.SetMailboxFlags(withKw, nil); tx.SetFlags(2, kw) },
			allowExp: true,
			want:     [][]Update{{mf, {Kind: UpdateFlags, Seq: 2, UID: 2, Flags: kw}}, nil},
		},
		{
			name:     "FLAGS after the EXISTS, before the FETCHes",
			change:   func(tx *Tx) { tx.SetMailboxFlags(withKw, nil); tx.Add(4, kw); tx.SetFlags(1, kw) },
			allowExp: true,
			want:     [][]Update{{{Kind: UpdateExists, Seq: 4}, {Kind: UpdateRecent, Seq: 1}, mf, {Kind: UpdateFlags, Seq: 1, UID: 1, Flags: kw}}, nil},
		},
		{
			name:     "keyword seen on a message before the upstream's FLAGS: FLAGS first anyway",
			change:   func(tx *Tx) { tx.SetFlags(2, kw) },
			allowExp: true,
			want:     [][]Update{{mf, {Kind: UpdateFlags, Seq: 2, UID: 2, Flags: kw}}, nil},
		},
		{
			name:     "keyword on a new message before the upstream's FLAGS",
			change:   func(tx *Tx) { tx.Add(4, kw); tx.SetMailboxFlags(withKw, nil) },
			allowExp: true,
			want:     [][]Update{{{Kind: UpdateExists, Seq: 4}, {Kind: UpdateRecent, Seq: 1}, mf}, nil},
		},
		{
			name:     "same list in another order logs nothing",
			change:   func(tx *Tx) { tx.SetMailboxFlags([]imap.Flag{imap.FlagDeleted, imap.FlagSeen}, nil) },
			allowExp: true,
			want:     [][]Update{nil},
		},
		{
			name:     "told alone when nothing else changed",
			change:   func(tx *Tx) { tx.SetMailboxFlags(withKw, nil) },
			allowExp: true,
			want:     [][]Update{{mf}, nil},
		},
		{
			name: "held back behind an expunge, yet told before a FETCH that shows it",
			change: func(tx *Tx) {
				tx.SetFlags(3, []imap.Flag{imap.FlagSeen})
				tx.Expunge(1)
				tx.SetMailboxFlags(withKw, nil)
				tx.SetFlags(3, kw)
			},
			allowExp: false,
			want:     [][]Update{{mf, {Kind: UpdateFlags, Seq: 3, UID: 3, Flags: kw}}, nil},
		},
		{
			name:     "told by the actor's command first: not again",
			change:   func(tx *Tx) { tx.SetMailboxFlags(withKw, nil); tx.SetFlags(2, kw) },
			take:     true,
			allowExp: true,
			want:     [][]Update{{{Kind: UpdateFlags, Seq: 2, UID: 2, Flags: kw}}, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMailbox(Snapshot{UIDValidity: 7, Flags: base, UIDs: []imap.UID{1, 2, 3}, MsgFlags: make([][]imap.Flag, 3)}, 100)
			v, _, err := m.NewView()
			if err != nil {
				t.Fatal(err)
			}
			m.Update(tt.change)
			if tt.take {
				if got, ok := v.TakeMailboxFlags(); !ok || !slices.Equal(got, withKw) {
					t.Fatalf("TakeMailboxFlags: got %v, %v; want %v", got, ok, withKw)
				}
				if _, ok := v.TakeMailboxFlags(); ok {
					t.Fatal("TakeMailboxFlags told the same list twice")
				}
			}
			for round, want := range tt.want {
				got, to, err := v.Pending(tt.allowExp)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(got, want, func(a, b Update) bool {
					return a.Kind == b.Kind && a.Seq == b.Seq && a.UID == b.UID && slices.Equal(a.Flags, b.Flags)
				}) {
					t.Fatalf("round %d: got %+v, want %+v", round, got, want)
				}
				v.Commit(to)
			}
		})
	}
}
