package bench

import (
	"fmt"
	"io"
	"time"
)

// showProgress rewrites one status line on w every 100 ms while a phase
// runs; line sums the shards' counts, wherever they are held, so the
// display is the same with or without workers. stop prints the last state
// and ends the line.
func showProgress(w io.Writer, line func() string) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := ""
		for {
			select {
			case <-t.C:
				if s := line(); s != last {
					fmt.Fprint(w, "\r"+s)
					last = s
				}
			case <-quit:
				fmt.Fprintln(w, "\r"+line())
				return
			}
		}
	}()
	return func() { close(quit); <-finished }
}
