package proxy

import (
	"slices"
	"strings"
	"testing"
)

// TestDovecotCondstoreEnableSelect: ENABLE CONDSTORE and SELECT/EXAMINE
// (CONDSTORE) answer through idlemux as Dovecot answers them directly
// (RFC 7162 3.1, 3.1.2.1, 3.1.8): "* ENABLED CONDSTORE", each time it is
// asked; "* OK [HIGHESTMODSEQ n]" in SELECT and EXAMINE once enabled,
// also after another client changed a flag; a session that enabled
// nothing gets none while no client enabled it on the mailbox.
func TestDovecotCondstoreEnableSelect(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "APPEND INBOX two"},
		{"plain", "SELECT INBOX"},
		{"plain", "EXAMINE INBOX"},
		{"e", "SELECT INBOX"}, // before any client enabled CONDSTORE
		{"a", "ENABLE CONDSTORE"},
		{"a", "ENABLE CONDSTORE"},
		{"a", "ENABLE condstore X"}, // X is not offered
		{"a", "SELECT INBOX"},
		{"a", "EXAMINE INBOX"},
		{"b", "SELECT INBOX (CONDSTORE)"},
		{"b", "EXAMINE INBOX"},
		{"c", "EXAMINE INBOX (condstore)"},
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 1 +FLAGS (\\Flagged)"},
		{"d", "SELECT INBOX (CONDSTORE)"},
		{"e", "ENABLE CONDSTORE"}, // selected: HIGHESTMODSEQ first
		{"e", "ENABLE CONDSTORE"},
		{"a", "SELECT INBOX"},
		// Not compared: a later SELECT by "plain". Dovecot sends
		// HIGHESTMODSEQ to every client once any client enabled
		// CONDSTORE on a mailbox (its index then keeps mod-sequences),
		// which idlemux's watcher always does upstream; idlemux keeps
		// sessions that enabled nothing as they were (RFC 7162 3.1.2.1
		// requires it only of enabled ones).
	}, nil)
}

// TestDovecotCondstoreNotOffered: where the account's upstream lacks
// CONDSTORE (here: the operator's capability override leaves it out)
// idlemux neither offers nor enables it, and leaves SELECT's parameter to
// imapserver, which refuses it.
func TestDovecotCondstoreNotOffered(t *testing.T) {
	dv := startDovecot(t)
	cfg := testConfig(dv.Addr)
	cfg.Upstream.Capabilities = []string{"IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE"}
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	for _, tc := range []struct{ name, cmd, want string }{
		{"capability", "CAPABILITY", "* CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE UNSELECT NAMESPACE UIDPLUS MOVE LITERAL+"},
		{"enable", "ENABLE CONDSTORE", "e OK Enabled."},
		{"select (condstore)", "SELECT INBOX (CONDSTORE)", "e BAD"},
		{"select", "SELECT INBOX", "* 0 EXISTS"},
	} {
		got := rc.cmd("e", tc.cmd)
		if !strings.HasPrefix(got[0], tc.want) || !strings.HasPrefix(got[len(got)-1], "e ") || slices.ContainsFunc(got, func(l string) bool {
			return strings.Contains(l, "CONDSTORE") || strings.Contains(l, "MODSEQ")
		}) {
			t.Errorf("%s: got %q, want %q first and no CONDSTORE or MODSEQ", tc.name, got, tc.want)
		}
	}
}

