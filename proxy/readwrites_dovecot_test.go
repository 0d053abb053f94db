package proxy

import "testing"

// TestDovecotReadYourWritesAcrossSessions (issue 9 item 2): once B's
// command that changes a mailbox has its tagged OK, session A with that
// mailbox selected sees the change at its very next command, as on
// Dovecot, which sends pending updates with any command's answer (RFC 3501
// 7, 7.4.1). Through idlemux B's command syncs the mailbox's watcher
// before its OK, whether or not B has the mailbox selected.
func TestDovecotReadYourWritesAcrossSessions(t *testing.T) {
	seed := []step{
		{"X", "CREATE box"},
		{"X", "APPEND box one"},
		{"X", "APPEND box two"},
		{"X", "CREATE other"},
		{"X", "APPEND other three"},
		{"X", "LOGOUT"},
		{"A", "SELECT box"},
	}
	check := []step{
		{"A", "NOOP"},
		{"A", "FETCH 1:* (UID FLAGS)"},
	}
	tests := []struct {
		name string
		b    []step
	}{
		{"APPEND without selecting", []step{{"B", "APPEND box four"}}},
		{"APPEND to another selected mailbox", []step{{"B", "SELECT other"}, {"B", "APPEND box four"}}},
		{"COPY into A's mailbox", []step{{"B", "SELECT other"}, {"B", "COPY 1 box"}}},
		{"MOVE into A's mailbox", []step{{"B", "SELECT other"}, {"B", "MOVE 1 box"}}},
		{"MOVE out of A's mailbox", []step{{"B", "SELECT box"}, {"B", "MOVE 1 other"}}},
		{"STORE", []step{{"B", "SELECT box"}, {"B", `STORE 2 +FLAGS (\Flagged)`}}},
		{"STORE .SILENT", []step{{"B", "SELECT box"}, {"B", `STORE 1 +FLAGS.SILENT (\Seen)`}}},
		{"EXPUNGE", []step{{"B", "SELECT box"}, {"B", `STORE 1 +FLAGS.SILENT (\Deleted)`}, {"B", "EXPUNGE"}}},
		{"UID EXPUNGE", []step{{"B", "SELECT box"}, {"B", `STORE 2 +FLAGS.SILENT (\Deleted)`}, {"B", "UID EXPUNGE 2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			compareScript(t, concat(seed, tc.b, check), nil)
		})
	}
}
