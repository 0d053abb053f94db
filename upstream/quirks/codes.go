package quirks

import "github.com/emersion/go-imap/v2"

// Transient reports a refusal that may succeed later (RFC 5530 3:
// UNAVAILABLE, SERVERBUG, INUSE, LIMIT): a login refused so is the
// upstream's trouble, not a wrong password (upstream/dial.go), and a
// SELECT refused so does not mean the mailbox is gone
// (upstream/watcher_sync.go).
func Transient(code imap.ResponseCode) bool {
	switch code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, imap.ResponseCodeInUse, imap.ResponseCodeLimit:
		return true
	}
	return false
}

// CredentialsRejected reports a login refusal that says the credentials
// themselves are wrong (RFC 5530 3: AUTHENTICATIONFAILED,
// AUTHORIZATIONFAILED, EXPIRED). Any other NO may mean anything: Gmail
// answers too many simultaneous connections with a bare NO [ALERT]
// (commonly reported; no idlemux test can reach Gmail), so only these
// end a watcher or evict a cached password (upstream/account.go,
// watcher.go; TestWatcherLoginRefusals, TestResponseCodes).
func CredentialsRejected(code imap.ResponseCode) bool {
	switch code {
	case imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed, imap.ResponseCodeExpired:
		return true
	}
	return false
}

// MailboxMissing reports an answer that says the named mailbox does not
// exist: NONEXISTENT (RFC 5530 3), or TRYCREATE on APPEND, COPY and MOVE
// (RFC 3501 6.3.11, 6.4.7). Dovecot 2.3 sends both: NONEXISTENT to
// SELECT, STATUS and DELETE, TRYCREATE to COPY and APPEND
// (proxy/lifecycle_dovecot_test.go TestDovecotDeletedMailboxRecreated).
func MailboxMissing(code imap.ResponseCode) bool {
	return code == imap.ResponseCodeNonExistent || code == imap.ResponseCodeTryCreate
}
