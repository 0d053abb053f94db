package proxy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
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

// BenchmarkFetchCacheFill records one FETCH command's answer of 1,000
// responses (UID FLAGS RFC822.SIZE ENVELOPE, a mail client's listing) of
// messages the cache lacks into it (past 64 MiB, evicting), from 8 goroutines per core at once (sessions of many
// accounts filling one shared cache), two ways in the same run:
//
//   - per-line: the layout learnt at every response, as fillCapture did
//     before (the cache's global lock once per response line);
//   - per-command: the capture fillCapture uses now (fetchCache.filler),
//     which learns it once per command.
//
// ns/op is one command's 1,000 responses. It fails when the cache did
// not learn the layout or keep the values.
func BenchmarkFetchCacheFill(b *testing.B) {
	const msgs, items = 1000, "(UID FLAGS RFC822.SIZE ENVELOPE)"
	atts, _, err := parseFetchItems([]byte(items))
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"FLAGS", "RFC822.SIZE", "ENVELOPE"}
	vals := [][]byte{nil, []byte("4321"), []byte(`("Sat, 28 Nov 2026 10:00:00 +0000" "a subject of some length" (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.org")) NIL NIL NIL "<id@example.org>")`)}
	ways := []struct {
		name string
		keep func(fc *fetchCache, key cacheKey) func(uint32, []string, [][]byte)
	}{
		{"per-line", func(fc *fetchCache, key cacheKey) func(uint32, []string, [][]byte) {
			return func(uid uint32, names []string, vals [][]byte) {
				fc.learn("dv", items, atts, names, true)
				for i, name := range names {
					if vals[i] != nil {
						k := key
						k.uid, k.item = imap.UID(uid), name
						fc.put(k, vals[i])
					}
				}
			}
		}},
		{"per-command", func(fc *fetchCache, key cacheKey) func(uint32, []string, [][]byte) {
			return fc.filler("dv", key, items, atts).keep
		}},
	}
	for _, way := range ways {
		b.Run(way.name, func(b *testing.B) {
			fc := newFetchCache(64<<20, 256<<10)
			var acct atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				key := cacheKey{acct: fmt.Sprintf("user%d", acct.Add(1)), mailbox: "INBOX", uidValidity: 1}
				uid := uint32(0)
				for pb.Next() {
					keep := way.keep(fc, key)
					for range msgs {
						uid++
						keep(uid, names, vals)
					}
				}
				key.uid, key.item = imap.UID(uid), "ENVELOPE"
				ran := uid > 0
				if v, ok := fc.get(key); ran && (!ok || string(v) != string(vals[2])) {
					b.Errorf("%s: got ENVELOPE %q held %v, want the value kept", key.acct, v, ok)
				}
			})
			if got := fc.layout("dv", items, atts); strings.Join(got, " ") != strings.Join(names, " ") {
				b.Fatalf("got layout %q, want %q", got, names)
			}
		})
	}
}
