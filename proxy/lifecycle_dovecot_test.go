package proxy

import (
	"testing"
	"time"

	"github.com/idlemux/idlemux/config"
)

// TestDovecotDeletedMailboxRecreated (issue 9 item 1): a mailbox deleted
// or renamed away and created again is a new mailbox with a new
// UIDVALIDITY (RFC 3501 2.3.1.1, 6.3.4, 6.3.5), whoever deleted it. Each
// script runs on a fresh Dovecot directly and on another through idlemux,
// whose watcher lingers (a minute) and whose pool keeps the old mailbox
// selected unless told.
//
// What Dovecot 2.3 does to a session whose selected mailbox goes: its
// next command gets "* BYE IMAP session state is inconsistent, please
// relogin." and the connection closes, with no tagged answer (the session
// that deleted it itself: "* BYE Selected mailbox was deleted, have to
// disconnect."). A session still selected once the mailbox is created
// again gets "* NO Internal error" and its old messages from Dovecot,
// which no client can use; the scripts tell such sessions at the next
// command, before the mailbox comes back.
func TestDovecotDeletedMailboxRecreated(t *testing.T) {
	seed := []step{
		{"A", "CREATE box"},
		{"A", "APPEND box one"},
		{"A", "APPEND box two"},
		{"A", "SELECT box"},
		{"A", `STORE 1 +FLAGS (\Flagged)`}, // a pool connection selects box
		{"A", "LOGOUT"},
		{"C", "SELECT box"},
	}
	recreate := []step{
		{"B", "CREATE box"},
		{"B", "APPEND box three"},
		{"B", "SELECT box"},
		{"B", `STORE 1 +FLAGS (\Deleted)`},
		{"B", "FETCH 1:* (UID FLAGS)"},
		{"D", "STATUS box (MESSAGES UIDNEXT)"}, // Dovecot adds [CLIENTBUG] for the selected mailbox
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"DELETE through idlemux", concat(seed, []step{
			{"B", "DELETE box"},
			{"C", "NOOP"},
		}, recreate)},
		{"RENAME away through idlemux", concat(seed, []step{
			{"B", "RENAME box away"},
			{"C", "NOOP"},
		}, recreate, []step{
			{"B", "SELECT away"},
			{"B", "FETCH 1:* (UID FLAGS)"},
		})},
		{"RENAME away and back through idlemux", concat(seed, []step{
			{"B", "RENAME box away"},
			{"C", "NOOP"},
			{"B", "RENAME away box"},
			{"B", "SELECT box"},
			{"B", `STORE 1 +FLAGS (\Deleted)`},
			{"B", "FETCH 1:* (UID FLAGS)"},
		})},
		{"DELETE of its own selected mailbox", concat(seed, []step{
			{"B", "SELECT box"},
			{"B", "DELETE box"},
			{"C", "NOOP"},
			{"B", "NOOP"},
			{"D", "CREATE box"},
			{"D", "APPEND box three"},
			{"D", "SELECT box"},
			{"D", "FETCH 1:* (UID FLAGS)"},
		})},
		// C stays out: Dovecot's notice to idlemux's watcher races with
		// C's next command, and once the mailbox is back Dovecot itself
		// answers C with "* NO Internal error".
		{"DELETE directly on Dovecot", concat(seed[:len(seed)-1], []step{
			{"direct", "DELETE box"},
		}, recreate)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			compareScript(t, tc.steps, func(c *config.Config) { c.Upstream.WatcherLinger = time.Minute })
		})
	}
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
