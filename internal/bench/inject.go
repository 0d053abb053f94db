package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// inject appends the messages on the upstream at the rate asked and
// returns the message count before, and when each APPEND completed. It
// always runs in the parent: one injector, one clock for the APPEND times.
func inject(ctx context.Context, o Options) (uint32, []time.Time, error) {
	c, err := imapclient.DialInsecure(o.Upstream, nil)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	// imapclient has no deadlines of its own: ctx ending closes the
	// connection, which fails whatever command is pending.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Login(o.UpstreamUser, o.UpstreamPassword).Wait(); err != nil {
		return 0, nil, err
	}
	st, err := c.Status(o.Mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil {
		return 0, nil, errors.Join(err, errors.New("STATUS gave no MESSAGES"))
	}
	var gap time.Duration
	if o.Rate > 0 {
		gap = time.Duration(float64(time.Second) / o.Rate)
	}
	defer fmt.Fprintln(o.Progress) // end the progress line, also on failure
	var done []time.Time
	for k := 0; k < o.Messages && ctx.Err() == nil; k++ {
		msg := fmt.Sprintf("From: bench@example.org\r\nSubject: bench %d\r\n\r\nmessage %d\r\n", k, k)
		cmd := c.Append(o.Mailbox, int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			return 0, nil, err
		}
		done = append(done, time.Now())
		fmt.Fprintf(o.Progress, "\r%s appended %d/%d", bar(k+1, o.Messages), k+1, o.Messages)
		if gap > 0 && k+1 < o.Messages {
			select {
			case <-time.After(gap):
			case <-ctx.Done():
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	return *st.NumMessages, done, nil
}
