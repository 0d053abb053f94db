package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// TestDovecotWritesAskForIdle: a session that never idles and writes
// again and again in its selected mailbox gets, at its second write, an
// upstream IDLE connection for the mailbox (pollsync.go wantsNews), so
// that its next writes are confirmed by their own answers instead of a
// poll round each (SELECT, SEARCH, FETCH upstream). One write, as a
// folder-by-folder sync makes, leaves the mailbox polled. The session's
// wire is Dovecot's either way.
func TestDovecotWritesAskForIdle(t *testing.T) {
	msg := testMessage("written")
	appendCmd := fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg)
	tests := []struct {
		name     string
		writes   []string
		wantIdle bool
	}{
		{"two STOREs", []string{`STORE 1 +FLAGS (\Seen)`, `STORE 1 -FLAGS (\Seen)`}, true},
		{"two APPENDs", []string{appendCmd, appendCmd}, true},
		{"a STORE and an APPEND", []string{`STORE 2 +FLAGS (\Flagged)`, appendCmd}, true},
		{"one STORE", []string{`STORE 1 +FLAGS (\Seen)`}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := func(dv *dovecottest.Server, addr string, after func()) transcript {
				seed := seedInbox(t, dv, 3, false)
				seed.Logout().Wait()
				rc := dialRaw(t, addr)
				if l := rc.cmd("l", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "l OK") {
					t.Fatalf("LOGIN: %q", l)
				}
				var out transcript
				for i, cmd := range append([]string{"SELECT INBOX"}, tc.writes...) {
					out.record("A", rc, fmt.Sprintf("w%d", i), cmd)
				}
				after()
				out.record("A", rc, "s", `STORE 3 +FLAGS (\Answered)`)
				out.record("A", rc, "f", "FETCH 1:* (UID FLAGS)")
				return out
			}
			dd := startDovecot(t)
			want := run(dd, dd.Addr, func() {})
			dv := startDovecot(t)
			p := startProxy(t, testConfig(dv.Addr))
			got := run(dv, p.Addrs()[0], func() {
				if tc.wantIdle {
					waitFor(t, "INBOX's watcher on a connection of its own", func() bool {
						st := p.upStats()
						return st.Watchers == 1 && st.Polled == 0 && st.Live == 1
					})
				} else if st := p.upStats(); st.Polled != 1 {
					t.Errorf("watchers polled after one write: got %d, want 1", st.Polled)
				}
			})
			diffWire(t, noRecentAll(got), noRecentAll(want))
			byAnswer := testutil.ToFloat64(p.metrics.storeConfirmed.WithLabelValues("answer"))
			if tc.wantIdle && byAnswer < 1 {
				t.Errorf("STOREs confirmed by their answer once the mailbox idles: got %v, want the last one at least", byAnswer)
			}
			if !tc.wantIdle && byAnswer != 0 {
				t.Errorf("STOREs confirmed by their answer in a polled mailbox: got %v, want 0", byAnswer)
			}
		})
	}
}

// noRecentAll drops \Recent and the RECENT count from a transcript:
// which session gets a message as recent differs through idlemux (its
// watcher's session sees it first), README "\Recent".
func noRecentAll(tr transcript) transcript {
	var out transcript
	for _, l := range tr {
		if strings.HasSuffix(l, " RECENT") {
			continue
		}
		out = append(out, noRecent(l))
	}
	return out
}
