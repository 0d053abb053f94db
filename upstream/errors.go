package upstream

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// ErrAuthFailed means the upstream rejected the credentials. It is permanent:
// no retry turns it into a success.
var ErrAuthFailed = errors.New("upstream rejected the credentials")

// ErrStaleConn marks a pooled connection that failed before the command
// was sent (its SELECT or NOOP): retrying on a fresh one is always safe.
var ErrStaleConn = errors.New("pooled upstream connection no longer usable")

// authError is ErrAuthFailed with the upstream's answer.
type authError struct{ ie *imap.Error }

func (e *authError) Error() string        { return ErrAuthFailed.Error() + ": " + e.ie.Error() }
func (e *authError) Is(target error) bool { return target == ErrAuthFailed }
func (e *authError) Unwrap() error        { return e.ie }

// definitelyRejected reports a login refusal that says the credentials
// themselves are wrong, not a plain NO that may mean anything
// (quirks.CredentialsRejected).
func definitelyRejected(err error) bool {
	var ae *authError
	return errors.As(err, &ae) && quirks.CredentialsRejected(ae.ie.Code)
}

// ErrMailboxGone means the upstream refuses to open the mailbox (deleted,
// renamed, no longer permitted): permanent for its watcher.
var ErrMailboxGone = errors.New("mailbox cannot be opened upstream")

// ErrClosed is returned once the Manager is shut down.
var ErrClosed = errors.New("upstream manager closed")

// UnavailableError wraps a transport-level failure toward the upstream
// (dial, TLS, timeout, dropped connection). Clients see NO [UNAVAILABLE];
// the cause goes to the log.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "upstream unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

func unavailable(format string, args ...any) error {
	return &UnavailableError{Err: fmt.Errorf(format, args...)}
}

// IsProtocol reports whether err is the upstream's own NO or BAD answer,
// which is passed to the client as it is.
func IsProtocol(err error) (*imap.Error, bool) {
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type != imap.StatusResponseTypeBye {
		return ie, true
	}
	return nil, false
}
