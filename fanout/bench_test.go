package fanout

import (
	"runtime"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func bigBox(b *testing.B, n int) *Mailbox {
	b.Helper()
	uids := make([]imap.UID, n)
	flags := make([][]imap.Flag, n)
	for i := range uids {
		uids[i] = imap.UID(i + 1)
	}
	return NewMailbox(Snapshot{UIDValidity: 1, UIDs: uids, MsgFlags: flags}, 1<<30)
}

// BenchmarkFanoutOneChangeTo10kViews: one new message, every one of 10,000
// caught-up views computes and commits its update (what their IDLE
// goroutines do), on a 100,000-message mailbox. ns/op is for all 10,000.
func BenchmarkFanoutOneChangeTo10kViews(b *testing.B) {
	m := bigBox(b, 100000)
	views := make([]*View, 10000)
	for i := range views {
		views[i], _, _ = m.NewView()
	}
	next := imap.UID(100001)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Update(func(tx *Tx) { tx.Add(next, nil) })
		next++
		recent := 0 // the first view told is the one it is recent in
		for _, v := range views {
			ups, to, err := v.Pending(true)
			if err != nil || len(ups) < 1 || ups[0].Kind != UpdateExists {
				b.Fatalf("got %v, %v", ups, err)
			}
			if len(ups) == 2 && ups[1].Kind == UpdateRecent {
				recent++
			} else if len(ups) != 1 {
				b.Fatalf("got %v", ups)
			}
			v.Commit(to)
		}
		if recent != 1 {
			b.Fatalf("RECENT went to %d views, want 1", recent)
		}
	}
}

// BenchmarkSeqToUID100k: translating a sequence number on a 100,000-message
// mailbox, for a view 10 expunges behind the model.
func BenchmarkSeqToUID100k(b *testing.B) {
	m := bigBox(b, 100000)
	v, _, _ := m.NewView()
	m.Update(func(tx *Tx) {
		for u := imap.UID(1000); u < 100000; u += 10000 {
			tx.Expunge(u)
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint32(i%100000) + 1
		if _, ok := v.SeqToUID(seq); !ok {
			b.Fatal(seq)
		}
	}
}

// BenchmarkResolveAll100k: FETCH 1:* on a 100,000-message mailbox turns
// into one UID range.
func BenchmarkResolveAll100k(b *testing.B) {
	m := bigBox(b, 100000)
	v, _, _ := m.NewView()
	all := imap.SeqSet{{Start: 1, Stop: 0}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := v.ResolveSeqSet(all); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResyncDiff100k: reconciling a 100,000-message model with a
// listing that lost 100 messages, changed 100 flags and gained 100.
func BenchmarkResyncDiff100k(b *testing.B) {
	const n = 100000
	uids := make([]imap.UID, 0, n)
	flags := make([][]imap.Flag, 0, n)
	for u := imap.UID(1); u <= n; u++ {
		if u%1000 == 0 {
			continue
		}
		var f []imap.Flag
		if u%1000 == 1 {
			f = []imap.Flag{imap.FlagSeen}
		}
		uids = append(uids, u)
		flags = append(flags, f)
	}
	for u := imap.UID(n + 1); u <= n+100; u++ {
		uids = append(uids, u)
		flags = append(flags, nil)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m := bigBox(b, n)
		b.StartTimer()
		var err error
		changes := m.Update(func(tx *Tx) { err = tx.Resync(uids, flags) })
		if err != nil || changes != 100+100+1 {
			b.Fatalf("changes %d, err %v", changes, err)
		}
	}
}

// BenchmarkModelBytesPerMessage: the heap a 100,000-message model holds
// per message (UID, flags, and MODSEQ where the upstream has CONDSTORE),
// built from a snapshot as the watcher builds it: four in five messages
// \Seen, one in ten also $Label1. Reported as B/msg; the snapshot's own
// memory is outside the figure.
func BenchmarkModelBytesPerMessage(b *testing.B) {
	const n = 100000
	for _, modseq := range []bool{false, true} {
		name := "without MODSEQ"
		if modseq {
			name = "with MODSEQ"
		}
		b.Run(name, func(b *testing.B) {
			snap := benchSnapshot(n)
			if modseq {
				snap.ModSeqs = make([]uint64, n)
				for i := range snap.ModSeqs {
					snap.ModSeqs[i] = uint64(i + 2)
				}
			}
			var m *Mailbox
			var per float64
			for i := 0; i < b.N; i++ {
				before := heapInUse()
				m = NewMailbox(snap, 1<<30)
				per = float64(heapInUse()-before) / n
			}
			if m.Len() != n || (m.ModSeq(n) != 0) != modseq {
				b.Fatalf("got %d messages, MODSEQ %d; want %d, MODSEQ kept %v", m.Len(), m.ModSeq(n), n, modseq)
			}
			b.ReportMetric(per, "B/msg")
		})
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// benchSnapshot is an n-message snapshot with realistic flags.
func benchSnapshot(n int) Snapshot {
	snap := Snapshot{UIDValidity: 1, UIDs: make([]imap.UID, n), MsgFlags: make([][]imap.Flag, n)}
	for i := range n {
		snap.UIDs[i] = imap.UID(i + 1)
		switch {
		case i%10 == 0:
			snap.MsgFlags[i] = []imap.Flag{imap.FlagSeen, "$Label1"}
		case i%5 != 0:
			snap.MsgFlags[i] = []imap.Flag{imap.FlagSeen}
		}
	}
	return snap
}
