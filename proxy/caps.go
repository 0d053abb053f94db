package proxy

import (
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/upstream"
)

// Capabilities are the command reader's, before and after login, for
// every connection alike: imapserver's own lists (fixed per server, and
// with what imapserver implements but idlemux does not pass on, such as
// UTF8=ACCEPT) never reach a client.

// preLoginCaps is what every connection is offered before login, in
// Dovecot's order, whether or not idlemux has logged in upstream yet; the
// reader adds STARTTLS and AUTH=PLAIN or LOGINDISABLED (preAuthCaps). ID
// is the reader's own (cmdid.go); ENABLE and IDLE are listed before login
// as Dovecot lists them, for clients that plan ahead.
var preLoginCaps = []string{"IMAP4rev1", "SASL-IR", "ID", "ENABLE", "IDLE", "LITERAL+"}

// offer is one capability idlemux may offer after login.
type offer struct {
	cap imap.Cap
	// needsUpstream: offered only when the upstream has it (idlemux
	// passes the extension's commands or data through); the others are
	// idlemux's or imapserver's own and work whatever the upstream is.
	needsUpstream bool
}

// postLoginOffers is everything idlemux may offer after login, in
// Dovecot's order (so a client comparing the lists sees the same). What
// is not here is not offered, because it does not work end to end
// through idlemux: SORT, THREAD, MULTIAPPEND,
// CATENATE, LIST-EXTENDED, NOTIFY and the rest imapserver cannot carry,
// UTF8=ACCEPT (it would make imapserver send UTF-8 the upstream never
// enabled), LITERAL- (never beside LITERAL+, RFC 7888 4).
var postLoginOffers = []offer{
	{imap.CapIMAP4rev1, false},
	{imap.CapSASLIR, false},
	{imap.CapID, false},
	{imap.CapEnable, false},
	{imap.CapIdle, false}, // served from idlemux's own model
	{imap.CapUnselect, false},
	{imap.CapChildren, true},
	{imap.CapNamespace, true},
	{imap.CapUIDPlus, true},
	{imap.CapCondStore, true}, // the reader's (condstore.go), on the upstream's mod-sequences
	{imap.CapQResync, true},   // the reader's (qresync.go), from the upstream's answers
	{imap.CapESearch, true},
	{imap.CapListStatus, true},
	{imap.CapBinary, true}, // APPEND's literal8 goes upstream as literal8
	{imap.CapMove, true},
	{imap.CapLiteralPlus, false}, // the command reader's (RFC 7888)
	{imap.CapSpecialUse, true},
}

// serverCaps is what imapserver runs with: every capability whose
// commands or syntax it must accept. Its own lists are replaced by the
// reader's, so it needs no second server per upstream capability set.
func serverCaps() imap.CapSet {
	caps := imap.CapSet{}
	for _, o := range postLoginOffers {
		if o.cap == imap.CapCondStore || o.cap == imap.CapQResync {
			continue // the reader takes its syntax off before imapserver
		}
		caps[o.cap] = struct{}{}
	}
	return caps
}

// upstreamCaps is the capability set post-login lists are computed from:
// the operator's override (upstream.capabilities) of the account's upstream when set, else what the
// account's upstream announced after login.
func upstreamCaps(up *config.Upstream, acct *upstream.Account) imap.CapSet {
	if o := up.Capabilities; len(o) > 0 {
		up := imap.CapSet{}
		for _, c := range o {
			up[imap.Cap(strings.ToUpper(c))] = struct{}{}
		}
		return up
	}
	return acct.Caps()
}

// capsHideNotify says whether the operator's capability override leaves
// NOTIFY out: then idlemux does not use it upstream either (polled
// mailboxes stay polled, upstream/notifier.go).
func capsHideNotify(override []string) bool {
	if len(override) == 0 {
		return false
	}
	for _, c := range override {
		if strings.EqualFold(c, "NOTIFY") {
			return false
		}
	}
	return true
}

// postLoginCaps is the list offered after login to a client whose
// upstream has up, without APPENDLIMIT (which the reader adds when it
// writes the list: append_limit may be reloaded). The lists are shared:
// there are at most 2^len(postLoginOffers) of them.
func postLoginCaps(up imap.CapSet) *string {
	var mask uint32
	for i, o := range postLoginOffers {
		if !o.needsUpstream || up.Has(o.cap) {
			mask |= 1 << i
		}
	}
	if v, ok := capLists.Load(mask); ok {
		return v.(*string)
	}
	var names []string
	for i, o := range postLoginOffers {
		if mask&(1<<i) != 0 {
			names = append(names, string(o.cap))
		}
	}
	list := strings.Join(names, " ")
	v, _ := capLists.LoadOrStore(mask, &list)
	return v.(*string)
}

// capLists holds the post-login lists by the set of offers they hold.
var capLists sync.Map // uint32 -> *string

// withReaderCaps completes a post-login list with what the command reader
// itself implements: COMPRESS=DEFLATE (RFC 4978) when the config offers
// it, last as Dovecot lists it, whatever the upstream has (idlemux
// compresses the client's stream itself); and APPENDLIMIT (RFC 7889),
// which the reader enforces.
func withReaderCaps(list string, compress bool, limit uint32) string {
	if compress {
		list += " COMPRESS=DEFLATE"
	}
	return list + " APPENDLIMIT=" + strconv.FormatUint(uint64(limit), 10)
}
