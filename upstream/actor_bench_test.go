package upstream

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkWatchUnwatch: a session's Watch and Unwatch of a running
// watcher, from many goroutines at once: the control path alone, no
// upstream exchange.
func BenchmarkWatchUnwatch(b *testing.B) {
	_, a := accountWith(b, Options{Address: memServer(b, 1), TLS: TLSNone, WatcherLinger: time.Hour})
	ctx := testCtx(b)
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Unwatch()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w2, err := a.Watch(ctx, "INBOX")
			if err != nil {
				b.Error(err)
				return
			}
			w2.Unwatch()
		}
	})
}

// BenchmarkWatcherFootprint: goroutines, heap and stacks per running (polled)
// watcher, over 200 mailboxes.
func BenchmarkWatcherFootprint(b *testing.B) {
	const n = 200
	boxes := make([]string, n)
	for i := range boxes {
		boxes[i] = fmt.Sprintf("m%03d", i)
	}
	m, a := accountWith(b, Options{Address: memServer(b, 0), TLS: TLSNone, MaxConns: 4, WatcherLinger: time.Millisecond}, boxes...)
	ctx := testCtx(b)
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		ws := make([]*Watcher, 0, n)
		for _, box := range boxes {
			w, err := a.Watch(ctx, box)
			if err != nil {
				b.Fatal(err)
			}
			ws = append(ws, w)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/watcher")
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n, "heapB/watcher")
		b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/n, "stackB/watcher")
		for _, w := range ws {
			w.Unwatch()
		}
		for _, w := range ws {
			<-w.done
		}
		waitStats(b, m, "every watcher stopped", func(st Stats) bool { return st.Watchers == 0 })
	}
}
