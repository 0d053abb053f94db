package main

import (
	"fmt"
	"io"
	"time"
)

// statusInterval is how often the demo prints proxy statistics.
const statusInterval = 5 * time.Second

// printStatus writes one status line now and then one every interval until
// stop is closed; done is closed when it returns.
func printStatus(w io.Writer, srv proxyServer, interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s := srv.Stats()
		fmt.Fprintf(w, "%s status: sessions=%d upstream_conns=%d mailboxes_watched=%d\n",
			time.Now().Format(time.TimeOnly), s.Sessions, s.UpstreamConns, s.MailboxesWatched)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
