package upstream

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// notifyFake is a fake upstream that offers NOTIFY (and LITERAL+) and
// answers NOTIFY with notify; everything else is hostileup's default.
func notifyFake(t *testing.T, notify func(c *hostileup.Conn, tag, args string)) *hostileup.Server {
	return hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
		switch verb {
		case "LOGIN":
			c.Send(tag + " OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ NOTIFY] logged in\r\n")
			return true
		case "NOTIFY":
			notify(c, tag, args)
			return true
		}
		return false
	})
}

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
			fake := notifyFake(t, func(c *hostileup.Conn, tag, args string) {
				tries.Add(1)
				if tc.answer == "" {
					c.Send("* BYE going away\r\n")
					c.Close()
				} else {
					c.Send(tag + " " + tc.answer + "\r\n")
				}
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
				slices.Sort(modes) // either may have won the IDLE slot
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

// TestNotifyRefusedUTF8Names: NOTIFY SET names a mailbox whose UTF-8
// differs from its modified UTF-7 both ways (Dovecot 2.3 matches only
// the UTF-8); an upstream that refuses that gets the RFC 3501 spelling
// alone at once, on the same connection, and the mailbox is pushed.
func TestNotifyRefusedUTF8Names(t *testing.T) {
	var sets []string
	var mu sync.Mutex
	fake := notifyFake(t, func(c *hostileup.Conn, tag, args string) {
		mu.Lock()
		sets = append(sets, args)
		mu.Unlock()
		if strings.Contains(args, "{") {
			c.Send(tag + " BAD [CLIENTBUG] mailbox names are modified UTF-7\r\n")
		} else {
			c.Send(tag + " OK done\r\n")
		}
	})
	m, a := testLogin(t, Options{Address: fake.Addr, TLS: TLSNone, MaxConns: 3, PollInterval: time.Hour})
	ctx := poolCtx(t)
	inbox, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer inbox.Unwatch()
	inbox.Idling(true)
	waitStats(t, m, "INBOX's own IDLE", func(st Stats) bool { return st.WatcherConns == 1 })
	w, err := a.Watch(ctx, "Ünï")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unwatch()
	w.Idling(true)
	waitStats(t, m, "Ünï pushed", func(st Stats) bool { return st.Notify == 1 })
	mu.Lock()
	defer mu.Unlock()
	want := []string{ // hostileup joins a literal to its line without the CRLF
		"SET (mailboxes (\"&ANw-n&AO8-\" {5+}Ünï) (MessageNew MessageExpunge FlagChange))",
		"SET (mailboxes (\"&ANw-n&AO8-\") (MessageNew MessageExpunge FlagChange))",
	}
	if !slices.Equal(sets, want) {
		t.Errorf("NOTIFY commands: got %q, want %q", sets, want)
	}
	if got := w.Mode(); got != ModeNotify {
		t.Errorf("mode: got %q, want %q", got, ModeNotify)
	}
}
