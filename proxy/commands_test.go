package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// setup starts a mem upstream with n messages and a proxy in front of it.
func setup(t *testing.T, n int) (*memUpstream, *Server, *imapclient.Client) {
	t.Helper()
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	for i := 0; i < n; i++ {
		appendMsg(t, direct, "INBOX", testMessage(fmt.Sprintf("message %d", i+1)))
	}
	return up, startProxy(t, testConfig(up.addr)), direct
}

// TestOwnChangesExactlyOnce: a client's own STORE and EXPUNGE come back to
// it in its command's responses once, and reach the other client too.
func TestOwnChangesExactlyOnce(t *testing.T) {
	_, p, _ := setup(t, 3)
	a := dialView(t, p.Addrs()[0], "actor")
	b := dialView(t, p.Addrs()[0], "watcher")
	for _, vc := range []*viewClient{a, b} {
		vc.login()
		vc.selectBox("INBOX")
	}
	idle := b.idle()

	msgs, err := a.c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	if err != nil {
		t.Fatalf("STORE: %v", err)
	}
	if len(msgs) != 1 || msgs[0].SeqNum != 2 || !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("STORE response: got %+v, want one FETCH for 2 with \\Seen", msgs)
	}
	uid2 := a.uids[1]
	b.waitFor("FETCH \\Seen", waitLong, func() bool { return slices.Contains(b.flags[uid2], imap.FlagSeen) })
	if err := a.c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	for _, e := range a.events {
		if strings.HasPrefix(e, "FETCH") {
			t.Errorf("actor got its own change again after STORE: %v", a.events)
		}
	}
	a.mu.Unlock()

	// Expunge message 1 through the proxy.
	if err := a.c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err := a.c.Expunge().Collect()
	if err != nil {
		t.Fatalf("EXPUNGE: %v", err)
	}
	if !slices.Equal(seqs, []uint32{1}) {
		t.Fatalf("EXPUNGE responses: got %v, want [1]", seqs)
	}
	a.mu.Lock()
	a.uids = slices.Delete(a.uids, 0, 1)
	a.mu.Unlock()
	b.waitFor("EXPUNGE 1", waitLong, func() bool { return len(b.uids) == 2 })
	b.done(idle)
	a.checkAgainstServer()
	b.checkAgainstServer()
}

// TestExpungedButNotYetToldRFC2180: a message expunged upstream keeps its
// number for a client that was not told yet; FETCH of it answers NO
// [EXPUNGEISSUED], FETCH of the others still works with the old numbers,
// and the EXPUNGE arrives with the next command that allows it.
func TestExpungedButNotYetToldRFC2180(t *testing.T) {
	_, p, direct := setup(t, 3)
	a := dialView(t, p.Addrs()[0], "client")
	a.login()
	a.selectBox("INBOX")
	uids := slices.Clone(a.uids)

	expungeDirect(t, direct, 2)
	// Wait until the proxy's model has it (the next FETCH must still not
	// renumber): poll with FETCH, which never delivers EXPUNGE.
	deadline := time.Now().Add(waitLong)
	for {
		// Once the upstream has it, message 2 gets no response and the
		// command OK [EXPUNGEISSUED], as Dovecot answers (imapclient does
		// not report an OK's code).
		msgs, err := a.c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
		if err == nil && len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FETCH 2 after upstream expunge: got %+v, %v; want no message, OK [EXPUNGEISSUED]", msgs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	msgs, err := a.c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != uids[2] {
		t.Fatalf("FETCH 3 UID: got %+v, %v; want UID %d (old numbering)", msgs, err, uids[2])
	}
	if a.count() != 3 {
		t.Fatalf("client was told of the expunge during FETCH: %v", a.events)
	}
	if err := a.c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	a.waitFor("EXPUNGE 2", waitLong, func() bool { return len(a.uids) == 2 })
	a.checkAgainstServer()
}

