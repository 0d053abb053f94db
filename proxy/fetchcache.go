package proxy

import (
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// fetchCache holds immutable per-message FETCH data (RFC 3501 2.3: a
// message's UID, within one UIDVALIDITY, names the same content for good):
// each item value exactly as the upstream wrote it (ENVELOPE,
// BODYSTRUCTURE, RFC822.SIZE, INTERNALDATE, header sections, bodies...),
// shared by every session of the server. Values are bytes of the
// upstream's own answer, so a response built from them is byte for byte
// what the upstream would send.
//
// The bound counts what an entry costs in resident memory (cacheWeight:
// the value's allocation, the key's strings, a per-entry overhead, the
// fragmentation small allocations leave); otter (W-TinyLFU,
// byte-weighted) evicts past it. A new
// UIDVALIDITY makes a mailbox's old entries unreachable (the key holds
// it): they age out under the same bound.
//
// It also remembers, per upstream and item list, the items of the
// upstream's answer in its order and spelling (layouts): Dovecot writes
// some items first whatever the request's order (bufferedItems), and
// names section items its own way; another server (config upstreams:)
// orders the same items its own way (go-imap's imapmemserver: its fixed
// order). A response built from the cache follows what its own upstream
// did for the same request (RFC 3501 7.4.2 leaves the order to the
// server).
type fetchCache struct {
	c       *otter.Cache[cacheKey, []byte]
	maxItem int64

	mu      sync.Mutex
	layouts map[layoutKey][]string // upstream item list → answer's item names
	// attNames: client item → the name its answer has (fetchlayout.go)
	attNames map[layoutKey]string
	// ruleShown: upstreams (route keys) that answered a list in
	// Dovecot's order where it is not the request's (fetchlayout.go)
	ruleShown map[string]bool
	flights   map[string]chan struct{}

	hits, misses, evictions prometheus.Counter
}

// cacheKey names one item value of one message.
type cacheKey struct {
	acct, mailbox string
	uidValidity   uint32
	uid           imap.UID
	item          string // as the upstream names it in its answer: "BODY[HEADER]"
}

// layoutKey names what a layout or item name was learnt for: the
// upstream (config name: one server, one way of ordering) and the item
// list, or one item, as the client wrote it.
type layoutKey struct{ upstream, items string }

// cacheEntryOverhead approximates what an entry costs besides its value
// and the key's strings: otter's node, the map slot, the key's headers
// (measured: about 135 bytes of heap per entry).
const cacheEntryOverhead = 160

// smallAlloc is the largest allocation Go serves from size classes
// (runtime's maxSmallSize); larger ones get pages of their own.
const smallAlloc = 32 << 10

// cacheWeight is what an entry costs in resident memory, so that
// cache.max_bytes bounds RSS (issue 11: within 10%): the value's
// allocation (its capacity: fetchCapture.end allocates it rounded to
// Go's size class), the key's strings (the account and mailbox strings
// are shared by a command's entries: counted for each, an overcount),
// the per-entry overhead, and for small allocations half more: entries
// evicted or refused by admission leave their slots free inside spans
// that live entries keep resident (BenchmarkFetchCacheRSS/small measured
// heap in use up to 1.4 times the live heap, varying with when the last
// GC ran; with half more its RSS stays within 0.88 to 0.95 of the bound).
func cacheWeight(k cacheKey, v []byte) uint32 {
	small := roundUp16(len(k.acct)) + roundUp16(len(k.mailbox)) + roundUp16(len(k.item)) + cacheEntryOverhead
	val := cap(v)
	if val < smallAlloc {
		small += val
		val = 0
	}
	return uint32(min(int64(val)+int64(small)*3/2, 1<<32-1))
}

func roundUp16(n int) int { return (n + 15) &^ 15 }

// maxLayouts bounds the remembered item lists; past it they are all
// forgotten and learnt again.
const maxLayouts = 512

func newFetchCache(maxBytes, maxItem int64) *fetchCache {
	fc := &fetchCache{maxItem: maxItem, layouts: make(map[layoutKey][]string), attNames: make(map[layoutKey]string), ruleShown: make(map[string]bool), flights: make(map[string]chan struct{})}
	fc.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "idlemux_fetch_cache_hits_total",
		Help: "Messages of client FETCHes answered from the shared cache of immutable message data."})
	fc.misses = prometheus.NewCounter(prometheus.CounterOpts{Name: "idlemux_fetch_cache_misses_total",
		Help: "Messages of cacheable client FETCHes fetched upstream because the cache lacked them."})
	fc.evictions = prometheus.NewCounter(prometheus.CounterOpts{Name: "idlemux_fetch_cache_evictions_total",
		Help: "Item values evicted from the FETCH cache to keep it within cache.max_bytes."})
	fc.c = otter.Must(&otter.Options[cacheKey, []byte]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       cacheWeight,
		// Counted inside the deletion (an atomic add): OnDeletion would
		// start a goroutine per deleted entry (otter's default executor).
		OnAtomicDeletion: func(e otter.DeletionEvent[cacheKey, []byte]) {
			if e.WasEvicted() {
				fc.evictions.Inc()
			}
		},
	})
	return fc
}

