package fanout

import "github.com/emersion/go-imap/v2"

type changeKind uint8

const (
	changeAdd changeKind = iota + 1
	changeExpunge
	changeFlags
	// changeMailboxFlags: the mailbox's FLAGS list changed (a new keyword,
	// RFC 3501 7.2.6). It carries no UIDs; sessions are told the list as
	// it is when they are told, before any FETCH that may use it.
	changeMailboxFlags
)

// change is one entry of a mailbox's change log.
type change struct {
	kind changeKind
	// uids holds the appended UIDs (ascending) of an add, or the single UID
	// of an expunge or a flag change; nil for a mailbox FLAGS change.
	uids []imap.UID
	// maxBefore is the model's largest added UID before this change applied:
	// it is maxUID(position of this change), see the package doc.
	maxBefore imap.UID
}
