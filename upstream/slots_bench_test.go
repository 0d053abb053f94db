package upstream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkPoolWave: n sessions of one account ask for a command
// connection at once (a reconnect storm, issue 11) and hand it back at
// once; MaxConns is 5. Reported per hand-over, beside the machine's
// floor in the same run: the same wave of goroutines through a channel
// of 5 tokens. A cost that grows with the queue's length shows as a
// ratio growing with n.
func BenchmarkPoolWave(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) {
			_, a := testLogin(b, Options{Address: memServer(b, 0), TLS: TLSNone, MaxConns: 5})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pool := func() {
				c, err := a.Acquire(ctx, "", 0, 0)
				if err != nil {
					b.Error(err)
					return
				}
				a.Release(c, nil)
			}
			tokens := make(chan struct{}, 5)
			floor := func() {
				tokens <- struct{}{}
				<-tokens
			}
			var took [2]time.Duration
			b.ResetTimer()
			for range b.N {
				for i, f := range []func(){floor, pool} {
					t0 := time.Now()
					wave(n, f)
					took[i] += time.Since(t0)
				}
			}
			per := float64(b.N * n)
			b.ReportMetric(float64(took[0].Nanoseconds())/per, "floor-ns/handover")
			b.ReportMetric(float64(took[1].Nanoseconds())/per, "pool-ns/handover")
			b.ReportMetric(float64(took[1])/float64(took[0]), "pool/floor")
		})
	}
}

// wave runs f in n goroutines started at once and waits for them all.
func wave(n int, f func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(f)
	}
	wg.Wait()
}

// BenchmarkGrantQueue: the hand-over itself, with n commands queued for
// a full pool (no network): one slot released goes to the oldest, one
// more command joins the back. Its cost must not grow with n: a storm of
// N sessions makes N hand-overs with up to N waiting, under the
// manager's lock.
func BenchmarkGrantQueue(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("queued=%d", n), func(b *testing.B) {
			m := &Manager{opts: Options{MaxConns: 5}}
			a := &Account{m: m, total: 5}
			for range n {
				a.enqueue(slotCommand, "")
			}
			for b.Loop() {
				a.release(slotCommand) // to the oldest waiter
				a.enqueue(slotCommand, "")
			}
			if len(a.queue) != n || a.total != 5 {
				b.Fatalf("got %d queued and %d slots taken, want %d and 5", len(a.queue), a.total, n)
			}
		})
	}
}
