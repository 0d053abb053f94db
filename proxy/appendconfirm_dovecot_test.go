package proxy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// TestDovecotAppendConfirmedByItsAnswer: with INBOX's watcher idling on
// its own connection, an APPEND to B's selected INBOX through idlemux is
// confirmed by its APPENDUID and one UID FETCH on the same connection
// (upstream/appendpost.go) instead of a watcher round, except where that
// cannot be sure (a new keyword: the watcher's round words the mailbox's
// FLAGS; another mailbox than the one selected). A, with INBOX selected,
// and B then see what the same sessions see directly on Dovecot,
// MODSEQ included (A's FETCH of MODSEQ answers from the model). A enables
// CONDSTORE with its SELECT: a later enabling command would get
// [HIGHESTMODSEQ] from the watcher, a lower bound of Dovecot's that a
// STORE or APPEND confirmed by its answer does not raise (README,
// CONDSTORE).
func TestDovecotAppendConfirmedByItsAnswer(t *testing.T) {
	tests := []struct {
		name     string
		appends  []string // APPEND arguments before the literal
		wantSync bool     // some APPEND is confirmed by a watcher round
		// sorted: the untagged answers come in Dovecot's order. A new
		// keyword's FLAGS comes before EXISTS directly; through idlemux
		// too in the APPEND's own answer, after it in another session's
		// NOOP (the watcher round's order; both orders are allowed, RFC
		// 3501 7.2.6 asks only FLAGS before the FETCH that shows the
		// keyword): compared sorted.
		sorted bool
	}{
		{"no flags", []string{"INBOX"}, false, false},
		{"flags given", []string{`INBOX (\Seen \Flagged)`}, false, false},
		{"one flag", []string{`INBOX (\Seen)`}, false, false},
		{"one flag in another case", []string{`INBOX (\sEEN)`}, false, false},
		{"one flag twice", []string{`INBOX (\Seen \seen)`}, false, false},
		{"empty list", []string{`INBOX ()`}, false, false},
		{"two in a row", []string{"INBOX", `INBOX (\Draft)`}, false, false},
		{"date given", []string{`INBOX (\Answered) "21-Nov-2026 10:00:00 +0000"`}, false, false},
		{"a new keyword", []string{"INBOX (Junk)"}, true, true},
		{"another mailbox", []string{"Other"}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dd := startDovecot(t)
			want, _ := appendScript(t, dd, nil, tc.appends)
			dv := startDovecot(t)
			p := startProxy(t, testConfig(dv.Addr))
			got, cmds := appendScript(t, dv, p, tc.appends)
			if tc.sorted {
				got, want = sortedUntagged(got), sortedUntagged(want)
			}
			diffWire(t, got, want)
			if cmds["APPEND"] != 1 {
				t.Errorf("upstream commands of the first APPEND: got %v, want APPEND once", cmds)
			}
			checkConfirmed(t, "APPENDs", p.metrics.appendConfirmed, len(tc.appends), tc.wantSync)
		})
	}
}

