package upstream

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// What a message APPENDed with a given flag list holds right after, when
// that can be known without asking: RFC 3501 6.3.11 stores the message
// with the flags the APPEND named ("If a flag parenthesized list is
// specified, the flags SHOULD be set in the resulting message"), and the
// server adds only \Recent, which the model keeps apart (fanout/recent.go).
// The one thing the answer cannot give is its order: a server writes a
// message's flags in an order of its own (Dovecot: the system flags in a
// fixed order, then keywords by index), so only a list of at most one
// flag is taken; with more, the connection that appended reads them
// (ReadAppended). The MODSEQ is unknown (0): APPEND's answer does not
// carry it (RFC 7162 3.1.4), and the watcher's own session reads it
// when it hears of the message; until then the model answers nothing
// that needs it (a FETCH of MODSEQ goes upstream).

// systemFlags are the flags RFC 3501 2.3.2 defines that a client may set
// (\Recent is the server's), in their canonical spelling: flags are
// matched case-insensitively (RFC 3501 9, flag-keyword and flag-extension
// are atoms, and servers answer the canonical form).
var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// AppendedState returns the state of the message uid that an APPEND with
// flags just stored, with MODSEQ 0 (unknown), when it can be known from
// the command alone: false for more than one distinct flag, for \Recent,
// and for any other backslash flag (the server refuses or maps those).
// A keyword is taken as spelled: PostAppended refuses one the mailbox's
// FLAGS do not list word for word, and the caller then Syncs.
func AppendedState(uid imap.UID, flags []imap.Flag) (FlagState, bool) {
	var one imap.Flag
	for _, f := range flags {
		c, ok := canonicalFlag(f)
		if !ok {
			return FlagState{}, false
		}
		if one != "" && c != one {
			return FlagState{}, false // more than one: the server's order is unknown
		}
		one = c
	}
	st := FlagState{UID: uid, Flags: []imap.Flag{}}
	if one != "" {
		st.Flags = []imap.Flag{one}
	}
	return st, uid != 0
}

// canonicalFlag returns f as a server writes it: a system flag in its
// canonical spelling, a keyword as it is; false for \Recent and other
// backslash flags.
func canonicalFlag(f imap.Flag) (imap.Flag, bool) {
	if !strings.HasPrefix(string(f), `\`) {
		return f, f != ""
	}
	for _, s := range systemFlags {
		if strings.EqualFold(string(f), string(s)) {
			return s, true
		}
	}
	return "", false
}
