package fanout

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// searchBox is a model of UIDs 1..6 and a view of it that has not been
// told that UID 3 was expunged nor that UID 7 was added: its numbering is
// 1..6 (UID 3 at number 3, found by UID but not by flags), and UID 7 is
// not in it.
func searchBox(t *testing.T) *View {
	t.Helper()
	flags := [][]imap.Flag{
		{imap.FlagSeen},                     // 1
		{imap.FlagFlagged, "$Junk"},         // 2
		{imap.FlagSeen, imap.FlagDeleted},   // 3, expunged untold
		{imap.FlagAnswered, imap.FlagDraft}, // 4
		{imap.FlagSeen, "Work"},             // 5
		nil,                                 // 6
	}
	mbox := []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft, "$Junk", "Work"}
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDNext: 7, Flags: mbox, UIDs: uidsN(1, 6), MsgFlags: flags}, 100)
	v, _, err := m.NewView()
	if err != nil {
		t.Fatal(err)
	}
	m.Update(func(tx *Tx) {
		tx.Expunge(3)
		if err := tx.Add(7, nil); err != nil {
			t.Fatal(err)
		}
	})
	return v
}

func uidSet(ranges ...imap.UID) imap.UIDSet {
	var s imap.UIDSet
	for i := 0; i+1 < len(ranges); i += 2 {
		s.AddRange(ranges[i], ranges[i+1])
	}
	return s
}

// TestViewSearch: the model-side evaluator of SEARCH keys (RFC 3501
// section 6.4.4) over a view, in the view's numbering: with UID 3
// expunged and not yet told (told false: numbers 1..6 are UIDs 1..6), and
// once told (UIDs 1, 2, 4, 5, 6, 7 are numbers 1..6). want nil: declined.
func TestViewSearch(t *testing.T) {
	seen, flagged, deleted := imap.FlagSeen, imap.FlagFlagged, imap.FlagDeleted
	tests := []struct {
		name string
		told bool
		c    imap.SearchCriteria
		want []Member
	}{
		{"ALL keeps the expunged, skips the untold", false, imap.SearchCriteria{},
			[]Member{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}}},
		{"UID set", false, imap.SearchCriteria{UID: []imap.UIDSet{uidSet(2, 4)}}, []Member{{2, 2}, {3, 3}, {4, 4}}},
		{"two UID sets are ANDed", false, imap.SearchCriteria{UID: []imap.UIDSet{uidSet(1, 5), uidSet(5, 9)}}, []Member{{5, 5}}},
		{"UID set beyond the view", false, imap.SearchCriteria{UID: []imap.UIDSet{uidSet(7, 7)}}, []Member{}},
		{"NOT of a UID set", false, imap.SearchCriteria{Not: []imap.SearchCriteria{{UID: []imap.UIDSet{uidSet(2, 5)}}}}, []Member{{1, 1}, {6, 6}}},
		{"SEEN with the expunged in the view: declined", false, imap.SearchCriteria{Flag: []imap.Flag{seen}}, nil},
		{"flags under OR with the expunged in the view: declined", false,
			imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{UID: []imap.UIDSet{uidSet(1, 1)}}, {NotFlag: []imap.Flag{deleted}}}}}, nil},
		{"ALL once told", true, imap.SearchCriteria{}, []Member{{1, 1}, {2, 2}, {3, 4}, {4, 5}, {5, 6}, {6, 7}}},
		{"SEEN", true, imap.SearchCriteria{Flag: []imap.Flag{seen}}, []Member{{1, 1}, {4, 5}}},
		{"UNSEEN", true, imap.SearchCriteria{NotFlag: []imap.Flag{seen}}, []Member{{2, 2}, {3, 4}, {5, 6}, {6, 7}}},
		{"DELETED: none left", true, imap.SearchCriteria{Flag: []imap.Flag{deleted}}, []Member{}},
		{"KEYWORD any case", true, imap.SearchCriteria{Flag: []imap.Flag{"$junk"}}, []Member{{2, 2}}},
		{"UNKEYWORD", true, imap.SearchCriteria{NotFlag: []imap.Flag{"Work"}}, []Member{{1, 1}, {2, 2}, {3, 4}, {5, 6}, {6, 7}}},
		{"ANSWERED DRAFT", true, imap.SearchCriteria{Flag: []imap.Flag{imap.FlagAnswered, imap.FlagDraft}}, []Member{{3, 4}}},
		{"NOT", true, imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{seen}}}}, []Member{{2, 2}, {3, 4}, {5, 6}, {6, 7}}},
		{"OR", true, imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{flagged}}, {Flag: []imap.Flag{"Work"}}}}},
			[]Member{{2, 2}, {4, 5}}},
		{"NOT OR with a UID set", true, imap.SearchCriteria{UID: []imap.UIDSet{uidSet(1, 5)}, Not: []imap.SearchCriteria{{
			Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{seen}}, {UID: []imap.UIDSet{uidSet(2, 2)}}}}}}},
			[]Member{{3, 4}}},
		{"unknown keyword: declined", true, imap.SearchCriteria{Flag: []imap.Flag{"Nope"}}, nil},
		{"unknown keyword under NOT: declined", true, imap.SearchCriteria{Not: []imap.SearchCriteria{{NotFlag: []imap.Flag{"Nope"}}}}, nil},
		{"NOT of two keys: declined", true, imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{seen, flagged}}}}, nil},
		{"OR operand of two keys: declined", true, imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{seen, imap.FlagDraft}}, {}}}}, nil},
	}
	untold := searchBox(t)
	told := searchBox(t)
	_, to, err := told.Pending(true)
	if err != nil {
		t.Fatal(err)
	}
	told.Commit(to)
	for _, tt := range tests {
		v := untold
		if tt.told {
			v = told
		}
		got, ok := v.Search(&tt.c)
		if ok != (tt.want != nil) {
			t.Errorf("%s: answered %v, want %v", tt.name, ok, tt.want != nil)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSearchableDeclines: keys needing more than UIDs and flags, SEARCHRES,
// untranslated sequence sets, and work past MaxSearchWork are declined.
func TestSearchableDeclines(t *testing.T) {
	tests := []struct {
		name string
		c    imap.SearchCriteria
		ok   bool
	}{
		{"flags and UIDs", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}, UID: []imap.UIDSet{uidSet(1, 2)}}, true},
		{"sequence set", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}, false},
		{"$", imap.SearchCriteria{UID: []imap.UIDSet{imap.SearchRes()}}, false},
		{"LARGER", imap.SearchCriteria{Larger: 10}, false},
		{"BODY under NOT", imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"x"}}}}, false},
		{"HEADER under OR", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{}, {Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "x"}}}}}}, false},
		{"MODSEQ", imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 1}}, false},
	}
	for _, tt := range tests {
		if _, ok := Searchable(&tt.c); ok != tt.ok {
			t.Errorf("%s: got %v, want %v", tt.name, ok, tt.ok)
		}
	}
	// Work: 4,096 UID ranges on 5,000 messages is 20 M evaluations.
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDs: uidsN(1, 5000), MsgFlags: make([][]imap.Flag, 5000)}, 10)
	v, _, _ := m.NewView()
	var big imap.UIDSet
	for i := range imap.UID(4096) {
		big.AddNum(2*i + 1)
	}
	if _, ok := v.Search(&imap.SearchCriteria{UID: []imap.UIDSet{big}}); ok {
		t.Errorf("4,096 ranges on 5,000 messages: answered, want declined (over MaxSearchWork %d)", MaxSearchWork)
	}
	if got, ok := v.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}); !ok || len(got) != 5000 {
		t.Errorf("UNSEEN on 5,000: got %d, %v; want 5000, true", len(got), ok)
	}
}

