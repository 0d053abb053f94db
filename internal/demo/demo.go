// Package demo runs an in-process IMAP server for `idlemux demo`, so the
// proxy can be tried without a real mail server. It is built on go-imap's
// in-memory server and drops a new message into INBOX periodically, so
// clients IDLEing through the proxy see push notifications.
package demo

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"
)

// Credentials of the only demo account.
const (
	Username = "demo"
	Password = "demo"
)

// Mailboxes the demo account has; Archive exists so MOVE has somewhere to go.
const (
	Inbox   = "INBOX"
	Archive = "Archive"
)

// SeedMessages is how many messages INBOX holds at start.
const SeedMessages = 3

// closeWait bounds how long Close waits for sessions to notice their
// connections were closed.
const closeWait = 5 * time.Second

// Upstream is a running demo IMAP server.
type Upstream struct {
	log  *zap.Logger
	ln   net.Listener
	srv  *imapserver.Server
	user *imapmemserver.User

	stop chan struct{}  // closed by Close to stop the ticker
	bg   sync.WaitGroup // Serve and ticker goroutines

	mu       sync.Mutex
	closed   bool
	sessions sync.WaitGroup // open sessions; Add only under mu while !closed

	closeOnce sync.Once
	closeErr  error
}

// Start listens on 127.0.0.1 on a free port and serves the demo account
// (demo/demo) over plaintext, LOGIN allowed. If every > 0 a new message is
// appended to INBOX at that interval; otherwise INBOX stays as seeded.
func Start(log *zap.Logger, every time.Duration) (*Upstream, error) {
	if log == nil {
		log = zap.NewNop()
	}
	u := &Upstream{
		log:  log,
		user: imapmemserver.NewUser(Username, Password),
		stop: make(chan struct{}),
	}
	for _, name := range []string{Inbox, Archive} {
		if err := u.user.Create(name, nil); err != nil {
			return nil, fmt.Errorf("demo: creating %s: %w", name, err)
		}
	}
	now := time.Now()
	for i, m := range seedMessages(now) {
		if err := u.append(m, now.Add(time.Duration(i-SeedMessages)*time.Hour)); err != nil {
			return nil, err
		}
	}

	u.srv = imapserver.New(&imapserver.Options{
		NewSession:   u.newSession,
		Caps:         caps(),
		Logger:       printfLogger{log},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	u.ln = ln

	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		if err := u.srv.Serve(ln); err != nil {
			u.log.Error("demo upstream stopped serving", zap.Error(err))
		}
	}()
	if every > 0 {
		u.bg.Add(1)
		go u.deliver(every)
	}
	log.Info("demo upstream listening", zap.String("addr", u.Addr()), zap.Duration("new_message_every", every))
	return u, nil
}

// caps is what the demo server advertises. The memserver implements each
// of these; CHILDREN is left out because it never reports \HasChildren or
// \HasNoChildren, which RFC 3348 requires of servers advertising it.
func caps() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:   {},
		imap.CapIdle:        {},
		imap.CapUIDPlus:     {},
		imap.CapMove:        {},
		imap.CapNamespace:   {},
		imap.CapUnselect:    {},
		imap.CapLiteralPlus: {},
		imap.CapSpecialUse:  {},
	}
}

// Addr is the host:port the server listens on.
func (u *Upstream) Addr() string {
	return u.ln.Addr().String()
}

// Close stops the ticker, closes the listener and every connection, and
// waits for their goroutines to finish.
func (u *Upstream) Close() error {
	u.closeOnce.Do(func() {
		u.mu.Lock()
		u.closed = true
		u.mu.Unlock()
		close(u.stop)
		u.closeErr = u.srv.Close()
		u.bg.Wait()

		done := make(chan struct{})
		go func() {
			u.sessions.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeWait):
			u.closeErr = errors.Join(u.closeErr, errors.New("demo: sessions still open after close"))
		}
	})
	return u.closeErr
}

// deliver appends a new message to INBOX every interval until Close. The
// memserver's mailbox tracker tells selected and IDLEing sessions about it.
func (u *Upstream) deliver(every time.Duration) {
	defer u.bg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for n := SeedMessages + 1; ; n++ {
		select {
		case <-u.stop:
			return
		case now := <-t.C:
			if err := u.append(newMessage(n, now), now); err != nil {
				u.log.Error("demo upstream: appending message", zap.Error(err))
				continue
			}
			u.log.Debug("demo upstream: new message in INBOX", zap.Int("n", n))
		}
	}
}

func (u *Upstream) append(msg []byte, at time.Time) error {
	_, err := u.user.Append(Inbox, bytes.NewReader(msg), &imap.AppendOptions{Time: at})
	if err != nil {
		return fmt.Errorf("demo: appending to %s: %w", Inbox, err)
	}
	return nil
}
