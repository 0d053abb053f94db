package proxy

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/memidle"
)

// memUpstream is an in-process upstream (go-imap's imapmemserver).
type memUpstream struct {
	addr   string
	srv    *imapserver.Server
	idles  *atomic.Int64 // IDLE commands the upstream has seen
	logins *atomic.Int64 // LOGIN attempts the upstream has seen
}

// countingSession counts the IDLE and LOGIN commands it serves.
type countingSession struct {
	*memidle.Session
	idles, logins *atomic.Int64
}

func (s countingSession) Login(user, pass string) error {
	s.logins.Add(1)
	return s.Session.Login(user, pass)
}

func (s countingSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.idles.Add(1)
	return s.Session.Idle(w, stop)
}

const (
	testUser = "alice"
	testPass = "S3cret-Alice-pw"
)

func startMemUpstream(t testing.TB) *memUpstream {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(testUser, testPass)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	if err := u.Create("Archive", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	idles, logins := new(atomic.Int64), new(atomic.Int64)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return countingSession{memidle.Wrap(mem.NewSession()), idles, logins}, nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
			imap.CapNamespace: {}, imap.CapLiteralPlus: {}, imap.CapESearch: {},
		},
		InsecureAuth: true,
		Logger:       testLogger{t},
	})
	return &memUpstream{addr: serveLoopback(t, srv), srv: srv, idles: idles, logins: logins}
}

// serveLoopback serves srv on 127.0.0.1:0 until the test ends.
func serveLoopback(t testing.TB, srv *imapserver.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf("upstream: "+format, args...) }

// testConfig is a config for a proxy on 127.0.0.1:0 in front of addr.
func testConfig(addr string) *config.Config {
	cfg := config.Default()
	cfg.Listeners = []config.Listener{{Address: "127.0.0.1:0", TLS: config.TLSNone, InsecureAuth: true}}
	cfg.Upstream.Address = addr
	cfg.Upstream.TLS = config.TLSNone
	cfg.Upstream.WatcherLinger = 200 * time.Millisecond
	cfg.Upstream.ResponseTimeout = 10 * time.Second
	cfg.Upstream.PollInterval = 500 * time.Millisecond
	return cfg
}

func startProxy(t testing.TB, cfg *config.Config) *Server {
	t.Helper()
	return startProxyLogging(t, cfg, zaptest.NewLogger(t))
}

// startProxyLogging is startProxy with the logger a test wants to inspect.
func startProxyLogging(t testing.TB, cfg *config.Config, log *zap.Logger) *Server {
	t.Helper()
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// viewClient is an IMAP client that keeps, from what it sees on the wire,
// the list of UIDs its sequence numbers stand for, as a real client must.
type viewClient struct {
	t    testing.TB
	name string
	c    *imapclient.Client

	mu      sync.Mutex
	uids    []imap.UID // by sequence number; 0 until fetched
	flags   map[imap.UID][]imap.Flag
	events  []string // wire events, in order, for assertions
	changed chan struct{}
}

func dialView(t testing.TB, addr, name string) *viewClient {
	t.Helper()
	vc := &viewClient{t: t, name: name, flags: map[imap.UID][]imap.Flag{}, changed: make(chan struct{}, 1)}
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) {
			vc.mu.Lock()
			defer vc.mu.Unlock()
			vc.events = append(vc.events, fmt.Sprintf("EXPUNGE %d", seq))
			if int(seq) < 1 || int(seq) > len(vc.uids) {
				vc.events = append(vc.events, fmt.Sprintf("BAD-EXPUNGE %d of %d", seq, len(vc.uids)))
			} else {
				vc.uids = slices.Delete(vc.uids, int(seq)-1, int(seq))
			}
			vc.poke()
		},
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages == nil {
				return
			}
			vc.mu.Lock()
			defer vc.mu.Unlock()
			n := int(*d.NumMessages)
			vc.events = append(vc.events, fmt.Sprintf("EXISTS %d", n))
			if n < len(vc.uids) {
				vc.events = append(vc.events, fmt.Sprintf("BAD-EXISTS %d < %d", n, len(vc.uids)))
			}
			for len(vc.uids) < n {
				vc.uids = append(vc.uids, 0)
			}
			vc.poke()
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			vc.mu.Lock()
			defer vc.mu.Unlock()
			vc.events = append(vc.events, fmt.Sprintf("FETCH %d UID %d FLAGS %v", buf.SeqNum, buf.UID, buf.Flags))
			if buf.UID != 0 {
				vc.flags[buf.UID] = buf.Flags
			}
			vc.poke()
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	vc.c = c
	t.Cleanup(func() { c.Close() })
	return vc
}