// collectors are the cache's series, registered by newMetrics.
func (fc *fetchCache) collectors() []prometheus.Collector {
	return []prometheus.Collector{fc.hits, fc.misses, fc.evictions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idlemux_fetch_cache_bytes",
			Help: "Bytes the FETCH cache holds, as weighed against cache.max_bytes (what its entries cost in resident memory: values, keys, per-entry overhead, fragmentation)."},
			func() float64 { return float64(fc.c.WeightedSize()) })}
}

// get returns the value of k, if held.
func (fc *fetchCache) get(k cacheKey) ([]byte, bool) { return fc.c.GetIfPresent(k) }

// put keeps v (the caller's copy, never modified after) unless it is over
// the per-item limit. A value held for k stays: it is the same bytes
// (RFC 3501 2.3.1.1: a UID within its UIDVALIDITY names one message for
// good), and keeping it spares a replacement and its deletion event.
func (fc *fetchCache) put(k cacheKey, v []byte) {
	if int64(len(v)) > fc.maxItem {
		return
	}
	fc.c.SetIfAbsent(k, v)
}

// layout returns the item names upstream up answers items (atts) with,
// in its order: learnt from an answer to items, or derived from the
// names learnt for each item (fetchlayout.go); nil when not known.
func (fc *fetchCache) layout(up, items string, atts []fetchAtt) []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if l, ok := fc.layouts[layoutKey{up, items}]; ok {
		return l
	}
	return fc.deriveLocked(up, atts)
}

// learn records the names of upstream up's answers to items: each
// response of one FETCH command in names (their order as the relay
// captured them), so the lock is taken once per command, not once per
// response line. An answer that disagrees with the one recorded, or a
// command whose responses disagree among themselves (an upstream whose
// order depends on the message), drops the record and the names it
// taught (fetchlayout.go): those requests are
// then answered from the cache only after the next answer, and never
// wrongly.
func (fc *fetchCache) learn(up, items string, atts []fetchAtt, names []string, agreed bool) {
	k := layoutKey{up, items}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	old, ok := fc.layouts[k]
	switch {
	case !agreed || ok && !equalStrings(old, names):
		delete(fc.layouts, k)
		for _, a := range atts { // nor are the names it taught sure
			delete(fc.attNames, layoutKey{up, a.text()})
		}
	case !ok:
		if len(fc.layouts) >= maxLayouts {
			clear(fc.layouts)
		}
		fc.layouts[k] = names
		fc.learnNamesLocked(up, atts, names)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// join coalesces concurrent fetches of the same missing data (key names
// the account, mailbox, UIDVALIDITY, UID set and items): the first caller
// leads and must call the returned done once its upstream FETCH has
// ended (the cache then holds what it could keep); the others get wait,
// closed then, and look in the cache again.
func (fc *fetchCache) join(key string) (wait <-chan struct{}, done func()) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if ch, ok := fc.flights[key]; ok {
		return ch, nil
	}
	ch := make(chan struct{})
	fc.flights[key] = ch
	return nil, func() {
		fc.mu.Lock()
		delete(fc.flights, key)
		fc.mu.Unlock()
		close(ch)
	}
}