func TestWrongPassword(t *testing.T) {
	_, p, _ := setup(t, 0)
	c, err := imapclient.DialInsecure(p.Addrs()[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(testUser, "wrong").Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("LOGIN with a wrong password: got %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	// The right password still works, and a wrong one after it is still
	// checked upstream, never accepted from the cache.
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	c2, _ := imapclient.DialInsecure(p.Addrs()[0], nil)
	defer c2.Close()
	if err := c2.Login(testUser, testPass+"x").Wait(); err == nil {
		t.Fatal("a different password was accepted after a good login")
	}
}

// rawConn speaks IMAP by hand, to send what a library would refuse to.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	return rawOver(t, c, err)
}

// rawOver is a rawConn on a dialled connection, past the greeting.
func rawOver(t testing.TB, c net.Conn, err error) *rawConn {
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.line() // greeting
	return rc
}

func (rc *rawConn) line() string {
	rc.c.SetReadDeadline(time.Now().Add(waitLong))
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmdUntilClose sends one line and returns every line up to the tagged
// answer or the end of the connection.
func (rc *rawConn) cmdUntilClose(tag, text string) []string {
	fmt.Fprintf(rc.c, "%s %s\r\n", tag, text)
	var out []string
	for {
		rc.c.SetReadDeadline(time.Now().Add(waitLong))
		l, err := rc.r.ReadString('\n')
		if l != "" {
			out = append(out, strings.TrimRight(l, "\r\n"))
		}
		if err != nil || strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
}

// cmd sends one line and returns every line up to the tagged answer.
func (rc *rawConn) cmd(tag, text string) []string {
	fmt.Fprintf(rc.c, "%s %s\r\n", tag, text)
	return rc.answer(tag)
}

// answer returns every line up to the tagged answer.
func (rc *rawConn) answer(tag string) []string {
	var out []string
	for {
		l := rc.line()
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
}

func TestBadInputAnswersClearly(t *testing.T) {
	_, p, _ := setup(t, 2)
	rc := dialRaw(t, p.Addrs()[0])
	tests := []struct {
		name, cmd, want string
	}{
		{"login first", "LOGIN " + testUser + " " + testPass, "a0 OK"},
		{"unknown command", "XYZZY", "a1 BAD"},
		{"malformed fetch", "FETCH", "a2 BAD"},
		{"fetch outside selected state", "FETCH 1 FLAGS", "a3 BAD"},
		{"select", "SELECT INBOX", "a4 OK"},
		{"sequence number beyond count", "FETCH 7 FLAGS", "a5 BAD"},
		{"bad flag syntax", "STORE 1 +FLAGS (\\)", "a6 BAD"},
		{"still usable", "FETCH 1:* (UID)", "a7 OK"},
	}
	for i, tt := range tests {
		tag := fmt.Sprintf("a%d", i)
		lines := rc.cmd(tag, tt.cmd)
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, tt.want) {
			t.Errorf("%s: %q answered %q, want prefix %q", tt.name, tt.cmd, last, tt.want)
		}
	}
}

// TestClientVanishes: a client that disappears mid-IDLE or mid-FETCH costs
// nothing lasting: its session ends, the watcher stops, nothing leaks
// (goleak in TestMain checks goroutines).
func TestClientVanishes(t *testing.T) {
	_, p, direct := setup(t, 1)
	big := strings.Repeat("x", 4<<20)
	appendMsg(t, direct, "INBOX", testMessage("big")+big+"\r\n")

	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SELECT INBOX")
	fmt.Fprintf(rc.c, "c IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: got %q", l)
	}
	rc.c.Close()

	rc2 := dialRaw(t, p.Addrs()[0])
	rc2.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc2.cmd("b", "SELECT INBOX")
	fmt.Fprintf(rc2.c, "c FETCH 2 BODY[]\r\n")
	rc2.line() // the FETCH starts
	rc2.c.Close()

	deadline := time.Now().Add(waitLong)
	for p.Stats().Sessions != 0 || p.Stats().MailboxesWatched != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after clients vanished: %+v, want no sessions and no watchers", p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The proxy still serves.
	vc := dialView(t, p.Addrs()[0], "after")
	vc.login()
	if n := vc.selectBox("INBOX").NumMessages; n != 2 {
		t.Fatalf("SELECT after vanished clients: %d messages, want 2", n)
	}
}

// TestExpungeAfterFailedFetch: a FETCH answered [EXPUNGEISSUED] does not
// keep holding the EXPUNGE back: the very next NOOP delivers it.
func TestExpungeAfterFailedFetch(t *testing.T) {
	_, p, direct := setup(t, 3)
	rc := dialRaw(t, p.Addrs()[0])
	rc.cmd("a", "LOGIN "+testUser+" "+testPass)
	rc.cmd("b", "SELECT INBOX")
	expungeDirect(t, direct, 2)
	deadline := time.Now().Add(waitLong)
	for {
		lines := rc.cmd("c", "FETCH 2 FLAGS")
		if strings.Contains(lines[len(lines)-1], "EXPUNGEISSUED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FETCH 2: got %q, want OK [EXPUNGEISSUED]", lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := rc.cmd("d", "NOOP")
	if len(lines) != 2 || lines[0] != "* 2 EXPUNGE" {
		t.Fatalf("NOOP after the failed FETCH: got %q, want * 2 EXPUNGE then OK", lines)
	}
}

// TestManyFoldersInTurn: a client that selects more folders in turn than the
// account has connections (mbsync, a first sync) does not wait for each old
// watcher's linger: unused watchers give their slot up.
func TestManyFoldersInTurn(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	for i := 0; i < 6; i++ {
		if err := direct.Create(fmt.Sprintf("F%d", i), nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(up.addr)
	cfg.Upstream.WatcherLinger = time.Minute
	p := startProxy(t, cfg)
	vc := dialView(t, p.Addrs()[0], "syncer")
	vc.login()
	start := time.Now()
	for i := 0; i < 6; i++ {
		if _, err := vc.c.Select(fmt.Sprintf("F%d", i), nil).Wait(); err != nil {
			t.Fatalf("SELECT F%d: %v", i, err)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("6 SELECTs in turn took %v: waiting on lingering watchers", d)
	}
	if st := p.Stats(); st.UpstreamConns > cfg.Upstream.MaxConnectionsPerAccount {
		t.Fatalf("upstream connections %d > %d", st.UpstreamConns, cfg.Upstream.MaxConnectionsPerAccount)
	}
}