// TestMailboxStatus: MESSAGES, UNSEEN and UIDVALIDITY from the model.
func TestMailboxStatus(t *testing.T) {
	v := searchBox(t)
	st, ok := v.m.Status()
	if want := (Status{Messages: 6, Unseen: 4, UIDValidity: 1}); !ok || st != want {
		t.Errorf("got %+v, %v; want %+v", st, ok, want)
	}
	if v.CaughtUp() {
		t.Errorf("CaughtUp before being told: got true")
	}
	_, to, _ := v.Pending(true)
	v.Commit(to)
	if !v.CaughtUp() {
		t.Errorf("CaughtUp once told: got false")
	}
	v.m.Close(fmt.Errorf("gone"))
	if _, ok := v.m.Status(); ok {
		t.Errorf("Status of a closed model: got ok")
	}
}

// BenchmarkViewSearchUnseen: SEARCH UNSEEN from the model of a 100,000
// message mailbox, one in ten unseen; it checks the count.
func BenchmarkViewSearchUnseen(b *testing.B) {
	const n = 100_000
	flags := make([][]imap.Flag, n)
	for i := range flags {
		if i%10 != 0 {
			flags[i] = []imap.Flag{imap.FlagSeen, "$Junk"}
		}
	}
	m := NewMailbox(Snapshot{UIDValidity: 1, Flags: []imap.Flag{imap.FlagSeen, "$Junk"}, UIDs: uidsN(1, n), MsgFlags: flags}, 10)
	v, _, _ := m.NewView()
	c := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
	b.ReportAllocs()
	for b.Loop() {
		got, ok := v.Search(c)
		if !ok || len(got) != n/10 {
			b.Fatalf("got %d, %v; want %d", len(got), ok, n/10)
		}
	}
}
