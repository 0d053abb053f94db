package upstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/hostileup"
	"github.com/idlemux/idlemux/internal/procfs"
)

// hostileConn logs in to a fake upstream running script and returns a
// command connection to it.
func hostileConn(t *testing.T, script hostileup.Script) (*Manager, *Account, *Conn) {
	t.Helper()
	fake := hostileup.Start(t, script)
	m, a := testLogin(t, Options{Address: fake.Addr, TLS: TLSNone})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.Acquire(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, a, c
}

// onList runs send in place of the answer to LIST.
func onList(send func(c *hostileup.Conn, tag string)) hostileup.Script {
	return func(c *hostileup.Conn, tag, verb, args string) bool {
		if verb != "LIST" {
			return false
		}
		send(c, tag)
		return true
	}
}

// TestHostileUpstreamResponses: a response past the limits fails the
// command with a FramingError-worded UnavailableError (the client's NO
// [UNAVAILABLE]) instead of growing memory, and the process's peak RSS
// grows by at most 64 MiB meanwhile (it grew by 236 MB for the line and
// 2.28 GB for the literal before the limits).
func TestHostileUpstreamResponses(t *testing.T) {
	tests := []struct {
		name    string
		send    func(c *hostileup.Conn, tag string)
		wantErr string
	}{
		{"100 MB LIST line", func(c *hostileup.Conn, tag string) {
			c.SendLong(`* LIST () "/" `, 100<<20, "\r\n"+tag+" OK\r\n")
		}, "line longer than the limit of 8388608 bytes"},
		{"100 MB OK line", func(c *hostileup.Conn, tag string) {
			c.SendLong("* OK ", 100<<20, "\r\n"+tag+" OK\r\n")
		}, "line longer than the limit"},
		{"2^40-byte literal in LIST", func(c *hostileup.Conn, tag string) {
			c.Send(hostileup.LiteralLine(1 << 40))
			c.SendLong("", 100<<20, "")
		}, `invalid literal "{1099511627776}"`},
		{"literal past the limit in LIST", func(c *hostileup.Conn, tag string) {
			c.Send(hostileup.LiteralLine(4<<20 + 1))
			c.SendLong("", 4<<20+1, "\r\n"+tag+" OK\r\n")
		}, "4194305-byte a literal outside a message body; limit 4194304"},
		{"many literals in one METADATA", func(c *hostileup.Conn, tag string) {
			c.Send(`* METADATA "INBOX" (`)
			for i := 0; i < 10; i++ {
				if c.SendLong(fmt.Sprintf("/shared/a%d {4194304}\r\n", i), 4<<20, " ") != nil {
					return
				}
			}
			c.Send(")\r\n" + tag + " OK\r\n")
		}, "response longer than the limit of 16777216 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, a, c := hostileConn(t, onList(tt.send))
			peak := startPeakRSS(t)
			_, err := c.List("", "*", nil).Collect()
			a.Release(c, err)
			if grew, ok := peak(); ok {
				t.Logf("peak RSS growth: %.1f MiB", float64(grew)/(1<<20))
				if grew > 64<<20 && !raceEnabled {
					t.Errorf("peak RSS grew by %d MiB, want at most 64", grew>>20)
				}
			}
			err = Classify(err)
			var ue *UnavailableError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LIST: got %v, want an UnavailableError saying %q", err, tt.wantErr)
			}
		})
	}
}

// startPeakRSS resets the process's peak RSS (Linux clear_refs 5) and
// returns a function giving how far it rose above the RSS at the start;
// ok is false where the peak cannot be reset.
func startPeakRSS(t *testing.T) func() (int64, bool) {
	debug.FreeOSMemory() // what earlier tests freed must not hide this one's growth
	pid := os.Getpid()
	before, err := procfs.KiB(pid, "status", "VmRSS")
	if err != nil || os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) != nil {
		t.Logf("peak RSS not measurable here: %v", err)
		return func() (int64, bool) { return 0, false }
	}
	return func() (int64, bool) {
		hwm, err := procfs.KiB(pid, "status", "VmHWM")
		return (hwm - before) << 10, err == nil
	}
}

// TestUnknownUntaggedIgnored: "* XYZZY" between responses (with a literal,
// numbered or not) is dropped and counted; the command and the connection
// keep working, where imapclient alone closes the connection.
func TestUnknownUntaggedIgnored(t *testing.T) {
	m, a, c := hostileConn(t, func(c *hostileup.Conn, tag, verb, args string) bool {
		if verb != "NOOP" {
			return false
		}
		c.Send("* XYZZY foo\r\n* 3 XYZZY {5}\r\nhello\r\n* 1 RECENT\r\n" + tag + " OK done\r\n")
		return true
	})
	for i := 0; i < 2; i++ {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP %d: got %v, want OK", i, err)
		}
	}
	list, err := c.List("", "*", nil).Collect()
	a.Release(c, err)
	if err != nil || len(list) != 1 || list[0].Mailbox != "INBOX" {
		t.Fatalf("LIST after the unknown responses: got %v, %v; want INBOX", list, err)
	}
	if got := m.Stats().Ignored; got != 4 {
		t.Fatalf("ignored responses: got %d, want 4", got)
	}
}

// TestWatcherReconnectStorm: an upstream that breaks right after each
// resync is retried within the login budget (loginBurst, then one per
// loginRefill), not every half second.
func TestWatcherReconnectStorm(t *testing.T) {
	fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
		if verb == "IDLE" {
			c.Close() // broken right after EXAMINE and the resync
			return true
		}
		return false
	})
	_, a := testLogin(t, Options{Address: fake.Addr, TLS: TLSNone, WatcherLinger: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := fake.Logins()
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	w.Idling(true) // a client idles: the watcher takes a connection of its own
	defer w.Idling(false)
	time.Sleep(4 * time.Second)
	w.Unwatch()
	// The budget leaves room for loginBurst (4) logins in 4 s, and the
	// backoff for at least 2; resetting after each resync alone made 11.
	if got := fake.Logins() - before; got > 5 || got < 2 {
		t.Fatalf("watcher logins in 4s: got %d, want 2 to 5", got)
	}
}
