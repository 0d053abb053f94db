package proxy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// heldScript is the reviewer's scenario (issue 12): four messages; the
// session (q) selects INBOX with CONDSTORE or QRESYNC enabled; another
// client sets \Deleted on UID 2 and expunges it (MODSEQ 6, 7) and flags
// UID 3 (MODSEQ 8); then q runs cmd, then NOOP.
func heldScript(enable, cmd string, expunge bool) []step {
	var steps []step
	for i := 1; i <= 4; i++ {
		steps = append(steps, step{"direct", fmt.Sprintf("APPEND INBOX m%d", i)})
	}
	steps = append(steps, step{"q", "ENABLE " + enable}, step{"q", "SELECT INBOX"}, step{"direct", "SELECT INBOX"})
	if expunge {
		steps = append(steps, step{"direct", "UID STORE 2 +FLAGS.SILENT (\\Deleted)"}, step{"direct", "UID EXPUNGE 2"})
	}
	return append(steps, step{"direct", "UID STORE 3 +FLAGS.SILENT (\\Flagged)"}, step{"q", cmd}, step{"q", "NOOP"})
}

// answerOf returns the lines of who's answer to cmd (its first run) in
// a runScript transcript, without the "who: " prefix.
func answerOf(lines []string, who, cmd string) []string {
	var out []string
	in := false
	for _, l := range lines {
		switch {
		case l == who+" "+cmd && out == nil:
			in = true
		case in && strings.HasPrefix(l, who+": "):
			out = append(out, strings.TrimPrefix(l, who+": "))
		case in:
			return out
		}
	}
	return out
}

var (
	reHighestCode = regexp.MustCompile(`^\S+ OK \[HIGHESTMODSEQ (\d+)\]`)
	reModSeqItem  = regexp.MustCompile(`MODSEQ \((\d+)\)`)
)

// syncPoint is the MODSEQ a client resyncs from after an answer (RFC
// 7162 3.1.2.1, 3.2): the tagged OK's [HIGHESTMODSEQ n] when it has one,
// else the highest MODSEQ the answer showed (0: none).
func syncPoint(answer []string) uint64 {
	var top uint64
	for _, l := range answer {
		if m := reHighestCode.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			return v
		}
		for _, m := range reModSeqItem.FindAllStringSubmatch(l, -1) {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			top = max(top, v)
		}
	}
	return top
}

