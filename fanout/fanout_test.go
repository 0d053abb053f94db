package fanout

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func uidsN(from, to imap.UID) []imap.UID {
	var out []imap.UID
	for u := from; u <= to; u++ {
		out = append(out, u)
	}
	return out
}

func newBox(t *testing.T, uids []imap.UID, maxLag int) *Mailbox {
	t.Helper()
	return NewMailbox(Snapshot{UIDValidity: 7, UIDNext: 1000, UIDs: uids, MsgFlags: make([][]imap.Flag, len(uids))}, maxLag)
}

// seqs lists what a view maps each of its sequence numbers to.
func seqs(t *testing.T, v *View) []imap.UID {
	t.Helper()
	var out []imap.UID
	for s := uint32(1); s <= v.Count(); s++ {
		u, ok := v.SeqToUID(s)
		if !ok {
			t.Fatalf("SeqToUID(%d) failed with count %d", s, v.Count())
		}
		back, ok := v.UIDToSeq(u)
		if !ok || back != s {
			t.Fatalf("UIDToSeq(%d) = %d, %v; want %d", u, back, ok, s)
		}
		out = append(out, u)
	}
	return out
}

func TestViewKeepsNumberingUntilTold(t *testing.T) {
	tests := []struct {
		name       string
		change     func(tx *Tx)
		allowExp   bool
		wantBefore []imap.UID
		wantUpd    []Update
		wantAfter  []imap.UID
	}{
		{
			name:       "expunge is held back without permission",
			change:     func(tx *Tx) { tx.Expunge(2) },
			allowExp:   false,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    nil,
			wantAfter:  []imap.UID{1, 2, 3},
		},
		{
			name:       "expunge delivered",
			change:     func(tx *Tx) { tx.Expunge(2) },
			allowExp:   true,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    []Update{{Kind: UpdateExpunge, Seq: 2, UID: 2}},
			wantAfter:  []imap.UID{1, 3},
		},
		{
			name:       "several expunges highest first",
			change:     func(tx *Tx) { tx.Expunge(1); tx.Expunge(3) },
			allowExp:   true,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    []Update{{Kind: UpdateExpunge, Seq: 3, UID: 3}, {Kind: UpdateExpunge, Seq: 1, UID: 1}},
			wantAfter:  []imap.UID{2},
		},
		{
			name:       "adds coalesce into one EXISTS",
			change:     func(tx *Tx) { tx.Add(4, nil); tx.Add(5, nil) },
			allowExp:   false,
			wantBefore: []imap.UID{1, 2, 3},
			// The only view is the first told of them: both are recent.
			wantUpd:   []Update{{Kind: UpdateExists, Seq: 5}, {Kind: UpdateRecent, Seq: 2}},
			wantAfter: []imap.UID{1, 2, 3, 4, 5},
		},
		{
			name:       "flag change then expunge becomes just the expunge",
			change:     func(tx *Tx) { tx.SetFlags(2, []imap.Flag{imap.FlagSeen}); tx.Expunge(2) },
			allowExp:   true,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    []Update{{Kind: UpdateExpunge, Seq: 2, UID: 2}},
			wantAfter:  []imap.UID{1, 3},
		},
		{
			name:       "added then expunged before delivery is never told",
			change:     func(tx *Tx) { tx.Add(4, nil); tx.Expunge(4) },
			allowExp:   true,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    nil,
			wantAfter:  []imap.UID{1, 2, 3},
		},
		{
			name:       "flags before expunge delivered without permission, numbered pre-expunge",
			change:     func(tx *Tx) { tx.SetFlags(3, []imap.Flag{imap.FlagFlagged}); tx.Expunge(1); tx.Add(4, nil) },
			allowExp:   false,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    []Update{{Kind: UpdateFlags, Seq: 3, UID: 3, Flags: []imap.Flag{imap.FlagFlagged}}},
			wantAfter:  []imap.UID{1, 2, 3},
		},
		{
			name:       "equal flags are not a change",
			change:     func(tx *Tx) { tx.SetFlags(1, nil) },
			allowExp:   true,
			wantBefore: []imap.UID{1, 2, 3},
			wantUpd:    nil,
			wantAfter:  []imap.UID{1, 2, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newBox(t, []imap.UID{1, 2, 3}, 100)
			v, sd, err := m.NewView()
			if err != nil {
				t.Fatal(err)
			}
			if sd.NumMessages != 3 {
				t.Fatalf("got %d messages at select, want 3", sd.NumMessages)
			}
			m.Update(tt.change)
			if got := seqs(t, v); !slices.Equal(got, tt.wantBefore) {
				t.Fatalf("before delivery: got view %v, want %v", got, tt.wantBefore)
			}
			upd, to, err := v.Pending(tt.allowExp)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(upd, tt.wantUpd, func(a, b Update) bool {
				return a.Kind == b.Kind && a.Seq == b.Seq && a.UID == b.UID && slices.Equal(a.Flags, b.Flags)
			}) {
				t.Fatalf("got updates %+v, want %+v", upd, tt.wantUpd)
			}
			v.Commit(to)
			if got := seqs(t, v); !slices.Equal(got, tt.wantAfter) {
				t.Fatalf("after delivery: got view %v, want %v", got, tt.wantAfter)
			}
		})
	}
}

