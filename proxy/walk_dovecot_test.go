package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// commandTap relays TCP to target and counts the commands its clients
// send, by name ("SELECT", "FETCH", "UID FETCH"): the upstream commands
// idlemux runs.
type commandTap struct {
	mu     sync.Mutex
	counts map[string]int
}

func startCommandTap(t *testing.T, target string) (string, *commandTap) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap := &commandTap{counts: map[string]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() { bufio.NewReader(u).WriteTo(c); c.Close() })
			wg.Go(func() {
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						u.Close()
						return
					}
					tap.note(l)
					u.Write([]byte(l))
				}
			})
		}
	})
	return ln.Addr().String(), tap
}

func (tap *commandTap) note(line string) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return
	}
	name := strings.ToUpper(f[1])
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(f[2])
	}
	tap.mu.Lock()
	tap.counts[name]++
	tap.mu.Unlock()
}

// take returns the counts so far and starts again.
func (tap *commandTap) take() map[string]int {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	c := tap.counts
	tap.counts = map[string]int{}
	return c
}

// walkFolders are the folders of the walk: three with messages, one empty.
var walkFolders = []string{"W0", "W1", "W2", "Empty"}

func seedWalk(t *testing.T, dv *dovecottest.Server) {
	t.Helper()
	c := dv.Dial(t, testUser, testPass)
	for _, name := range walkFolders {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if name != "Empty" {
			for j := range 3 {
				appendMsg(t, c, name, testMessage(fmt.Sprintf("%s %d", name, j)))
			}
		}
	}
}

// TestDovecotFolderWalkRoundTrips: a folder-by-folder sync (SELECT, then
// UID FETCH 1:* (FLAGS), in each folder; twice, with a message arriving
// in W1 elsewhere in between) answers as Dovecot does directly, and costs
// the upstream less than it costs directly: per folder one SELECT, the
// client's UID FETCH answered from the model; the first time, the listing of the new model rides
// pipelined behind the SELECT (one FETCH, no round trip of its own); no
// STATUS. The changed
// folder's model catches up by what changed. Issue 10: the walk took 1.5-1.6x Dovecot's time with a STATUS
// or a FETCH round trip more per folder.
func TestDovecotFolderWalkRoundTrips(t *testing.T) {
	var walk []step
	for _, name := range walkFolders {
		walk = append(walk, step{"A", "SELECT " + name}, step{"A", "UID FETCH 1:* (FLAGS)"})
	}
	arrive := []step{{"direct", "APPEND W1 arrived"}}

	parts := [][]step{walk, arrive, walk} // each part a new session, on both sides
	dd := startDovecot(t)
	seedWalk(t, dd)
	var want []string
	for _, part := range parts {
		want = append(want, runScript(t, dd.Addr, dd.Addr, part)...)
	}

	dv := startDovecot(t)
	seedWalk(t, dv)
	tapAddr, tap := startCommandTap(t, dv.Addr)
	cfg := testConfig(tapAddr)
	cfg.Upstream.PollInterval = time.Hour    // no poll of the timer in the counts
	cfg.Upstream.WatcherLinger = time.Minute // the second walk finds the models
	p := startProxy(t, cfg)
	var got []string
	n := len(walkFolders)
	for i, part := range parts {
		tap.take()
		got = append(got, runScript(t, p.Addrs()[0], dv.Addr, part)...)
		counts := tap.take()
		if i == 1 {
			continue
		}
		// The client's UID FETCH FLAGS is answered from the model, which
		// the SELECT's round has just brought up to date (FreshSince).
		wantCounts := map[string]int{"SELECT": n, "UID FETCH": 0, "STATUS": 0, "NOOP": 0}
		if i == 0 {
			wantCounts["FETCH"] = n
		} else {
			// W1 changed: its model catches up with UID SEARCH ALL and
			// UID FETCH CHANGEDSINCE (RFC 7162 3.1.4.1) after the SELECT.
			wantCounts["UID SEARCH"], wantCounts["UID FETCH"] = 1, 1
		}
		for name, w := range wantCounts {
			if counts[name] != w {
				t.Errorf("walk %d: upstream %s commands: got %d, want %d (all: %v)", i/2+1, name, counts[name], w, counts)
			}
		}
	}
	diffWire(t, got, want)
}
