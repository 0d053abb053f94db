package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDovecotQResyncEnable: ENABLE with QRESYNC answers through idlemux
// as Dovecot answers directly (RFC 7162 3.2.3, RFC 5161): "* ENABLED"
// names what was asked, in the order asked, each time it is asked;
// QRESYNC alone enables CONDSTORE without naming it, so a later SELECT
// reports HIGHESTMODSEQ; enabling with a mailbox selected announces its
// HIGHESTMODSEQ first.
func TestDovecotQResyncEnable(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"d", "SELECT INBOX"}, // before any client enabled CONDSTORE on it
		{"a", "ENABLE QRESYNC"},
		{"a", "ENABLE QRESYNC"},
		{"a", "SELECT INBOX"},
		{"b", "ENABLE CONDSTORE QRESYNC"},
		{"c", "ENABLE qresync X condstore"},
		{"d", "ENABLE QRESYNC"}, // selected: HIGHESTMODSEQ first
		{"e", "ENABLE CONDSTORE"},
		{"e", "ENABLE QRESYNC"},
	}, nil)
}

// TestDovecotQResyncNotOffered: where the account's upstream lacks
// QRESYNC (the operator's capability override leaves it out, CONDSTORE
// kept) idlemux neither offers nor enables it, nor VANISHED.
func TestDovecotQResyncNotOffered(t *testing.T) {
	dv := startDovecot(t)
	cfg := testConfig(dv.Addr)
	cfg.Upstream.Capabilities = []string{"IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE"}
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	for _, tc := range []struct {
		name, cmd string
		want      []string
	}{
		{"capability", "CAPABILITY", []string{"* CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE UNSELECT UIDPLUS CONDSTORE MOVE LITERAL+ COMPRESS=DEFLATE APPENDLIMIT=", "e OK"}},
		{"enable", "ENABLE QRESYNC", []string{"e OK Enabled."}},
		{"enable both", "ENABLE CONDSTORE QRESYNC", []string{"* ENABLED CONDSTORE", "e OK Enabled."}},
	} {
		got := rc.cmd("e", tc.cmd)
		if len(got) != len(tc.want) || !slices.EqualFunc(got, tc.want, strings.HasPrefix) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDovecotQResyncVanished: a session that enabled QRESYNC is told of
// expunges as "* VANISHED uids", never EXPUNGE (RFC 7162 3.2.10), one
// set per batch as Dovecot writes it: another client's expunges (after
// NOOP), its own EXPUNGE, UID EXPUNGE and MOVE; a session that did not
// enable it still gets "* n EXPUNGE", and one that enabled only
// CONDSTORE too.
func TestDovecotQResyncVanished(t *testing.T) {
	steps := []step{
		{"direct", "CREATE Trash"},
	}
	for i := 1; i <= 8; i++ {
		steps = append(steps, step{"direct", fmt.Sprintf("APPEND INBOX m%d", i)})
	}
	// The \Deleted flags are set before the sessions select: a flag
	// change told to a CONDSTORE session carries MODSEQ directly, not
	// yet through idlemux (the other part of issue 12).
	steps = append(steps, []step{
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 1:3,5,7:8 +FLAGS.SILENT (\\Deleted)"},
		{"p", "SELECT INBOX"}, // before any client enabled CONDSTORE
		{"q", "ENABLE QRESYNC"},
		{"q", "SELECT INBOX"},
		{"c", "ENABLE CONDSTORE"},
		{"c", "SELECT INBOX"},
		{"direct", "UID EXPUNGE 2:3,5"},
		{"q", "NOOP"},
		{"p", "NOOP"},
		{"c", "NOOP"},
		{"q", "UID EXPUNGE 8"},
		{"q", "EXPUNGE"},
		{"q", "MOVE 1 Trash"},
		{"p", "NOOP"},
		{"q", "CLOSE"},
		{"q", "SELECT Trash"},
		{"q", "CLOSE"},
	}...)
	compareScript(t, steps, nil)
}

// TestDovecotQResyncVanishedIdle: a QRESYNC session idling is told of
// another client's expunges as "* VANISHED uids" (RFC 7162 3.2.10), on
// the idle fast path as directly on Dovecot; an idling session that did
// not enable QRESYNC still gets EXPUNGE.
func TestDovecotQResyncVanishedIdle(t *testing.T) {
	for _, tc := range []struct {
		name   string
		enable bool
		want   []string
	}{
		{"qresync", true, []string{"* VANISHED 2:3", "i: i OK"}},
		{"plain", false, []string{"* 3 EXPUNGE", "* 2 EXPUNGE", "i: i OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := startDovecot(t)
			dv := startDovecot(t)
			p := startProxy(t, testConfig(dv.Addr))
			direct := idleUntilExpunged(t, dd.Addr, dd.Addr, tc.enable, len(tc.want)-1)
			through := idleUntilExpunged(t, p.Addrs()[0], dv.Addr, tc.enable, len(tc.want)-1)
			if !slices.Equal(direct, tc.want) {
				t.Errorf("directly on Dovecot: got %q, want %q", direct, tc.want)
			}
			if !slices.Equal(through, direct) {
				t.Errorf("through idlemux: got %q, want %q (Dovecot's)", through, direct)
			}
		})
	}
}

// idleUntilExpunged fills INBOX with 4 messages on upstream, has a client
// of addr (QRESYNC enabled if enable) select it and IDLE, expunges
// messages 2 and 3 on upstream directly, and returns the n untagged
// lines the idling client got that are not EXISTS, RECENT or FETCH,
// then the shape of the answer to DONE.
func idleUntilExpunged(t *testing.T, addr, upstream string, enable bool, n int) []string {
	t.Helper()
	up := dialRaw(t, upstream)
	up.cmd("l", "LOGIN "+testUser+" "+testPass)
	for i := 0; i < 4; i++ {
		up.appendLiteral("a", "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	up.cmd("s", "SELECT INBOX")
	rc := dialRaw(t, addr)
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	if enable {
		rc.cmd("e", "ENABLE QRESYNC")
	}
	rc.cmd("s", "SELECT INBOX")
	fmt.Fprintf(rc.c, "i IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: got %q, want +", l)
	}
	time.Sleep(100 * time.Millisecond) // the idle fast path takes over
	up.cmd("d", "STORE 2:3 +FLAGS.SILENT (\\Deleted)")
	up.cmd("x", "EXPUNGE")
	var got []string
	for len(got) < n {
		l := rc.line()
		if strings.HasSuffix(l, " EXISTS") || strings.HasSuffix(l, " RECENT") || strings.Contains(l, " FETCH ") || strings.HasPrefix(l, "* OK Still here") {
			continue
		}
		got = append(got, l)
	}
	fmt.Fprintf(rc.c, "DONE\r\n")
	done := rc.answer("i")
	// The tagged answer's status and code: Dovecot's text has timings.
	return append(got, wireShape([]string{"i: " + done[len(done)-1]})[0])
}

// TestDovecotQResyncFetchVanished: UID FETCH with (CHANGEDSINCE m
// VANISHED) (RFC 7162 3.2.6) answers through idlemux as Dovecot answers
// directly: "* VANISHED (EARLIER) uids" within the client's UID set, also
// for UIDs the session's view no longer holds and before the session was
// told of them, then the changed messages with MODSEQ; the upstream's
// [HIGHESTMODSEQ] of a pool connection's tagged OK is not passed on; the modifiers in
// either order and any case; refused as Dovecot refuses it on FETCH,
// without CHANGEDSINCE and before QRESYNC is enabled.
func TestDovecotQResyncFetchVanished(t *testing.T) {
	steps := []step{}
	for i := 1; i <= 6; i++ {
		steps = append(steps, step{"direct", fmt.Sprintf("APPEND INBOX m%d", i)})
	}
	steps = append(steps, []step{
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 2:4 +FLAGS.SILENT (\\Deleted)"},
		{"direct", "STORE 6 +FLAGS.SILENT (\\Seen)"},
		{"n", "SELECT INBOX"},
		{"n", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"},
		{"q", "ENABLE QRESYNC"},
		{"q", "SELECT INBOX"},
		{"direct", "UID EXPUNGE 3:4"},
		// Not compared: a UID FETCH here, before q was told of the
		// expunges. Dovecot tells them at its end (RFC 3501 7.4.1 allows
		// it for UID commands), idlemux at the next command (fanout
		// design: none during any FETCH).
		{"q", "NOOP"},
		{"q", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"},
		{"q", "UID FETCH 3:4 (FLAGS) (VANISHED CHANGEDSINCE 1)"},
		{"q", "UID FETCH 1:3 (FLAGS) (changedsince 1 vanished)"},
		{"q", "UID FETCH 1:* (UID MODSEQ FLAGS) (CHANGEDSINCE 9 VANISHED)"},
		{"q", "UID FETCH 1,5:* (FLAGS) (CHANGEDSINCE 9 VANISHED)"},
		{"q", "FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"},
		{"q", "UID FETCH 1:* (FLAGS) (VANISHED)"},
		{"q", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE x VANISHED)"},
		{"q", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"},
	}...)
	compareScript(t, steps, nil)
}

// TestDovecotQResyncSelect: SELECT and EXAMINE with QRESYNC (RFC 7162
// 3.2.5) answer through idlemux as Dovecot answers directly: after
// HIGHESTMODSEQ, "* VANISHED (EARLIER)" for the known UIDs expunged since
// and a FETCH (UID FLAGS MODSEQ) of each message changed since, numbered
// in the session's view; known-uids and seq-match-data narrowing them;
// nothing for another UIDVALIDITY; the parameters beside CONDSTORE, in any
// case; and each refusal in Dovecot's words, after the previous mailbox
// was closed, as Dovecot closes it first. Expunges still reach the
// session once pool connections have QRESYNC enabled. The RFC 3.2.5.1 example's shape:
// a client that knew UIDs 1:6 at modseq 6 resyncs after expunges and flag
// changes by others.
func TestDovecotQResyncSelect(t *testing.T) {
	steps := []step{}
	for i := 1; i <= 8; i++ {
		steps = append(steps, step{"direct", fmt.Sprintf("APPEND INBOX m%d", i)})
	}
	steps = append(steps, []step{
		{"direct", "SELECT INBOX"},
		{"direct", "STORE 2:3,5:6 +FLAGS.SILENT (\\Deleted)"},
		{"direct", "UID EXPUNGE 2:3"},
		{"direct", "STORE 1 +FLAGS.SILENT (\\Seen)"},
		{"n", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1))"}, // not enabled
		{"n", "SELECT INBOX"},
		{"n", "EXAMINE INBOX (QRESYNC ($UIDVALIDITY 1))"}, // selected, not enabled
		{"q", "ENABLE QRESYNC"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1))"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 9 1:6))"},
		{"q", "EXAMINE INBOX (QRESYNC ($UIDVALIDITY 9 1:8 (1:4 1,4:6)))"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1 2:4,7) CONDSTORE)"},
		{"q", "EXAMINE INBOX (condstore qresync ($UIDVALIDITY 1 5:1))"},
		{"q", "SELECT INBOX (QRESYNC (1 1))"}, // another UIDVALIDITY
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1 1:*))"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1 1:5 (1:3)))"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1 1:5 (1:3 1:2)))"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1))"},
		{"q", "SELECT INBOX (QRESYNC ())"},
		{"q", "SELECT INBOX (QRESYNC ($UIDVALIDITY 1))"},
		{"q", "FETCH 1:* (UID FLAGS)"},
		{"q", "SELECT INBOX (QRESYNC)"},
		{"q", "SELECT INBOX"},
		// The pool connections have QRESYNC enabled now: expunges still
		// reach the session, and its own UID EXPUNGE runs on them. (A
		// plain session is not compared here: Dovecot's mod-sequences
		// start when idlemux's watcher first enables CONDSTORE, so its
		// SELECT and MODSEQ values would differ from a direct run.)
		{"direct", "UID EXPUNGE 5"},
		{"q", "NOOP"},
		{"q", "UID EXPUNGE 6"},
	}...)
	compareScript(t, steps, nil)
}

