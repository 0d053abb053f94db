package imapcheck

// Rule names one rule a session's response stream must keep. Violations
// are counted per rule, so a known fault in one rule does not hide the
// others.
type Rule string

// The rules, each with where IMAP states it.
const (
	// Malformed: a response the strict parser refuses (RFC 3501 9).
	Malformed Rule = "malformed"
	// FetchRange: a FETCH names a number the session does not have
	// (RFC 3501 7.4.2: the number is a message sequence number of the
	// session's view, which only EXISTS grows, RFC 3501 5.5, 7.3.1).
	FetchRange Rule = "fetch-range"
	// SearchRange: a SEARCH result outside the session's view (RFC 3501
	// 7.2.5), or a UID SEARCH result that is not one of its messages.
	SearchRange Rule = "search-range"
	// ExpungeRange: an EXPUNGE of a number the session does not have: a
	// duplicate or invented expunge (RFC 3501 7.4.1).
	ExpungeRange Rule = "expunge-range"
	// ExistsShrink: EXISTS smaller than the session's count; only EXPUNGE
	// shrinks a mailbox (RFC 3501 7.3.1, 7.4.1): an expunge went missing.
	ExistsShrink Rule = "exists-shrink"
	// UIDStable: a number's UID changed while the message existed, or
	// UIDs do not ascend with numbers (RFC 3501 2.3.1.1).
	UIDStable Rule = "uid-stable"
	// ExpungeInFetch: EXPUNGE while answering FETCH, STORE or SEARCH, the
	// UID forms excepted (RFC 3501 7.4.1).
	ExpungeInFetch Rule = "expunge-during-fetch-store-search"
	// KeywordInFlags: a FETCH FLAGS uses a keyword that the last FLAGS
	// response did not list (RFC 3501 7.2.6).
	KeywordInFlags Rule = "keyword-in-flags"
	// BadAnswer: a valid command, naming only numbers of the session's
	// view, was answered BAD or NO (RFC 2180 4 lets a server answer only
	// OK, or NO for a FETCH of a message expunged elsewhere, 4.1.2).
	BadAnswer Rule = "refused-command"
	// OwnWrite: after the session's own APPEND, COPY, MOVE, STORE or
	// EXPUNGE completes, its view shows the change (RFC 3501 6.3.11,
	// 6.4.3, 6.4.6, 6.4.7; RFC 6851 3.3).
	OwnWrite Rule = "read-own-writes"
	// OthersWrite: a NOOP begun after another session's write completed
	// shows the change (RFC 3501 6.1.2, 5.2).
	OthersWrite Rule = "read-others-writes"
	// FinalState: after every session stopped and sent one NOOP, each
	// view's UIDs and flags equal what the upstream shows directly.
	FinalState Rule = "final-state"
	// TargetState: the other mailbox, which sessions only APPEND, COPY and
	// MOVE into, holds at the end exactly the messages the completed
	// commands' APPENDUID and COPYUID name, each once (RFC 4315 3), with
	// an APPEND's flags (RFC 3501 6.3.11) or the copier's own keywords of
	// the source (RFC 3501 6.4.7); a refused command created nothing.
	TargetState Rule = "target-mailbox"
)

// AllRules lists every rule, in report order.
var AllRules = []Rule{
	Malformed, FetchRange, SearchRange, ExpungeRange, ExistsShrink, UIDStable,
	ExpungeInFetch, KeywordInFlags, BadAnswer, OwnWrite, OthersWrite, FinalState,
	TargetState,
}
