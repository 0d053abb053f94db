package demo

import (
	"bytes"
	"net/mail"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a demo upstream that is closed when the test ends.
func start(t *testing.T, every time.Duration) *Upstream {
	t.Helper()
	u, err := Start(zaptest.NewLogger(t), every)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return u
}

// login connects and logs in as demo/demo; opts may carry handlers.
func login(t *testing.T, u *Upstream, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(u.Addr(), opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(Username, Password).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// counter records the latest EXISTS count the server pushed.
type counter struct {
	mu  sync.Mutex
	n   uint32
	got chan struct{}
}

func newCounter() *counter { return &counter{got: make(chan struct{}, 100)} }

func (c *counter) options() *imapclient.Options {
	return &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages == nil {
				return
			}
			c.mu.Lock()
			c.n = *data.NumMessages
			c.mu.Unlock()
			select {
			case c.got <- struct{}{}:
			default:
			}
		},
	}}
}

// waitFor waits until the pushed count reaches want.
func (c *counter) waitFor(t *testing.T, want uint32) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		n := c.n
		c.mu.Unlock()
		if n >= want {
			return
		}
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("EXISTS: got %d, want >= %d within 10s", n, want)
		}
	}
}

func TestInboxIsSeeded(t *testing.T) {
	u := start(t, 0)
	c := login(t, u, nil)
	sel, err := c.Select(Inbox, nil).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if sel.NumMessages != SeedMessages {
		t.Fatalf("INBOX messages: got %d, want %d", sel.NumMessages, SeedMessages)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != SeedMessages {
		t.Fatalf("fetched: got %d messages, want %d", len(msgs), SeedMessages)
	}
	for _, m := range msgs {
		checkMessage(t, m.FindBodySection(section))
	}
}

// checkMessage asserts raw is a well-formed RFC 5322 message.
func checkMessage(t *testing.T, raw []byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("message has bare LF line endings:\n%s", raw)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	for _, h := range []string{"From", "To", "Subject", "Message-Id", "Date"} {
		if m.Header.Get(h) == "" {
			t.Errorf("header %s: got empty, want a value\n%s", h, raw)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	if _, err := mail.ParseAddress(m.Header.Get("From")); err != nil {
		t.Errorf("From header: %v", err)
	}
}

func TestNewMessageMessageIsWellFormed(t *testing.T) {
	checkMessage(t, newMessage(4, time.Now()))
}

func TestLoginRejectsWrongPassword(t *testing.T) {
	u := start(t, 0)
	c, err := imapclient.DialInsecure(u.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(Username, "wrong").Wait(); err == nil {
		t.Error("login with a wrong password: got success, want failure")
	}
}

func TestCapabilities(t *testing.T) {
	u := start(t, 0)
	c := login(t, u, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIdle, imap.CapUIDPlus, imap.CapMove, imap.CapNamespace, imap.CapUnselect, imap.CapLiteralPlus, imap.CapSpecialUse} {
		if !caps.Has(want) {
			t.Errorf("capability %s: got missing, want advertised (have %v)", want, caps)
		}
	}
	if caps.Has(imap.CapChildren) {
		t.Errorf("capability CHILDREN: got advertised, want missing (the memserver does not implement it)")
	}
}

// The advertised extensions must work, not just be listed.
func TestExtensionsWork(t *testing.T) {
	u := start(t, 0)
	c := login(t, u, nil)
	if _, err := c.Namespace().Wait(); err != nil {
		t.Errorf("NAMESPACE: %v", err)
	}
	if _, err := c.Select(Inbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	moved, err := c.Move(imap.SeqSetNum(1), Archive).Wait()
	if err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	if moved.UIDValidity == 0 || moved.DestUIDs == nil || moved.DestUIDs.String() == "" {
		t.Errorf("MOVE: got %+v, want COPYUID data (UIDPLUS)", moved)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Errorf("UNSELECT: %v", err)
	}
	st, err := c.Status(Archive, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 1 {
		t.Errorf("Archive after MOVE: got %d messages, want 1", *st.NumMessages)
	}
}

func TestNewMessagePushedDuringIdle(t *testing.T) {
	u := start(t, 50*time.Millisecond)
	cnt := newCounter()
	c := login(t, u, cnt.options())
	sel, err := c.Select(Inbox, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	cnt.waitFor(t, sel.NumMessages+1)
	if err := idle.Close(); err != nil {
		t.Fatalf("IDLE close: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
}

func TestNewMessageSeenAfterNoop(t *testing.T) {
	u := start(t, 20*time.Millisecond)
	cnt := newCounter()
	c := login(t, u, cnt.options())
	sel, err := c.Select(Inbox, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP: %v", err)
		}
		cnt.mu.Lock()
		n := cnt.n
		cnt.mu.Unlock()
		if n > sel.NumMessages {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("EXISTS after NOOP: got %d, want > %d", n, sel.NumMessages)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCloseDisconnectsClients(t *testing.T) {
	u, err := Start(zaptest.NewLogger(t), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialInsecure(u.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(Username, Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(Inbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("client still connected 5s after Close")
	}
	idle.Close()
	if err := u.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if _, err := imapclient.DialInsecure(u.Addr(), nil); err == nil {
		t.Error("dial after Close: got success, want refused")
	}
	goleak.VerifyNone(t)
}
