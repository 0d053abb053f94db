package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// vanishedCount counts how many times uid was told vanished in answer.
func vanishedCount(answer []string, uid imap.UID) int {
	n := 0
	for _, l := range answer {
		set, ok := strings.CutPrefix(l, "* VANISHED ")
		if !ok {
			continue
		}
		set = strings.TrimPrefix(set, "(EARLIER) ")
		if s, ok := parseUIDSet([]byte(set)); ok && s.Contains(uid) {
			n++
		}
	}
	return n
}

// vanishedIn reports whether answer has a "* VANISHED (EARLIER)" with uid.
func vanishedIn(answer []string, uid imap.UID) bool {
	var earlier []string
	for _, l := range answer {
		if strings.HasPrefix(l, "* VANISHED (EARLIER) ") {
			earlier = append(earlier, l)
		}
	}
	return vanishedCount(earlier, uid) > 0
}

// prefixed puts "who: " before each line, as runScript writes them.
func prefixed(who string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = who + ": " + l
	}
	return out
}

// TestDovecotQResyncFetchVanishedHeld: a UID FETCH (CHANGEDSINCE m
// VANISHED) while the session's view still holds a UID expunged by
// another client (RFC 7162 3.2.6) does not report it in VANISHED
// (EARLIER): the session is told it once, as "* VANISHED uid" (3.2.10),
// as directly on Dovecot; the messages it still has are answered as
// Dovecot answers them. Stated differences: Dovecot, whose session still
// has UID 2, answers its FETCH (FLAGS (\Deleted) MODSEQ (6)), and tells
// the expunge within the UID FETCH (RFC 3501 7.4.1 allows it for UID
// commands); idlemux's pool connection no longer has UID 2, and the
// expunge waits for the next command (fanout design), so the UID FETCH
// ends OK [HIGHESTMODSEQ 5], the sync point before it.
func TestDovecotQResyncFetchVanishedHeld(t *testing.T) {
	var steps []step
	for i := 1; i <= 4; i++ {
		steps = append(steps, step{"direct", fmt.Sprintf("APPEND INBOX m%d", i)})
	}
	const fetch = "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"
	steps = append(steps, []step{
		{"q", "ENABLE QRESYNC"},
		{"q", "SELECT INBOX"},
		{"r", "SELECT INBOX"},
		{"direct", "SELECT INBOX"},
		{"direct", "UID STORE 2 +FLAGS.SILENT (\\Deleted)"},
		{"direct", "UID EXPUNGE 2"},
		{"r", "UID STORE 1 +FLAGS.SILENT (\\Seen)"},
		{"q", fetch},
		{"q", "NOOP"},
	}...)
	dd := startDovecot(t)
	direct := runScript(t, dd.Addr, dd.Addr, steps)
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	through := runScript(t, p.Addrs()[0], dv.Addr, steps)
	got := append(answerOf(through, "q", fetch), answerOf(through, "q", "NOOP")...)
	want := append(answerOf(direct, "q", fetch), answerOf(direct, "q", "NOOP")...)
	gotFetch := wireShape(prefixed("q", answerOf(through, "q", fetch)))
	wantFetch := wireShape(prefixed("q", answerOf(direct, "q", fetch)))
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"UID 2 told vanished", vanishedCount(got, 2), vanishedCount(want, 2)},
		{"UID 2 in the FETCH's VANISHED (EARLIER)", vanishedIn(answerOf(through, "q", fetch), 2), false},
		{"UID 1 answered", slices.Contains(gotFetch, `q: * 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (8))`), slices.Contains(wantFetch, `q: * 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (8))`)},
		{"UID 3 answered", slices.Contains(gotFetch, `q: * 3 FETCH (UID 3 FLAGS () MODSEQ (5))`), slices.Contains(wantFetch, `q: * 3 FETCH (UID 3 FLAGS () MODSEQ (5))`)},
		{"UID 4 answered", slices.Contains(gotFetch, `q: * 4 FETCH (UID 4 FLAGS () MODSEQ (5))`), slices.Contains(wantFetch, `q: * 4 FETCH (UID 4 FLAGS () MODSEQ (5))`)},
		{"tagged answer of the FETCH (stated difference)", gotFetch[len(gotFetch)-1], fmt.Sprintf("q: t%d OK [HIGHESTMODSEQ 5]", len(steps)-2)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v\nthrough idlemux: %q\ndirectly: %q", tc.name, tc.got, tc.want, got, want)
		}
	}
}
