package bench

import (
	"fmt"
	"io"
	"strings"
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

// barWidth is the number of cells in a progress bar.
const barWidth = 24

// bar draws done out of total as "[######------------------]  25%".
func bar(done, total int) string {
	if total <= 0 {
		total = 1
	}
	done = min(max(done, 0), total)
	full := done * barWidth / total
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", full), strings.Repeat("-", barWidth-full), done*100/total)
}
