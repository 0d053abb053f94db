package proxy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

func startDovecot(t testing.TB) *dovecottest.Server {
	t.Helper()
	return startDovecotConf(t, "")
}

// startDovecotConf is startDovecot with extraConf appended to Dovecot's
// configuration.
func startDovecotConf(t testing.TB, extraConf string) *dovecottest.Server {
	t.Helper()
	return dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}, ExtraConf: extraConf})
}

// idleSessions counts the user's Dovecot sessions that are in IDLE.
func idleSessions(t *testing.T, dv *dovecottest.Server) (idle, all int) {
	t.Helper()
	titles, err := dv.Sessions(testUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range titles {
		if strings.Contains(title, " IDLE]") {
			idle++
		}
	}
	return idle, len(titles)
}

// TestDovecotFiftyClientsOneIdle is the core promise against a real server:
// 50 clients of one account IDLE on INBOX through idlemux, Dovecot sees one
// IDLE session, and every change, made directly on Dovecot or through the
// proxy, reaches all 50 with correct numbers.
func TestDovecotFiftyClientsOneIdle(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	for i := 0; i < 5; i++ {
		appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("seed %d", i)))
	}
	p := startProxy(t, testConfig(dv.Addr))
	addr := p.Addrs()[0]

	const n = 50
	clients := make([]*viewClient, n)
	idles := make([]*imapclient.IdleCommand, n)
	for i := range clients {
		vc := dialView(t, addr, fmt.Sprintf("client%02d", i))
		vc.login()
		vc.selectBox("INBOX")
		idles[i] = vc.idle()
		clients[i] = vc
	}
	var idle, sessions int
	deadline := time.Now().Add(waitLong)
	for {
		idle, sessions = idleSessions(t, dv)
		if idle == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	maxConns := testConfig(dv.Addr).Upstream.MaxConnectionsPerAccount
	if idle != 1 || sessions > maxConns {
		t.Fatalf("Dovecot sees %d IDLE sessions and %d sessions in all for %d clients; want 1 and at most %d", idle, sessions, n, maxConns)
	}
	t.Logf("%d clients idling: Dovecot sessions for the account: %d (in IDLE: %d); proxy stats %+v", n, sessions, idle, p.Stats())

	// A direct IDLE on Dovecot, to compare EXISTS latency with.
	ref := dialView(t, dv.Addr, "direct-idler")
	ref.login()
	ref.selectBox("INBOX")
	refIdle := ref.idle()

	// Changes made directly on Dovecot.
	start := time.Now()
	newUID := appendMsg(t, direct, "INBOX", testMessage("pushed"))
	appended := time.Now()
	lat := make([]time.Duration, n)
	missed := make(chan string, n)
	var wg sync.WaitGroup
	for i, vc := range clients {
		wg.Add(1)
		go func() { // no t.Fatal here: not the test's goroutine
			defer wg.Done()
			if !vc.reached(waitLong, func() bool { return len(vc.uids) == 6 }) {
				missed <- vc.name
			}
			lat[i] = time.Since(appended)
		}()
	}
	ref.waitFor("EXISTS 6 directly", waitLong, func() bool { return len(ref.uids) == 6 })
	refLat := time.Since(appended)
	wg.Wait()
	close(missed)
	for name := range missed {
		t.Errorf("%s: no EXISTS 6 within %v", name, waitLong)
	}
	if t.Failed() {
		t.FailNow()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("EXISTS latency after APPEND (%v): direct Dovecot IDLE %v; through idlemux to %d clients: median %v, max %v",
		appended.Sub(start), refLat, n, lat[n/2], lat[n-1])

	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(c *imapclient.Client, set imap.NumSet, f imap.Flag) {
		t.Helper()
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{f}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	store(direct, imap.UIDSetNum(newUID), imap.FlagFlagged)
	for _, vc := range clients {
		vc.waitFor("FETCH \\Flagged", waitLong, func() bool { return slices.Contains(vc.flags[newUID], imap.FlagFlagged) })
	}
	store(direct, imap.SeqSetNum(2), imap.FlagDeleted)
	if err := direct.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	for _, vc := range clients {
		vc.waitFor("EXPUNGE 2", waitLong, func() bool { return len(vc.uids) == 5 })
	}

	// Changes made through the proxy by one of the clients.
	actor := clients[0]
	actor.done(idles[0])
	actor.checkAgainstServer()
	appendMsg(t, actor.c, "INBOX", testMessage("through the proxy"))
	actor.fillUIDs()
	store(actor.c, imap.SeqSetNum(1), imap.FlagSeen)
	seenUID := actor.uids[0]
	store(actor.c, imap.SeqSetNum(3), imap.FlagDeleted)
	gone := actor.uids[2]
	seqs, err := actor.c.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{3}) {
		t.Fatalf("EXPUNGE through the proxy: got %v, %v; want [3]", seqs, err)
	}
	actor.mu.Lock()
	actor.uids = slices.Delete(actor.uids, 2, 3)
	actor.mu.Unlock()
	for _, vc := range clients[1:] {
		vc.waitFor("proxy-made changes", waitLong, func() bool {
			return len(vc.uids) == 5 && !slices.Contains(vc.uids, gone) && slices.Contains(vc.flags[seenUID], imap.FlagSeen)
		})
	}
	for i, vc := range clients {
		if i > 0 {
			vc.done(idles[i])
		}
		vc.checkAgainstServer()
	}
	ref.done(refIdle)
}

// TestDovecotLargeMessageStreams: a 48 MiB message fetched through the proxy
// equals the bytes fetched directly, and the process's heap does not grow by
// anything near the message's size (the body is streamed, not buffered).
func TestDovecotLargeMessageStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("large message test skipped in -short mode")
	}
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	const size = 48 << 20
	header := testMessage("big")
	body := strings.Repeat(strings.Repeat("0123456789abcdef", 4)+"\r\n", (size-len(header))/66+1)
	msg := header + body
	uid := appendMsg(t, direct, "INBOX", msg)
	want := sha256.Sum256([]byte(msg))
	msg, body = "", ""

	p := startProxy(t, testConfig(dv.Addr))
	vc := dialView(t, p.Addrs()[0], "fetcher")
	vc.login()
	vc.selectBox("INBOX")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	section := &imap.FetchItemBodySection{Peek: true}
	cmd := vc.c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	var got [32]byte
	var n int64
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for item := m.Next(); item != nil; item = m.Next() {
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
				h := sha256.New()
				n, _ = io.Copy(h, bs.Literal)
				copy(got[:], h.Sum(nil))
			}
		}
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("FETCH through the proxy: %v", err)
	}
	close(stop)
	<-sampled
	if got != want {
		t.Fatalf("body through the proxy: %d bytes, sha256 %x; want sha256 %x", n, got, want)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("48 MiB FETCH through the proxy: %d bytes, heap in use grew by at most %d KiB", n, growth>>10)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB while streaming a %d MiB message: the body is being buffered", growth>>20, size>>20)
	}
}
