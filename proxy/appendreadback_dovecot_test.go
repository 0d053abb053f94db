package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// The tests here are why an APPEND's flags and MODSEQ are read back from
// the upstream (proxy/appendconfirm.go readAppended) rather than taken
// from the command: each failed when a message APPENDed with at most one
// flag went into the model with the command's flags and MODSEQ 0 until
// the watcher's own session read it (about 0.5 s later with Dovecot).

// TestDovecotAppendedUnknownModSeqAnswers: right after its APPEND, a
// CONDSTORE-enabled session's STORE or FETCH of the message that does
// not change it shows what Dovecot shows directly: nothing for a message
// whose MODSEQ did not move (RFC 7162 3.1.3), and never a FETCH without
// MODSEQ (RFC 7162 3.1.4).
func TestDovecotAppendedUnknownModSeqAnswers(t *testing.T) {
	tests := []struct {
		name  string
		flags string // the APPEND's flag list
		cmd   string // A's command right after its APPEND
	}{
		{"STORE that changes nothing", `(\Seen)`, `STORE 4 +FLAGS (\Seen)`},
		{"STORE over it and others", `(\Seen)`, `STORE 1:4 +FLAGS (\Seen)`},
		{"STORE -FLAGS of a flag it lacks", `()`, `STORE 4 -FLAGS (\Flagged)`},
		{"STORE UNCHANGEDSINCE that changes nothing", `(\Seen)`, `STORE 4 (UNCHANGEDSINCE 1000000) +FLAGS (\Seen)`},
		{"FETCH BODY of a seen message", `(\Seen)`, `FETCH 4 (BODY[HEADER.FIELDS (SUBJECT)])`},
		{"STORE that changes it", `()`, `STORE 4 +FLAGS (\Seen)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dd := startDovecot(t)
			want := appendThen(t, dd, nil, tc.flags, tc.cmd)
			dv := startDovecot(t)
			p := startProxy(t, testConfig(dv.Addr))
			got := appendThen(t, dv, p, tc.flags, tc.cmd)
			diffWire(t, got, want)
		})
	}
}

// appendThen seeds INBOX with three messages, has A select it with
// CONDSTORE (B idles once through p so that the watcher idles), APPENDs
// a message with flags on A and runs cmd on A at once; the transcript of
// A's commands.
func appendThen(t *testing.T, dv *dovecottest.Server, p *Server, flags, cmd string) []string {
	t.Helper()
	seed := seedInbox(t, dv, 3, true, imap.FlagSeen)
	seed.Logout().Wait()
	a, _ := confirmSessions(t, dv, p, "SELECT INBOX (CONDSTORE)")
	var out transcript
	msg := testMessage("appended")
	out.record("A", a, "b", fmt.Sprintf("APPEND INBOX %s {%d+}\r\n%s", flags, len(msg), msg))
	out.record("A", a, "c", cmd)
	return out
}

// TestDovecotAppendedFlagsServerAdds: Dovecot may store more flags than
// an APPEND names (here mail_attachment_detection adds $HasNoAttachment
// on save; RFC 3501 6.3.11 "SHOULD be set" sets no upper bound). A FETCH
// of FLAGS at once after the APPEND shows what Dovecot stored, as it
// does directly, not the command's list.
func TestDovecotAppendedFlagsServerAdds(t *testing.T) {
	const conf = "mail_attachment_detection_options = add-flags-on-save\n"
	dd := startDovecotConf(t, conf)
	want := appendThen(t, dd, nil, `(\Seen)`, "FETCH 4 (FLAGS)")
	dv := startDovecotConf(t, conf)
	p := startProxy(t, testConfig(dv.Addr))
	got := appendThen(t, dv, p, `(\Seen)`, "FETCH 4 (FLAGS)")
	// Compared: the FETCH's answer. Dovecot also announces, to the
	// session that appended only, the mailbox's FLAGS with the keyword it
	// created on save and no message carries ($HasAttachment); its other
	// sessions, idlemux's watcher among them, are not told, so neither is
	// this session through idlemux (a difference README states). A keyword
	// a message carries is announced (TestDovecotAppendConfirmedByItsAnswer).
	if g, w := fetchLine(wireShape(got)), fetchLine(wireShape(want)); g != w {
		t.Errorf("FETCH FLAGS at once after APPEND (\\Seen): got %q through idlemux, want %q as directly on Dovecot", g, w)
	}
}

// fetchLine is the first FETCH response of a transcript.
func fetchLine(lines []string) string {
	for _, l := range lines {
		if strings.Contains(l, " FETCH (") {
			return l
		}
	}
	return ""
}

// TestDovecotAppendedChangedBackBehindIdlemux: a message APPENDed through
// idlemux whose flags another client changes and changes back on Dovecot
// before the watcher's session reads it has a new MODSEQ with the same
// flags. Dovecot tells A, which was told of the message, a flag change
// (FETCH FLAGS with MODSEQ) at its next NOOP, and so does idlemux: the
// model holds the MODSEQ read back after the APPEND, so the watcher's
// read is a change (fanout SetModSeq), not a first MODSEQ.
func TestDovecotAppendedChangedBackBehindIdlemux(t *testing.T) {
	run := func(dv *dovecottest.Server, p *Server) []string {
		seed := seedInbox(t, dv, 3, true, imap.FlagSeen)
		seed.Logout().Wait()
		a, _ := confirmSessions(t, dv, p, "SELECT INBOX (CONDSTORE)")
		direct := dialRaw(t, dv.Addr)
		direct.cmd("l", "LOGIN "+testUser+" "+testPass)
		var out transcript
		msg := testMessage("appended")
		out.record("A", a, "b", fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(msg), msg))
		// Behind idlemux's back, well within Dovecot's 0.5 s before it
		// tells the watcher's IDLE.
		direct.cmd("d1", "SELECT INBOX")
		direct.cmd("d2", `UID STORE 4 +FLAGS.SILENT (\Flagged)`)
		direct.cmd("d3", `UID STORE 4 -FLAGS.SILENT (\Flagged)`)
		time.Sleep(2 * time.Second) // the watcher has read the message
		out.record("A", a, "n", "NOOP")
		return out
	}
	want := run(startDovecot(t), nil)
	dv := startDovecot(t)
	got := run(dv, startProxy(t, testConfig(dv.Addr)))
	diffWire(t, got, want)
}

// seedInbox dials dv and APPENDs n messages ("m0"...) to INBOX with
// flags, after a CONDSTORE SELECT when condstore (Dovecot numbers
// MODSEQs per message from the first one on); the caller adds what else
// it needs and logs out.
func seedInbox(t *testing.T, dv *dovecottest.Server, n int, condstore bool, flags ...imap.Flag) *imapclient.Client {
	t.Helper()
	seed := dv.Dial(t, testUser, testPass)
	if condstore {
		if _, err := seed.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		appendMsg(t, seed, "INBOX", testMessage(fmt.Sprintf("m%d", i)), flags...)
	}
	return seed
}
