package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestFetchCacheBound: whatever is put, the cache holds at most max_bytes
// as it weighs them (values, names, overhead), evicts to stay there and
// counts the evictions; a value above max_message_bytes is not kept; a
// new UIDVALIDITY reaches none of the old entries.
func TestFetchCacheBound(t *testing.T) {
	const max, item = 1 << 20, 64 << 10
	fc := newFetchCache(max, item)
	key := cacheKey{acct: "alice", mailbox: "INBOX", uidValidity: 7, item: "BODY[]"}
	val := bytes.Repeat([]byte("x"), 16<<10)
	for uid := range imap.UID(400) { // 6.4 MiB put
		key.uid = uid + 1
		fc.put(key, val)
	}
	fc.c.CleanUp()
	if got := fc.c.WeightedSize(); got > max || got < max/2 {
		t.Errorf("got %d bytes held, want between %d and %d", got, max/2, max)
	}
	waitFor(t, "evictions counted", func() bool { return testutil.ToFloat64(fc.evictions) > 0 })

	for _, tc := range []struct {
		name string
		key  cacheKey
		val  []byte
		want bool
	}{
		{"kept", cacheKey{acct: "alice", mailbox: "INBOX", uidValidity: 7, uid: 1000, item: "ENVELOPE"}, []byte("(NIL)"), true},
		{"above max_message_bytes", cacheKey{acct: "alice", mailbox: "INBOX", uidValidity: 7, uid: 1001, item: "BODY[]"}, make([]byte, item+1), false},
	} {
		fc.put(tc.key, tc.val)
		if _, got := fc.get(tc.key); got != tc.want {
			t.Errorf("%s: got held %v, want %v", tc.name, got, tc.want)
		}
	}
	k := cacheKey{acct: "alice", mailbox: "INBOX", uidValidity: 7, uid: 1000, item: "ENVELOPE"}
	k.uidValidity = 8
	if v, ok := fc.get(k); ok {
		t.Errorf("a new UIDVALIDITY: got %q, want nothing", v)
	}
}

// TestFetchCacheJoin: the first caller of a key leads; the others wait
// until it is done; after that the key is free again.
func TestFetchCacheJoin(t *testing.T) {
	fc := newFetchCache(1<<20, 1<<10)
	wait, done := fc.join("k")
	if wait != nil || done == nil {
		t.Fatalf("first caller: got wait %v, done %v; want to lead", wait != nil, done != nil)
	}
	w2, d2 := fc.join("k")
	if w2 == nil || d2 != nil {
		t.Fatalf("second caller: got wait %v, done %v; want to wait", w2 != nil, d2 != nil)
	}
	if w3, _ := fc.join("other"); w3 != nil {
		t.Fatal("another key: got to wait, want to lead")
	}
	select {
	case <-w2:
		t.Fatal("the wait ended before the leader was done")
	case <-time.After(10 * time.Millisecond):
	}
	done()
	<-w2
	if w4, d4 := fc.join("k"); w4 != nil || d4 == nil {
		t.Fatal("after the leader: got to wait, want to lead")
	}
}

