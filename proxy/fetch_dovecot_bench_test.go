package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// benchMailbox is what was appended to INBOX, by UID, so a FETCH can be
// checked without keeping the bodies.
type benchMailbox struct {
	size    map[imap.UID]int64
	subject map[imap.UID]string
	sum     map[imap.UID][sha256.Size]byte
	total   int64 // bytes of all messages
}

// benchWords is the vocabulary of the generated text bodies.
var benchWords = []string{
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "on",
	"mailbox", "server", "message", "quarterly", "report", "meeting", "tomorrow",
	"attached", "please", "review", "budget", "proposal", "deadline", "thanks",
	"regards", "schedule", "customer", "invoice", "shipment", "delivery", "update",
	"conference", "agenda", "minutes", "project", "milestone", "release", "draft",
}

// benchMessage returns message i of a deterministic mailbox: plain text of
// about size bytes, CRLF line endings, lines of at most 76 characters.
func benchMessage(rng *rand.Rand, i, size int) (msg []byte, subject string) {
	subject = fmt.Sprintf("bench message %d", i)
	var b bytes.Buffer
	b.Grow(size + 128)
	fmt.Fprintf(&b, "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\n"+
		"Subject: %s\r\nDate: Sat, 21 Nov 2026 10:%02d:%02d +0000\r\nMessage-ID: <bench-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		subject, i/60%60, i%60, i)
	line := 0
	for b.Len() < size {
		w := benchWords[rng.IntN(len(benchWords))]
		if line > 0 && line+1+len(w) > 76 {
			b.WriteString("\r\n")
			line = 0
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.Bytes(), subject
}

// populateBench appends n messages to user's INBOX over one direct
// connection. Sizes are log-uniform from 2 KiB to 200 KiB (most mail is
// small, a few messages are large), the same for every run: 1,000 messages
// come to about 42 MiB.
func populateBench(tb testing.TB, dv *dovecottest.Server, n int) *benchMailbox {
	tb.Helper()
	c := dv.Dial(tb, testUser, testPass)
	rng := rand.New(rand.NewPCG(1, 2))
	mb := &benchMailbox{
		size:    make(map[imap.UID]int64, n),
		subject: make(map[imap.UID]string, n),
		sum:     make(map[imap.UID][sha256.Size]byte, n),
	}
	for i := range n {
		size := int(2048 * math.Exp(rng.Float64()*math.Log(100)))
		msg, subject := benchMessage(rng, i, size)
		uid := appendMsg(tb, c, "INBOX", string(msg))
		if uid == 0 {
			tb.Fatal("APPEND returned no UID")
		}
		mb.size[uid] = int64(len(msg))
		mb.subject[uid] = subject
		mb.sum[uid] = sha256.Sum256(msg)
		mb.total += int64(len(msg))
	}
	if err := c.Logout().Wait(); err != nil {
		tb.Fatal(err)
	}
	return mb
}

// fetchBodies runs UID FETCH 1:* (UID BODY.PEEK[]) on c, which has INBOX
// selected, reads every body to the end, and checks that each message of mb
// came exactly once with its size (and, if verify, its content).
func fetchBodies(c *imapclient.Client, mb *benchMailbox, verify bool) error {
	cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	var (
		h     hash.Hash
		seen  = make(map[imap.UID]bool, len(mb.size))
		total int64
		err   error
	)
	if verify {
		h = sha256.New()
	}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		n := int64(-1)
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				var dst io.Writer = io.Discard
				if h != nil {
					h.Reset()
					dst = h
				}
				var cerr error
				if n, cerr = io.Copy(dst, it.Literal); cerr != nil && err == nil {
					err = fmt.Errorf("message %d: reading body: %w", msg.SeqNum, cerr)
				}
			}
		}
		total += max(n, 0)
		if err != nil {
			continue // drain the rest; Close gives the command's own error
		}
		sumOK := true
		if h != nil {
			want := mb.sum[uid]
			sumOK = bytes.Equal(h.Sum(nil), want[:])
		}
		switch want, ok := mb.size[uid]; {
		case !ok:
			err = fmt.Errorf("message %d: UID %d is not one of the appended messages", msg.SeqNum, uid)
		case seen[uid]:
			err = fmt.Errorf("message %d: UID %d came twice", msg.SeqNum, uid)
		case n != want:
			err = fmt.Errorf("UID %d: body of %d bytes, want %d", uid, n, want)
		case !sumOK:
			err = fmt.Errorf("UID %d: body differs from the appended message", uid)
		}
		seen[uid] = true
	}
	if cerr := cmd.Close(); cerr != nil {
		return fmt.Errorf("UID FETCH: %w", cerr)
	}
	if err != nil {
		return err
	}
	if len(seen) != len(mb.size) || total != mb.total {
		return fmt.Errorf("got %d messages, %d body bytes; want %d, %d", len(seen), total, len(mb.size), mb.total)
	}
	return nil
}

