package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestWatcherLiveAndCurrent: a watcher is Live once it IDLEs on its own
// connection; a change through idlemux to its mailbox makes it not
// Current until a Sync, and a change to another mailbox does not.
func TestWatcherLiveAndCurrent(t *testing.T) {
	addr := memServer(t, 3, imap.CapIdle)
	m, a := testLogin(t, Options{Address: addr, TLS: TLSNone, WatcherLinger: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unwatch()
	if w.Live() {
		t.Fatalf("Live before any session idled (polled): got true")
	}
	w.Idling(true)
	for !w.Live() {
		if ctx.Err() != nil {
			t.Fatalf("never Live after Idling: %+v", m.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := m.Stats().Live; got != 1 {
		t.Errorf("Stats().Live: got %d, want 1", got)
	}
	if a.LiveWatcher("INBOX") != w || a.LiveWatcher("Other") != nil {
		t.Errorf("LiveWatcher: got %p and %p, want %p and nil", a.LiveWatcher("INBOX"), a.LiveWatcher("Other"), w)
	}
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"at first", func() {}, true},
		{"after a change to another mailbox", func() { a.Changed("Other") }, true},
		{"after a change to it", func() { a.Changed("INBOX") }, false},
		{"after a Sync", func() {
			if err := w.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"after a MailboxGone of another", func() { a.MailboxGone("Other", 0) }, true},
	}
	for _, st := range steps {
		gen := a.Generation()
		st.do()
		if got := w.Current(); got != st.want {
			t.Errorf("Current %s: got %v, want %v", st.name, got, st.want)
		}
		if st.name != "at first" && st.name != "after a Sync" && a.Generation() != gen+1 {
			t.Errorf("Generation %s: got %d, want %d", st.name, a.Generation(), gen+1)
		}
	}
}