// TestDovecotCondstoreHeldExpungeHighest: a command that shows a QRESYNC
// session a MODSEQ while an expunge is held back from it (FETCH, STORE,
// SEARCH: RFC 3501 7.4.1) ends "OK [HIGHESTMODSEQ n]" with n below the
// held expunge (RFC 7162 3.2; Dovecot: the value of the session's last
// full sync), so a client never resyncs from past a change it was not
// told. A CONDSTORE-only session gets a plain OK, as from Dovecot.
// Each case runs the same script directly on Dovecot and through
// idlemux; the tagged answer is compared, and the client's sync point
// through idlemux is never above Dovecot's. Where the two differ, the
// case says why: idlemux holds back, with the expunge, the flag changes
// logged after it, which Dovecot sends during the command.
func TestDovecotCondstoreHeldExpungeHighest(t *testing.T) {
	for _, tc := range []struct {
		name, enable, cmd string
		expunge           bool
		// why, when set, is why the tagged answers differ; then
		// wantOK is idlemux's, wantDirect Dovecot's (wire shapes).
		why, wantOK, wantDirect string
	}{
		{name: "qresync store", enable: "QRESYNC", cmd: `STORE 4 +FLAGS (\Seen)`, expunge: true},
		{name: "condstore store", enable: "CONDSTORE", cmd: `STORE 4 +FLAGS (\Seen)`, expunge: true},
		{name: "store nothing held", enable: "QRESYNC", cmd: `STORE 4 +FLAGS (\Seen)`},
		{name: "qresync store silent", enable: "QRESYNC", cmd: `STORE 4 +FLAGS.SILENT (\Seen)`, expunge: true},
		{name: "qresync uid store", enable: "QRESYNC", cmd: `UID STORE 4 +FLAGS (\Seen)`, expunge: true,
			why: "Dovecot tells the expunge within a UID command (RFC 3501 7.4.1 allows it), so holds nothing back; " +
				"idlemux holds it to the next command (fanout design) and gives the sync point before it",
			wantOK: "q: t10 OK [HIGHESTMODSEQ 5]", wantDirect: "q: t10 OK"},
		{name: "qresync search modseq", enable: "QRESYNC", cmd: "SEARCH MODSEQ 1", expunge: true,
			why: "Dovecot sends UID 3's change (MODSEQ 8) during the SEARCH; idlemux holds it with the expunge, and " +
				"SEARCH's (MODSEQ n) is no sync point (RFC 7162 3.1.5): a plain OK",
			wantOK: "q: t10 OK", wantDirect: "q: t10 OK [HIGHESTMODSEQ 5]"},
		{name: "qresync uid fetch modseq", enable: "QRESYNC", cmd: "UID FETCH 4 (FLAGS MODSEQ)", expunge: true},
		{name: "qresync fetch seen", enable: "QRESYNC", cmd: "FETCH 4 (FLAGS BODY[TEXT])", expunge: true},
		{name: "qresync fetch modseq", enable: "QRESYNC", cmd: "FETCH 4 (FLAGS MODSEQ)", expunge: true,
			why: "Dovecot sends UID 3's change (MODSEQ 8) during the FETCH, above its sync point: OK [HIGHESTMODSEQ 5]; " +
				"idlemux holds it with the expunge and shows only MODSEQ 5: a plain OK, the same sync point",
			wantOK: "q: t10 OK", wantDirect: "q: t10 OK [HIGHESTMODSEQ 5]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps := heldScript(tc.enable, tc.cmd, tc.expunge)
			dd := startDovecot(t)
			direct := runScript(t, dd.Addr, dd.Addr, steps)
			dv := startDovecot(t)
			p := startProxy(t, testConfig(dv.Addr))
			through := runScript(t, p.Addrs()[0], dv.Addr, steps)
			got, want := answerOf(through, "q", tc.cmd), answerOf(direct, "q", tc.cmd)
			if len(got) == 0 || len(want) == 0 {
				t.Fatalf("no answer to %s: got %q, want %q", tc.cmd, got, want)
			}
			gotOK := wireShape([]string{"q: " + got[len(got)-1]})[0]
			wantOK := wireShape([]string{"q: " + want[len(want)-1]})[0]
			switch {
			case tc.why == "" && gotOK != wantOK:
				t.Errorf("tagged answer: got %q, want %q (Dovecot's)\nthrough idlemux: %q\ndirectly: %q", gotOK, wantOK, got, want)
			case tc.why != "" && (gotOK != tc.wantOK || wantOK != tc.wantDirect):
				t.Errorf("tagged answers: got %q and %q directly, want %q and %q (%s)", gotOK, wantOK, tc.wantOK, tc.wantDirect, tc.why)
			}
			// UID 4's change (MODSEQ 9) is told as often over the command
			// and the NOOP after it as directly: once (the command's own
			// answer must not come back at the NOOP with the changes held
			// back behind the expunge).
			told := func(lines []string) int {
				return len(slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
					return !strings.Contains(l, " FETCH (") || !strings.Contains(l, "MODSEQ (9)")
				}))
			}
			gotAll := append(slices.Clone(got), answerOf(through, "q", "NOOP")...)
			wantAll := append(slices.Clone(want), answerOf(direct, "q", "NOOP")...)
			if g, w := told(gotAll), told(wantAll); g != w {
				t.Errorf("UID 4 told: got %d times, want %d\nthrough idlemux: %q\ndirectly: %q", g, w, gotAll, wantAll)
			}
			if g, w := syncPoint(got), syncPoint(want); g > w {
				t.Errorf("sync point: got %d through idlemux, want at most Dovecot's %d\nthrough idlemux: %q\ndirectly: %q", g, w, got, want)
			}
		})
	}
}

