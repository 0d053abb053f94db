package fanout

import (
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestFlagsModSeqPaired: while the owner changes a message's flags and
// MODSEQ together, one transaction per change, a view's FlagsModSeq
// always returns a pair the owner put in together, never new flags with
// an older MODSEQ (what a local FETCH (FLAGS MODSEQ) answer is built
// from, RFC 7162 3.1.4). Run with -race.
func TestFlagsModSeqPaired(t *testing.T) {
	const last = 4000
	flagsAt := func(ms uint64) []imap.Flag {
		if ms%2 == 0 {
			return []imap.Flag{`\Seen`}
		}
		return nil
	}
	m := NewMailbox(Snapshot{UIDValidity: 1, UIDs: []imap.UID{1}, MsgFlags: [][]imap.Flag{nil}, ModSeqs: []uint64{1}}, last*2)
	v, _, _ := m.NewView()
	defer v.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ms := uint64(2); ms <= last; ms++ {
			m.Update(func(tx *Tx) {
				tx.SetFlags(1, flagsAt(ms))
				tx.SetModSeq(1, ms)
			})
		}
	}()
	for {
		flags, ms, ok := v.FlagsModSeq(1)
		if !ok {
			t.Fatal("UID 1: got not found, want found")
		}
		if !FlagsEqual(flags, flagsAt(ms)) {
			t.Fatalf("UID 1 at MODSEQ %d: got flags %v, want %v", ms, flags, flagsAt(ms))
		}
		if ms == last {
			break
		}
	}
	wg.Wait()
}