// TestDovecotCondstoreStatus: STATUS with HIGHESTMODSEQ (RFC 7162 3.1.3)
// answers through idlemux as Dovecot answers directly, the item last,
// alone or with others, on the selected mailbox too, and after another
// client's change; it enables CONDSTORE, so a later SELECT reports
// HIGHESTMODSEQ. A STATUS without it is unchanged.
func TestDovecotCondstoreStatus(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "CREATE Other"},
		{"direct", "CREATE Third"},
		{"u", "EXAMINE Third"}, // before any client enabled CONDSTORE on it
		{"plain", "STATUS INBOX (MESSAGES UIDNEXT)"},
		{"s", "STATUS INBOX (HIGHESTMODSEQ)"},
		{"s", "STATUS INBOX (UIDNEXT highestmodseq MESSAGES)"},
		{"s", "STATUS Other (HIGHESTMODSEQ UNSEEN RECENT)"},
		{"s", "SELECT INBOX"},
		{"s", "STATUS INBOX (MESSAGES HIGHESTMODSEQ)"},
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 1 +FLAGS (\\Flagged)"},
		{"t", "STATUS INBOX (HIGHESTMODSEQ MESSAGES)"},
		{"u", "STATUS Other (HIGHESTMODSEQ)"}, // enables, selected: HIGHESTMODSEQ first
		// Not compared: "s" asking STATUS of its own selected mailbox now.
		// Dovecot answers what s was last told (HIGHESTMODSEQ 2), idlemux
		// the upstream's current value (3), as for MESSAGES (statusShared;
		// RFC 3501 6.3.10 advises against STATUS there).
		{"plain", "STATUS INBOX (MESSAGES UNSEEN)"},
	}, nil)
}

// TestDovecotCondstoreFetch: FETCH with the MODSEQ item and with
// (CHANGEDSINCE m) (RFC 7162 3.1.4, 3.1.4.1) answers through idlemux as
// Dovecot answers directly: MODSEQ where asked, in the order asked, only
// the messages changed since m, after another client's change too; an
// invalid value is refused as Dovecot refuses it. A FETCH without them is
// unchanged (no MODSEQ), also for an enabled session.
func TestDovecotCondstoreFetch(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "APPEND INBOX two"},
		{"direct", "APPEND INBOX three"},
		{"plain", "SELECT INBOX"},
		{"plain", "FETCH 1:* (FLAGS)"},
		{"f", "SELECT INBOX"},
		{"f", "FETCH 1:* (FLAGS)"},
		{"f", "FETCH 1:* (MODSEQ)"}, // enables: HIGHESTMODSEQ first
		{"f", "FETCH 1 (MODSEQ FLAGS UID)"},
		{"f", "UID FETCH 1:* (FLAGS modseq)"},
		{"f", "FETCH 2 MODSEQ"},
		{"f", "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"},
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 2 +FLAGS (\\Flagged)"},
		{"g", "SELECT INBOX (CONDSTORE)"},
		{"g", "FETCH 1:* (FLAGS) (CHANGEDSINCE 4)"},
		{"g", "UID FETCH 1:* (UID FLAGS) (changedsince 4)"},
		{"g", "FETCH 1:* (MODSEQ) (CHANGEDSINCE 5)"},
		{"g", "FETCH 1:* (FLAGS RFC822.SIZE) (CHANGEDSINCE 1)"},
		{"g", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (MODSEQ Subject)] MODSEQ)"},
		{"g", "FETCH 1 (FLAGS) (CHANGEDSINCE x)"},
		{"g", "FETCH 1:* (FLAGS)"},
		{"plain", "NOOP"},
		{"plain", "FETCH 1:* (UID FLAGS)"},
	}, nil)
}

// TestDovecotCondstoreSearch: SEARCH with a MODSEQ key (RFC 7162 3.1.5)
// answers through idlemux as Dovecot answers directly, with "(MODSEQ n)"
// after the numbers, none when nothing matches; a MODSEQ with an entry
// name and type too.
func TestDovecotCondstoreSearch(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "APPEND INBOX two"},
		{"direct", "APPEND INBOX three"},
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 2 +FLAGS (\\Flagged)"},
		{"s", "SELECT INBOX"},
		{"s", "SEARCH MODSEQ 2"},
		{"direct", "STORE 3 +FLAGS (\\Answered)"},
		{"s", "NOOP"}, // told with MODSEQ, now that s enabled CONDSTORE
		{"s", "UID SEARCH MODSEQ 5"},
		{"s", "SEARCH UNSEEN MODSEQ 5"},
		{"s", "SEARCH MODSEQ 6"},
		{"s", "SEARCH MODSEQ \"/flags/\\\\flagged\" all 1 NOT DELETED"},
		{"s", "SEARCH SEEN"},
	}, nil)
}
