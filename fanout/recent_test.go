package fanout

import (
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func recentBox(t *testing.T, n int, firstRecent imap.UID) *Mailbox {
	t.Helper()
	uids := uidsN(1, imap.UID(n))
	return NewMailbox(Snapshot{UIDValidity: 7, UIDNext: 1000, UIDs: uids, MsgFlags: make([][]imap.Flag, len(uids)), FirstRecent: firstRecent}, 1000)
}

// recentOf lists the UIDs of v's messages that are recent in v.
func recentOf(t *testing.T, v *View) []imap.UID {
	t.Helper()
	var out []imap.UID
	for _, u := range seqs(t, v) {
		f, _ := v.Flags(u)
		if v.IsRecent(u) != slices.Contains(f, FlagRecent) {
			t.Fatalf("uid %d: IsRecent %v but Flags %v", u, v.IsRecent(u), f)
		}
		if v.IsRecent(u) {
			out = append(out, u)
		}
	}
	return out
}

// deliver runs Pending and Commit and returns the updates.
func deliver(t *testing.T, v *View) []Update {
	t.Helper()
	ups, to, err := v.Pending(true)
	if err != nil {
		t.Fatal(err)
	}
	v.Commit(to)
	return ups
}

func recentUpdate(ups []Update) (uint32, bool) {
	for _, u := range ups {
		if u.Kind == UpdateRecent {
			return u.Seq, true
		}
	}
	return 0, false
}

// TestRecentAtSelect: the upstream's recent messages at the model's birth
// are recent in the first read-write view alone; read-only views see what
// is unclaimed when they open and claim nothing (as Dovecot's EXAMINE).
func TestRecentAtSelect(t *testing.T) {
	tests := []struct {
		name        string
		firstRecent imap.UID
		opens       []bool // readOnly per view, in order
		want        []uint32
		wantUIDs    [][]imap.UID
		unclaimed   uint32 // after all opened
	}{
		{"none recent upstream", 0, []bool{false, false}, []uint32{0, 0}, [][]imap.UID{nil, nil}, 0},
		{"first select claims", 4, []bool{false, false}, []uint32{2, 0}, [][]imap.UID{{4, 5}, nil}, 0},
		{"examine claims nothing", 4, []bool{true, true, false, false, true}, []uint32{2, 2, 2, 0, 0},
			[][]imap.UID{{4, 5}, {4, 5}, {4, 5}, nil, nil}, 0},
		{"only examines", 1, []bool{true}, []uint32{5}, [][]imap.UID{{1, 2, 3, 4, 5}}, 5},
		{"boundary above the model", 9, []bool{false}, []uint32{0}, [][]imap.UID{nil}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := recentBox(t, 5, tt.firstRecent)
			for i, ro := range tt.opens {
				v, sd, err := m.OpenView(ro)
				if err != nil {
					t.Fatal(err)
				}
				if sd.NumRecent != tt.want[i] || v.RecentCount() != tt.want[i] {
					t.Errorf("view %d: got NumRecent %d, RecentCount %d; want %d", i, sd.NumRecent, v.RecentCount(), tt.want[i])
				}
				if got := recentOf(t, v); !slices.Equal(got, tt.wantUIDs[i]) {
					t.Errorf("view %d: got recent %v, want %v", i, got, tt.wantUIDs[i])
				}
			}
			if got := m.Unclaimed(); got != tt.unclaimed {
				t.Errorf("got Unclaimed %d, want %d", got, tt.unclaimed)
			}
		})
	}
}

// TestRecentUpdates: a new message is recent in the first read-write view
// told of it; RECENT is sent only when a view's count changes, after
// EXISTS or after EXPUNGE (as Dovecot does).
func TestRecentUpdates(t *testing.T) {
	m := recentBox(t, 3, 0)
	a, _, _ := m.NewView()
	b, _, _ := m.NewView()
	ro, _, _ := m.OpenView(true)
	m.Update(func(tx *Tx) { tx.Add(4, nil) })

	// b is told first: 4 is b's. The read-only view is told after b:
	// claimed by then, so not recent there either.
	if n, ok := recentUpdate(deliver(t, b)); !ok || n != 1 {
		t.Errorf("b: got RECENT %d (sent %v), want 1", n, ok)
	}
	for name, v := range map[string]*View{"a": a, "ro": ro} {
		if n, ok := recentUpdate(deliver(t, v)); ok {
			t.Errorf("%s: got RECENT %d, want none (count stays 0)", name, n)
		}
	}
	if got := m.Unclaimed(); got != 0 {
		t.Errorf("Unclaimed after b was told: got %d, want 0", got)
	}

	// A flag change carries \Recent only where the message is recent.
	m.Update(func(tx *Tx) { tx.SetFlags(4, []imap.Flag{imap.FlagSeen}) })
	for name, tc := range map[string]struct {
		v    *View
		want []imap.Flag
	}{"a": {a, []imap.Flag{imap.FlagSeen}}, "b": {b, []imap.Flag{imap.FlagSeen, FlagRecent}}} {
		ups := deliver(t, tc.v)
		if len(ups) != 1 || ups[0].Kind != UpdateFlags || !slices.Equal(ups[0].Flags, tc.want) {
			t.Errorf("%s: got %+v, want one FETCH with flags %v", name, ups, tc.want)
		}
	}
	if f, _ := m.Flags(4); slices.Contains(f, FlagRecent) {
		t.Errorf("the model's flags got \\Recent: %v", f)
	}

	// Two more: a now is first. Then 4 (b's) is expunged.
	m.Update(func(tx *Tx) { tx.Add(5, nil); tx.Add(6, nil) })
	if n, ok := recentUpdate(deliver(t, a)); !ok || n != 2 {
		t.Errorf("a: got RECENT %d (sent %v), want 2", n, ok)
	}
	if n, ok := recentUpdate(deliver(t, b)); ok {
		t.Errorf("b: got RECENT %d, want none (still 1)", n)
	}
	m.Update(func(tx *Tx) { tx.Expunge(4) })
	ups := deliver(t, b)
	if len(ups) != 2 || ups[0].Kind != UpdateExpunge || ups[1].Kind != UpdateRecent || ups[1].Seq != 0 {
		t.Errorf("b after its recent message was expunged: got %+v, want EXPUNGE then RECENT 0", ups)
	}
	if n, ok := recentUpdate(deliver(t, a)); ok {
		t.Errorf("a: got RECENT %d after another's message went, want none", n)
	}
	if got := recentOf(t, a); !slices.Equal(got, []imap.UID{5, 6}) {
		t.Errorf("a: got recent %v, want [5 6]", got)
	}
	if got, want := a.Recent(), (imap.UIDSet{{Start: 5, Stop: 6}}); !slices.Equal(got, want) {
		t.Errorf("a.Recent: got %v, want %v", got, want)
	}
	if len(b.rec.ranges) != 0 {
		t.Errorf("b keeps ranges of expunged messages: %v", b.rec.ranges)
	}
}

