package upstream

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slotAccount is an Account with only what WriteSlot reads.
func slotAccount(limit int) *Account {
	return &Account{m: &Manager{opts: Options{WritesPerMailbox: limit}}}
}

// TestWriteSlotBound: at most the limit of writes to one mailbox hold a
// slot at once, other mailboxes queue apart, and the queues are dropped
// once nobody uses them.
func TestWriteSlotBound(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		boxes []string
		want  int32 // most slots held at once in one mailbox
	}{
		{"one at a time", 1, []string{"INBOX"}, 1},
		{"two at a time", 2, []string{"INBOX"}, 2},
		{"per mailbox", 1, []string{"INBOX", "Sent"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := slotAccount(tc.limit)
			var wg sync.WaitGroup
			most := map[string]*atomic.Int32{}
			held := map[string]*atomic.Int32{}
			for _, box := range tc.boxes {
				most[box], held[box] = new(atomic.Int32), new(atomic.Int32)
			}
			for i := range 40 {
				box := tc.boxes[i%len(tc.boxes)]
				wg.Go(func() {
					release := a.WriteSlot(context.Background(), box)
					n := held[box].Add(1)
					for {
						m := most[box].Load()
						if n <= m || most[box].CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(time.Millisecond)
					held[box].Add(-1)
					release()
					release() // twice: the second does nothing
				})
			}
			wg.Wait()
			for box, m := range most {
				if got := m.Load(); got != tc.want {
					t.Errorf("%s: most slots held at once: got %d, want %d", box, got, tc.want)
				}
			}
			if n := a.slotQueues(); n != 0 {
				t.Errorf("queues left after every write: got %d, want 0", n)
			}
			w := &a.m.writeWaits
			if got := w[WriteAtOnce].Load() + w[WriteQueued].Load(); got != 40 || w[WriteQueued].Load() == 0 || w[WriteUnqueued].Load() != 0 {
				t.Errorf("writes at once %d, queued %d, unqueued %d: want 40 with a slot, some queued, none without",
					w[WriteAtOnce].Load(), w[WriteQueued].Load(), w[WriteUnqueued].Load())
			}
		})
	}
}

// TestWriteSlotWaitEnds: a write whose context ends while it waits goes
// on without a slot (the slot guards nothing), and leaves the queue as it
// was; with no bound, no write waits.
func TestWriteSlotWaitEnds(t *testing.T) {
	a := slotAccount(1)
	hold := a.WriteSlot(context.Background(), "INBOX")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		a.WriteSlot(ctx, "INBOX")()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(maxSlotWait):
		t.Fatalf("a write whose context ended: got still waiting after %v, want it to go on", maxSlotWait)
	}
	hold()
	if n := a.slotQueues(); n != 0 {
		t.Errorf("queues after: got %d, want 0", n)
	}
	if got := [...]uint64{a.m.writeWaits[WriteAtOnce].Load(), a.m.writeWaits[WriteQueued].Load(), a.m.writeWaits[WriteUnqueued].Load()}; got != [3]uint64{1, 0, 1} {
		t.Errorf("writes at once, queued, unqueued: got %v, want [1 0 1]", got)
	}

	free := slotAccount(-1)
	r1 := free.WriteSlot(context.Background(), "INBOX")
	r2 := free.WriteSlot(context.Background(), "INBOX") // would block with a bound of 1
	r1()
	r2()
	if n := free.slotQueues(); n != 0 {
		t.Errorf("no bound: got %d queues, want 0", n)
	}
}

// TestWriteSlotHeldTooLong: a write still running after maxSlotHold
// gives its slot to the next, which gets it queued (not after the whole
// maxSlotWait, unqueued); the late release of the first gives nothing
// back twice.
func TestWriteSlotHeldTooLong(t *testing.T) {
	a := slotAccount(1)
	long := a.WriteSlot(context.Background(), "INBOX") // never released in time
	start := time.Now()
	next := a.WriteSlot(context.Background(), "INBOX")
	waited := time.Since(start)
	if waited >= maxSlotWait {
		t.Errorf("the next write waited %v: got the whole maxSlotWait, want about maxSlotHold (%v)", waited, maxSlotHold)
	}
	if got := a.m.writeWaits[WriteQueued].Load(); got != 1 {
		t.Errorf("writes queued: got %d, want 1", got)
	}
	long() // late: the slot went on already
	third := a.WriteSlot(context.Background(), "INBOX")
	if got := a.m.writeWaits[WriteQueued].Load(); got != 2 {
		t.Errorf("writes queued after the late release: got %d, want 2 (next still holds the slot)", got)
	}
	next()
	third()
	if n := a.slotQueues(); n != 0 {
		t.Errorf("queues after: got %d, want 0", n)
	}
}
