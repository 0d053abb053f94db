package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/dovecottest"
	"github.com/idlemux/idlemux/internal/faultrelay"
)

// TestDovecotNoNoopAfterOwnSelect: a pool connection that SELECTs the
// mailbox for a write hears of every message then (RFC 3501 6.3.1), so
// acquire records every UID the model held, not only the write's own
// bound (0 for APPEND, the largest named UID for STORE). The next
// command on that connection naming a message above the bound sends no
// NOOP first, as Dovecot directly needs none.
func TestDovecotNoNoopAfterOwnSelect(t *testing.T) {
	msg := testMessage("appended")
	tests := []struct {
		name  string
		write string
		read  string
	}{
		{"APPEND then FETCH of an old message", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "UID FETCH 3 (BODY.PEEK[TEXT])"},
		{"STORE 1 then FETCH 3", `STORE 1 +FLAGS (\Flagged)`, "UID FETCH 3 (BODY.PEEK[TEXT])"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dv := startDovecot(t)
			seed := seedInbox(t, dv, 3, true)
			if err := seed.Create("Other", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			appendMsg(t, seed, "Other", testMessage("other"))
			seed.Logout().Wait()
			cfg := testConfig(dv.Addr)
			cfg.Upstream.MaxConnectionsPerAccount = 2 // one watcher, one command connection: the same one each time
			p := startProxy(t, cfg)
			a, b := confirmSessions(t, dv, p, "SELECT INBOX")
			// The one command connection leaves INBOX: the write SELECTs it again.
			a.cmd("o", "SELECT Other")
			t.Logf("other: %q", a.cmd("o", "UID FETCH 1 (BODY.PEEK[TEXT])"))
			before := p.upStats().Commands
			b.cmd("w", tc.write)
			t.Logf("write cost %v", commandsSince(p, before))
			before = p.upStats().Commands
			b.cmd("r", tc.read)
			cmds := commandsSince(p, before)
			if cmds["NOOP"] != 0 {
				t.Errorf("upstream commands of %q after %q: got %v, want no NOOP (the connection's SELECT heard of every message)", tc.read, tc.write, cmds)
			}
		})
	}
}

// TestDovecotStoreBehindSlowAppend: session A APPENDs a large message to
// INBOX over a slow upstream link (4 MiB, 20 ms per 32 KiB chunk: about
// 2.6 s upstream); session B, 200 ms later, STOREs a flag in INBOX.
// Directly (and through idlemux without a bound), B's STORE runs beside
// the APPEND and takes a few chunk delays; with max_writes_per_mailbox 1,
// A gives its slot up after maxSlotHold (250 ms), so B never waits the
// whole maxSlotWait (2 s) it waited before.
func TestDovecotStoreBehindSlowAppend(t *testing.T) {
	tests := []struct {
		name   string
		writes int // max_writes_per_mailbox; -1: directly on Dovecot
	}{
		{"directly", -1},
		{"idlemux, no bound", 0},
		{"idlemux, default bound", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dv := startDovecot(t)
			seed := seedInbox(t, dv, 3, false)
			seed.Logout().Wait()
			relay := faultrelay.Start(t, dv.Addr)
			addr := relay.Addr()
			if tc.writes >= 0 {
				cfg := testConfig(relay.Addr())
				cfg.Upstream.MaxWritesPerMailbox = tc.writes
				addr = startProxy(t, cfg).Addrs()[0]
			}
			a, b := dialRaw(t, addr), dialRaw(t, addr)
			for _, rc := range []*rawConn{a, b} {
				rc.cmd("l", "LOGIN "+testUser+" "+testPass)
				rc.cmd("s", "SELECT INBOX")
			}
			b.cmd("w", `STORE 1 +FLAGS (\Seen)`) // B's connection is up
			big := testMessage("big") + strings.Repeat("x", 4<<20) + "\r\n"
			relay.SetDelay(20 * time.Millisecond)
			done := make(chan []string, 1)
			go func() {
				fmt.Fprintf(a.c, "a APPEND INBOX {%d+}\r\n%s\r\n", len(big), big)
				done <- a.answer("a")
			}()
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			l := b.cmd("b", `STORE 2 +FLAGS (\Flagged)`)
			took := time.Since(start)
			t.Logf("B's STORE took %v: %q", took, l[len(l)-1])
			if took > 1500*time.Millisecond {
				t.Errorf("B's STORE beside A's slow APPEND: got %v, want well under the 2 s slot wait (directly: a few chunk delays)", took)
			}
			if l := <-done; !strings.HasPrefix(l[len(l)-1], "a OK") {
				t.Errorf("A's APPEND: got %q", l[len(l)-1])
			}
			relay.SetDelay(0)
		})
	}
}

