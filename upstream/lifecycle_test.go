package upstream

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// lifecycleAccount is an account on an in-memory upstream with INBOX
// (one message) and the mailboxes named, room for several connections
// and watchers that linger a minute.
func lifecycleAccount(t *testing.T, boxes ...string) *Account {
	t.Helper()
	_, a := accountWith(t, Options{Address: memServer(t, 1), TLS: TLSNone, MaxConns: 6, WatcherLinger: time.Minute}, boxes...)
	return a
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// idleSelected lists the mailboxes the account's idle connections have
// selected.
func idleSelected(a *Account) []string {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	var out []string
	for _, c := range a.idle {
		out = append(out, c.selected)
	}
	slices.Sort(out)
	return out
}

// acquireHeld returns connections with each mailbox selected, all held at
// once so that each is a connection of its own.
func acquireHeld(t *testing.T, a *Account, boxes ...string) []*Conn {
	t.Helper()
	var held []*Conn
	for _, b := range boxes {
		c, err := a.Acquire(testCtx(t), b, 0, 0)
		if err != nil {
			t.Fatalf("acquire %q: %v", b, err)
		}
		held = append(held, c)
	}
	return held
}

// TestMailboxGoneForgetsPooledSelection: after MailboxGone the pool holds
// no connection with that mailbox (or, for a RENAME with a delimiter, one
// below it) selected, idle or released later; connections with other
// mailboxes stay and are not selected again.
func TestMailboxGoneForgetsPooledSelection(t *testing.T) {
	tests := []struct {
		name      string
		gone      string
		delim     rune
		idle      []string // selected on idle connections before
		busy      string   // selected on a connection held across MailboxGone
		wantIdle  []string
		wantKept  string // an idle mailbox whose connection is reused as it is
		wantFresh string // a mailbox that needs a new SELECT after
	}{
		{"DELETE", "a", 0, []string{"INBOX", "a", "a.b"}, "a", []string{"INBOX", "a.b"}, "INBOX", "a"},
		{"RENAME moves the children", "a", '.', []string{"INBOX", "a", "a.b", "ab"}, "a.b", []string{"INBOX", "ab"}, "ab", "a.b"},
		{"a busy connection of another mailbox is pooled again", "a", 0, []string{"a"}, "INBOX", []string{"INBOX"}, "INBOX", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := lifecycleAccount(t, "a", "a.b", "ab")
			for _, c := range acquireHeld(t, a, tc.idle...) {
				a.Release(c, nil)
			}
			busy := acquireHeld(t, a, tc.busy)[0]
			a.MailboxGone(tc.gone, tc.delim)
			a.Release(busy, nil)
			got := slices.DeleteFunc(idleSelected(a), func(s string) bool { return s == "" })
			if !slices.Equal(got, tc.wantIdle) {
				t.Fatalf("idle connections' mailboxes: got %q, want %q", got, tc.wantIdle)
			}
			kept := acquireHeld(t, a, tc.wantKept)[0]
			if kept.epoch != a.curEpoch() {
				t.Errorf("%q: connection epoch %d, account %d: want it kept as it is", tc.wantKept, kept.epoch, a.curEpoch())
			}
			fresh := acquireHeld(t, a, tc.wantFresh)[0]
			if fresh.selected != tc.wantFresh || fresh.epoch != a.curEpoch() {
				t.Errorf("%q after MailboxGone: selected %q in epoch %d, want selected in epoch %d", tc.wantFresh, fresh.selected, fresh.epoch, a.curEpoch())
			}
			a.Release(kept, nil)
			a.Release(fresh, nil)
		})
	}
}

// TestMailboxGoneStopsWatchers: the watchers of the mailbox (and of those
// below it, for RENAME) stop at once, lingering or not, and their models
// fail with ErrMailboxGone; a later Watch starts a new one.
func TestMailboxGoneStopsWatchers(t *testing.T) {
	a := lifecycleAccount(t, "a", "a.b", "ab")
	ctx := testCtx(t)
	ws := map[string]*Watcher{}
	for _, b := range []string{"a", "a.b", "ab"} {
		w, err := a.Watch(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		ws[b] = w
	}
	ws["a"].Unwatch() // lingering: no session, stopped all the same
	a.MailboxGone("a", '.')
	for name, wantGone := range map[string]bool{"a": true, "a.b": true, "ab": false} {
		w := ws[name]
		select {
		case <-w.done:
			if !wantGone {
				t.Errorf("watcher of %q stopped, want it running", name)
			}
		case <-time.After(5 * time.Second):
			if wantGone {
				t.Errorf("watcher of %q still running 5s after MailboxGone", name)
			}
		}
		_, _, err := w.Mailbox().NewView()
		if gone := errors.Is(err, ErrMailboxGone); gone != wantGone {
			t.Errorf("model of %q: NewView error %v, want ErrMailboxGone %v", name, err, wantGone)
		}
		if got := a.Watching(name); (got == nil) != wantGone {
			t.Errorf("Watching(%q): got %p, want nil %v", name, got, wantGone)
		}
	}
	w2, err := a.Watch(ctx, "a.b")
	if err != nil || w2 == ws["a.b"] {
		t.Fatalf("Watch after MailboxGone: got %p (%v), want a new watcher", w2, err)
	}
	w2.Unwatch()
	ws["a.b"].Unwatch()
	ws["ab"].Unwatch()
}

// TestAcquireFindsAnotherUIDValidity: a SELECT that finds another
// UIDVALIDITY than the caller's view, or no mailbox, fails with
// ErrMailboxGone and ends the account's knowledge of it: the view's UIDs
// never run against another mailbox (RFC 3501 2.3.1.1).
func TestAcquireFindsAnotherUIDValidity(t *testing.T) {
	a := lifecycleAccount(t, "a")
	ctx := testCtx(t)
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unwatch()
	uv := w.Mailbox().UIDValidity()
	tests := []struct {
		name    string
		mailbox string
		uv      uint32
		wantErr error
	}{
		{"same UIDVALIDITY", "INBOX", uv, nil},
		{"no view to compare", "INBOX", 0, nil},
		{"another UIDVALIDITY", "INBOX", uv + 1, ErrMailboxGone},
		{"mailbox gone", "nosuch", uv, ErrMailboxGone},
	}
	for _, tc := range tests {
		c, err := a.Acquire(ctx, tc.mailbox, 0, tc.uv)
		if c != nil {
			a.Release(c, nil)
		}
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Acquire(%q, uidvalidity %d): got %v, want %v", tc.name, tc.mailbox, tc.uv, err, tc.wantErr)
		}
	}
	if _, _, err := w.Mailbox().NewView(); !errors.Is(err, ErrMailboxGone) {
		t.Errorf("INBOX model after another UIDVALIDITY: NewView error %v, want ErrMailboxGone", err)
	}
	for _, s := range idleSelected(a) {
		if s == "INBOX" {
			t.Errorf("idle connections %q: want none with INBOX selected", idleSelected(a))
		}
	}
}
