// Package memidle makes go-imap's in-memory server (imapmemserver) usable as
// an upstream for idlemux's tests and demo.
//
// Its SessionTracker.Idle only writes updates queued after IDLE started:
// a change queued while the session was between commands (for instance
// while it answered a FETCH, which holds EXPUNGE back) waits in the queue
// until the next, unrelated change. Real servers (Dovecot) send pending
// changes when IDLE starts. Wrap polls the tracker during IDLE instead.
package memidle

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// pollEvery is how often a wrapped session looks for queued updates while
// idling: far below any test's or demo's patience, cheap for a mem server.
const pollEvery = 20 * time.Millisecond

// Session wraps an imapmemserver session; it keeps NAMESPACE and MOVE.
type Session struct {
	imapserver.Session
}

// Wrap returns s with a working IDLE.
func Wrap(s imapserver.Session) *Session { return &Session{Session: s} }

// Idle writes every queued update, now and until stop.
func (s *Session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	return Idle(s.Session, w, stop)
}

// Idle is IDLE for any memserver session: it polls s until stop.
func Idle(s imapserver.Session, w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if err := s.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
	}
}

// Namespace forwards to the wrapped session.
func (s *Session) Namespace() (*imap.NamespaceData, error) {
	return s.Session.(imapserver.SessionNamespace).Namespace()
}

// Move forwards to the wrapped session.
func (s *Session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	return s.Session.(imapserver.SessionMove).Move(w, numSet, dest)
}
