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

// TestDovecotCondstoreUnchangedSince: STORE and UID STORE with
// (UNCHANGEDSINCE m) (RFC 7162 3.1.3) answer through idlemux as Dovecot
// answers directly: the messages not changed since m are stored and
// reported with MODSEQ (.SILENT too), the others are not stored and are
// named in OK [MODIFIED set], by number for STORE and by UID for UID
// STORE; UNCHANGEDSINCE 0 fails every message; it enables CONDSTORE; an
// invalid value is refused as Dovecot refuses it. The section's examples
// where Dovecot can answer them: all pass (example 3), some fail
// (example 5, MODIFIED), a later change by another session.
func TestDovecotCondstoreUnchangedSince(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "APPEND INBOX two"},
		{"direct", "APPEND INBOX three"},
		{"direct", "APPEND INBOX four"},
		// Before any client enabled CONDSTORE (TestDovecotCondstoreEnableSelect).
		{"plain", "SELECT INBOX"},
		{"s", "SELECT INBOX (CONDSTORE)"},
		{"s", `UID STORE 3,1,4 (UNCHANGEDSINCE 100) +FLAGS.SILENT (\Deleted)`},
		{"direct", "SELECT INBOX"},
		{"direct", `STORE 2 +FLAGS ($X)`},
		{"s", `STORE 1:3 (UNCHANGEDSINCE 6) -FLAGS.SILENT (\Deleted)`},
		{"s", "NOOP"},
		{"s", `UID STORE 1:4 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`},
		{"s", `STORE 4 (unchangedsince 1000) +FLAGS (\Flagged)`},
		{"s", `STORE 1,4 (UNCHANGEDSINCE 9) +FLAGS (\Answered)`},
		{"s", `STORE 1 (UNCHANGEDSINCE x) +FLAGS (\Flagged)`},
		{"plain", "NOOP"},
		{"plain", `STORE 1 (UNCHANGEDSINCE 1000) +FLAGS (\Draft)`}, // enables
		{"plain", "NOOP"},
	}, nil)
}

// TestDovecotCondstoreFetchSetsSeen: a FETCH that sets \Seen (RFC 3501
// 6.4.5) for a CONDSTORE-enabled session answers through idlemux as
// Dovecot answers directly, and so does the NOOP after it, for an
// enabled session and for one that enabled nothing.
func TestDovecotCondstoreFetchSetsSeen(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"direct", "APPEND INBOX two"},
		{"plain", "SELECT INBOX"},
		{"s", "SELECT INBOX (CONDSTORE)"},
		{"s", "FETCH 1 (FLAGS BODY[TEXT])"},
		{"s", "NOOP"},
		{"s", "UID FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)])"},
		{"s", "NOOP"},
		{"plain", "NOOP"},
	}, nil)
}
