package proxy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/idlemux/idlemux/internal/faultrelay"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// serverState reads UIDs and flags straight from Dovecot.
func serverState(t *testing.T, c *imapclient.Client) ([]imap.UID, map[imap.UID][]imap.Flag) {
	t.Helper()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var uids []imap.UID
	flags := map[imap.UID][]imap.Flag{}
	for _, m := range msgs {
		uids = append(uids, m.UID)
		flags[m.UID] = stripRecent(m.Flags)
	}
	return uids, flags
}

// converged reports whether an idling client's view matches the server's
// list: same length, and every UID it already knows in the right place
// (new messages are placeholders until the client fetches them).
func (vc *viewClient) converged(want []imap.UID, flagged imap.UID) bool {
	if len(vc.uids) != len(want) {
		return false
	}
	for i, u := range vc.uids {
		if u != 0 && u != want[i] {
			return false
		}
	}
	return flagged == 0 || slices.Contains(vc.flags[flagged], imap.FlagFlagged)
}

// TestDovecotFaultsAreInvisible: 20 clients idle through idlemux while the
// upstream connections are reset, frozen (half-open) and Dovecot is killed
// and restarted; between faults mail is appended, flagged and expunged
// directly on Dovecot. Every client stays connected, sees every change in
// its own numbering, and ends with a view equal to the server's.
func TestDovecotFaultsAreInvisible(t *testing.T) {
	if testing.Short() {
		t.Skip("fault rounds take a while")
	}
	dv := startDovecot(t)
	for i := 0; i < 5; i++ {
		if _, err := dv.Append(testUser, "INBOX", []byte(testMessage(fmt.Sprintf("seed %d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	relay := faultrelay.Start(t, dv.Addr)
	cfg := testConfig(relay.Addr())
	cfg.Upstream.IdleRefresh = time.Second // a frozen IDLE is found at the next refresh
	cfg.Upstream.ResponseTimeout = 2 * time.Second
	p := startProxy(t, cfg)

	const n = 20
	clients := make([]*viewClient, n)
	idles := make([]*imapclient.IdleCommand, n)
	for i := range clients {
		vc := dialView(t, p.Addrs()[0], fmt.Sprintf("client%02d", i))
		vc.login()
		vc.selectBox("INBOX")
		idles[i] = vc.idle()
		clients[i] = vc
	}

	faults := []struct {
		name   string
		inject func()
	}{
		{"reset", relay.ResetAll},
		{"freeze", func() { relay.Freeze(); time.Sleep(4 * time.Second); relay.Thaw() }},
		{"reset", relay.ResetAll},
		{"dovecot killed and restarted", func() {
			if err := dv.Kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			dv.Restart(t)
		}},
		{"reset", relay.ResetAll},
		{"cut mid-response", func() { relay.CutAfter(3); relay.ResetAll() }},
		{"freeze", func() { relay.Freeze(); time.Sleep(3 * time.Second); relay.Thaw() }},
		{"reset", relay.ResetAll},
		{"dovecot killed and restarted", func() {
			if err := dv.Kill(); err != nil {
				t.Fatal(err)
			}
			dv.Restart(t)
		}},
		{"slow", func() { relay.SetDelay(200 * time.Millisecond) }},
		{"reset", func() { relay.SetDelay(0); relay.ResetAll() }},
	}
	var took []time.Duration
	for round, f := range faults {
		f.inject()
		faultEnd := time.Now()
		// Changes made directly on Dovecot right after the fault.
		direct := dv.Dial(t, testUser, testPass)
		uids, _ := serverState(t, direct)
		appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("round %d", round)))
		flagged := uids[len(uids)-1]
		if err := direct.Store(imap.UIDSetNum(flagged), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if round%2 == 0 {
			if err := direct.Store(imap.UIDSetNum(uids[0]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if err := direct.Expunge().Close(); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := serverState(t, direct)
		direct.Logout().Wait()
		direct.Close()
		for _, vc := range clients {
			vc.waitFor(fmt.Sprintf("round %d (%s) to converge on %v", round, f.name, want), 30*time.Second, func() bool {
				return vc.converged(want, flagged)
			})
		}
		took = append(took, time.Since(faultEnd))
		if st := p.Stats(); st.Sessions != n {
			t.Fatalf("round %d (%s): %d sessions left, want %d", round, f.name, st.Sessions, n)
		}
	}
	for i, vc := range clients {
		select {
		case <-vc.c.Closed():
			t.Fatalf("%s was disconnected", vc.name)
		default:
		}
		vc.done(idles[i])
		vc.checkAgainstServer()
	}
	sorted := slices.Clone(took)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	conns, _ := dv.Connections(testUser)
	t.Logf("fault end (plus direct changes) to all %d clients converged: median %v, max %v; per round %v; Dovecot sessions after the faults: %d",
		n, sorted[len(sorted)/2], sorted[len(sorted)-1], took, conns)
}

// TestDovecotCommandsInFlight: when the upstream goes silent under a
// command, an idempotent one (FETCH) is retried on a fresh connection and
// succeeds; a mutating one (STORE) fails with NO [UNAVAILABLE] and is never
// silently applied twice.
func TestDovecotCommandsInFlight(t *testing.T) {
	dv := startDovecot(t)
	if _, err := dv.Append(testUser, "INBOX", []byte(testMessage("one"))); err != nil {
		t.Fatal(err)
	}
	relay := faultrelay.Start(t, dv.Addr)
	cfg := testConfig(relay.Addr())
	cfg.Upstream.ResponseTimeout = time.Second
	p := startProxy(t, cfg)
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SELECT INBOX")

	relay.Freeze()
	thawed := time.AfterFunc(1500*time.Millisecond, relay.Thaw)
	defer thawed.Stop()
	lines := rc.cmd("c", "UID FETCH 1:* (UID FLAGS)")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "c OK") || len(lines) != 2 {
		t.Fatalf("FETCH across a silent upstream: got %q, want one FETCH and OK (retried)", lines)
	}

	relay.Freeze()
	lines = rc.cmd("d", "STORE 1 +FLAGS (\\Flagged)")
	relay.Thaw()
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "d NO [UNAVAILABLE]") {
		t.Fatalf("STORE across a silent upstream: got %q, want NO [UNAVAILABLE]", lines)
	}
	lines = rc.cmd("e", "NOOP")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "e OK") {
		t.Fatalf("session after the failure: got %q", lines)
	}
}

// TestDovecotMailboxDeletedWhileIdling: a permanent upstream error (the
// mailbox deleted) stops the watcher's retries and ends the sessions on it
// with a BYE that says why.
func TestDovecotMailboxDeletedWhileIdling(t *testing.T) {
	dv := startDovecot(t)
	direct := dv.Dial(t, testUser, testPass)
	if err := direct.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, direct, "Work", testMessage("w"))
	p := startProxy(t, testConfig(dv.Addr))
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SELECT Work")
	fmt.Fprintf(rc.c, "c IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: got %q", l)
	}
	if err := direct.Delete("Work").Wait(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		rc.c.SetReadDeadline(time.Now().Add(waitLong))
		l, err := rc.r.ReadString('\n')
		if l != "" {
			got = append(got, strings.TrimSpace(l))
		}
		if err != nil {
			break
		}
	}
	joined := strings.Join(got, "\n")
	// Dovecot 2.3 says this to a session idling on a mailbox another
	// session deletes (TestDovecotDeletedMailboxRecreated has the rest).
	if !strings.Contains(joined, "* BYE "+quirks.ByeMailboxGone) {
		t.Fatalf("idling on a deleted mailbox: got %q, want * BYE %s", got, quirks.ByeMailboxGone)
	}
	deadline := time.Now().Add(waitLong)
	for p.Stats().MailboxesWatched != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("watcher still running after a permanent error: %+v", p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDovecotKickIsAReconnect: `doveadm kick` makes Dovecot send * BYE to
// every session of the user; for idlemux that is a reconnect, not an error
// its clients see.
func TestDovecotKickIsAReconnect(t *testing.T) {
	dv := startDovecot(t)
	if _, err := dv.Append(testUser, "INBOX", []byte(testMessage("one"))); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, testConfig(dv.Addr))
	vc := dialView(t, p.Addrs()[0], "idler")
	vc.login()
	vc.selectBox("INBOX")
	idle := vc.idle()
	if out, err := dv.Doveadm("kick", testUser); err != nil {
		t.Fatalf("doveadm kick: %v: %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := dv.Append(testUser, "INBOX", []byte(testMessage("two"))); err != nil {
		t.Fatal(err)
	}
	vc.waitFor("EXISTS 2 after the upstream said BYE", 30*time.Second, func() bool { return len(vc.uids) == 2 })
	vc.done(idle)
	vc.checkAgainstServer()
}
