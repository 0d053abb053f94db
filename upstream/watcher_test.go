package upstream

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/idlemux/idlemux/internal/memidle"
)

// memServer serves msgs messages in INBOX of u/p, with IMAP4rev1,
// UIDPLUS and extra capabilities.
func memServer(t testing.TB, msgs int, extra ...imap.Cap) string {
	t.Helper()
	caps := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}
	for _, c := range extra {
		caps[c] = struct{}{}
	}
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("u", "p")
	u.Create("INBOX", nil)
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return memidle.Wrap(mem.NewSession()), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("u", "p").Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < msgs; i++ {
		body := fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)
		cmd := c.Append("INBOX", int64(len(body)), nil)
		cmd.Write([]byte(body))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	return ln.Addr().String()
}

// testLogin starts a manager with opts and logs in as u/p; both end with
// the test.
func testLogin(t testing.TB, opts Options) (*Manager, *Account) {
	t.Helper()
	m := NewManager(opts)
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := m.Login(ctx, "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Unref)
	return m, a
}

// TestWatcherListsLargeMailboxesInChunks: the initial listing is read in
// several bounded FETCHes and the model gets every message, in order.
func TestWatcherListsLargeMailboxesInChunks(t *testing.T) {
	defer func(old uint32) { listingChunk = old }(listingChunk)
	listingChunk = 3
	addr := memServer(t, 10)
	m, a := testLogin(t, Options{Address: addr, TLS: TLSNone, WatcherLinger: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.Login(ctx, "u", "wrong"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unwatch()
	want := []imap.UID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := w.Mailbox().UIDs(); !slices.Equal(got, want) {
		t.Fatalf("model UIDs: got %v, want %v", got, want)
	}
	if st := m.Stats(); st.Conns > 2 || st.Watchers != 1 {
		t.Fatalf("stats: got %+v, want at most 2 connections and 1 watcher", st)
	}
}

func TestBudget(t *testing.T) {
	b := &budget{burst: 2, refill: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name string
		at   time.Duration
		want time.Duration
	}{
		{"first of the burst", 0, 0},
		{"second of the burst", time.Second, 0},
		// 0.2 tokens came back over those 2 s.
		{"spent: waits for the refill", 2 * time.Second, 8 * time.Second},
		{"the next counts from the end of that wait", 11 * time.Second, 9 * time.Second},
		{"refilled after a long quiet", 100 * time.Second, 0},
	}
	for _, tt := range tests {
		if got := b.take(t0.Add(tt.at)).Round(time.Millisecond); got != tt.want {
			t.Errorf("%s: take at +%v: got %v, want %v", tt.name, tt.at, got, tt.want)
		}
	}
}
