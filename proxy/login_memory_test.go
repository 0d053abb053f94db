package proxy

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// byteCounter is a log sink that only counts what is written.
type byteCounter struct{ n atomic.Int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }
func (c *byteCounter) Sync() error                 { return nil }

// collected is the memory statistics after two collections (the second
// also shrinks goroutine stacks once more, by half at most).
func collected() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 { return collected().HeapInuse }

// failLongNames sends failures wrong logins with nameLen-byte user names
// (each different) from 127.0.0.1 through a map-mode proxy (where, before
// the fix, each failure was recorded locally under the whole name), and
// returns how much the live heap and the log grew.
func failLongNames(t testing.TB, failures, nameLen int) (heapGrowth, logGrowth int64) {
	up := startMemUpstream(t)
	cfg := mappedConfig(t, up.addr)
	cfg.Limits.MaxLoginDelay = 0
	sink := &byteCounter{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), sink, zap.InfoLevel))
	p := startProxyLogging(t, cfg, log)
	const workers = 4
	heap0, log0 := heapInUse(), sink.n.Load()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rc *rawConn
			defer func() {
				if rc != nil {
					rc.c.Close()
				}
			}()
			for i := next.Add(1); i <= int64(failures); i = next.Add(1) {
				if rc == nil {
					rc = dialFrom(t, p.Addrs()[0], "127.0.0.1")
				}
				l := rc.talk("a", fmt.Sprintf("LOGIN %0*d wrong", nameLen, i), waitLong)
				if last := l[len(l)-1]; last == "<closed>" {
					rc.c.Close()
					rc = nil
				} else if !strings.HasPrefix(last, "a NO") {
					t.Errorf("login %d: got %q, want NO or the connection closed", i, l)
					return
				}
			}
		}()
	}
	wg.Wait()
	return int64(heapInUse()) - int64(heap0), sink.n.Load() - log0
}

// TestHostileLongNamesMemory (issue "Hostile input" P2): failed logins
// with 50 kB user names leave neither the throttling tables nor the log
// holding the names. 200 of them (the 2,000 of the issue take a minute
// under -race: BenchmarkHostileLongNames) would hold 10 MB of names.
func TestHostileLongNamesMemory(t *testing.T) {
	const failures, nameLen = 200, 50000
	heap, log := failLongNames(t, failures, nameLen)
	t.Logf("%d failed logins with %d-byte user names: live heap %+.1f MiB, log %+.2f MiB", failures, nameLen, float64(heap)/(1<<20), float64(log)/(1<<20))
	if heap > 4<<20 {
		t.Errorf("live heap grew %d bytes, want under 4 MiB (the names alone are %d MB)", heap, failures*nameLen/1000000)
	}
	if log > 1<<20 {
		t.Errorf("log grew %d bytes, want under 1 MiB (names truncated)", log)
	}
}

// BenchmarkHostileLongNames reports the live heap and log growth after the
// issue's 2,000 failed logins with 50 kB user names (run once:
// go test -run XXX -bench HostileLongNames -benchtime 1x ./proxy/).
func BenchmarkHostileLongNames(b *testing.B) {
	for b.Loop() {
		heap, log := failLongNames(b, 2000, 50000)
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(log)/(1<<20), "log-MiB")
	}
}
