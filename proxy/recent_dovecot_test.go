package proxy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// recentLines keeps the responses a \Recent script is about, drops
// "UID n" from unsolicited FETCH (idlemux always names the UID there, which
// RFC 3501 7.4.2 allows; Dovecot does not) and unquotes STATUS's mailbox
// (imapserver always quotes it; both are an astring, RFC 3501 9).
var (
	recentKeep   = regexp.MustCompile(`^\* (\d+ (EXISTS|RECENT|EXPUNGE|FETCH)|SEARCH|STATUS)\b`)
	recentNoUID  = regexp.MustCompile(`^(\* \d+ FETCH \()UID \d+ `)
	recentQuoted = regexp.MustCompile(`^(\* STATUS )"(\w+)"`)
)

func recentLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if recentKeep.MatchString(l) {
			l = recentNoUID.ReplaceAllString(l, "$1")
			out = append(out, recentQuoted.ReplaceAllString(l, "$1$2"))
		}
	}
	return out
}

// TestDovecotRecent: \Recent (RFC 3501 2.3.2) through idlemux is what
// Dovecot shows: a message is recent in the first read-write session told
// of it (by SELECT, or by an update while idling), in no other; EXAMINE
// sees what is unclaimed and claims nothing; SELECT, EXAMINE and updates
// carry "* n RECENT" (updates only when the count changes), STATUS RECENT
// counts what no session was told of yet, FETCH FLAGS shows \Recent, and
// SEARCH RECENT, NEW and OLD follow the session's own recency.
func TestDovecotRecent(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := dv.Dial(t, testUser, testPass)
	type step struct {
		who, cmd string
		want     []string // the kept lines (recentLines) Dovecot sends
	}
	const appendNew = "<append, B in IDLE>"
	script := []step{
		{"D", "EXAMINE %s", []string{"* 1 EXISTS", "* 1 RECENT"}},
		{"D", "FETCH 1 FLAGS", []string{`* 1 FETCH (FLAGS (\Recent))`}},
		{"A", "SELECT %s", []string{"* 1 EXISTS", "* 1 RECENT"}},
		{"A", "FETCH 1 FLAGS", []string{`* 1 FETCH (FLAGS (\Recent))`}},
		{"B", "SELECT %s", []string{"* 1 EXISTS", "* 0 RECENT"}},
		{"B", "FETCH 1 FLAGS", []string{`* 1 FETCH (FLAGS ())`}},
		{"C", "STATUS %s (MESSAGES RECENT)", []string{"* STATUS %s (MESSAGES 1 RECENT 0)"}},
		{"A", "SEARCH RECENT", []string{"* SEARCH 1"}},
		{"A", "SEARCH NEW", []string{"* SEARCH 1"}},
		{"A", "SEARCH OLD", []string{"* SEARCH"}},
		{"A", "UID SEARCH RECENT", []string{"* SEARCH 1"}},
		{"B", "SEARCH RECENT", []string{"* SEARCH"}},
		{"B", "SEARCH OLD", []string{"* SEARCH 1"}},
		{"B", appendNew, []string{"* 2 EXISTS", "* 1 RECENT"}},
		{"A", "NOOP", []string{"* 2 EXISTS"}}, // A's count stays 1: no RECENT
		{"D", "NOOP", []string{"* 2 EXISTS"}},
		{"B", "FETCH 1:* FLAGS", []string{`* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS (\Recent))`}},
		{"B", "UID SEARCH NEW", []string{"* SEARCH 2"}},
		{"A", "FETCH 2 FLAGS", []string{`* 2 FETCH (FLAGS ())`}},
		{"C", "STATUS %s (RECENT)", []string{"* STATUS %s (RECENT 0)"}},
		{"A", `STORE 1 +FLAGS (\Seen)`, []string{`* 1 FETCH (FLAGS (\Seen \Recent))`}},
		{"A", "SEARCH NEW", []string{"* SEARCH"}},
		{"A", "SEARCH RECENT SEEN", []string{"* SEARCH 1"}},
		{"B", "NOOP", []string{`* 1 FETCH (FLAGS (\Seen))`}},
		{"E", "EXAMINE %s", []string{"* 2 EXISTS", "* 0 RECENT"}},
		{"A", `STORE 1 +FLAGS.SILENT (\Deleted)`, nil},
		{"A", "EXPUNGE", []string{"* 1 EXPUNGE", "* 0 RECENT"}},
		{"B", "NOOP", []string{"* 1 EXPUNGE"}},
		{"B", "SEARCH RECENT", []string{"* SEARCH 1"}},
	}
	run := func(t *testing.T, addr, box string) [][]string {
		if err := direct.Create(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		appendMsg(t, direct, box, testMessage("first"))
		conns := map[string]*rawConn{}
		var got [][]string
		for i, st := range script {
			c := conns[st.who]
			if c == nil {
				c = dialRaw(t, addr)
				c.cmd("l", "LOGIN "+testUser+" "+testPass)
				conns[st.who] = c
			}
			tag := fmt.Sprintf("t%d", i)
			var lines []string
			if st.cmd == appendNew {
				lines = idleForAppend(t, c, tag, func() { appendMsg(t, direct, box, testMessage("second")) })
			} else {
				lines = c.cmd(tag, strings.ReplaceAll(st.cmd, "%s", box))
			}
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tag+" OK") {
				t.Errorf("%s %s: got %q, want OK", st.who, st.cmd, last)
			}
			got = append(got, recentLines(lines))
		}
		return got
	}
	results := map[string][][]string{}
	for _, via := range []struct{ name, addr, box string }{
		{"directly", dv.Addr, "RecentD"},
		{"through idlemux", p.Addrs()[0], "RecentP"},
	} {
		t.Run(via.name, func(t *testing.T) {
			got := run(t, via.addr, via.box)
			results[via.name] = got
			for i, st := range script {
				want := make([]string, len(st.want))
				for j, w := range st.want {
					want[j] = strings.ReplaceAll(w, "%s", via.box)
				}
				if !slices.Equal(got[i], want) {
					t.Errorf("%s %s: got %q, want %q", st.who, st.cmd, got[i], want)
				}
			}
		})
	}
	d, q := results["directly"], results["through idlemux"]
	for i := range min(len(d), len(q)) {
		a := strings.ReplaceAll(strings.Join(d[i], "|"), "RecentD", "box")
		b := strings.ReplaceAll(strings.Join(q[i], "|"), "RecentP", "box")
		if a != b {
			t.Errorf("%s %s: through idlemux %q, directly %q", script[i].who, script[i].cmd, q[i], d[i])
		}
	}
}

// idleForAppend puts c in IDLE, runs appendIt, reads until the EXISTS it
// brings, ends IDLE, and returns every line through the tagged answer.
func idleForAppend(t *testing.T, c *rawConn, tag string, appendIt func()) []string {
	t.Helper()
	fmt.Fprintf(c.c, "%s IDLE\r\n", tag)
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: got %q, want +", l)
	}
	appendIt()
	var out []string
	for {
		l := c.line()
		out = append(out, l)
		if strings.HasSuffix(l, " EXISTS") {
			break
		}
	}
	fmt.Fprintf(c.c, "DONE\r\n")
	for {
		l := c.line()
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
}
