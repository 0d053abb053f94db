package upstream

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestSelectListing: a new mailbox's listing comes from FETCH 1:* (UID
// FLAGS) pipelined behind its SELECT when that answer is whole, and from
// FETCH 1:n as before when it is not (a message missing, answered twice,
// or one beyond the SELECT's EXISTS); an empty mailbox's BAD to the
// pipelined FETCH is its empty listing. The model is right either way.
func TestSelectListing(t *testing.T) {
	full := "* 1 FETCH (UID 10 FLAGS (\\Seen))\r\n* 2 FETCH (UID 20 FLAGS ())\r\n* 3 FETCH (UID 30 FLAGS (\\Flagged))\r\n"
	for _, tc := range []struct {
		name      string
		exists    int
		pipelined string // untagged answer to FETCH 1:* (UID FLAGS)
		status    string // its tagged status
		wantUIDs  []imap.UID
		wantAgain bool // the listing read again with FETCH 1:n
	}{
		{"whole", 3, full, "OK done", []imap.UID{10, 20, 30}, false},
		{"gap", 3, "* 1 FETCH (UID 10 FLAGS (\\Seen))\r\n* 3 FETCH (UID 30 FLAGS (\\Flagged))\r\n", "OK done", []imap.UID{10, 20, 30}, true},
		{"twice", 3, "* 1 FETCH (UID 10 FLAGS (\\Seen))\r\n* 1 FETCH (UID 10 FLAGS (\\Seen))\r\n* 3 FETCH (UID 30 FLAGS (\\Flagged))\r\n", "OK done", []imap.UID{10, 20, 30}, true},
		{"beyond", 3, full + "* 4 FETCH (UID 40 FLAGS ())\r\n", "OK done", []imap.UID{10, 20, 30}, true},
		{"refused", 3, "", "NO not now", []imap.UID{10, 20, 30}, true},
		{"empty", 0, "", "BAD Error in IMAP command FETCH: Invalid messageset", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var fetches []string
			script := func(c *hostileup.Conn, tag, verb, args string) bool {
				switch verb {
				case "SELECT", "EXAMINE":
					c.Send("* FLAGS (\\Seen \\Flagged)\r\n* " + strconv.Itoa(tc.exists) + " EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 41] ok\r\n" + tag + " OK [READ-ONLY] opened\r\n")
				case "FETCH":
					mu.Lock()
					fetches = append(fetches, args)
					mu.Unlock()
					if args == "1:* (UID FLAGS)" {
						c.Send(tc.pipelined + tag + " " + tc.status + "\r\n")
					} else {
						c.Send(full + tag + " OK done\r\n")
					}
				default:
					return false
				}
				return true
			}
			fake := hostileup.Start(t, script)
			_, a := testLogin(t, Options{Address: fake.Addr, TLS: TLSNone, WatcherLinger: time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w, err := a.Watch(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Unwatch()
			if got := w.Mailbox().UIDs(); !slices.Equal(got, tc.wantUIDs) {
				t.Errorf("model UIDs: got %v, want %v", got, tc.wantUIDs)
			}
			if tc.exists > 0 {
				if f, _ := w.Mailbox().Flags(30); !slices.Equal(f, []imap.Flag{imap.FlagFlagged}) {
					t.Errorf("flags of UID 30: got %v, want [\\Flagged]", f)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{"1:* (UID FLAGS)"}
			if tc.wantAgain {
				want = append(want, "1:3 (UID FLAGS)")
			}
			if !slices.Equal(fetches, want) {
				t.Errorf("FETCHes upstream: got %q, want %q", fetches, want)
			}
		})
	}
}
