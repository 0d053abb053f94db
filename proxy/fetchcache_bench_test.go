package proxy

import (
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
)

// BenchmarkFetchCacheRSS fills a cache of the default bound (64 MiB,
// 256 KiB per value) with twice that in values of log-uniform sizes from
// 200 B to 200 KiB (the mix of a mailbox's headers and bodies), then
// reports the process's resident memory growth (VmRSS, after a GC that
// returns freed memory) against cache.max_bytes: rss/max must stay within
// 1.10 (issue 11). It fails when the cache holds more than its bound.
func BenchmarkFetchCacheRSS(b *testing.B) {
	const maxBytes, maxItem = 64 << 20, 256 << 10
	var rss, held float64
	src := make([]byte, maxItem)
	for i := range src {
		src[i] = byte('a' + i%26)
	}
	for b.Loop() {
		runtime.GC()
		debug.FreeOSMemory()
		before := selfKiB(b, "VmRSS")
		fc := newFetchCache(maxBytes, maxItem)
		rng := rand.New(rand.NewPCG(1, 2))
		key := cacheKey{acct: "alice", mailbox: "INBOX", uidValidity: 1}
		for put := 0; put < 2*maxBytes; {
			n := int(200 * math.Exp(rng.Float64()*math.Log(1000)))
			key.uid++
			key.item = []string{"ENVELOPE", "BODY[]", "BODY[HEADER]"}[key.uid%3]
			v := make([]byte, n)
			copy(v, src) // resident: untouched zero pages would not count
			fc.put(key, v)
			put += n
		}
		fc.c.CleanUp()
		runtime.GC()
		debug.FreeOSMemory()
		rss = float64(selfKiB(b, "VmRSS")-before) * 1024
		held = float64(fc.c.WeightedSize())
		if held > maxBytes {
			b.Fatalf("cache holds %v bytes, more than its bound %d", held, maxBytes)
		}
		runtime.KeepAlive(fc)
	}
	b.ReportMetric(rss/(1<<20), "rss-MiB")
	b.ReportMetric(held/(1<<20), "held-MiB")
	b.ReportMetric(rss/float64(maxBytes), "rss/max")
}
