package quirks

import "github.com/emersion/go-imap/v2"

// Dovecot 2.3 is the reference server (DEVELOPERS.md): where idlemux
// answers a client itself, it uses Dovecot's words, and where Dovecot's
// timing would show through idlemux, idlemux works around it here.

// Dovecot's texts that idlemux sends in its place.
const (
	// ByeMailboxGone is Dovecot's BYE to a session whose selected
	// mailbox was deleted, renamed or replaced elsewhere, at its next
	// command (proxy/lifecycle.go; TestDovecotDeletedMailboxRecreated).
	ByeMailboxGone = "IMAP session state is inconsistent, please relogin."
	// ByeOwnMailboxGone is Dovecot's BYE to the session that deleted its
	// own selected mailbox (same test).
	ByeOwnMailboxGone = "Selected mailbox was deleted, have to disconnect."
	// AuthFailedText is Dovecot's NO [AUTHENTICATIONFAILED] text, with
	// the period imapserver's ErrAuthFailed lacks (proxy/loginfail.go;
	// TestDovecotWrongPasswordAnswer).
	AuthFailedText = "Authentication failed."
)

// Timing and ordering that idlemux works around, whatever the server:
// each is a fact of the reference server (or of go-imap's imapserver, a
// test peer) that no capability announces.
const (
	// LateNotifications: a watcher hears of another connection's change
	// only after the server chooses to tell its IDLE (Dovecot batches
	// for NOTIFY_DELAY_MSECS, 500 ms: ../shared/notes/dovecot.md), so a
	// SELECT asks the watcher to Sync first: SELECT reports the mailbox
	// as it is now (RFC 3501 6.3.1; proxy/selected.go;
	// TestDovecotFolderWalkRoundTrips fails without it).
	LateNotifications = true
	// ExpungeHeldAfterFetch: a server may hold EXPUNGE back while it
	// answers FETCH (RFC 3501 7.4.1) and send it only at the next
	// command, not when IDLE starts (go-imap's imapserver does): after a
	// FETCH the watcher runs a NOOP to collect it
	// (upstream/watcher_sync.go; TestWatcherCollectsHeldExpunge).
	ExpungeHeldAfterFetch = true
	// StatusOfSelectedLags: STATUS of a connection's own selected
	// mailbox may answer from what that session was last told, not what
	// is there now (Dovecot does; RFC 3501 6.3.10 advises against STATUS
	// of the selected mailbox for this reason), so a poll runs a NOOP
	// first on such a connection (upstream/polled.go, and a client's
	// STATUS, proxy/statuslocal.go; TestDovecotStatusFromModel,
	// TestDovecotNotifyPolledMailboxes fail without it).
	StatusOfSelectedLags = true
)

// MaxCommandLine bounds a command line idlemux composes itself (NOTIFY
// SET with many mailboxes, upstream/notifycmd.go). Dovecot refuses lines
// past imap_max_line_length (64 KiB by default); a quarter of that
// leaves room for a server with a smaller limit. RFC 7162 4 recommends
// clients keep to about 8192 octets: a server that holds to that refuses
// the NOTIFY, and its mailboxes stay polled (TestNotifyTroubleFallsBackToPolling).
const MaxCommandLine = 16 << 10

// NonEmptyStatus returns o, or MESSAGES alone when o asks for nothing:
// STATUS needs at least one item (RFC 3501 9 grammar, "status" takes
// 1*status-att; Dovecot answers BAD to an empty list), and a client's
// STATUS whose only item idlemux answers itself (RECENT) must still go
// upstream to say whether the mailbox exists (proxy/mailboxes.go
// upstreamStatusOptions).
func NonEmptyStatus(o imap.StatusOptions) imap.StatusOptions {
	if o == (imap.StatusOptions{}) {
		o.NumMessages = true
	}
	return o
}