// TestRecentPendingTwice: computing the same updates twice (a write that
// did not happen) neither claims nor counts twice.
func TestRecentPendingTwice(t *testing.T) {
	m := recentBox(t, 1, 0)
	for i, ro := range []bool{false, true} {
		v, _, _ := m.OpenView(ro)
		m.Update(func(tx *Tx) { tx.Add(imap.UID(2+i), nil) })
		for round := 0; round < 2; round++ {
			ups, _, _ := v.Pending(true)
			if n, ok := recentUpdate(ups); !ok || n != 1 {
				t.Errorf("readOnly %v, round %d: got RECENT %d (sent %v), want 1", ro, round, n, ok)
			}
		}
		v.Close()
	}
}

// TestRecentClaimedOnceConcurrently: with many views delivering at once
// while messages arrive, every new message is recent in exactly one
// read-write view, and each view's ranges stay few (claims merge).
func TestRecentClaimedOnceConcurrently(t *testing.T) {
	const views, adds = 8, 300
	m := recentBox(t, 0, 0)
	vs := make([]*View, views)
	for i := range vs {
		vs[i], _, _ = m.OpenView(i == 0) // one read-only among them
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ch := v.Changed()
				if ups, to, err := v.Pending(true); err == nil {
					_ = ups
					v.Commit(to)
				}
				select {
				case <-ch:
				case <-stop:
					return
				}
			}
		}()
	}
	for u := imap.UID(1); u <= adds; u++ {
		m.Update(func(tx *Tx) { tx.Add(u, nil) })
	}
	close(stop)
	wg.Wait()
	total := uint32(0)
	for _, v := range vs {
		deliver(t, v)
		if v.Count() != adds {
			t.Fatalf("view count %d, want %d", v.Count(), adds)
		}
	}
	for u := imap.UID(1); u <= adds; u++ {
		owners := 0
		for _, v := range vs[1:] {
			if v.IsRecent(u) {
				owners++
			}
		}
		if owners != 1 {
			t.Errorf("uid %d is recent in %d read-write views, want 1", u, owners)
		}
	}
	for _, v := range vs[1:] {
		total += v.RecentCount()
		if len(v.rec.ranges) > adds {
			t.Errorf("a view holds %d ranges for %d messages", len(v.rec.ranges), adds)
		}
	}
	if total != adds {
		t.Errorf("recent counts add up to %d, want %d", total, adds)
	}
}

// TestRecentRangesMerge: one session told of messages one at a time holds
// one range, not one entry per message.
func TestRecentRangesMerge(t *testing.T) {
	m := recentBox(t, 0, 0)
	v, _, _ := m.NewView()
	for u := imap.UID(1); u <= 1000; u++ {
		m.Update(func(tx *Tx) { tx.Add(u, nil) })
		deliver(t, v)
	}
	if got := len(v.rec.ranges); got != 1 {
		t.Errorf("got %d ranges, want 1", got)
	}
	if got := v.RecentCount(); got != 1000 {
		t.Errorf("got RecentCount %d, want 1000", got)
	}
}

// TestRecentNotRetoldAfterEmptyCommit: committing at the position the view
// opened at (a Poll with nothing new) keeps the count told at SELECT, so a
// later change that leaves it equal sends no RECENT.
func TestRecentNotRetoldAfterEmptyCommit(t *testing.T) {
	m := recentBox(t, 2, 1)
	a, sd, _ := m.NewView()
	b, _, _ := m.NewView()
	if sd.NumRecent != 2 {
		t.Fatalf("got NumRecent %d, want 2", sd.NumRecent)
	}
	deliver(t, a) // nothing pending: Commit at the opening position
	m.Update(func(tx *Tx) { tx.Add(3, nil) })
	deliver(t, b) // b claims 3
	if ups := deliver(t, a); len(ups) != 1 || ups[0].Kind != UpdateExists {
		t.Errorf("a: got %+v, want only EXISTS (its RECENT stays 2)", ups)
	}
}
