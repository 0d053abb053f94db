package proxy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestDovecotQResyncReconnect: issue 12's QRESYNC client. It syncs a
// 10,000-message mailbox through idlemux, goes away while another client
// changes the flags of 100 messages and expunges 20, and comes back with
// SELECT (QRESYNC (uidvalidity modseq)) (RFC 7162 3.2.5): the SELECT
// moves at most 5% of the bytes of a full UID FETCH 1:* (FLAGS) resync,
// and the client's state, its old one with VANISHED (EARLIER) and the
// FETCH responses applied, equals the upstream's. The same SELECT
// directly on Dovecot gives the figure to compare with.
func TestDovecotQResyncReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 10,000-message mailbox")
	}
	const total, changed, gone = 10000, 100, 20
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	up := dialRaw(t, dv.Addr)
	up.cmd("l", "LOGIN "+testUser+" "+testPass)
	fillInbox(t, up, total)

	c := qresyncClient(t, p.Addrs()[0])
	sel := c.cmd("s", "SELECT INBOX")
	validity, highest := codeValue(sel, "UIDVALIDITY"), codeValue(sel, "HIGHESTMODSEQ")
	full := c.cmd("f", "UID FETCH 1:* (FLAGS)")
	state := flagState(full)
	if len(state) != total || validity == "" || highest == "" {
		t.Fatalf("first sync: got %d messages, UIDVALIDITY %q, HIGHESTMODSEQ %q; want %d and both", len(state), validity, highest, total)
	}
	c.cmd("o", "LOGOUT")

	var flagged, deleted []string
	for i := 0; i < changed; i++ {
		flagged = append(flagged, strconv.Itoa(1+i*total/changed))
	}
	for i := 0; i < gone; i++ {
		deleted = append(deleted, strconv.Itoa(50+i*total/gone))
	}
	up.cmd("s", "SELECT INBOX")
	up.cmd("f", "UID STORE "+strings.Join(flagged, ",")+" +FLAGS.SILENT (\\Flagged)")
	up.cmd("d", "UID STORE "+strings.Join(deleted, ",")+" +FLAGS.SILENT (\\Deleted)")
	up.cmd("x", "UID EXPUNGE "+strings.Join(deleted, ","))

	resync := "SELECT INBOX (QRESYNC (" + validity + " " + highest + "))"
	through := qresyncClient(t, p.Addrs()[0]).cmd("r", resync)
	direct := qresyncClient(t, dv.Addr).cmd("r", resync)
	applyResync(state, through)
	want := flagState(up.cmd("w", "UID FETCH 1:* (FLAGS)"))
	if !maps.EqualFunc(state, want, slices.Equal) {
		t.Errorf("state after the resync: got %d messages, want the upstream's %d (differing UIDs: %v)", len(state), len(want), differing(state, want))
	}
	tb, db, fb := wireBytes(through), wireBytes(direct), wireBytes(full)
	t.Logf("resync SELECT: %d bytes through idlemux, %d directly on Dovecot (%.3f); full UID FETCH 1:* (FLAGS): %d bytes; ratio %.4f",
		tb, db, float64(tb)/float64(db), fb, float64(tb)/float64(fb))
	if tb*20 > fb {
		t.Errorf("resync moved %d bytes, want at most 5%% of a full resync's %d", tb, fb)
	}
}

// fillInbox appends n small messages to INBOX, by MULTIAPPEND (RFC
// 3502) of 500 non-synchronizing literals (RFC 7888) each.
func fillInbox(t *testing.T, rc *rawConn, n int) {
	t.Helper()
	for at := 0; at < n; at += 500 {
		var b strings.Builder
		b.WriteString("m APPEND INBOX")
		for i := at; i < min(n, at+500); i++ {
			msg := testMessage(fmt.Sprintf("m%d", i))
			fmt.Fprintf(&b, " {%d+}\r\n%s", len(msg), msg)
		}
		b.WriteString("\r\n")
		if _, err := rc.c.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		if got := rc.answer("m"); !strings.HasPrefix(got[len(got)-1], "m OK") {
			t.Fatalf("MULTIAPPEND: got %q", got)
		}
	}
}

// qresyncClient is a raw client of addr, logged in, QRESYNC enabled.
func qresyncClient(t *testing.T, addr string) *rawConn {
	rc := dialRaw(t, addr)
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	rc.cmd("e", "ENABLE QRESYNC")
	return rc
}

// codeValue returns the value of the response code name in lines.
func codeValue(lines []string, name string) string {
	for _, l := range lines {
		if _, rest, ok := strings.Cut(l, "["+name+" "); ok {
			v, _, _ := strings.Cut(rest, "]")
			return v
		}
	}
	return ""
}

var (
	reFetchUID   = regexp.MustCompile(`^\* \d+ FETCH \(.*\bUID (\d+)`)
	reFetchFlags = regexp.MustCompile(`\bFLAGS \(([^)]*)\)`)
)

// flagState reads the FETCH responses in lines into UID -> flags, sorted,
// without \Recent (idlemux's own, RFC 3501 2.3.2).
func flagState(lines []string) map[string][]string {
	state := map[string][]string{}
	for _, l := range lines {
		u, f := reFetchUID.FindStringSubmatch(l), reFetchFlags.FindStringSubmatch(l)
		if u == nil || f == nil {
			continue
		}
		flags := slices.DeleteFunc(strings.Fields(f[1]), func(s string) bool { return s == `\Recent` })
		slices.Sort(flags)
		state[u[1]] = flags
	}
	return state
}

// applyResync applies a QRESYNC SELECT's answer to a client's state:
// VANISHED (EARLIER) removes (RFC 7162 3.2.5.1), FETCH replaces flags.
func applyResync(state map[string][]string, lines []string) {
	for _, l := range lines {
		set, ok := strings.CutPrefix(l, "* VANISHED (EARLIER) ")
		if !ok {
			continue
		}
		uids, _ := parseUIDSet([]byte(set))
		for u := range state {
			n, _ := strconv.ParseUint(u, 10, 32)
			if hasUID(uids, imap.UID(n)) {
				delete(state, u)
			}
		}
	}
	maps.Copy(state, flagState(lines))
}

// differing lists up to 10 UIDs whose flags differ between a and b.
func differing(a, b map[string][]string) []string {
	var out []string
	for u := range maps.Keys(a) {
		if !slices.Equal(a[u], b[u]) && len(out) < 10 {
			out = append(out, u)
		}
	}
	for u := range maps.Keys(b) {
		if _, ok := a[u]; !ok && len(out) < 10 {
			out = append(out, u)
		}
	}
	return out
}

// wireBytes is the size of lines on the wire, CRLF included.
func wireBytes(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l) + 2
	}
	return n
}