func (vc *viewClient) poke() {
	select {
	case vc.changed <- struct{}{}:
	default:
	}
}

func (vc *viewClient) login() {
	vc.t.Helper()
	if err := vc.c.Login(testUser, testPass).Wait(); err != nil {
		vc.t.Fatalf("%s: login: %v", vc.name, err)
	}
}

func (vc *viewClient) selectBox(name string) *imap.SelectData {
	vc.t.Helper()
	data, err := vc.c.Select(name, nil).Wait()
	if err != nil {
		vc.t.Fatalf("%s: select: %v", vc.name, err)
	}
	vc.mu.Lock()
	vc.uids = make([]imap.UID, data.NumMessages)
	vc.mu.Unlock()
	vc.fillUIDs()
	return data
}

// fillUIDs fetches the UIDs of sequence numbers it has not seen yet.
func (vc *viewClient) fillUIDs() {
	vc.t.Helper()
	vc.mu.Lock()
	first := slices.Index(vc.uids, 0)
	n := len(vc.uids)
	vc.mu.Unlock()
	if first < 0 {
		return
	}
	msgs, err := vc.c.Fetch(imap.SeqSet{{Start: uint32(first + 1), Stop: uint32(n)}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		vc.t.Fatalf("%s: fetch uids: %v", vc.name, err)
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if len(msgs) != n-first {
		vc.events = append(vc.events, fmt.Sprintf("BAD-FILL fetched %d of %d:%d", len(msgs), first+1, n))
	}
	for _, m := range msgs {
		if int(m.SeqNum) <= len(vc.uids) {
			vc.uids[m.SeqNum-1] = m.UID
			vc.flags[m.UID] = m.Flags
		}
	}
}

// reached waits until cond holds (under the client's lock), up to timeout.
// Safe from any goroutine.
func (vc *viewClient) reached(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		vc.mu.Lock()
		ok := cond()
		vc.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-vc.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
}

// waitFor polls cond (under the client's lock) until it holds.
func (vc *viewClient) waitFor(what string, timeout time.Duration, cond func() bool) {
	vc.t.Helper()
	deadline := time.After(timeout)
	for {
		vc.mu.Lock()
		ok := cond()
		ev := strings.Join(vc.events, "; ")
		vc.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-vc.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			vc.t.Fatalf("%s: timed out waiting for %s; events: %s", vc.name, what, ev)
		}
	}
}

func (vc *viewClient) count() int {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return len(vc.uids)
}

// checkAgainstServer compares the client's view with UID SEARCH ALL and the
// flags it was told with a FETCH of FLAGS.
func (vc *viewClient) checkAgainstServer() {
	vc.t.Helper()
	vc.fillUIDs()
	data, err := vc.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		vc.t.Fatalf("%s: UID SEARCH: %v", vc.name, err)
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if got, want := vc.uids, data.AllUIDs(); !slices.Equal(got, want) {
		vc.t.Fatalf("%s: view %v, UID SEARCH ALL %v; events: %v", vc.name, got, want, vc.events)
	}
	for _, e := range vc.events {
		if strings.HasPrefix(e, "BAD") {
			vc.t.Fatalf("%s: inconsistent event %q in %v", vc.name, e, vc.events)
		}
	}
}

func (vc *viewClient) idle() *imapclient.IdleCommand {
	vc.t.Helper()
	cmd, err := vc.c.Idle()
	if err != nil {
		vc.t.Fatalf("%s: IDLE: %v", vc.name, err)
	}
	return cmd
}

func (vc *viewClient) done(cmd *imapclient.IdleCommand) {
	vc.t.Helper()
	if err := cmd.Close(); err != nil {
		vc.t.Fatalf("%s: DONE: %v", vc.name, err)
	}
	if err := cmd.Wait(); err != nil {
		vc.t.Fatalf("%s: IDLE end: %v", vc.name, err)
	}
}

// expungeDirect deletes message seq of INBOX over a direct upstream session.
func expungeDirect(t testing.TB, direct *imapclient.Client, seq uint32) {
	t.Helper()
	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := direct.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}

// directClient logs in to the upstream itself, bypassing the proxy.
func directClient(t testing.TB, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func testMessage(subject string) string {
	return "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: " + subject +
		"\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") +
		"@example.org>\r\nContent-Type: text/plain\r\n\r\nHello " + subject + "\r\n"
}

func appendMsg(t testing.TB, c *imapclient.Client, mailbox, body string, flags ...imap.Flag) imap.UID {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return data.UID
}
