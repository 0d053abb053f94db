package quirks

import "github.com/emersion/go-imap/v2"

// Feature is an upstream ability idlemux uses when the upstream offers it
// and works around when it does not.
type Feature int

const (
	// Idle: the watcher IDLEs on its own connection; without it, it polls
	// (upstream/watcher.go).
	Idle Feature = iota
	// Move: MOVE runs as UID MOVE upstream (proxy/copymove.go).
	Move
	// UIDExpunge: UID EXPUNGE goes upstream, and MOVE without Move runs
	// as COPY, STORE \Deleted, UID EXPUNGE (proxy/copymove.go).
	UIDExpunge
	// CondStore: SELECT (CONDSTORE), FETCH CHANGEDSINCE and STATUS
	// HIGHESTMODSEQ keep resyncs and polls cheap (upstream/watcher_sync.go,
	// polled.go, notifier.go), and a STORE's own answer confirms it
	// (upstream/flagreport.go).
	CondStore
	// Namespace: NAMESPACE is relayed; without it the personal namespace
	// is derived from LIST "" "" (proxy/mailboxes.go).
	Namespace
	// Binary: APPEND's literal8 goes upstream as literal8
	// (upstream/append8.go); without it, as a plain literal.
	Binary
	// SpecialUse: emulated LSUB asks for RETURN (SPECIAL-USE)
	// (proxy/lsub.go).
	SpecialUse
	// LoginDisabled: the password goes by AUTHENTICATE PLAIN, never LOGIN
	// (upstream/dial.go).
	LoginDisabled
	// UTF8Names: NOTIFY may name a mailbox in UTF-8 beside its modified
	// UTF-7 spelling, as a literal the server takes without a
	// continuation (upstream/notifier.go, notifycmd.go).
	UTF8Names
	// Notify: one connection per account watches the polled mailboxes
	// by NOTIFY (upstream/notifier.go, slots.go).
	Notify
)

// featureRow is one capability-keyed quirk: the feature holds when the
// upstream lists any of anyOf.
type featureRow struct {
	name   string
	anyOf  []imap.Cap
	source string
}

// features is the capability table. go-imap's CapSet.Has already counts
// the capabilities IMAP4rev2 implies; IMAP4rev2 is listed where RFC 9051
// makes the command part of the base protocol, so the table says so.
var features = [...]featureRow{
	Idle:          {"IDLE", []imap.Cap{imap.CapIdle, imap.CapIMAP4rev2}, "RFC 2177; RFC 9051 6.3.13 (IDLE in IMAP4rev2)"},
	Move:          {"MOVE", []imap.Cap{imap.CapMove, imap.CapIMAP4rev2}, "RFC 6851 3; RFC 9051 6.4.8"},
	UIDExpunge:    {"UID EXPUNGE", []imap.Cap{imap.CapUIDPlus, imap.CapIMAP4rev2}, "RFC 4315 2.1 (UIDPLUS); RFC 9051 6.4.9"},
	CondStore:     {"CONDSTORE", []imap.Cap{imap.CapCondStore}, "RFC 7162 3.1 (QRESYNC implies it: go-imap CapSet.Has)"},
	Namespace:     {"NAMESPACE", []imap.Cap{imap.CapNamespace}, "RFC 2342 5; RFC 9051 6.3.10"},
	Binary:        {"BINARY", []imap.Cap{imap.CapBinary}, "RFC 3516 4.4 (literal8 in APPEND)"},
	SpecialUse:    {"SPECIAL-USE", []imap.Cap{imap.CapSpecialUse}, "RFC 6154 2 (RETURN (SPECIAL-USE) only where advertised)"},
	LoginDisabled: {"LOGINDISABLED", []imap.Cap{imap.CapLoginDisabled}, "RFC 3501 6.2.3; RFC 9051 6.2.3"},
	Notify:        {"NOTIFY", []imap.Cap{"NOTIFY"}, "RFC 5465 (go-imap has no constant for it); Dovecot 2.3 offers it: TestDovecotNotifyPolledMailboxes"},
	UTF8Names:     {"LITERAL+", []imap.Cap{imap.CapLiteralPlus}, "RFC 7888 (non-synchronizing literals); a server that refuses the UTF-8 spelling gets the RFC one alone: TestNotifyRefusedUTF8Names, TestDovecotNotifyMailboxNames"},
}

// Has reports whether the upstream with caps offers f.
func Has(caps imap.CapSet, f Feature) bool {
	for _, c := range features[f].anyOf {
		if caps.Has(c) {
			return true
		}
	}
	return false
}

// MoveMethod is how a client's MOVE runs upstream.
type MoveMethod int

const (
	// MoveCommand: UID MOVE (RFC 6851).
	MoveCommand MoveMethod = iota
	// MoveByCopy: UID COPY, UID STORE +FLAGS.SILENT (\Deleted), UID
	// EXPUNGE, each step checked (RFC 6851 3.3 describes the equivalence;
	// UID EXPUNGE keeps other \Deleted messages, RFC 4315 2.1).
	MoveByCopy
	// MoveRefused: neither; the client gets NO [CANNOT] (RFC 5530).
	MoveRefused
)

// MoveBy says how MOVE runs on an upstream with caps.
func MoveBy(caps imap.CapSet) MoveMethod {
	switch {
	case Has(caps, Move):
		return MoveCommand
	case Has(caps, UIDExpunge):
		return MoveByCopy
	}
	return MoveRefused
}
