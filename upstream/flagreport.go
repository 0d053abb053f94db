package upstream

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// A STORE's own answer says what it changed: every message whose flags it
// changed comes back as "* n FETCH (UID u MODSEQ (m) FLAGS (...))" (RFC
// 3501 6.4.6, with UID for UID STORE; RFC 7162 3.1.3: MODSEQ once
// CONDSTORE is enabled). MODSEQ orders such reports against each other and
// against the watcher's own reads (RFC 7162 3.1.2.1: every change raises
// it), so the watcher can put them into the model without a round trip
// (flagpost.go). Messages the STORE did not change (their flags already as
// asked, or expunged) are not reported: Dovecot 2.3 answers nothing for
// them.

// FlagState is one message's flags as the upstream reported them, with the
// MODSEQ of that state.
type FlagState struct {
	UID    imap.UID
	ModSeq uint64
	Flags  []imap.Flag
}

// maxUnchangedSince is the largest mod-sequence-valzer (RFC 7162 7:
// 2^63-1). A STORE UNCHANGEDSINCE it changes every message as a plain
// STORE would, and enables CONDSTORE (RFC 7162 3.1), so its answer carries
// MODSEQ.
const maxUnchangedSince = 1<<63 - 1

// CanReportFlags says whether StoreReport works on this upstream and is
// worth it for uids: a set larger than the watcher takes (maxPosted)
// runs .SILENT, so that its answer is not read and held for nothing.
func (c *Conn) CanReportFlags(uids imap.UIDSet) bool {
	return reportable(uids) && quirks.Has(c.Caps(), quirks.CondStore)
}

// reportable says whether uids names at most maxPosted messages.
func reportable(uids imap.UIDSet) bool {
	n := 0
	for _, r := range uids {
		if r.Stop == 0 || r.Stop < r.Start {
			return false // "*": as many as the mailbox holds
		}
		if n += int(r.Stop - r.Start + 1); n > maxPosted {
			return false
		}
	}
	return true
}

// StoreReport runs UID STORE (not .SILENT, UNCHANGEDSINCE 2^63-1) and
// returns the flag states its answer reported, by UID. Other FETCH
// responses that arrive with it (another connection's change, with UID and
// MODSEQ once CONDSTORE is on) are states too and are returned as well;
// one without UID, MODSEQ or FLAGS is left out.
func (c *Conn) StoreReport(uids imap.UIDSet, flags *imap.StoreFlags) ([]FlagState, error) {
	up := *flags
	up.Silent = false
	cmd := c.Store(uids, &up, &imap.StoreOptions{UnchangedSince: maxUnchangedSince})
	var out []FlagState
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		if st, ok := flagState(msg); ok {
			out = append(out, st)
		}
	}
	return out, cmd.Close()
}

// flagState reads one FETCH response of a STORE's answer.
func flagState(msg *imapclient.FetchMessageData) (FlagState, bool) {
	var st FlagState
	var hasFlags bool
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			st.UID = it.UID
		case imapclient.FetchItemDataModSeq:
			st.ModSeq = it.ModSeq
		case imapclient.FetchItemDataFlags:
			st.Flags, hasFlags = StripRecent(it.Flags), true
		}
	}
	return st, st.UID != 0 && st.ModSeq != 0 && hasFlags
}
