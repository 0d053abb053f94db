package proxy

import (
	"bufio"
	"bytes"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestFetchRelayFlagsHooks: a relayed FLAGS list gets idlemux's \Recent
// for a message the session claimed, and a keyword the session was not
// told of gets the FLAGS lines first, once (RFC 3501 7.2.6), on the fast
// path (large buffer) and the item-by-item one alike.
func TestFetchRelayFlagsHooks(t *testing.T) {
	const announced = "* FLAGS (\\Seen $new)\r\n"
	tests := []struct {
		name, in, want string
		recent         imap.UID
	}{
		{name: "known flags unchanged",
			in:   "* 1 FETCH (UID 4 FLAGS (\\Seen))\r\nX1 OK\r\n",
			want: "* 5 FETCH (FLAGS (\\Seen))\r\n"},
		{name: "claimed: \\Recent last",
			in: "* 1 FETCH (UID 4 FLAGS (\\Seen))\r\nX1 OK\r\n", recent: 4,
			want: "* 5 FETCH (FLAGS (\\Seen \\Recent))\r\n"},
		{name: "claimed, no flags",
			in: "* 1 FETCH (UID 4 FLAGS ())\r\nX1 OK\r\n", recent: 4,
			want: "* 5 FETCH (FLAGS (\\Recent))\r\n"},
		{name: "new keyword: FLAGS first, once",
			in:   "* 1 FETCH (UID 4 FLAGS ($new))\r\n* 2 FETCH (UID 5 FLAGS ($new \\Seen))\r\nX1 OK\r\n",
			want: announced + "* 5 FETCH (FLAGS ($new))\r\n* 6 FETCH (FLAGS ($new \\Seen))\r\n"},
		{name: "MODSEQ dropped (a pool connection has CONDSTORE enabled)",
			in:   "* 1 FETCH (UID 4 MODSEQ (12) FLAGS (\\Seen))\r\n* 2 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (3))\r\nX1 OK\r\n",
			want: "* 5 FETCH (FLAGS (\\Seen))\r\n* 6 FETCH (FLAGS (\\Seen))\r\n"},
		{name: "new keyword after other items",
			in:   "* 1 FETCH (UID 4 RFC822.SIZE 3)\r\n* 2 FETCH (UID 5 RFC822.SIZE 3 FLAGS ($new))\r\nX1 OK\r\n",
			want: "* 5 FETCH (RFC822.SIZE 3)\r\n" + announced + "* 6 FETCH (RFC822.SIZE 3 FLAGS ($new))\r\n"},
	}
	for _, tt := range tests {
		for _, size := range []int{16, 64 << 10} {
			t.Run(tt.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				sink := &bufSink{}
				calls := 0
				rl := &fetchRelay{
					req:      &fetchRequest{},
					uids:     imap.UIDSet{{Start: 1, Stop: 1000}},
					seqOf:    func(u imap.UID) (uint32, bool) { return uint32(u) + 1, true },
					sink:     sink,
					isRecent: func(u imap.UID) bool { return u == tt.recent },
					announce: func(flags [][]byte) []byte {
						calls++
						for _, f := range flags {
							if bytes.Equal(f, []byte("$new")) {
								return []byte(announced)
							}
						}
						return nil
					},
				}
				if err := rl.run(bufio.NewReaderSize(bytes.NewReader([]byte(tt.in)), size), "X1"); err != nil {
					t.Fatal(err)
				}
				if got := sink.String(); got != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				if calls > 2 {
					t.Fatalf("announce called %d times, want at most once per new set", calls)
				}
			})
		}
	}
}
