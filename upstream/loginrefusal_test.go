package upstream

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestWatcherLoginRefusals: a watcher whose own login is refused with a
// bare NO [ALERT] (Gmail's answer to too many connections) retries and
// ends up idling; one refused with NO [AUTHENTICATIONFAILED] (the
// password itself is wrong, RFC 5530) stops (quirks.CredentialsRejected).
func TestWatcherLoginRefusals(t *testing.T) {
	tests := []struct {
		name, refusal string
		wantIdle      bool
	}{
		{"bare NO [ALERT] is retried", "NO [ALERT] Too many simultaneous connections. (Failure)", true},
		{"AUTHENTICATIONFAILED stops it", "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logins atomic.Int64
			fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
				if verb != "LOGIN" || logins.Add(1) != 2 {
					return false // the account's own login and any retry succeed
				}
				c.Send(tag + " " + tt.refusal + "\r\n")
				return true
			})
			w := idlingWatcher(t, fake.Addr) // its own connection: the second LOGIN
			deadline := time.After(5 * time.Second)
			for {
				select {
				case <-w.done:
					if tt.wantIdle {
						t.Fatalf("watcher: got stopped (%v), want it idling after a retry", w.in.reason())
					}
					return
				case <-deadline:
					t.Fatalf("watcher after %d logins: got mode %s, want %s", logins.Load(), w.Mode(), map[bool]string{true: "idle", false: "stopped"}[tt.wantIdle])
				case <-time.After(10 * time.Millisecond):
				}
				if tt.wantIdle && w.Mode() == ModeIdle && logins.Load() >= 3 {
					return
				}
			}
		})
	}
}
