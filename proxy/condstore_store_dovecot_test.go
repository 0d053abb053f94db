package proxy

import "testing"

// TestDovecotCondstoreStore: a CONDSTORE-enabled session's STORE answers
// through idlemux as Dovecot answers it directly (RFC 7162 3.1.3): each
// FETCH response carries MODSEQ, for STORE and UID STORE; .SILENT and a
// STORE that changes nothing as Dovecot answers them; a session that
// enabled nothing gets no MODSEQ.
func TestDovecotCondstoreStore(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "APPEND INBOX two"},
		{"direct", "APPEND INBOX three"},
		{"plain", "SELECT INBOX"},
		{"plain", `STORE 1 +FLAGS (\Flagged)`},
		{"s", "SELECT INBOX (CONDSTORE)"},
		{"s", `STORE 1 +FLAGS (\Seen)`},
		{"s", `STORE 2 +FLAGS.SILENT (\Seen)`},
		{"s", `UID STORE 2:3 FLAGS (\Answered)`},
		{"s", `STORE 1 +FLAGS (\Seen)`}, // changes nothing
		{"s", `UID STORE 3 -FLAGS.SILENT (\Answered)`},
		{"s", "NOOP"},
		{"plain", "NOOP"},
		{"plain", `STORE 3 +FLAGS (\Draft)`},
		{"s", `STORE 1 +FLAGS (\Deleted)`}, // after another's change to 3
		{"s", "NOOP"},
	}, nil)
}
