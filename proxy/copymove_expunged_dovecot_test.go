package proxy

import "testing"

// TestDovecotCopyMoveNamingExpunged: COPY or MOVE of a set in which one
// message was expunged by another session, not yet told to this one,
// is refused whole by Dovecot (NO [EXPUNGEISSUED], RFC 2180 4.4.1) and
// the target stays as it was (RFC 3501 6.4.7: an unsuccessful COPY
// leaves the destination unchanged); through idlemux too. The STATUS of
// the target shows what was copied; the NOOP and FETCH what is left.
func TestDovecotCopyMoveNamingExpunged(t *testing.T) {
	seed := []step{
		{"X", "CREATE box"},
		{"X", "APPEND box one"},
		{"X", "APPEND box two"},
		{"X", "APPEND box three"},
		{"X", "CREATE other"},
		{"X", "LOGOUT"},
		{"A", "SELECT box"},
		{"B", "SELECT box"},
		{"B", `STORE 2 +FLAGS.SILENT (\Deleted)`},
		{"B", "EXPUNGE"},
	}
	check := []step{
		{"A", "STATUS other (MESSAGES UIDNEXT)"},
		{"A", "NOOP"},
		{"A", "FETCH 1:* (UID FLAGS)"},
	}
	tests := []struct {
		name string
		cmd  string
	}{
		{"COPY", "COPY 1:3 other"},
		{"UID COPY", "UID COPY 1:3 other"},
		{"MOVE", "MOVE 1:3 other"},
		{"UID MOVE", "UID MOVE 1:3 other"},
		{"COPY of the expunged one alone", "COPY 2 other"},
		{"MOVE of the expunged one alone", "MOVE 2 other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			compareScript(t, concat(seed, []step{{"A", tc.cmd}}, check), nil)
		})
	}
}
