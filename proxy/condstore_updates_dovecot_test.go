package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/dovecottest"
)

// TestDovecotCondstoreUnsolicited: a CONDSTORE-enabled session is told
// another session's flag change with MODSEQ (RFC 7162 3.1.4: "the server
// MUST include the MODSEQ fetch response data item in all subsequent
// unsolicited FETCH responses"), after NOOP and in IDLE (the fast path
// over plain TCP, the ordinary path over TLS), whether it enabled with
// ENABLE, with SELECT (CONDSTORE) or after selecting; a session that
// enabled nothing gets no MODSEQ. Each scenario runs directly on Dovecot
// and through idlemux, each on a fresh mailbox with the same history (so
// the same mod-sequences), and the wires are compared; a FETCH's UID is
// left out of the comparison (keywordWire: idlemux names it in every
// unsolicited FETCH, RFC 3501 7.4.2 allows it).
func TestDovecotCondstoreUnsolicited(t *testing.T) {
	dv, p, direct := dovecotBehindPlainAndTLS(t)

	// open logs rc in and runs cmds, checking each ends OK.
	open := func(rc *rawConn, cmds ...string) *rawConn {
		rc.cmd("l", "LOGIN "+testUser+" "+testPass)
		for _, c := range cmds {
			if got := rc.cmd("s", c); !strings.HasPrefix(got[len(got)-1], "s OK") {
				t.Fatalf("%s: got %q", c, got)
			}
		}
		return rc
	}
	type via struct {
		name string
		dial func(t *testing.T) *rawConn
		up   string // where the other session connects
		fast bool   // an IDLE observer takes the fast path
	}
	vias := []via{
		{name: "directly", dial: func(t *testing.T) *rawConn { return dialRaw(t, dv.Addr) }, up: dv.Addr},
		{name: "idlemux plain", dial: func(t *testing.T) *rawConn { return dialRaw(t, p.Addrs()[0]) }, up: p.Addrs()[0], fast: true},
		{name: "idlemux TLS", dial: func(t *testing.T) *rawConn { return dialRawTLS(t, p.Addrs()[1]) }, up: p.Addrs()[0]},
	}
	store := func(t *testing.T, addr, box string) {
		open(dialRaw(t, addr), "SELECT "+box).cmd("t", `STORE 2 +FLAGS (\Flagged)`)
	}
	idle := func(t *testing.T, v via, a *rawConn, addr, box string) []string {
		fmt.Fprintf(a.c, "i IDLE\r\n")
		out := []string{a.line()}
		if v.fast {
			waitFastIdle(t, p)
		}
		store(t, addr, box)
		out = append(out, a.untilPrefix("* 2 FETCH")...)
		fmt.Fprintf(a.c, "DONE\r\n")
		return append(out, a.untilPrefix("i ")...)
	}
	tests := []struct {
		name   string
		modseq bool // Dovecot's answer must hold MODSEQ
		run    func(t *testing.T, v via, box string) []string
	}{
		{"ENABLE, NOOP observer", true, func(t *testing.T, v via, box string) []string {
			a := open(v.dial(t), "ENABLE CONDSTORE", "SELECT "+box)
			store(t, v.up, box)
			return append(a.cmd("n", "NOOP"), a.cmd("m", "NOOP")...)
		}},
		{"ENABLE after SELECT, NOOP observer", true, func(t *testing.T, v via, box string) []string {
			a := open(v.dial(t), "SELECT "+box)
			out := a.cmd("e", "ENABLE CONDSTORE")
			store(t, v.up, box)
			return append(out, a.cmd("n", "NOOP")...)
		}},
		{"SELECT (CONDSTORE), IDLE observer", true, func(t *testing.T, v via, box string) []string {
			return idle(t, v, open(v.dial(t), "SELECT "+box+" (CONDSTORE)"), v.up, box)
		}},
		{"SELECT (CONDSTORE), IDLE observer, change made upstream", true, func(t *testing.T, v via, box string) []string {
			return idle(t, v, open(v.dial(t), "SELECT "+box+" (CONDSTORE)"), dv.Addr, box)
		}},
		{"not enabled, NOOP observer", false, func(t *testing.T, v via, box string) []string {
			a := open(v.dial(t), "SELECT "+box)
			store(t, v.up, box)
			return a.cmd("n", "NOOP")
		}},
		{"not enabled, IDLE observer", false, func(t *testing.T, v via, box string) []string {
			return idle(t, v, open(v.dial(t), "SELECT "+box), v.up, box)
		}},
	}
	boxes := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, v := range vias {
				boxes++
				box := twoMessageBox(t, direct, fmt.Sprintf("Cs%d", boxes))
				got := keywordWire(tt.run(t, v, box))
				if v.name == "directly" {
					want = got
					has := slices.ContainsFunc(want, func(l string) bool { return strings.Contains(l, "FETCH") && strings.Contains(l, "MODSEQ") })
					if has != tt.modseq {
						t.Fatalf("Dovecot: got %q, want MODSEQ in a FETCH: %v", want, tt.modseq)
					}
					continue
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s:\n got %q\nwant %q (Dovecot)", v.name, got, want)
				}
			}
		})
	}
}

// twoMessageBox creates box with two messages, "first" and "second", and
// returns its name: the same history, so the same mod-sequences, in
// every mailbox it makes.
func twoMessageBox(t *testing.T, direct *imapclient.Client, box string) string {
	t.Helper()
	if err := direct.Create(box, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, direct, box, testMessage("first"))
	appendMsg(t, direct, box, testMessage("second"))
	return box
}

// dovecotBehindPlainAndTLS starts Dovecot and idlemux in front of it
// with a plain listener (Addrs()[0]) and an implicit-TLS one (Addrs()[1]),
// and a client logged in on Dovecot directly.
func dovecotBehindPlainAndTLS(t *testing.T) (*dovecottest.Server, *Server, *imapclient.Client) {
	t.Helper()
	dv := startDovecot(t)
	cert, key := writeCert(t, t.TempDir(), "idlemux-test")
	cfg := testConfig(dv.Addr)
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
	cfg.Listeners = append(cfg.Listeners, config.Listener{Address: "127.0.0.1:0", TLS: config.TLSImplicit, InsecureAuth: true})
	return dv, startProxy(t, cfg), dv.Dial(t, testUser, testPass)
}

// TestDovecotCondstoreFlagsChangedBack: a message whose flags another
// client changed and changed back is told to every session as Dovecot
// tells it: FETCH FLAGS with the flags as they are, with MODSEQ for a
// CONDSTORE-enabled session (its MODSEQ rose: RFC 7162 3.1.1), without
// for one that enabled nothing.
func TestDovecotCondstoreFlagsChangedBack(t *testing.T) {
	compareScript(t, []step{
		{"direct", "APPEND INBOX one"},
		{"plain", "SELECT INBOX"},
		{"e", "SELECT INBOX (CONDSTORE)"},
		{"direct", "SELECT INBOX"},
		{"direct", `STORE 1 +FLAGS (\Flagged)`},
		{"direct", `STORE 1 -FLAGS (\Flagged)`},
		{"plain", "NOOP"},
		{"e", "NOOP"},
		{"e", "FETCH 1 (MODSEQ)"},
	}, nil)
}
