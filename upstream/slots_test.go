package upstream

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// grantReference is grantLocked as it was before it stopped early: every
// waiter tried in order. TestGrantMatchesReference holds the two equal.
func (a *Account) grantReference() {
	keep := a.queue[:0]
	for _, w := range a.queue {
		if a.grantOneLocked(w) {
			close(w.done)
			continue
		}
		keep = append(keep, w)
	}
	clear(a.queue[len(keep):])
	a.queue = keep
}

// grantCase is an account's slots and queue, built the same way twice.
type grantCase struct {
	maxConns, watching, checking, spare, idle int // spare: command slots taken, not idle
	kinds                                     []slotKind
}

// build makes the account; its idle connections are distinct *Conn on a
// pipe whose other end is closed, so a watcher or check that logs one out
// to take its slot finishes at once.
func (g grantCase) build() *Account {
	m := &Manager{opts: Options{MaxConns: g.maxConns, ResponseTimeout: time.Second}}
	a := &Account{m: m, watchers: map[string]*Watcher{}, watching: g.watching, checking: g.checking}
	a.total = g.watching + g.checking + g.spare + g.idle
	for i := range g.idle {
		ours, theirs := net.Pipe()
		theirs.Close()
		a.idle = append(a.idle, &Conn{Client: imapclient.New(ours, nil), acct: a, selected: fmt.Sprint("box", i)})
	}
	for _, k := range g.kinds {
		a.queue = append(a.queue, &waiter{kind: k, mailbox: "box0", done: make(chan struct{})})
		if k != slotCommand {
			a.queuedOther++
		}
	}
	return a
}

// outcome describes who was granted what and what is left.
func outcome(a *Account, all []*waiter) string {
	var s []string
	for i, w := range all {
		select {
		case <-w.done:
			what := "slot"
			if w.conn != nil {
				what = "conn " + w.conn.selected
			}
			s = append(s, fmt.Sprintf("%d:%s", i, what))
		default:
		}
	}
	left := make([]int, 0, len(a.queue))
	for _, w := range a.queue {
		left = append(left, slices.Index(all, w))
	}
	return fmt.Sprintf("granted %v; left %v; total %d watching %d checking %d idle %d",
		s, left, a.total, a.watching, a.checking, len(a.idle))
}

// TestGrantMatchesReference: for random queues and slot states, the pass
// that stops early grants exactly what trying every waiter grants, and
// leaves the same queue in the same order; its count of watchers and
// checks queued stays right. (No watcher lingers here: the retiring of
// one for a queued watcher is TestLingeringWatcherGivesSlotUp's.)
func TestGrantMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		g := grantCase{maxConns: 2 + r.IntN(5)}
		g.watching = r.IntN(g.maxConns)
		g.checking = r.IntN(2)
		room := max(0, g.maxConns-g.watching-g.checking)
		g.idle = r.IntN(room + 1)
		g.spare = r.IntN(room - g.idle + 2) // may fill the pool
		for range r.IntN(12) {
			k := slotCommand
			if r.IntN(5) == 0 {
				k = slotKind(1 + r.IntN(2))
			}
			g.kinds = append(g.kinds, k)
		}
		a, ref := g.build(), g.build()
		all, refAll := slices.Clone(a.queue), slices.Clone(ref.queue)
		a.grantLocked()
		ref.grantReference()
		a.m.wg.Wait() // the logouts of idle connections that yielded
		ref.m.wg.Wait()
		got, want := outcome(a, all), outcome(ref, refAll)
		if got != want {
			t.Fatalf("case %d %+v:\ngot  %s\nwant %s", i, g, got, want)
		}
		others := 0
		for _, w := range a.queue {
			if w.kind != slotCommand {
				others++
			}
		}
		if a.queuedOther != others {
			t.Fatalf("case %d %+v: queuedOther got %d, want %d", i, g, a.queuedOther, others)
		}
	}
}