func TestResolveSeqSet(t *testing.T) {
	m := newBox(t, []imap.UID{10, 20, 30, 40}, 100)
	v, _, _ := m.NewView()
	m.Update(func(tx *Tx) { tx.Expunge(20); tx.Add(50, nil) })

	tests := []struct {
		name         string
		set          imap.SeqSet
		wantUIDs     string
		wantExpunged []imap.UID
		wantErr      error
	}{
		{"all", imap.SeqSet{{Start: 1, Stop: 0}}, "10:40", []imap.UID{20}, nil},
		{"single known", imap.SeqSetNum(3), "30", nil, nil},
		{"single expunged upstream", imap.SeqSetNum(2), "20", []imap.UID{20}, nil},
		{"star alone", imap.SeqSet{{Start: 0, Stop: 0}}, "40", nil, nil},
		{"reversed range", imap.SeqSet{{Start: 3, Stop: 1}}, "10:30", []imap.UID{20}, nil},
		{"beyond count", imap.SeqSetNum(5), "", nil, ErrBadSeq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uids, exp, err := v.ResolveSeqSet(tt.set)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if uids.String() != tt.wantUIDs {
				t.Errorf("got UIDs %v, want %v", uids, tt.wantUIDs)
			}
			if !slices.Equal(exp, tt.wantExpunged) {
				t.Errorf("got expunged %v, want %v", exp, tt.wantExpunged)
			}
		})
	}
}

