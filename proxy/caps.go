package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// wantedCaps are the capabilities idlemux advertises downstream when the
// upstream has them. IDLE, UNSELECT, ENABLE and SASL-IR are always offered:
// imapserver provides them itself, and idlemux serves IDLE from its own
// model whatever the upstream does. CONDSTORE, QRESYNC, ID and COMPRESS are
// not offered: the pinned imapserver cannot advertise them.
var wantedCaps = []imap.Cap{
	imap.CapNamespace,
	imap.CapUIDPlus,
	imap.CapMove,
	imap.CapLiteralPlus,
	imap.CapSpecialUse,
	imap.CapChildren,
	imap.CapListStatus,
	imap.CapESearch,
	imap.CapBinary,
}

// initialCaps is what new connections get before any upstream login told us
// the upstream's real set: the bare minimum, or the operator's override.
func initialCaps(override []string) imap.CapSet {
	if len(override) == 0 {
		return intersectCaps(imap.CapSet{})
	}
	up := imap.CapSet{}
	for _, c := range override {
		up[imap.Cap(strings.ToUpper(c))] = struct{}{}
	}
	return intersectCaps(up)
}

// intersectCaps keeps the wanted capabilities the upstream has.
func intersectCaps(up imap.CapSet) imap.CapSet {
	// LITERAL+ is the command reader's (RFC 7888), whatever the upstream
	// has: imapserver must accept the non-synchronizing literals the
	// reader hands it.
	out := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapLiteralPlus: {}}
	for _, c := range wantedCaps {
		if up.Has(c) {
			out[c] = struct{}{}
		}
	}
	return out
}

type capName imap.Cap

func (c capName) String() string { return string(c) }

func capList(caps imap.CapSet) []fmt.Stringer {
	var names []string
	for c := range caps {
		names = append(names, string(c))
	}
	slices.Sort(names)
	out := make([]fmt.Stringer, len(names))
	for i, n := range names {
		out[i] = capName(n)
	}
	return out
}
