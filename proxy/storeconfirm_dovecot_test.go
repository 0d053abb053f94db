package proxy

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// TestDovecotStoreConfirmedByItsAnswer: with the mailbox's watcher idling
// on its own connection, a STORE through idlemux is confirmed by its own
// answer (upstream/flagpost.go) instead of a watcher round. Session B
// stores, session A (same mailbox) reads at once; both see what the same
// sessions see directly on Dovecot, and B's first STORE costs the upstream
// one UID STORE and nothing else (no NOOP, no DONE and IDLE, no FETCH),
// except where the answer cannot confirm it (a new keyword: the watcher's
// round words the mailbox's FLAGS).
func TestDovecotStoreConfirmedByItsAnswer(t *testing.T) {
	tests := []struct {
		name      string
		stores    []string
		wantRound bool // the first STORE still needs a watcher round
	}{
		{"+FLAGS", []string{`STORE 2 +FLAGS (\Flagged)`}, false},
		{"-FLAGS", []string{`STORE 1 +FLAGS (\Seen \Answered)`, `STORE 1 -FLAGS (\Seen)`}, false},
		{"FLAGS on several", []string{`STORE 1:3 FLAGS (\Draft)`}, false},
		{".SILENT", []string{`STORE 1 +FLAGS.SILENT (\Seen)`, `STORE 1:2 -FLAGS.SILENT (\Seen)`}, false},
		{"UID STORE", []string{`UID STORE 1:* +FLAGS (\Deleted)`}, false},
		{"toggled back and forth", []string{`STORE 3 +FLAGS (\Seen)`, `STORE 3 -FLAGS (\Seen)`, `STORE 3 +FLAGS (\Seen)`}, false},
		{"a new keyword", []string{`STORE 2 +FLAGS (foo)`}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dd := startDovecot(t)
			want, _ := storeScript(t, dd, nil, tc.stores)
			dv := startDovecot(t)
			p := startProxy(t, testConfig(dv.Addr))
			got, cmds := storeScript(t, dv, p, tc.stores)
			diffWire(t, got, want)
			// The watcher may hear of a STORE from Dovecot (its IDLE)
			// before the client has the OK, and run a round then: that
			// round is not the STORE's, which the confirmation counts say.
			if cmds["UID STORE"] != 1 {
				t.Errorf("upstream commands of the first STORE: got %v, want UID STORE once", cmds)
			}
			checkConfirmed(t, "STOREs", p.metrics.storeConfirmed, len(tc.stores), tc.wantRound)
		})
	}
}

