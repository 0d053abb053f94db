package main

import (
	"strings"
	"testing"
	"time"

	"github.com/idlemux/idlemux/proxy"
)

func TestPrintStatus(t *testing.T) {
	srv := newFakeServer()
	srv.stats = proxy.Stats{Sessions: 3, UpstreamConns: 2, MailboxesWatched: 1}
	var out syncBuffer
	stop, done := make(chan struct{}), make(chan struct{})
	go printStatus(&out, srv, 10*time.Millisecond, stop, done)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("got %d status lines, want at least 2 (one at once, then one per interval)", len(lines))
	}
	if want := "status: sessions=3 upstream_conns=2 mailboxes_watched=1"; !strings.HasSuffix(lines[0], want) {
		t.Errorf("status line: got %q, want it to end with %q", lines[0], want)
	}
}
