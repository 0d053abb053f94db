package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// idlingClient is a raw client of the binary, in IDLE on INBOX.
type idlingClient struct {
	c net.Conn
	r *bufio.Reader
}

// idleThrough logs user in through addr, selects INBOX and starts IDLE.
func idleThrough(t *testing.T, addr, user, pass string) *idlingClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ic := &idlingClient{c: c, r: bufio.NewReader(c)}
	fmt.Fprintf(c, "a LOGIN %s %s\r\nb SELECT INBOX\r\nc IDLE\r\n", user, pass)
	for {
		l := ic.line(t)
		if strings.HasPrefix(l, "a NO") || strings.HasPrefix(l, "b NO") {
			t.Fatalf("%s: got %q, want to reach IDLE", user, l)
		}
		if strings.HasPrefix(l, "+ ") {
			return ic
		}
	}
}

// line reads one line within 10 s.
func (ic *idlingClient) line(t *testing.T) string {
	t.Helper()
	ic.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := ic.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// quiet reports whether nothing arrives within d.
func (ic *idlingClient) quiet(d time.Duration) (bool, string) {
	ic.c.SetReadDeadline(time.Now().Add(d))
	l, err := ic.r.ReadString('\n')
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout(), l
}

// TestServeBinaryReloadUpstreams: the real binary routes a.example and
// b.example to two Dovecots; SIGHUP with an invalid upstream list is
// rejected whole, touching no session; SIGHUP with b removed from the file says BYE
// to bob's idling client and logs the removal with the upstream's name,
// while alice's idling client sees nothing until a message APPENDed on
// her Dovecot arrives as EXISTS. SIGHUP with b back lets bob log in.
func TestServeBinaryReloadUpstreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	a := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice@a.example": "pass-a"}})
	b := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob@b.example": "pass-b"}})
	addr := freePort(t)
	head := fmt.Sprintf("listeners:\n  - address: %s\n    tls: none\nlog:\n  level: info\nupstreams:\n", addr)
	upA := fmt.Sprintf("  - name: a\n    address: %s\n    tls: none\n    domains: [a.example]\n", a.Addr)
	upB := fmt.Sprintf("  - name: b\n    address: %s\n    tls: none\n    domains: [b.example]\n", b.Addr)
	sb := startServe(t, addr, head+upA+upB)
	alice := idleThrough(t, addr, "alice@a.example", "pass-a")
	bob := idleThrough(t, addr, "bob@b.example", "pass-b")

	// Invalid: b.example routed to two upstreams. Rejected whole: bob
	// and alice see nothing.
	dup := strings.Replace(upA, "[a.example]", "[a.example, b.example]", 1)
	sb.reload(t, head+dup+upB)
	waitLog(t, sb.logs, "reload rejected", "no log line saying the invalid reload was rejected")
	for name, ic := range map[string]*idlingClient{"alice": alice, "bob": bob} {
		if ok, l := ic.quiet(300 * time.Millisecond); !ok {
			t.Errorf("%s after a rejected reload: got %q, want nothing", name, l)
		}
	}

	sb.reload(t, head+upA)
	want := "* BYE Mail server configuration changed, please log in again"
	if got := bob.line(t); got != want {
		t.Errorf("bob, b removed: got %q, want %q", got, want)
	}
	waitLog(t, sb.logs, `upstream removed: its sessions were closed","upstream":"b"`, "no log line naming upstream b as removed")
	if ok, l := alice.quiet(300 * time.Millisecond); !ok {
		t.Errorf("alice, on a, while b was removed: got %q, want nothing", l)
	}
	if _, err := a.Append("alice@a.example", "INBOX", []byte("Subject: after the reload\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := alice.line(t); got != "* 1 EXISTS" {
		t.Errorf("alice after an APPEND on a: got %q, want * 1 EXISTS", got)
	}

	sb.reload(t, head+upA+upB)
	waitLog(t, sb.logs, `"upstream added","upstream":"b"`, "no log line naming upstream b as added back")
	bob2 := idleThrough(t, addr, "bob@b.example", "pass-b")
	fmt.Fprintf(bob2.c, "DONE\r\n")
	if got := bob2.line(t); !strings.HasPrefix(got, "c OK") {
		t.Errorf("bob after b was added back: DONE answered %q, want c OK", got)
	}
}