// fetchListing runs UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE), the
// listing a mail client syncs, and checks each message's size and subject.
func fetchListing(c *imapclient.Client, mb *benchMailbox) error {
	cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, Envelope: true,
	})
	seen := make(map[imap.UID]bool, len(mb.size))
	var err error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var (
			uid     imap.UID
			size    int64 = -1
			subject       = "(no ENVELOPE)"
			flags   bool
		)
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataFlags:
				flags = true
			case imapclient.FetchItemDataRFC822Size:
				size = it.Size
			case imapclient.FetchItemDataEnvelope:
				if it.Envelope != nil {
					subject = it.Envelope.Subject
				}
			}
		}
		if err != nil {
			continue
		}
		switch want, ok := mb.size[uid]; {
		case !ok:
			err = fmt.Errorf("message %d: UID %d is not one of the appended messages", msg.SeqNum, uid)
		case seen[uid]:
			err = fmt.Errorf("message %d: UID %d came twice", msg.SeqNum, uid)
		case !flags:
			err = fmt.Errorf("UID %d: no FLAGS", uid)
		case size != want:
			err = fmt.Errorf("UID %d: RFC822.SIZE %d, want %d", uid, size, want)
		case subject != mb.subject[uid]:
			err = fmt.Errorf("UID %d: subject %q, want %q", uid, subject, mb.subject[uid])
		}
		seen[uid] = true
	}
	if cerr := cmd.Close(); cerr != nil {
		return fmt.Errorf("UID FETCH: %w", cerr)
	}
	if err != nil {
		return err
	}
	if len(seen) != len(mb.size) {
		return fmt.Errorf("got %d messages, want %d", len(seen), len(mb.size))
	}
	return nil
}

