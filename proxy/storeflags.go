package proxy

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// silentStore is what a STORE .SILENT needs to answer as Dovecot does:
// for each message, the flags it will have if the STORE alone changes
// them, and which messages had changes the session was not told yet.
type silentStore struct {
	known  map[imap.UID][]imap.Flag
	untold map[imap.UID]bool
}

// knownFlags prepares a STORE .SILENT, before it runs upstream; nil
// without .SILENT, where the STORE's own FETCH responses tell the flags.
func (sess *session) knownFlags(uids imap.UIDSet, flags *imap.StoreFlags) *silentStore {
	if !flags.Silent {
		return nil
	}
	untold, cur := sess.sel.v.UntoldFlags(uids)
	st := &silentStore{known: make(map[imap.UID][]imap.Flag, len(cur)), untold: untold}
	for uid, f := range cur {
		st.known[uid] = applyStore(f, flags)
	}
	return st
}

// silent says how a STORE .SILENT answers for uid, whose flags are now
// cur. If someone else changed them since the session was last told, the
// answer carries them (Dovecot reports others' changes, RFC 3501 6.4.6
// silences only the STORE's own); if the STORE alone made them, nothing
// is written and Poll skips them (known). Otherwise (changed meanwhile by
// someone else) neither, and Poll reports them.
func (st *silentStore) silent(uid imap.UID, cur []imap.Flag) (write, known bool) {
	if st.untold[uid] {
		return true, true
	}
	want, ok := st.known[uid]
	return false, ok && sameFlags(want, cur)
}

// applyStore is the flag list a STORE leaves (RFC 3501 6.4.6): FLAGS
// replaces, +FLAGS adds, -FLAGS removes. \Recent is not the client's to
// change.
func applyStore(cur []imap.Flag, flags *imap.StoreFlags) []imap.Flag {
	var out []imap.Flag
	switch flags.Op {
	case imap.StoreFlagsSet:
		out = slices.Clone(flags.Flags)
	case imap.StoreFlagsAdd:
		out = slices.Clone(cur)
		for _, f := range flags.Flags {
			if !hasFlag(out, f) {
				out = append(out, f)
			}
		}
	case imap.StoreFlagsDel:
		out = slices.DeleteFunc(slices.Clone(cur), func(f imap.Flag) bool { return hasFlag(flags.Flags, f) })
	}
	return out
}

// sameFlags compares two flag lists as sets; flags compare without case
// (RFC 3501 2.3.2 names them case-insensitively).
func sameFlags(a, b []imap.Flag) bool {
	count := func(l []imap.Flag) int {
		n := 0
		for i, f := range l {
			if !hasFlag(l[:i], f) && !strings.EqualFold(string(f), `\Recent`) {
				n++
			}
		}
		return n
	}
	if count(a) != count(b) {
		return false
	}
	for _, f := range a {
		if !strings.EqualFold(string(f), `\Recent`) && !hasFlag(b, f) {
			return false
		}
	}
	return true
}

// hasFlag reports whether l holds f, without case.
func hasFlag(l []imap.Flag, f imap.Flag) bool {
	return slices.ContainsFunc(l, func(g imap.Flag) bool { return strings.EqualFold(string(g), string(f)) })
}
