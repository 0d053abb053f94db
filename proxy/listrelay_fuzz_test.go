package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/idlemux/idlemux/upstream"
)

// runListRelay relays answer as the upstream's answer to LIST tagged X1.
func runListRelay(answer []byte) (*listRelay, error) {
	rl := &listRelay{name: []byte("LIST")}
	err := rl.run(bufio.NewReaderSize(bytes.NewReader(answer), 4096), "X1")
	return rl, err
}

// TestListRelay: the relay keeps the LIST responses byte for byte, with
// their literals, drops every other untagged response, and returns the
// upstream's status.
func TestListRelay(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want, status string
	}{
		{"plain", "* LIST (\\HasNoChildren) \".\" INBOX\r\nX1 OK done\r\n", "* LIST (\\HasNoChildren) \".\" INBOX\r\n", ""},
		{"others dropped", "* 3 EXISTS\r\n* LIST () \".\" a\r\n* 1 FETCH (FLAGS (\\Seen))\r\n* OK [ALERT] hi\r\n* list () \".\" b\r\nX1 OK done\r\n",
			"* LIST () \".\" a\r\n* list () \".\" b\r\n", ""},
		{"literal name", "* LIST () \".\" {4}\r\na\r\nb (CHILDINFO (\"SUBSCRIBED\"))\r\nX1 OK done\r\n", "* LIST () \".\" {4}\r\na\r\nb (CHILDINFO (\"SUBSCRIBED\"))\r\n", ""},
		{"literal dropped", "* XYZZY {5}\r\n* LIS\r\n* LIST () \".\" c\r\nX1 OK done\r\n", "* LIST () \".\" c\r\n", ""},
		{"lsub not list", "* LSUB () \".\" a\r\nX1 OK done\r\n", "", ""},
		{"no", "X1 NO [CANNOT] nope\r\n", "", "CANNOT"},
		{"ok with code", "* LIST () \".\" a\r\nX1 OK [OVERQUOTA] done\r\n", "* LIST () \".\" a\r\n", "OVERQUOTA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl, err := runListRelay([]byte(tc.answer))
			if got := string(rl.out); got != tc.want {
				t.Errorf("relayed: got %q, want %q", got, tc.want)
			}
			ie, _ := upstream.IsProtocol(err)
			switch {
			case tc.status == "" && err != nil:
				t.Errorf("status: got %v, want OK", err)
			case tc.status != "" && (ie == nil || string(ie.Code) != tc.status):
				t.Errorf("status: got %v, want code %s", err, tc.status)
			}
		})
	}
	for _, bad := range []string{
		"* LIST () \".\" {99999999}\r\n",
		"* LIST () \".\" {4}\r\nab",
		"garbage\r\nX1 OK done\r\n",
		"* LIST () \".\" " + strings.Repeat("a", 5000) + "\r\nX1 OK done\r\n",
		"X1 MAYBE\r\n",
	} {
		if _, err := runListRelay([]byte(bad)); err == nil {
			t.Errorf("%.60q: got no error, want one", bad)
		}
	}
}

// FuzzListRelay: whatever the upstream sends, the relay neither panics nor
// holds more than listShareMax; what it keeps is whole LIST responses, so
// relaying it again (with a tagged OK) gives it back unchanged.
func FuzzListRelay(f *testing.F) {
	for _, s := range []string{
		"* LIST (\\HasNoChildren) \".\" INBOX\r\nX1 OK done\r\n",
		"* 3 EXISTS\r\n* LIST () \".\" a\r\n* list () NIL \"b c\"\r\nX1 OK done\r\n",
		"* LIST () \".\" {4}\r\na\r\nb (CHILDINFO (\"SUBSCRIBED\"))\r\nX1 OK done\r\n",
		"* LIST () \".\" {2}\r\n{3}\r\n{1}\r\nx\r\nX1 OK done\r\n",
		"* XYZZY {5}\r\n* LIS\r\nX1 NO [NONEXISTENT] no\r\n",
		"* LIST () \".\" ~{3}\r\nabc\r\nX1 BAD x\r\n",
		"* LIST () \".\" {1+}\r\nz\r\nX1 OK [X] y\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		rl, err := runListRelay(answer)
		if len(rl.out) > listShareMax {
			t.Fatalf("held %d bytes, over %d", len(rl.out), listShareMax)
		}
		if _, proto := upstream.IsProtocol(err); err != nil && !proto {
			return
		}
		again, err := runListRelay(append(bytes.Clone(rl.out), "X1 OK done\r\n"...))
		if err != nil || !bytes.Equal(again.out, rl.out) {
			t.Fatalf("relaying %q again: got %q, %v", rl.out, again.out, err)
		}
	})
}