// selectedClient logs in to addr (Dovecot itself or idlemux) and selects
// INBOX, checking it holds n messages.
func selectedClient(tb testing.TB, addr string, n int) *imapclient.Client {
	tb.Helper()
	c := directClient(tb, addr)
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		tb.Fatal(err)
	}
	if data.NumMessages != uint32(n) {
		tb.Fatalf("SELECT INBOX on %s: %d messages, want %d", addr, data.NumMessages, n)
	}
	return c
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportFetch adds msgs/s and cpu-ms/op: the CPU this process (the client,
// and idlemux when it is in the path) used per FETCH since cpu was read.
// Wall time on a shared two-core machine moves with whatever else runs;
// the CPU idlemux adds to each FETCH moves much less.
func reportFetch(b *testing.B, n int, cpu time.Duration) {
	used := processCPU() - cpu
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(used)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkFetch1000 fetches a 1,000-message INBOX (about 42 MiB) from a
// real Dovecot, directly, through idlemux without its cache, through
// idlemux with its cache (idlemux-cached: filled by the warm-up round, the
// mailbox's watcher idling, so FLAGS come from the model), and through
// idlemux with its cache emptied before each FETCH (idlemux-fill: every
// message goes upstream and its answer fills the cache, fetchcapture.go),
// over one logged-in client with INBOX selected. Each iteration is one
// UID FETCH 1:*:
//
//   - bodies: (UID BODY.PEEK[]), every body read to the end; MB/s counts
//     message bytes.
//   - listing: (UID FLAGS RFC822.SIZE ENVELOPE), a mail client's sync.
//
// Every iteration checks the messages' count and sizes and fails the
// benchmark if they are wrong. -count repeats each sub-benchmark back to
// back; for direct and idlemux interleaved, run the test binary in a loop.
func BenchmarkFetch1000(b *testing.B) {
	const n = 1000
	// No fsync: populating is setup, not what is measured.
	dv := dovecottest.Start(b, dovecottest.Options{
		Users:     map[string]string{testUser: testPass},
		ExtraConf: "mail_fsync = never",
	})
	mb := populateBench(b, dv, n)
	uncached := testConfig(dv.Addr)
	uncached.Cache.Enabled = false
	p := startProxyLogging(b, uncached, zap.NewNop())
	// The cached proxy holds the whole mailbox (about 42 MiB, no body
	// above cache.max_message_bytes): after the warm-up round, every
	// FETCH is answered from the cache and the model.
	pc := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	cached := selectedClient(b, pc.Addrs()[0], n)
	idleUntilWatcherIdles(b, cached, pc, "INBOX")
	pf := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	clients := []struct {
		name  string
		c     *imapclient.Client
		p     *Server // the cached proxy: each FETCH must be answered locally
		purge *Server // the filling proxy: its cache is emptied before each FETCH
	}{
		{"direct", selectedClient(b, dv.Addr, n), nil, nil},
		{"idlemux", selectedClient(b, p.Addrs()[0], n), nil, nil},
		{"idlemux-cached", cached, pc, nil},
		{"idlemux-fill", selectedClient(b, pf.Addrs()[0], n), nil, pf},
	}
	// One untimed round of each shape on each client: fills Dovecot's cache
	// file and the page cache, and opens idlemux's pool connection.
	for _, cl := range clients {
		if err := fetchBodies(cl.c, mb, false); err != nil {
			b.Fatalf("%s: warm-up: %v", cl.name, err)
		}
		if err := fetchListing(cl.c, mb); err != nil {
			b.Fatalf("%s: warm-up: %v", cl.name, err)
		}
	}
	b.Run("bodies", func(b *testing.B) {
		for _, cl := range clients {
			b.Run(cl.name, func(b *testing.B) {
				b.SetBytes(mb.total)
				cpu, local := processCPU(), localFetches(cl.p)
				for b.Loop() {
					purgeCache(cl.purge)
					if err := fetchBodies(cl.c, mb, false); err != nil {
						b.Fatal(err)
					}
				}
				reportFetch(b, n, cpu)
				if got := localFetches(cl.p) - local; cl.p != nil && got != float64(b.N) {
					b.Fatalf("got %v FETCHes answered locally, want %d", got, b.N)
				}
			})
		}
	})
	b.Run("listing", func(b *testing.B) {
		for _, cl := range clients {
			b.Run(cl.name, func(b *testing.B) {
				cpu, local := processCPU(), localFetches(cl.p)
				for b.Loop() {
					purgeCache(cl.purge)
					if err := fetchListing(cl.c, mb); err != nil {
						b.Fatal(err)
					}
				}
				reportFetch(b, n, cpu)
				if got := localFetches(cl.p) - local; cl.p != nil && got != float64(b.N) {
					b.Fatalf("got %v FETCHes answered locally, want %d", got, b.N)
				}
			})
		}
	})
}

// purgeCache empties p's FETCH cache (its values; the layouts stay
// learnt); nothing for nil.
func purgeCache(p *Server) {
	if p != nil {
		p.cache.c.InvalidateAll()
		p.cache.c.CleanUp()
	}
}

// localFetches is p's count of FETCHes answered without the upstream; 0
// for nil.
func localFetches(p *Server) float64 {
	if p == nil {
		return 0
	}
	return testutil.ToFloat64(p.metrics.localAnswers.WithLabelValues("FETCH"))
}

// idleUntilWatcherIdles runs IDLE on c until box's watcher idles on a
// connection of its own (FETCH FLAGS is then answered from the model).
func idleUntilWatcherIdles(tb testing.TB, c *imapclient.Client, p *Server, box string) {
	tb.Helper()
	idle, err := c.Idle()
	if err != nil {
		tb.Fatal(err)
	}
	a, err := p.routes()[0].mgr.Login(context.Background(), testUser, testPass)
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Unref()
	for deadline := time.Now().Add(waitLong); ; time.Sleep(time.Millisecond) {
		if w := a.Watching(box); w != nil && w.Live() {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s's watcher to idle", box)
		}
	}
	if err := idle.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		tb.Fatal(err)
	}
}

// TestDovecotFetchManyBodiesExact: one UID FETCH 1:* of many bodies of
// varied sizes through idlemux returns each message byte for byte, once,
// and the listing items match; it also keeps BenchmarkFetch1000's checks
// honest, since benchmarks do not run in make test.
func TestDovecotFetchManyBodiesExact(t *testing.T) {
	const n = 40
	dv := startDovecot(t)
	mb := populateBench(t, dv, n)
	p := startProxy(t, testConfig(dv.Addr))
	c := selectedClient(t, p.Addrs()[0], n)
	for range 2 { // from the upstream, then from the cache
		if err := fetchBodies(c, mb, true); err != nil {
			t.Fatal(err)
		}
	}
	if got := localFetches(p); got != 1 {
		t.Errorf("got %v FETCHes answered locally, want 1 (the second)", got)
	}
	if err := fetchListing(c, mb); err != nil {
		t.Fatal(err)
	}
	// The checks can fail: a mailbox with one size wrong is caught.
	for uid := range mb.size {
		mb.size[uid]++
		break
	}
	if err := fetchBodies(c, mb, false); err == nil {
		t.Fatal("fetchBodies accepted a wrong size")
	}
	if err := fetchListing(c, mb); err == nil {
		t.Fatal("fetchListing accepted a wrong size")
	}
}