// appendScript seeds INBOX with three messages and creates Other, has
// sessions A and B select INBOX (through p when not nil, B idling once so
// that the watcher idles on its own connection), and runs each APPEND on
// B (a LITERAL+ literal) followed by A's NOOP and FETCH of every
// message's UID, flags and MODSEQ, and B's FETCH of the flags. It returns
// the transcript and, through p, the upstream commands B's first APPEND
// cost.
func appendScript(t *testing.T, dv *dovecottest.Server, p *Server, appends []string) ([]string, map[string]uint64) {
	t.Helper()
	seed := dv.Dial(t, testUser, testPass)
	// Dovecot numbers MODSEQs per message from the first CONDSTORE
	// SELECT of the mailbox on (before it, every message reads the
	// highest): idlemux's watcher does that at once, so it is done here
	// on both sides.
	if _, err := seed.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		appendMsg(t, seed, "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	if err := seed.Create("Other", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	seed.Logout().Wait()
	// A's HIGHESTMODSEQ comes with its SELECT, before any APPEND.
	a, b := confirmSessions(t, dv, p, "SELECT INBOX (CONDSTORE)")
	var out transcript
	var cmds map[string]uint64
	record := out.record
	for i, args := range appends {
		var before map[string]uint64
		if p != nil && i == 0 {
			before = p.upStats().Commands
		}
		msg := testMessage(fmt.Sprintf("appended %d", i))
		record("B", b, fmt.Sprintf("b%d", i), fmt.Sprintf("APPEND %s {%d+}\r\n%s", args, len(msg), msg))
		if before != nil {
			cmds = commandsSince(p, before)
		}
		record("A", a, fmt.Sprintf("a%d", i), "NOOP")
		record("A", a, fmt.Sprintf("f%d", i), "FETCH 1:* (UID FLAGS MODSEQ)")
		record("B", b, fmt.Sprintf("g%d", i), "FETCH 1:* (FLAGS)")
	}
	return out, cmds
}

// checkConfirmed checks a confirmation counter (by "answer" or "sync"):
// n commands confirmed in all, some by a watcher round if wantSync.
func checkConfirmed(t *testing.T, what string, vec *prometheus.CounterVec, n int, wantSync bool) {
	t.Helper()
	bySync := testutil.ToFloat64(vec.WithLabelValues("sync"))
	byAnswer := testutil.ToFloat64(vec.WithLabelValues("answer"))
	if bySync+byAnswer != float64(n) {
		t.Errorf("%s confirmed: got %v by answer and %v by sync, want %v in all", what, byAnswer, bySync, n)
	}
	if (bySync > 0) != wantSync {
		t.Errorf("%s confirmed by a watcher round: got %v, want some: %v", what, bySync, wantSync)
	}
}

// commandsSince is the upstream commands sent since the snapshot before,
// by name.
func commandsSince(p *Server, before map[string]uint64) map[string]uint64 {
	cmds := map[string]uint64{}
	for name, n := range p.upStats().Commands {
		if d := n - before[name]; d > 0 {
			cmds[name] = d
		}
	}
	return cmds
}

// TestDovecotAppendedThenExpungedBehindIdlemux: a message APPENDed
// through idlemux goes into the model from its answer; expunged directly
// on Dovecot before the watcher's own session heard of it, it is never
// announced to that session and so never expunged through its mirror.
// The watcher's NOOP round after appendConfirmDelay finds it missing:
// session A, told of the message, is then told of its expunge, as A
// directly on Dovecot is, and FETCH shows the same messages.
func TestDovecotAppendedThenExpungedBehindIdlemux(t *testing.T) {
	run := func(dv *dovecottest.Server, p *Server) []string {
		seed := dv.Dial(t, testUser, testPass)
		for i := range 2 {
			appendMsg(t, seed, "INBOX", testMessage(fmt.Sprintf("m%d", i)))
		}
		seed.Logout().Wait()
		addr := dv.Addr
		if p != nil {
			addr = p.Addrs()[0]
		}
		a := dialRaw(t, addr)
		for _, cmd := range []string{"LOGIN " + testUser + " " + testPass, "SELECT INBOX"} {
			a.cmd("s", cmd)
		}
		if p != nil {
			idleOnce(t, a, p, "INBOX")
		}
		direct := dialRaw(t, dv.Addr)
		direct.cmd("l", "LOGIN "+testUser+" "+testPass)
		var out []string
		msg := testMessage("short-lived")
		for _, l := range a.cmd("b", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg)) {
			out = append(out, "A: "+l)
		}
		// Behind idlemux's back, well within Dovecot's 0.5 s before it
		// tells the watcher's IDLE.
		direct.cmd("d1", "SELECT INBOX")
		direct.cmd("d2", `UID STORE 3 +FLAGS.SILENT (\Deleted)`)
		direct.cmd("d3", "EXPUNGE")
		var told []string
		for deadline := time.Now().Add(4 * appendConfirmWait); ; time.Sleep(100 * time.Millisecond) {
			told = a.cmd("n", "NOOP")
			if strings.Contains(strings.Join(told, "\n"), "EXPUNGE") || time.Now().After(deadline) {
				break
			}
		}
		for _, l := range told {
			out = append(out, "A: "+l)
		}
		for _, l := range a.cmd("f", "FETCH 1:* (UID FLAGS)") {
			out = append(out, "A: "+l)
		}
		return out
	}
	want := wireShape(run(startDovecot(t), nil))
	dv := startDovecot(t)
	got := wireShape(run(dv, startProxy(t, testConfig(dv.Addr))))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("through idlemux:\n\t%s\ndirectly on Dovecot:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// appendConfirmWait is upstream's appendConfirmDelay (3 s), as tests
// here wait for it.
const appendConfirmWait = 3 * time.Second

// sortedUntagged sorts each run of one session's untagged answers.
func sortedUntagged(lines []string) []string {
	out := slices.Clone(lines)
	from := -1
	for i := 0; i <= len(out); i++ {
		if i < len(out) && strings.Contains(out[i], ": * ") {
			if from < 0 {
				from = i
			}
			continue
		}
		if from >= 0 {
			slices.Sort(out[from:i])
			from = -1
		}
	}
	return out
}

// TestDovecotConcurrentAppendsConfirmed: sessions through idlemux APPEND
// to their selected INBOX at once, so that posts reach the watcher out of
// UID order (a post waits for the UIDs below its own, appendpost.go). At
// once after the last OK, every session's NOOP and FETCH of UIDs and
// flags (from the model) show what a session directly on Dovecot shows,
// and every APPEND was confirmed once.
func TestDovecotConcurrentAppendsConfirmed(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	sessions := idlingSessions(t, p, 6)
	const each = 5
	var wg sync.WaitGroup
	for i, rc := range sessions {
		wg.Go(func() {
			for j := range each {
				msg := testMessage(fmt.Sprintf("s%d m%d", i, j))
				tag := fmt.Sprintf("c%d", j)
				cmd := fmt.Sprintf(`APPEND INBOX (\Flagged) {%d+}`+"\r\n%s", len(msg), msg)
				if l := rc.cmd(tag, cmd); !strings.HasPrefix(l[len(l)-1], tag+" OK") {
					t.Errorf("APPEND: %q", l[len(l)-1])
					return
				}
			}
		})
	}
	wg.Wait()
	want := dialSelected(t, dv.Addr).cmd("f", "FETCH 1:* (UID FLAGS)")
	for i, rc := range sessions {
		rc.cmd("n", "NOOP") // tells the session of the others' messages, as Dovecot would
		got := rc.cmd("f", "FETCH 1:* (UID FLAGS)")
		var fetched []string
		for _, l := range got {
			if strings.Contains(l, " FETCH (UID ") {
				fetched = append(fetched, noRecent(l))
			}
		}
		var direct []string
		for _, l := range want {
			if strings.Contains(l, " FETCH (UID ") {
				direct = append(direct, noRecent(l))
			}
		}
		if strings.Join(fetched, "\n") != strings.Join(direct, "\n") {
			t.Errorf("session %d through idlemux:\n\t%s\nwant (Dovecot directly):\n\t%s", i,
				strings.Join(fetched, "\n\t"), strings.Join(direct, "\n\t"))
		}
	}
	bySync := testutil.ToFloat64(p.metrics.appendConfirmed.WithLabelValues("sync"))
	byAnswer := testutil.ToFloat64(p.metrics.appendConfirmed.WithLabelValues("answer"))
	if bySync+byAnswer != float64(len(sessions)*each) {
		t.Errorf("APPENDs confirmed: got %v by answer and %v by sync, want %d in all", byAnswer, bySync, len(sessions)*each)
	}
	t.Logf("APPENDs confirmed by their answer: %v, by a watcher round: %v", byAnswer, bySync)
}

// noRecent drops \Recent from a FETCH line: each side's own (RFC 3501
// 2.3.2), not what this test is about.
func noRecent(l string) string {
	return strings.NewReplacer(` \Recent`, "", `\Recent `, "", `\Recent`, "").Replace(l)
}
