package proxy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestDovecotListEmptyPattern: LIST with an empty pattern asks for the
// hierarchy delimiter (RFC 3501 6.3.8), which go-imap's server drops: the
// answer through idlemux is Dovecot's own.
func TestDovecotListEmptyPattern(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	for _, cmd := range []string{`LIST "" ""`, `LIST "INBOX" ""`, `LIST "" "INBOX"`} {
		want, got := untaggedOK(t, dv.Addr, cmd), untaggedOK(t, p.Addrs()[0], cmd)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: through idlemux %q, directly %q", cmd, got, want)
		}
	}
}

// untaggedOK runs cmd, logged in, on a fresh connection to addr and
// returns the untagged lines of its answer, checking that it ends OK.
func untaggedOK(t *testing.T, addr, cmd string) []string {
	t.Helper()
	lines := converse(t, addr, true, "a "+cmd+"\r\nzz NOOP\r\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-2], "a OK") {
		t.Errorf("%s against %s: got %q, want a OK", cmd, addr, lines)
	}
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "* ") {
			out = append(out, l)
		}
	}
	return out
}

// TestDovecotStoreSkipsExpunged: a STORE naming a message expunged
// elsewhere, not yet reported to the session, answers OK and stores the
// rest, as Dovecot does (RFC 2180 4.2.1).
func TestDovecotStoreSkipsExpunged(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := dv.Dial(t, testUser, testPass)
	for _, via := range []struct{ name, addr, box string }{
		{"directly", dv.Addr, "StoreD"},
		{"through idlemux", p.Addrs()[0], "StoreP"},
	} {
		t.Run(via.name, func(t *testing.T) {
			if err := direct.Create(via.box, nil).Wait(); err != nil {
				t.Fatal(err)
			}
			appendMsg(t, direct, via.box, testMessage("first"))
			second := appendMsg(t, direct, via.box, testMessage("second"))
			a := dialRaw(t, via.addr)
			a.cmd("l", "LOGIN "+testUser+" "+testPass)
			a.cmd("s", "SELECT "+via.box)

			if _, err := direct.Select(via.box, nil).Wait(); err != nil {
				t.Fatal(err)
			}
			if err := direct.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if err := direct.Expunge().Close(); err != nil {
				t.Fatal(err)
			}
			if via.addr != dv.Addr {
				// Until idlemux's model has it: FETCH never reports
				// EXPUNGE, and answers OK [EXPUNGEISSUED] once it knows.
				deadline := time.Now().Add(waitLong)
				for l := a.cmd("f", "FETCH 1 FLAGS"); !strings.Contains(l[len(l)-1], "EXPUNGEISSUED"); l = a.cmd("f", "FETCH 1 FLAGS") {
					if time.Now().After(deadline) {
						t.Fatalf("FETCH 1 after the expunge elsewhere: got %q, want NO [EXPUNGEISSUED]", l)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			got := a.cmd("t", `STORE 1:2 +FLAGS (\Flagged)`)
			if !strings.HasPrefix(got[len(got)-1], "t OK") {
				t.Errorf("STORE 1:2 with 1 expunged elsewhere: got %q, want t OK", got)
			}
			msgs, err := direct.Fetch(imap.UIDSetNum(second), &imap.FetchOptions{Flags: true}).Collect()
			if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagFlagged) {
				t.Errorf("the message not expunged: got %+v, %v; want it \\Flagged", msgs, err)
			}
		})
	}
}
