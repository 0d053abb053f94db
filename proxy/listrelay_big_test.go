package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestListTooBigToHold: a listing over listShareMax is not held: the
// relay lets it go past the bound and the listing is asked again and
// streamed, decoded and re-encoded; the client gets every mailbox.
func TestListTooBigToHold(t *testing.T) {
	const boxes = 12000 // 12,000 lines of about 100 bytes: over 1 MiB
	var b strings.Builder
	for i := range boxes {
		fmt.Fprintf(&b, "* LIST (\\HasNoChildren) \"/\" box%05d-%s\r\n", i, strings.Repeat("x", 64))
	}
	answer := b.String()
	var lists atomic.Int32
	if len(answer) <= listShareMax {
		t.Fatalf("answer of %d bytes, want over %d", len(answer), listShareMax)
	}
	fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
		if verb != "LIST" || !strings.Contains(args, "*") {
			return false
		}
		lists.Add(1)
		c.Send(answer + tag + " OK done\r\n")
		return true
	})
	p := startProxy(t, testConfig(fake.Addr))
	rc := dialRaw(t, p.Addrs()[0])
	if l := rc.cmd("a", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "a OK") {
		t.Fatalf("LOGIN: got %q", l)
	}
	got := rc.cmd("b", `LIST "" *`)
	if len(got) != boxes+1 || !strings.HasPrefix(got[boxes], "b OK") {
		t.Fatalf("LIST: got %d lines ending %q, want %d and b OK", len(got), got[len(got)-1], boxes+1)
	}
	// The relayed answer was let go past the bound, and the listing
	// asked again, streamed (decoded: every name quoted).
	if n := lists.Load(); n != 2 {
		t.Errorf("upstream LISTs: got %d, want 2 (relayed, then streamed)", n)
	}
	for _, i := range []int{0, boxes - 1} {
		if want := fmt.Sprintf("box%05d-", i); !strings.Contains(got[i], want) {
			t.Errorf("line %d: got %q, want mailbox %s...", i, got[i], want)
		}
	}
}