// TestDovecotQResyncPlainSessionOnQResyncPool: once a QRESYNC session
// had the pool connections enable QRESYNC upstream (which makes Dovecot
// answer them with VANISHED), a session that did not enable it still
// sees only EXPUNGE: for another client's expunge, for its own UID
// EXPUNGE and MOVE, and no VANISHED in a FETCH relayed on those
// connections (RFC 7162 3.2.10 applies only to enabling clients).
func TestDovecotQResyncPlainSessionOnQResyncPool(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	up := dialRaw(t, dv.Addr)
	up.cmd("l", "LOGIN "+testUser+" "+testPass)
	up.cmd("c", "CREATE Trash")
	for i := 0; i < 6; i++ {
		up.appendLiteral("a", "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	up.cmd("s", "SELECT INBOX")
	up.cmd("d", "STORE 1:4 +FLAGS.SILENT (\\Deleted)")
	q := qresyncClient(t, p.Addrs()[0])
	v := codeValue(q.cmd("s", "SELECT INBOX"), "UIDVALIDITY")
	q.cmd("r", "SELECT INBOX (QRESYNC ("+v+" 1))")
	q.cmd("f", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
	plain := dialRaw(t, p.Addrs()[0])
	plain.cmd("l", "LOGIN "+testUser+" "+testPass)
	plain.cmd("s", "SELECT INBOX")
	up.cmd("x", "UID EXPUNGE 1")
	for _, tc := range []struct {
		name, cmd string
		want      []string
	}{
		{"another client's expunge", "NOOP", []string{"* 1 EXPUNGE", "n OK"}},
		{"own UID EXPUNGE", "UID EXPUNGE 2", []string{"* 1 EXPUNGE", "n OK"}},
		{"FETCH on the pool", "UID FETCH 1:* (UID)", []string{"* 1 FETCH (UID 3)", "* 2 FETCH (UID 4)", "* 3 FETCH (UID 5)", "* 4 FETCH (UID 6)", "n OK"}},
		{"own MOVE", "MOVE 1 Trash", []string{"* OK [COPYUID ", "* 1 EXPUNGE", "n OK"}},
	} {
		got := plain.cmd("n", tc.cmd)
		if len(got) != len(tc.want) || !slices.EqualFunc(got, tc.want, strings.HasPrefix) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
