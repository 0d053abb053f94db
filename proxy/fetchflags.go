package proxy

import (
	"bytes"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// A FETCH answered by the upstream can show a keyword the session was not
// told of in FLAGS yet: set a moment ago on another connection, before the
// watcher heard of it. RFC 3501 7.2.6 wants the FLAGS response first, as
// Dovecot sends it; the relay asks the session (flagAnnouncer) for the
// lines to put before such a response.

// flagAnnouncer returns what the relay calls with a response's flags: nil
// when the session knows them all, else the `* FLAGS` and PERMANENTFLAGS
// lines that cover them, counted as told. It runs on the session's
// command goroutine (the relay runs inside the FETCH).
func (sess *session) flagAnnouncer(sel *selection) func(flags [][]byte) []byte {
	return func(flags [][]byte) []byte {
		list, changed := sel.v.TakeMailboxFlags() // logged since the session was told
		if !changed {
			list, _ = sel.w.Mailbox().MailboxFlags()
		}
		var missing []imap.Flag
		for _, f := range flags {
			if !bytes.EqualFold(f, []byte(`\Recent`)) && !hasFlag(list, imap.Flag(f)) &&
				!slices.ContainsFunc(missing, func(m imap.Flag) bool { return strings.EqualFold(string(m), string(f)) }) {
				missing = append(missing, imap.Flag(f))
			}
		}
		if !changed && len(missing) == 0 {
			return nil
		}
		if len(missing) > 0 {
			list = append(slices.Clone(list), missing...)
		}
		return appendMailboxFlags(nil, list, sel.permanent(list))
	}
}

// flagTokens splits a FLAGS list's bytes, "(" flag SP ... ")", into flags.
func flagTokens(list []byte) [][]byte {
	list = bytes.TrimSuffix(bytes.TrimPrefix(list, []byte("(")), []byte(")"))
	return bytes.Fields(list)
}

// setsSeen reports whether a FETCH sets \Seen: a body section without
// PEEK does (RFC 3501 6.4.5), and so do RFC822 and RFC822.TEXT, which
// imapserver parses into such sections.
func setsSeen(o *imap.FetchOptions) bool {
	for _, s := range o.BodySection {
		if !s.Peek {
			return true
		}
	}
	for _, s := range o.BinarySection {
		if !s.Peek {
			return true
		}
	}
	return false
}
