package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/faultrelay"
)

// accountWith is an account on opts (Address set) with the mailboxes
// named created upstream.
func accountWith(t testing.TB, opts Options, boxes ...string) (*Manager, *Account) {
	t.Helper()
	m, a := testLogin(t, opts)
	c, err := a.Acquire(testCtx(t), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if err := c.Create(b, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	a.Release(c, nil)
	return m, a
}

// TestInboxFolds: messages sent to a watcher fold into a few words, and
// users counts what the loop holds plus what is in flight.
func TestInboxFolds(t *testing.T) {
	tests := []struct {
		name      string
		held      int    // the loop's count before the take
		send      string // r: ref, u: unref, i: idling, s: sync
		wantUsers int
		wantRefs  int
		wantIdled bool
		wantSync  bool
	}{
		{"nothing", 1, "", 1, 1, false, false},
		{"refs fold to a net count", 0, "rru", 1, 1, false, false},
		{"an unref in flight counts", 2, "u", 1, 1, false, false},
		{"ref then unref: unused", 0, "ru", 0, 0, false, false},
		{"idling is a flag", 1, "ii", 1, 1, true, false},
		{"syncs fold to one request", 1, "sss", 1, 1, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newInbox()
			in.take(tc.held)
			var chans []<-chan struct{}
			for _, c := range tc.send {
				switch c {
				case 'r':
					in.ref(1)
				case 'u':
					in.ref(-1)
				case 'i':
					in.idle()
				case 's':
					chans = append(chans, in.askSync())
				}
			}
			if got := in.users(); got != tc.wantUsers {
				t.Errorf("users before the take: got %d, want %d", got, tc.wantUsers)
			}
			ml := in.take(tc.held)
			if ml.refs != tc.wantRefs || ml.idled != tc.wantIdled || (ml.sync != nil) != tc.wantSync {
				t.Errorf("take: got refs %d idled %v sync %v, want %d %v %v", ml.refs, ml.idled, ml.sync != nil, tc.wantRefs, tc.wantIdled, tc.wantSync)
			}
			for i, ch := range chans {
				if ch != ml.sync {
					t.Errorf("sync request %d: got its own channel, want the one shared by every request before the take", i)
				}
			}
			if got := in.users(); got != tc.wantUsers {
				t.Errorf("users after the take: got %d, want %d", got, tc.wantUsers)
			}
			if again := in.take(ml.refs); again.refs != ml.refs || again.idled || again.sync != nil {
				t.Errorf("second take: got %+v, want the same refs and nothing else", again)
			}
			if len(chans) > 0 && in.askSync() == chans[0] {
				t.Error("a sync request after the take shares the taken channel, want a new round")
			}
		})
	}
}

// TestInboxFirstStopWins: a second stop changes nothing; its reason is the
// first one's.
func TestInboxFirstStopWins(t *testing.T) {
	in := newInbox()
	if !in.stop(ErrMailboxGone) {
		t.Fatal("first stop: got false, want true")
	}
	if in.stop(nil) {
		t.Fatal("second stop: got true, want false")
	}
	if got := in.reason(); !errors.Is(got, ErrMailboxGone) {
		t.Fatalf("reason: got %v, want ErrMailboxGone", got)
	}
}

// TestAccountCountsRefsInFlight: the account's decisions under m.mu
// (stopLingeringLocked, Watching) count the references a watcher's loop has
// not taken yet. No loop runs here: every reference is in flight.
func TestAccountCountsRefsInFlight(t *testing.T) {
	tests := []struct {
		name         string
		refs         []int
		polled       bool
		wantStopped  bool
		wantWatching bool
	}{
		{"a Watch in flight keeps it", []int{1}, false, false, true},
		{"Watch and Unwatch in flight: unused, stopped", []int{1, -1}, false, true, false},
		{"a polled one holds no slot to give up", []int{1, -1}, true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManager(Options{Address: "127.0.0.1:1", TLS: TLSNone})
			defer m.Shutdown(context.Background())
			a := &Account{m: m, log: zap.NewNop(), watchers: map[string]*Watcher{}}
			w := a.newWatcher("INBOX")
			a.watchers["INBOX"] = w
			w.polled.Store(tc.polled)
			for _, d := range tc.refs {
				w.in.ref(d)
			}
			if got := a.Watching("INBOX") != nil; got != tc.wantWatching {
				t.Errorf("Watching: got a watcher %v, want %v", got, tc.wantWatching)
			}
			m.mu.Lock()
			stopped := a.stopLingeringLocked()
			_, kept := a.watchers["INBOX"]
			m.mu.Unlock()
			if stopped != tc.wantStopped || kept == tc.wantStopped || (w.ctx.Err() != nil) != tc.wantStopped {
				t.Errorf("stopLingeringLocked: got stopped %v, kept %v, context %v; want stopped %v", stopped, kept, w.ctx.Err(), tc.wantStopped)
			}
		})
	}
}

// TestWatcherLinger: a watcher outlives its last user by WatcherLinger; a
// Watch within the linger keeps the same one; after it, Watch starts anew.
func TestWatcherLinger(t *testing.T) {
	const linger = 300 * time.Millisecond
	m, a := accountWith(t, Options{Address: memServer(t, 1), TLS: TLSNone, WatcherLinger: linger})
	ctx := testCtx(t)
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	w.Unwatch()
	waitTaken(t, w) // the loop has its linger running now
	w2, err := a.Watch(ctx, "INBOX")
	if err != nil || w2 != w {
		t.Fatalf("Watch within the linger: got %p (%v), want the lingering watcher %p", w2, err, w)
	}
	select {
	case <-w.done:
		t.Fatal("watcher stopped while used again within its linger")
	case <-time.After(2 * linger):
	}
	w2.Unwatch()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("watcher still running 5s after its last Unwatch (linger %v)", linger)
	}
	if st := m.Stats(); st.Watchers != 0 {
		t.Fatalf("stats after the linger: got %d watchers, want 0", st.Watchers)
	}
	w3, err := a.Watch(ctx, "INBOX")
	if err != nil || w3 == w {
		t.Fatalf("Watch after the linger: got %p (%v), want a new watcher", w3, err)
	}
	w3.Unwatch()
}

