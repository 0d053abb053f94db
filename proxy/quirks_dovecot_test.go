package proxy

import (
	"strings"
	"testing"
)

// Upstream capabilities decide how MOVE and UID EXPUNGE run
// (upstream/quirks: MoveBy, Has(UIDExpunge)). Dovecot's imap_capability
// makes it advertise less than it implements, which gives a real
// upstream without MOVE, or without MOVE and UIDPLUS.

// capsNoMove is Dovecot 2.3's post-login list without MOVE (and NOTIFY,
// which these tests do not need).
const capsNoMove = "IMAP4rev1 SASL-IR ID ENABLE IDLE UNSELECT CHILDREN NAMESPACE UIDPLUS CONDSTORE ESEARCH LIST-STATUS BINARY LITERAL+"

// TestDovecotMoveByCopy: on an upstream that lacks MOVE but has UIDPLUS,
// idlemux runs a client's MOVE as UID COPY, STORE \Deleted and UID
// EXPUNGE (quirks.MoveByCopy); the client sees what Dovecot's own MOVE
// sends it (COPYUID, the EXPUNGEs, OK), and the mailboxes end the same.
// Directly, Dovecot runs MOVE whatever it advertises, so the two sides
// are the same input and must give the same wire.
func TestDovecotMoveByCopy(t *testing.T) {
	steps := []step{
		{"A", "CREATE dest"},
		{"A", "APPEND INBOX one"},
		{"A", "APPEND INBOX two"},
		{"A", "APPEND INBOX three"},
		{"A", "SELECT INBOX"},
		{"A", `STORE 3 +FLAGS (\Deleted)`}, // must survive: UID EXPUNGE, not EXPUNGE
		{"A", "MOVE 1 dest"},
		{"A", "UID MOVE 2 dest"},
		{"A", "FETCH 1:* (UID FLAGS)"},
		{"A", "STATUS dest (MESSAGES UIDNEXT)"},
		{"B", "SELECT dest"},
		{"B", "FETCH 1:* (UID FLAGS)"},
	}
	compareScriptOn(t, "imap_capability = "+capsNoMove+"\n", steps, nil)
}

// TestDovecotNoMoveNoUIDPlus: on an upstream with neither MOVE nor
// UIDPLUS, MOVE and UID EXPUNGE get NO [CANNOT] (quirks.MoveRefused) and
// change nothing: idlemux will not send a command the upstream does not
// advertise, nor expunge other \Deleted messages with a plain EXPUNGE.
// This differs from Dovecot directly, which runs both whatever it
// advertises; so the test states what a client sees instead of
// comparing. CAPABILITY through idlemux lists neither, so a client that
// reads it does not try (RFC 6851 3, RFC 4315 2.1).
func TestDovecotNoMoveNoUIDPlus(t *testing.T) {
	const caps = "IMAP4rev1 SASL-IR ID ENABLE IDLE UNSELECT CHILDREN NAMESPACE LITERAL+"
	d := startDovecotConf(t, "imap_capability = "+caps+"\n")
	p := startProxy(t, testConfig(d.Addr))
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	rc.cmd("c", "CREATE dest")
	rc.appendLiteral("a1", "INBOX", testMessage("one"))
	rc.appendLiteral("a2", "INBOX", testMessage("two"))
	rc.cmd("s", "SELECT INBOX")
	tests := []struct{ name, cmd, want string }{
		{"CAPABILITY lists no MOVE", "CAPABILITY", "!MOVE"},
		{"CAPABILITY lists no UIDPLUS", "CAPABILITY", "!UIDPLUS"},
		{"MOVE refused", "MOVE 1 dest", "x NO [CANNOT]"},
		{"UID MOVE refused", "UID MOVE 2 dest", "x NO [CANNOT]"},
		{"UID EXPUNGE refused", "UID EXPUNGE 1", "x NO [CANNOT]"},
		{"INBOX kept both", "FETCH 1:* (UID)", "* 2 FETCH (UID 2)"},
		{"dest got nothing", "STATUS dest (MESSAGES)", `* STATUS "dest" (MESSAGES 0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := rc.cmd("x", tt.cmd)
			all := strings.Join(lines, "\n")
			if absent, ok := strings.CutPrefix(tt.want, "!"); ok {
				if !strings.HasPrefix(lines[0], "* CAPABILITY ") || strings.Contains(lines[0]+" ", " "+absent+" ") {
					t.Errorf("got %q, want a capability list without %s", lines, absent)
				}
				return
			}
			if !strings.Contains(all, tt.want) {
				t.Errorf("got %q, want a line with %q", lines, tt.want)
			}
		})
	}
}

// TestDovecotNamespaceWithoutCap: on an upstream that lacks NAMESPACE,
// idlemux asks LIST "" "" for the hierarchy delimiter and derives the
// personal namespace from it (RFC 2342; quirks.Namespace) instead of
// sending a command the upstream does not advertise; for Dovecot's
// default layout that is the answer Dovecot's own NAMESPACE gives
// (directly, Dovecot runs NAMESPACE whatever it advertises). With
// NAMESPACE advertised the command is relayed.
func TestDovecotNamespaceWithoutCap(t *testing.T) {
	tests := []struct {
		name, caps          string
		wantNamespace, list int // upstream commands for the client's NAMESPACE
	}{
		{"without NAMESPACE: derived", strings.Replace(capsNoMove, " NAMESPACE", "", 1), 0, 1},
		{"with NAMESPACE: relayed", capsNoMove, 1, 0},
	}
	steps := []step{{"A", "NAMESPACE"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := "imap_capability = " + tt.caps + "\n"
			dd := startDovecotConf(t, conf)
			want := runScript(t, dd.Addr, dd.Addr, steps)
			dv := startDovecotConf(t, conf)
			tapAddr, tap := startCommandTap(t, dv.Addr)
			p := startProxy(t, testConfig(tapAddr))
			got := runScript(t, p.Addrs()[0], dv.Addr, steps)
			counts := tap.take()
			if counts["NAMESPACE"] != tt.wantNamespace || counts["LIST"] != tt.list {
				t.Errorf("upstream commands: got NAMESPACE %d, LIST %d, want %d, %d (all: %v)",
					counts["NAMESPACE"], counts["LIST"], tt.wantNamespace, tt.list, counts)
			}
			diffWire(t, got, want)
		})
	}
}