// TestDovecotFetchAfterReadBack: the read-back after an
// APPEND (UID FETCH (UID FLAGS MODSEQ)) enables CONDSTORE on the pool
// connection (RFC 7162 3.1: a FETCH of MODSEQ is a CONDSTORE enabling
// command). A session that never enabled CONDSTORE then has FETCHes
// relayed on that connection: Dovecot adds MODSEQ to FETCH responses
// with FLAGS there. The client must see what it sees directly.
func TestDovecotFetchAfterReadBack(t *testing.T) {
	msg := testMessage("appended")
	run := func(dv *dovecottest.Server, p *Server) transcript {
		seed := seedInbox(t, dv, 3, false)
		seed.Logout().Wait()
		_, b := confirmSessions(t, dv, p, "SELECT INBOX")
		var out transcript
		out.record("B", b, "a", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
		out.record("B", b, "f1", "FETCH 4 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
		out.record("B", b, "f2", "FETCH 1 (BODY[TEXT] FLAGS)")
		out.record("B", b, "f3", `STORE 2 +FLAGS (\Flagged)`)
		return out
	}
	want := run(startDovecot(t), nil)
	dv := startDovecot(t)
	cfg := testConfig(dv.Addr)
	cfg.Upstream.MaxConnectionsPerAccount = 2 // the connection that read back serves the FETCHes
	got := run(dv, startProxy(t, cfg))
	diffWire(t, noRecentAll(got), noRecentAll(want))
}

// TestDovecotAppendKeywordSelected: APPEND with a
// keyword new to the mailbox, to the session's selected mailbox, in the
// states the APPEND's tellMailboxFlags meets: EXAMINEd (read-only
// PERMANENTFLAGS), polled (the watcher never idled: confirmed by a
// Sync), CONDSTORE enabled, and to another mailbox (no FLAGS).
func TestDovecotAppendKeywordSelected(t *testing.T) {
	msg := testMessage("appended")
	tests := []struct {
		name   string
		sel    string
		target string
		idle   bool
	}{
		{"examined, idled", "EXAMINE INBOX", "INBOX", true},
		{"selected, polled", "SELECT INBOX", "INBOX", false},
		{"examined, polled", "EXAMINE INBOX", "INBOX", false},
		{"condstore, idled", "SELECT INBOX (CONDSTORE)", "INBOX", true},
		{"other mailbox", "SELECT INBOX", "Other", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := func(dv *dovecottest.Server, p *Server) transcript {
				seed := seedInbox(t, dv, 2, true)
				if err := seed.Create("Other", nil).Wait(); err != nil {
					t.Fatal(err)
				}
				seed.Logout().Wait()
				addr := dv.Addr
				if p != nil {
					addr = p.Addrs()[0]
				}
				b := dialRaw(t, addr)
				b.cmd("l", "LOGIN "+testUser+" "+testPass)
				b.cmd("s", tc.sel)
				if tc.idle && p != nil {
					idleOnce(t, b, p, "INBOX")
				}
				var out transcript
				out.record("B", b, "a", fmt.Sprintf("APPEND %s ($New1 \\Seen) {%d+}\r\n%s", tc.target, len(msg), msg))
				out.record("B", b, "n", "NOOP")
				out.record("B", b, "f", "FETCH 1:* (UID FLAGS)")
				return out
			}
			want := run(startDovecot(t), nil)
			dv := startDovecot(t)
			got := run(dv, startProxy(t, testConfig(dv.Addr)))
			diffWire(t, noRecentAll(got), noRecentAll(want))
		})
	}
}