// TestDovecotQResyncHeldExpungeResync: what the sync point is for (RFC
// 7162 3.2.5): a QRESYNC client that ran the held STORE of heldScript
// reconnects and resyncs from the sync point it was given, and learns
// the expunge and the flag change it was not told, directly on Dovecot
// as through idlemux.
func TestDovecotQResyncHeldExpungeResync(t *testing.T) {
	const cmd = `STORE 4 +FLAGS (\Seen)`
	steps := heldScript("QRESYNC", cmd, true)
	steps = steps[:len(steps)-1] // not the NOOP: the client goes away
	resync := func(addr, dovecotAddr string) (sp uint64, answer []string) {
		sp = syncPoint(answerOf(runScript(t, addr, dovecotAddr, steps), "q", cmd))
		sel := fmt.Sprintf("SELECT INBOX (QRESYNC ($UIDVALIDITY %d))", sp)
		return sp, answerOf(runScript(t, addr, dovecotAddr, []step{
			{"q2", "ENABLE QRESYNC"}, {"q2", "EXAMINE INBOX"}, {"q2", sel},
		}), "q2", sel)
	}
	dd := startDovecot(t)
	wantSP, want := resync(dd.Addr, dd.Addr)
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	gotSP, got := resync(p.Addrs()[0], dv.Addr)
	flagged := func(answer []string) bool {
		return slices.ContainsFunc(answer, func(l string) bool {
			return strings.Contains(l, "UID 3 ") && strings.Contains(l, `\Flagged`)
		})
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"sync point", gotSP, wantSP},
		{"UID 2 reported vanished", vanishedCount(got, 2), vanishedCount(want, 2)},
		{"UID 3's \\Flagged reported", flagged(got), flagged(want)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v\nthrough idlemux: %q\ndirectly: %q", tc.name, tc.got, tc.want, got, want)
		}
	}
}

// heldThenIdle runs heldScript's changes on upstream, the held STORE on
// a QRESYNC client of addr, then IDLE for a while, and returns what the
// client got in IDLE, through its answer to DONE.
func heldThenIdle(t *testing.T, addr, upstream string) []string {
	t.Helper()
	up := dialRaw(t, upstream)
	up.cmd("l", "LOGIN "+testUser+" "+testPass)
	for i := 1; i <= 4; i++ {
		up.appendLiteral("a", "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	up.cmd("s", "SELECT INBOX")
	rc := dialRaw(t, addr)
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	rc.cmd("e", "ENABLE QRESYNC")
	rc.cmd("s", "SELECT INBOX")
	up.cmd("d", `UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	up.cmd("x", "UID EXPUNGE 2")
	up.cmd("f", `UID STORE 3 +FLAGS.SILENT (\Flagged)`)
	rc.cmd("t", `STORE 4 +FLAGS (\Seen)`)
	fmt.Fprintf(rc.c, "i IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: got %q, want +", l)
	}
	time.Sleep(700 * time.Millisecond) // past Dovecot's 500 ms notify delay
	fmt.Fprintf(rc.c, "DONE\r\n")
	return rc.answer("i")
}

// TestDovecotQResyncHeldThenIdle: the changes a STORE held back behind
// an expunge reach the client when it IDLEs next, its own answer not
// again, as directly on Dovecot: UID 2 vanished once, UID 4's change
// (MODSEQ 9) not repeated. Stated difference: Dovecot, which sent UID 3's
// change within the STORE, tells the new HIGHESTMODSEQ in IDLE as
// "* OK [HIGHESTMODSEQ 9]"; idlemux tells that change (MODSEQ 8) here
// with UID 4's MODSEQ 9 already seen: the client's sync point is 9 either way.
func TestDovecotQResyncHeldThenIdle(t *testing.T) {
	dd := startDovecot(t)
	want := heldThenIdle(t, dd.Addr, dd.Addr)
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	got := heldThenIdle(t, p.Addrs()[0], dv.Addr)
	repeated := func(lines []string) int {
		return len(slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return !strings.Contains(l, "MODSEQ (9)") }))
	}
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"UID 2 told vanished", vanishedCount(got, 2), vanishedCount(want, 2)},
		{"UID 4's change told again", repeated(got), repeated(want)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d\nthrough idlemux: %q\ndirectly: %q", tc.name, tc.got, tc.want, got, want)
		}
	}
}