// storeScript seeds INBOX with three messages, has sessions A and B select
// it (through p when not nil, B idling once so that the watcher idles on
// its own connection), and runs each STORE on B followed by A's NOOP and
// FETCH of every message's flags. It returns the transcript and, through
// p, the upstream commands B's first STORE cost.
func storeScript(t *testing.T, dv *dovecottest.Server, p *Server, stores []string) ([]string, map[string]uint64) {
	t.Helper()
	seed := dv.Dial(t, testUser, testPass)
	for i := range 3 {
		appendMsg(t, seed, "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	seed.Logout().Wait()
	a, b := confirmSessions(t, dv, p, "SELECT INBOX")
	var out transcript
	var cmds map[string]uint64
	record := out.record
	for i, st := range stores {
		var before map[string]uint64
		if p != nil && i == 0 {
			before = p.upStats().Commands
		}
		record("B", b, fmt.Sprintf("b%d", i), st)
		if before != nil {
			cmds = commandsSince(p, before)
		}
		record("A", a, fmt.Sprintf("a%d", i), "NOOP")
		record("A", a, fmt.Sprintf("f%d", i), "FETCH 1:* (FLAGS)")
	}
	return out, cmds
}

// confirmSessions opens sessions A and B on dv (through p when not nil),
// A running selectA and B SELECT INBOX, and has B idle once: through p,
// INBOX's watcher then idles on its own connection.
func confirmSessions(t *testing.T, dv *dovecottest.Server, p *Server, selectA string) (a, b *rawConn) {
	t.Helper()
	addr := dv.Addr
	if p != nil {
		addr = p.Addrs()[0]
	}
	a, b = dialRaw(t, addr), dialRaw(t, addr)
	for _, s := range []struct {
		rc  *rawConn
		sel string
	}{{a, selectA}, {b, "SELECT INBOX"}} {
		for _, cmd := range []string{"LOGIN " + testUser + " " + testPass, s.sel} {
			if l := s.rc.cmd("s", cmd); !strings.HasPrefix(l[len(l)-1], "s OK") {
				t.Fatalf("%s: %q", cmd, l)
			}
		}
	}
	if p != nil {
		idleOnce(t, b, p, "INBOX")
	} else {
		b.c.Write([]byte("i IDLE\r\nDONE\r\n"))
		b.answer("i")
	}
	return a, b
}

// transcript is what sessions sent and were answered, each line
// prefixed with the session's name.
type transcript []string

// record runs cmd on rc and adds it and its answer to the transcript.
func (tr *transcript) record(who string, rc *rawConn, tag, cmd string) {
	*tr = append(*tr, who+" "+cmd)
	for _, l := range rc.cmd(tag, cmd) {
		*tr = append(*tr, who+": "+l)
	}
}

// TestDovecotConcurrentStoresLeaveUpstreamFlags: sessions through idlemux
// toggle the same flags of the same messages at once, so that STORE
// reports reach the watcher in any order; at once after the last OK, a
// SEARCH by each flag (answered from the model) finds what Dovecot finds
// directly.
func TestDovecotConcurrentStoresLeaveUpstreamFlags(t *testing.T) {
	dv := startDovecot(t)
	seed := dv.Dial(t, testUser, testPass)
	for i := range 3 {
		appendMsg(t, seed, "INBOX", testMessage(fmt.Sprintf("m%d", i)))
	}
	seed.Logout().Wait()
	p := startProxy(t, testConfig(dv.Addr))
	sessions := idlingSessions(t, p, 8)
	stores := []string{`+FLAGS (\Seen)`, `-FLAGS (\Seen)`, `+FLAGS (\Flagged \Seen)`, `-FLAGS (\Flagged)`, `FLAGS (\Answered)`, `+FLAGS.SILENT (\Draft)`}
	for round := range 3 {
		var wg sync.WaitGroup
		for i, rc := range sessions {
			wg.Go(func() {
				for j := range 12 {
					tag := fmt.Sprintf("c%d", j)
					cmd := fmt.Sprintf("STORE %d %s", 1+(i+j)%3, stores[(i*5+j*7+round)%len(stores)])
					if l := rc.cmd(tag, cmd); !strings.HasPrefix(l[len(l)-1], tag+" OK") {
						t.Errorf("%s: %q", cmd, l[len(l)-1])
						return
					}
				}
			})
		}
		wg.Wait()
		direct := dialSelected(t, dv.Addr)
		var got, want []string
		for _, key := range []string{"SEEN", "FLAGGED", "ANSWERED", "DRAFT"} {
			got = append(got, key+": "+searchLine(sessions[1].cmd("s", "UID SEARCH "+key)))
			want = append(want, key+": "+searchLine(direct.cmd("s", "UID SEARCH "+key)))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("round %d: flags through idlemux:\n\t%s\nwant (Dovecot directly):\n\t%s", round,
				strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
}

// idlingSessions opens n sessions through p with INBOX selected, the
// first idling once: INBOX's watcher idles on its own connection.
func idlingSessions(t *testing.T, p *Server, n int) []*rawConn {
	t.Helper()
	sessions := make([]*rawConn, n)
	for i := range sessions {
		sessions[i] = dialRaw(t, p.Addrs()[0])
		for _, cmd := range []string{"LOGIN " + testUser + " " + testPass, "SELECT INBOX"} {
			if l := sessions[i].cmd("s", cmd); !strings.HasPrefix(l[len(l)-1], "s OK") {
				t.Fatalf("%s: %q", cmd, l)
			}
		}
	}
	idleOnce(t, sessions[0], p, "INBOX")
	return sessions
}

// dialSelected is a new session with INBOX examined.
func dialSelected(t *testing.T, addr string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.cmd("l", "LOGIN "+testUser+" "+testPass)
	rc.cmd("e", "EXAMINE INBOX")
	return rc
}

// searchLine is the SEARCH response of an answer; the flag updates
// pending for the session that come with it are left out.
func searchLine(lines []string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, "* SEARCH") {
			return l
		}
	}
	return "no SEARCH response in " + strings.Join(lines, " | ")
}