// waitTaken waits until w's loop has taken every message sent to it.
func waitTaken(t *testing.T, w *Watcher) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		w.in.mu.Lock()
		taken := w.in.refs == 0 && !w.in.idled && w.in.sync == nil
		w.in.mu.Unlock()
		if taken {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher's loop did not take its messages within 5s")
		}
	}
}

// TestLingeringWatcherGivesSlotUp: a lingering watcher nobody uses gives
// its slot at once to a mailbox a client idles on, long before its linger
// ends.
func TestLingeringWatcherGivesSlotUp(t *testing.T) {
	m, a := accountWith(t, Options{Address: memServer(t, 1), TLS: TLSNone, MaxConns: 2, WatcherLinger: time.Hour}, "B")
	ctx := testCtx(t)
	inbox, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	inbox.Idling(true)
	waitStats(t, m, "INBOX's own connection", func(st Stats) bool { return st.WatcherConns == 1 && st.Polled == 0 })
	inbox.Idling(false)
	inbox.Unwatch() // lingers an hour, unless its slot is wanted
	b, err := a.Watch(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Unwatch()
	b.Idling(true)
	waitStats(t, m, "B watched by IDLE in INBOX's slot", func(st Stats) bool { return st.Watchers == 1 && st.Polled == 0 && st.WatcherConns == 1 })
	select {
	case <-inbox.done:
	case <-time.After(5 * time.Second):
		t.Fatal("INBOX's lingering watcher still running after it gave its slot up")
	}
	if a.Watching("INBOX") != nil {
		t.Fatal("Watching(INBOX): got the stopped watcher, want nil")
	}
}

// TestWatcherMessagesNeverBlock: while the watcher's loop is stuck in an
// upstream exchange (the upstream frozen, ResponseTimeout far away),
// Watch of the running watcher, Unwatch, Idling, Watching and Stats return
// at once, and a stop (MailboxGone) ends a Sync waiting meanwhile with
// ErrClosed rather than after the timeout.
func TestWatcherMessagesNeverBlock(t *testing.T) {
	const timeout = 20 * time.Second
	relay := faultrelay.Start(t, memServer(t, 1))
	m, a := accountWith(t, Options{Address: relay.Addr(), TLS: TLSNone, ResponseTimeout: timeout, WatcherLinger: time.Hour})
	ctx := testCtx(t)
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	relay.Freeze()
	defer relay.Thaw()
	synced := make(chan error, 1)
	go func() { synced <- w.Sync(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // the loop is in the poll's EXAMINE now
	select {
	case err := <-synced:
		t.Fatalf("Sync with the upstream frozen: returned %v, want it waiting", err)
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			w2, err := a.Watch(ctx, "INBOX")
			if err != nil || w2 != w {
				t.Errorf("Watch of the running watcher: got %p (%v), want %p", w2, err, w)
				return
			}
			w2.Idling(true)
			w2.Idling(false)
			w2.Unwatch()
			if a.Watching("INBOX") != w {
				t.Error("Watching(INBOX): got another, want the watcher in use")
			}
			m.Stats()
		}
	}()
	select {
	case <-done:
	case <-time.After(timeout / 4):
		t.Fatal("messages to a watcher stuck in an exchange blocked their senders")
	}
	a.MailboxGone("INBOX", 0)
	select {
	case err := <-synced:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Sync when stopped: got %v, want ErrClosed", err)
		}
	case <-time.After(timeout / 4):
		t.Fatal("Sync still waiting after the watcher was stopped")
	}
	w.Unwatch()
}

// TestWatcherActorConcurrent: many sessions Watch, Idle, Sync, Unwatch and
// see their mailboxes deleted at once; every call returns, the watchers
// stop once unused, and the account then works as before.
func TestWatcherActorConcurrent(t *testing.T) {
	boxes := []string{"INBOX", "a", "b"}
	m, a := accountWith(t, Options{Address: memServer(t, 1), TLS: TLSNone, MaxConns: 4, WatcherLinger: 20 * time.Millisecond}, boxes[1:]...)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 16 {
		wg.Go(func() {
			for i := range 12 {
				box := boxes[(g+i)%len(boxes)]
				switch (g + i) % 5 {
				case 0:
					a.MailboxGone(box, 0)
				case 1:
					if w := a.Watching(box); w != nil {
						if err := w.Sync(ctx); err != nil && !errors.Is(err, ErrClosed) {
							errs <- fmt.Errorf("Sync of a watched %s: %w", box, err)
						}
					}
				default:
					w, err := a.Watch(ctx, box)
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							errs <- fmt.Errorf("Watch %s: %w", box, err)
						}
						continue
					}
					w.Idling(i%2 == 0)
					if err := w.Sync(ctx); err != nil && !errors.Is(err, ErrClosed) {
						errs <- fmt.Errorf("Sync %s: %w", box, err)
					}
					w.Idling(false)
					w.Unwatch()
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("calls to the watchers still blocked after 30s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitStats(t, m, "every watcher stopped after its linger", func(st Stats) bool { return st.Watchers == 0 && st.WatcherConns == 0 })
	w, err := a.Watch(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Unwatch()
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Mailbox().Len(); got != 1 {
		t.Fatalf("INBOX model after the storm: got %d messages, want 1", got)
	}
}