// TestFetchLayout: an answer's names are learnt per upstream and item
// list; the same items in another order get Dovecot's order derived
// (buffered items first) from the same upstream's names; what cannot be
// derived is not, nor what another upstream taught.
func TestFetchLayout(t *testing.T) {
	atts := func(items string) []fetchAtt {
		a, _, err := parseFetchItems([]byte(items))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	fc := newFetchCache(1<<20, 1<<10)
	fc.learn("dv", "(UID ENVELOPE FLAGS BODY.PEEK[HEADER] RFC822.SIZE)", atts("(UID ENVELOPE FLAGS BODY.PEEK[HEADER] RFC822.SIZE)"),
		[]string{"FLAGS", "RFC822.SIZE", "ENVELOPE", "BODY[HEADER]"}, true)
	fc.learn("dv", "ALL", atts("ALL"), []string{"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}, true)
	// Not Dovecot's order: learnt for its own list, teaches no names.
	fc.learn("dv", "(BODYSTRUCTURE INTERNALDATE)", atts("(BODYSTRUCTURE INTERNALDATE)"), []string{"BODYSTRUCTURE", "INTERNALDATE"}, true)
	// Another server (imapmemserver) answers in its fixed order: learnt
	// for it alone, and teaching no names, since it is not Dovecot's.
	fc.learn("mem", "(RFC822.SIZE INTERNALDATE)", atts("(RFC822.SIZE INTERNALDATE)"), []string{"INTERNALDATE", "RFC822.SIZE"}, true)
	fc.learn("mem", "(ENVELOPE UID)", atts("(ENVELOPE UID)"), []string{"ENVELOPE"}, true)
	// A server answering in the request's order, asked lists on which
	// that is also Dovecot's: the names fit, but it never showed the rule
	// at work, so nothing is derived for it (it answers "(ENVELOPE
	// FLAGS)" as ENVELOPE first, Dovecot's rule would say FLAGS).
	fc.learn("ro", "(FLAGS ENVELOPE)", atts("(FLAGS ENVELOPE)"), []string{"FLAGS", "ENVELOPE"}, true)
	fc.learn("ro", "(RFC822.SIZE BODYSTRUCTURE)", atts("(RFC822.SIZE BODYSTRUCTURE)"), []string{"RFC822.SIZE", "BODYSTRUCTURE"}, true)
	// One command whose responses disagreed teaches nothing, and unlearns
	// the names its first response taught.
	fc.learn("dv", "(BODY.PEEK[TEXT] BODYSTRUCTURE)", atts("(BODY.PEEK[TEXT] BODYSTRUCTURE)"), []string{"BODY[TEXT]", "BODYSTRUCTURE"}, true)
	fc.learn("dv", "(BODY.PEEK[TEXT] BODYSTRUCTURE)", atts("(BODY.PEEK[TEXT] BODYSTRUCTURE)"), []string{"BODYSTRUCTURE", "BODY[TEXT]"}, false)
	for _, tc := range []struct {
		up    string
		items string
		want  []string
	}{
		{"mem", "(RFC822.SIZE INTERNALDATE)", []string{"INTERNALDATE", "RFC822.SIZE"}},
		{"dv", "(RFC822.SIZE INTERNALDATE)", nil},
		{"mem", "(INTERNALDATE RFC822.SIZE)", nil},
		{"mem", "ENVELOPE", []string{"ENVELOPE"}},
		{"mem", "(ENVELOPE FLAGS)", nil},
		{"dv", "(BODY.PEEK[TEXT] BODYSTRUCTURE)", nil},
		{"dv", "(BODY.PEEK[TEXT])", nil},
		{"dv", "(UID ENVELOPE FLAGS BODY.PEEK[HEADER] RFC822.SIZE)", []string{"FLAGS", "RFC822.SIZE", "ENVELOPE", "BODY[HEADER]"}},
		{"dv", "(BODY.PEEK[HEADER] RFC822.SIZE ENVELOPE UID FLAGS)", []string{"RFC822.SIZE", "FLAGS", "BODY[HEADER]", "ENVELOPE"}},
		{"dv", "ENVELOPE", []string{"ENVELOPE"}},
		{"dv", "ALL", []string{"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}},
		{"dv", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)", nil}, // a macro's answer teaches no names
		{"dv", "(BODYSTRUCTURE INTERNALDATE)", []string{"BODYSTRUCTURE", "INTERNALDATE"}},
		{"dv", "(INTERNALDATE BODYSTRUCTURE)", nil},
		{"dv", "(ENVELOPE BODY)", nil},
		{"dv", "(UID)", nil},
		{"ro", "(FLAGS ENVELOPE)", []string{"FLAGS", "ENVELOPE"}},
		{"ro", "(ENVELOPE FLAGS)", nil},
		{"ro", "(BODYSTRUCTURE RFC822.SIZE FLAGS)", nil},
	} {
		if got := fc.layout(tc.up, tc.items, atts(tc.items)); strings.Join(got, " ") != strings.Join(tc.want, " ") || (got == nil) != (tc.want == nil) {
			t.Errorf("%s %s: got layout %q, want %q", tc.up, tc.items, got, tc.want)
		}
	}
}

// relayCaptured runs the relay over in with the cache's capture on, and
// returns its output and what the capture kept, in order.
func relayCaptured(in []byte, req *fetchRequest, size int) ([]byte, []capturedResponse, error) {
	var kept []capturedResponse
	sink := &bufSink{}
	rl := testRelay(req, sink)
	rl.capture = &fetchCapture{max: 1 << 20, keep: func(uid uint32, names []string, vals [][]byte) {
		kept = append(kept, capturedResponse{uid, names, vals})
	}}
	err := rl.run(bufio.NewReaderSize(bytes.NewReader(in), size), "X1")
	return sink.Bytes(), kept, err
}

type capturedResponse struct {
	uid   uint32
	names []string
	vals  [][]byte
}

// FuzzFetchCapture: what the capture records of an upstream answer,
// written back as the cache writes hits (localHits.appendTo), is byte for
// byte what the relay wrote for it, on both of the relay's paths and
// wherever the client's answer has its UID.
func FuzzFetchCapture(f *testing.F) {
	for _, s := range relaySeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("* 1 FETCH (UID 1 RFC822.SIZE 12 ENVELOPE (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) BODY[HEADER] {4}\r\nab\r\n)\r\n" +
		"* 2 FETCH (UID 2 RFC822.SIZE 5 ENVELOPE (\"d\" {3}\r\nx\"y NIL NIL NIL NIL NIL NIL NIL NIL))\r\nX1 OK\r\n"))
	reqs := []*fetchRequest{{wantUID: true}, {}, {wantUID: true, uidAfter: 1}}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, req := range reqs {
			for _, size := range []int{16, 64 << 10} {
				out, kept, err := relayCaptured(in, req, size)
				if err != nil || len(kept) == 0 {
					continue
				}
				var built []byte
				clean := true
				for _, k := range kept {
					for i, n := range k.names {
						clean = clean && n != "FLAGS" && k.vals[i] != nil
					}
					lh := &localHits{layout: k.names}
					built = lh.appendTo(built, req, &localHit{seq: k.uid + 1, uid: imap.UID(k.uid), vals: k.vals})
				}
				if clean && !bytes.Equal(built, out) {
					t.Fatalf("req %+v, buffer %d:\n in %q\nrelay %q\ncache %q", *req, size, in, out, built)
				}
			}
		}
	})
}

// TestLocalHitsFlags: FLAGS written from the model as the relay writes
// the upstream's, the session's \Recent last.
func TestLocalHitsFlags(t *testing.T) {
	for _, tc := range []struct {
		req   fetchRequest
		flags []imap.Flag
		want  string
	}{
		{fetchRequest{wantUID: true}, []imap.Flag{imap.FlagSeen, "$Work", `\Recent`}, `* 3 FETCH (UID 9 FLAGS (\Seen $Work \Recent))` + "\r\n"},
		{fetchRequest{wantUID: true, uidAfter: 1}, nil, `* 3 FETCH (FLAGS () UID 9)` + "\r\n"},
		{fetchRequest{}, []imap.Flag{imap.FlagDraft}, `* 3 FETCH (FLAGS (\Draft))` + "\r\n"},
	} {
		lh := &localHits{layout: []string{"FLAGS"}}
		got := string(lh.appendTo(nil, &tc.req, &localHit{seq: 3, uid: 9, vals: make([][]byte, 1), flags: tc.flags}))
		if got != tc.want {
			t.Errorf("%+v %v: got %q, want %q", tc.req, tc.flags, got, tc.want)
		}
	}
}

// TestFetchCacheDisabled: with cache.enabled false nothing is kept and
// every FETCH of message data goes upstream, the same answer each time;
// the cache's series are not served.
func TestFetchCacheDisabled(t *testing.T) {
	up := startMemUpstream(t)
	appendMsg(t, directClient(t, up.addr), "INBOX", testMessage("one"))
	cfg := testConfig(up.addr)
	cfg.Cache.Enabled = false
	p := startProxy(t, cfg)
	if p.cache != nil {
		t.Fatal("cache.enabled false: got a cache")
	}
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	rc.cmd("s", "SELECT INBOX")
	first := rc.cmd("f", "FETCH 1 (UID ENVELOPE)")
	second := rc.cmd("f", "FETCH 1 (UID ENVELOPE)")
	if len(first) != 2 || !strings.Contains(first[0], "ENVELOPE") || !equalUntagged(second, first) {
		t.Errorf("got %q then %q, want one response with ENVELOPE, twice", first, second)
	}
	if got := testutil.ToFloat64(p.metrics.localAnswers.WithLabelValues("FETCH")); got != 0 {
		t.Errorf("got %v FETCHes answered locally, want 0", got)
	}
	if n, err := testutil.GatherAndCount(p.metrics.reg, "idlemux_fetch_cache_bytes"); err != nil || n != 0 {
		t.Errorf("got %d idlemux_fetch_cache_bytes series (%v), want 0", n, err)
	}
}