func TestResolveUIDSet(t *testing.T) {
	m := newBox(t, []imap.UID{10, 20, 30}, 100)
	v, _, _ := m.NewView()
	m.Update(func(tx *Tx) { tx.Add(40, nil) }) // not yet told: must not be named
	tests := []struct {
		name   string
		set    imap.UIDSet
		want   string
		wantOK bool
	}{
		{"all", imap.UIDSet{{Start: 1, Stop: 0}}, "1:30", true},
		{"above last includes last", imap.UIDSet{{Start: 35, Stop: 0}}, "30", true},
		{"entirely unknown", imap.UIDSetNum(40), "", false},
		{"clipped", imap.UIDSet{{Start: 15, Stop: 100}}, "15:30", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := v.ResolveUIDSet(tt.set)
			if ok != tt.wantOK || (ok && got.String() != tt.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestExpungedIn: the UIDs of a set that the view still shows but the
// model has expunged, and only those (a COPY or MOVE naming one is
// refused whole, as Dovecot does).
func TestExpungedIn(t *testing.T) {
	m := newBox(t, []imap.UID{10, 20, 30, 40}, 100)
	v, _, _ := m.NewView()
	m.Update(func(tx *Tx) { tx.Expunge(20); tx.Expunge(40); tx.Add(50, nil) })
	tests := []struct {
		name string
		set  imap.UIDSet
		want []imap.UID
	}{
		{"none expunged", imap.UIDSet{{Start: 10, Stop: 10}, {Start: 30, Stop: 30}}, nil},
		{"one of a range", imap.UIDSet{{Start: 10, Stop: 30}}, []imap.UID{20}},
		{"both", imap.UIDSet{{Start: 1, Stop: 100}}, []imap.UID{20, 40}},
		{"new, not yet told", imap.UIDSetNum(50), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.ExpungedIn(tt.set); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLaggingViewIsFailedAndLogBounded(t *testing.T) {
	m := newBox(t, uidsN(1, 10), 300)
	slow, _, _ := m.NewView()
	fast, _, _ := m.NewView()
	for i := 0; i < 2000; i++ { // several trims: the slow view never moves
		f := []imap.Flag{imap.FlagSeen}
		if i%2 == 1 {
			f = nil
		}
		m.Update(func(tx *Tx) { tx.SetFlags(1, f) })
		_, to, err := fast.Pending(true)
		if err != nil {
			t.Fatalf("fast view failed: %v", err)
		}
		fast.Commit(to)
	}
	if err := slow.Err(); !errors.Is(err, ErrLagging) {
		t.Fatalf("slow view: got err %v, want ErrLagging", err)
	}
	if fast.Err() != nil {
		t.Fatalf("fast view failed: %v", fast.Err())
	}
	m.mu.RLock()
	n := len(m.log)
	m.mu.RUnlock()
	if n > 300+trimEvery {
		t.Fatalf("log holds %d entries, want at most %d", n, 300+trimEvery)
	}
	if _, _, err := slow.Pending(true); !errors.Is(err, ErrLagging) {
		t.Fatalf("Pending on failed view: got %v, want ErrLagging", err)
	}
}

func TestResyncLogsNetDifference(t *testing.T) {
	m := newBox(t, []imap.UID{1, 2, 3, 4}, 100)
	v, _, _ := m.NewView()
	err := error(nil)
	m.Update(func(tx *Tx) {
		err = tx.Resync([]imap.UID{1, 3, 4, 7, 8}, [][]imap.Flag{nil, {imap.FlagSeen}, nil, nil, {imap.FlagDeleted}})
	})
	if err != nil {
		t.Fatal(err)
	}
	upd, to, _ := v.Pending(true)
	want := []Update{
		{Kind: UpdateExpunge, Seq: 2, UID: 2},
		{Kind: UpdateExists, Seq: 5},
		{Kind: UpdateRecent, Seq: 2}, // 7 and 8, new to every session
		{Kind: UpdateFlags, Seq: 2, UID: 3, Flags: []imap.Flag{imap.FlagSeen}},
	}
	if !slices.EqualFunc(upd, want, func(a, b Update) bool {
		return a.Kind == b.Kind && a.Seq == b.Seq && a.UID == b.UID && slices.Equal(a.Flags, b.Flags)
	}) {
		t.Fatalf("got %+v, want %+v", upd, want)
	}
	v.Commit(to)
	if got := seqs(t, v); !slices.Equal(got, []imap.UID{1, 3, 4, 7, 8}) {
		t.Fatalf("got view %v", got)
	}
	m.Update(func(tx *Tx) { err = tx.Resync([]imap.UID{1, 5}, nil) })
	if !errors.Is(err, ErrNotAscending) {
		t.Fatalf("resync with a new low UID: got %v, want ErrNotAscending", err)
	}
}

func TestCloseFailsViews(t *testing.T) {
	m := newBox(t, []imap.UID{1}, 100)
	v, _, _ := m.NewView()
	ch := v.Changed()
	reason := errors.New("UIDVALIDITY changed")
	m.Close(reason)
	select {
	case <-ch:
	default:
		t.Fatal("Close did not wake the view")
	}
	if !errors.Is(v.Err(), reason) {
		t.Fatalf("got %v, want %v", v.Err(), reason)
	}
	if _, _, err := m.NewView(); !errors.Is(err, reason) {
		t.Fatalf("NewView after Close: got %v", err)
	}
}

// TestRandomizedAgainstHistory drives random changes and random deliveries
// and checks every session's wire-visible list against the model's history:
// applying exactly the updates a session was given to what it knew must give
// the model's list at the position it was moved to.
func TestRandomizedAgainstHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := newBox(t, uidsN(1, 20), 1<<20)
	history := map[uint64][]imap.UID{0: m.UIDs()}
	type sess struct {
		v     *View
		known []imap.UID
	}
	var sessions []*sess
	for i := 0; i < 8; i++ {
		v, _, _ := m.NewView()
		sessions = append(sessions, &sess{v: v, known: m.UIDs()})
	}
	next := imap.UID(21)
	for step := 0; step < 3000; step++ {
		m.Update(func(tx *Tx) {
			for k := rng.IntN(3); k >= 0; k-- {
				uids := tx.m.uids
				switch op := rng.IntN(10); {
				case op < 3:
					tx.Add(next, nil)
					next++
				case op < 6 && len(uids) > 0:
					tx.Expunge(uids[rng.IntN(len(uids))])
				case len(uids) > 0:
					tx.SetFlags(uids[rng.IntN(len(uids))], []imap.Flag{imap.Flag(rune('a' + rng.IntN(5)))})
				}
			}
		})
		m.mu.RLock()
		history[m.head()] = slices.Clone(m.uids)
		m.mu.RUnlock()

		s := sessions[rng.IntN(len(sessions))]
		if got := seqs(t, s.v); !slices.Equal(got, s.known) {
			t.Fatalf("step %d: view %v, session knows %v", step, got, s.known)
		}
		allow := rng.IntN(2) == 0
		upd, to, err := s.v.Pending(allow)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := history[to]
		if !ok {
			// Partial delivery stops mid-transaction: rebuild from the log.
			want = nil
		}
		for _, u := range upd {
			switch u.Kind {
			case UpdateExpunge:
				if !allow {
					t.Fatalf("step %d: EXPUNGE without permission", step)
				}
				if int(u.Seq) > len(s.known) || s.known[u.Seq-1] != u.UID {
					t.Fatalf("step %d: EXPUNGE %d names uid %d, session has %v", step, u.Seq, u.UID, s.known)
				}
				s.known = slices.Delete(s.known, int(u.Seq)-1, int(u.Seq))
			case UpdateExists:
				if int(u.Seq) < len(s.known) {
					t.Fatalf("step %d: EXISTS %d shrinks %d", step, u.Seq, len(s.known))
				}
				s.v.Commit(to) // learn the new UIDs the way a client would: by fetching
				for i := len(s.known); i < int(u.Seq); i++ {
					uid, _ := s.v.SeqToUID(uint32(i + 1))
					s.known = append(s.known, uid)
				}
			case UpdateFlags:
				if int(u.Seq) > len(s.known) || s.known[u.Seq-1] != u.UID {
					t.Fatalf("step %d: FETCH %d names uid %d, session has %v", step, u.Seq, u.UID, s.known)
				}
			}
		}
		s.v.Commit(to)
		if want != nil && !slices.Equal(s.known, want) {
			t.Fatalf("step %d: session ends at %v, model history at %d is %v", step, s.known, to, want)
		}
		if got := seqs(t, s.v); !slices.Equal(got, s.known) {
			t.Fatalf("step %d: after delivery view %v, session knows %v", step, got, s.known)
		}
	}
}

func TestMembersAndLookup(t *testing.T) {
	m := newBox(t, []imap.UID{10, 20, 30, 40}, 100)
	v, _, _ := m.NewView()
	m.Update(func(tx *Tx) { tx.Expunge(20); tx.Add(50, nil) })
	got := v.Members(imap.UIDSet{{Start: 15, Stop: 0}})
	want := []Member{{2, 20}, {3, 30}, {4, 40}}
	if !slices.Equal(got, want) {
		t.Fatalf("Members: got %v, want %v", got, want)
	}
	got = v.Lookup([]imap.UID{50, 40, 10, 20})
	want = []Member{{1, 10}, {2, 20}, {4, 40}}
	if !slices.Equal(got, want) {
		t.Fatalf("Lookup: got %v, want %v", got, want)
	}
}

func TestUpdatedAtStartsWhenHeard(t *testing.T) {
	m := newBox(t, []imap.UID{1, 2}, 100)
	heard := time.Now().Add(-40 * time.Millisecond)
	m.Update(func(tx *Tx) {
		tx.HeardAt(heard)
		tx.Add(3, nil)
	})
	if got := m.UpdatedAt(); !got.Equal(heard) {
		t.Errorf("UpdatedAt after a change heard 40ms ago: got %v, want %v", got, heard)
	}
	before := time.Now()
	m.Update(func(tx *Tx) { tx.Add(4, nil) }) // nothing heard: now
	if got := m.UpdatedAt(); got.Before(before) {
		t.Errorf("UpdatedAt without HeardAt: got %v, want at or after %v", got, before)
	}
	m.Update(func(tx *Tx) { tx.HeardAt(time.Now().Add(-time.Second)) }) // no change logged
	if got := m.UpdatedAt(); got.Before(before) {
		t.Errorf("UpdatedAt after an empty update: got %v, want unchanged (at or after %v)", got, before)
	}
}
