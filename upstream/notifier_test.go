package upstream

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestNotifyTroubleFallsBackToPolling: an upstream that offers NOTIFY but
// answers NOTIFY SET with NO or BAD, or with BYE, leaves the mailbox
// polled (mode "polled", not "notify"); the notifier logs the trouble
// once however often it retries, and retries.
func TestNotifyTroubleFallsBackToPolling(t *testing.T) {
	defer func(lo, hi time.Duration) { notifyRetryMin, notifyRetryMax = lo, hi }(notifyRetryMin, notifyRetryMax)
	notifyRetryMin, notifyRetryMax = 10*time.Millisecond, 40*time.Millisecond
	for _, tc := range []struct{ name, answer string }{
		{"NO", "NO [NOTIFICATIONOVERFLOW] NOTIFY not supported for these mailboxes"},
		{"BAD", "BAD unknown command"},
		{"BYE", ""},
		// RFC 5465 section 5.8: accepted, then no more notifications.
		{"NOTIFICATIONOVERFLOW", "OK done\r\n* OK [NOTIFICATIONOVERFLOW] too many"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tries atomic.Int64
			fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
				switch verb {
				case "LOGIN":
					c.Send(tag + " OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ NOTIFY] logged in\r\n")
					return true
				case "NOTIFY":
					tries.Add(1)
					if tc.answer == "" {
						c.Send("* BYE going away\r\n")
						c.Close()
					} else {
						c.Send(tag + " " + tc.answer + "\r\n")
					}
					return true
				}
				return false
			})
			core, logs := observer.New(zapcore.DebugLevel)
			m, a := testLogin(t, Options{Address: fake.Addr, TLS: TLSNone, MaxConns: 3, PollInterval: time.Hour, Log: zap.New(core)})
			ctx := poolCtx(t)
			var ws []*Watcher
			for _, name := range []string{"INBOX", "B"} {
				w, err := a.Watch(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Unwatch()
				w.Idling(true)
				ws = append(ws, w)
			}
			// One watcher slot is kept for NOTIFY: the other mailbox asks it.
			waitStats(t, m, "NOTIFY tried three times", func(Stats) bool { return tries.Load() >= 3 })
			if tc.name != "NOTIFICATIONOVERFLOW" { // that one is pushed for a moment after each try
				if st := m.Stats(); st.Notify != 0 || st.Polled != 1 || st.WatcherConns != 1 {
					t.Errorf("stats: got %+v, want one IDLE watcher, one mailbox polled, none pushed", st)
				}
				modes := []string{ws[0].Mode(), ws[1].Mode()}
				if strings.Join(modes, ",") != "idle,polled" {
					t.Errorf("modes: got %v, want [idle polled]", modes)
				}
			}
			warned := logs.FilterMessageSnippet("NOTIFY connection failed;").All()
			if len(warned) != 1 {
				t.Errorf("warnings: got %d after %d tries, want 1", len(warned), tries.Load())
			} else if want := map[string]string{"NO": "NOTIFICATIONOVERFLOW", "BAD": "unknown command", "BYE": "BYE going away", "NOTIFICATIONOVERFLOW": "stopped notifying"}[tc.name]; !strings.Contains(fmt.Sprint(warned[0].ContextMap()["error"]), want) {
				t.Errorf("warning: got %v, want its error to say %q", warned[0].ContextMap(), want)
			}
			if n := m.Stats().LoginsBy[LoginNotify]; n < 3 {
				t.Errorf("notify logins: got %d, want one per try (3 or more)", n)
			}
		})
	}
}
