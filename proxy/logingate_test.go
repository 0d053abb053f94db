package proxy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/idlemux/idlemux/config"
)

// TestLoginGate: two checks run at once per address, one more waits and
// gets the first slot freed, first come first served; a fourth is refused
// at once; a waiter whose context ends leaves the line; another address is
// not held up; the table is empty once all are released.
func TestLoginGate(t *testing.T) {
	l := newLimiter()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	lim := config.Limits{MaxParallelLoginsPerIP: 2, MaxQueuedLoginsPerIP: 1}
	ctx := context.Background()
	t1, t2, t3, t4 := l.ticket(a, lim), l.ticket(a, lim), l.ticket(a, lim), l.ticket(a, lim)
	for i, tk := range []*loginTicket{t1, t2} {
		if err := tk.take(ctx); err != nil {
			t.Fatalf("ticket %d: got %v, want a slot", i+1, err)
		}
	}
	got3 := make(chan error, 1)
	go func() { got3 <- t3.take(ctx) }()
	inLine := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.gates[a].waiters) == 1
	}
	waitFor(t, "ticket 3 in line", inLine)
	if err := t4.take(ctx); !errors.Is(err, errLoginsQueued) {
		t.Fatalf("ticket 4 with the line full: got %v, want errLoginsQueued", err)
	}
	if err := l.ticket(b, lim).take(ctx); err != nil {
		t.Fatalf("another address: got %v, want a slot at once", err)
	}
	l.exit(b)
	t1.release()
	if err := <-got3; err != nil {
		t.Fatalf("ticket 3 after ticket 1 left: got %v, want the slot", err)
	}
	gone, cancel := context.WithCancel(ctx)
	t5 := l.ticket(a, lim)
	got5 := make(chan error, 1)
	go func() { got5 <- t5.take(gone) }()
	waitFor(t, "ticket 5 in line", inLine)
	cancel()
	if err := <-got5; !errors.Is(err, errLoginsQueued) {
		t.Fatalf("ticket 5 after its context ended: got %v, want errLoginsQueued", err)
	}
	t2.release()
	t3.release()
	t3.release() // twice: no effect
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.gates) != 0 {
		t.Fatalf("gates after every ticket left: got %v, want none", l.gates)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLong); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestUserField: client-supplied user names are logged whole up to 64
// bytes, beyond that cut at a character boundary with the length noted.
func TestUserField(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"short", "alice@example.org", "alice@example.org"},
		{"64 bytes", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"50 kB", strings.Repeat("u", 50000), strings.Repeat("u", 64) + "...(50000 bytes)"},
		{"multibyte at the cut", strings.Repeat("a", 63) + "é" + "zz", strings.Repeat("a", 63) + "...(67 bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := userField(tc.in).String; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
