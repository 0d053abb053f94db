package demo

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/idlemux/idlemux/internal/memidle"
)

// session is the memserver's user session with our own Login and Close.
// It exists so Close can wait for sessions: imapserver.Server.Close closes
// connections but does not wait for their goroutines.
type session struct {
	*imapmemserver.UserSession // nil until Login
	u                          *Upstream
}

var _ imapserver.Session = (*session)(nil)

// newSession refuses connections that race with Close, so no session is
// counted after Close started waiting.
func (u *Upstream) newSession(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Demo server shutting down"}
	}
	u.sessions.Add(1)
	return &session{u: u}, nil, nil
}

func (s *session) Login(username, password string) error {
	if err := s.u.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.u.user)
	return nil
}

// Idle polls: imapmemserver's own IDLE misses changes queued before it
// started (see package memidle).
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	return memidle.Idle(s.UserSession, w, stop)
}

func (s *session) Close() error {
	defer s.u.sessions.Done()
	return s.UserSession.Close() // nil-safe
}
