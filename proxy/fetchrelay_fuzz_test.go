package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/idlemux/idlemux/upstream"
)

// bufSink gathers the relay's output.
type bufSink struct{ bytes.Buffer }

func (s *bufSink) text(b []byte) error { s.Write(b); return nil }

func (s *bufSink) literal(r io.Reader, n int64) error {
	got, err := io.CopyN(&s.Buffer, r, n)
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// relayOnce runs the relay over in as the upstream's answer to tag X1:
// every UID of 1:1000 is message number UID+1 of the view.
func relayOnce(in []byte, req *fetchRequest) ([]byte, error) {
	return relayBuffered(in, req, 16)
}

// relayBuffered is relayOnce reading through a buffer of size bytes: a
// small one keeps the relay off its fast path (fastRest), a large one
// lets it take it.
func relayBuffered(in []byte, req *fetchRequest, size int) ([]byte, error) {
	sink := &bufSink{}
	rl := testRelay(req, sink)
	err := rl.run(bufio.NewReaderSize(bytes.NewReader(in), size), "X1")
	if _, proto := upstream.IsProtocol(err); proto {
		err = nil
	}
	if err != nil {
		rl.salvage()
	}
	return sink.Bytes(), err
}

// testRelay is a relay for req into sink: every UID of 1:1000 is
// message number UID+1 of the view, up to UID 900.
func testRelay(req *fetchRequest, sink relaySink) *fetchRelay {
	return &fetchRelay{
		req:   req,
		uids:  imap.UIDSet{{Start: 1, Stop: 1000}},
		seqOf: func(u imap.UID) (uint32, bool) { return uint32(u) + 1, u <= 900 },
		sink:  sink,
	}
}

var relaySeeds = []string{
	"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\nX1 OK done\r\n",
	"* 3 FETCH (UID 7 RFC822.SIZE 115 ENVELOPE (\"d\" \"=?iso-8859-1?q?caf=E9?=\" ((NIL \"@route\" \"user\" \"domain\")) NIL NIL NIL NIL NIL NIL NIL))\r\nX1 OK done\r\n",
	"* 2 FETCH (UID 2 BINARY[1]<0> ~{7}\r\n\x00\x01\x02\x03hel)\r\n* 2 EXISTS\r\nX1 OK [EXPUNGEISSUED] Some\r\n",
	"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT \"X]\")] {5}\r\nab\r\nc BODYSTRUCTURE ((\"text\" \"plain\" NIL NIL NIL \"7bit\" {1}\r\n1 0)(\"a\" \"b\" NIL NIL NIL \"base64\" 3 NIL NIL NIL NIL) \"mixed\"))\r\nX1 OK\r\n",
	"* 1 FETCH (FLAGS (\\Seen) RFC822 {3}\r\nabc UID 5)\r\n* 9 FETCH (MODSEQ (6) FLAGS ())\r\nX1 NO [SERVERBUG] x\r\n",
	"* 1 FETCH (UID 999 BODY[] NIL)\r\n* OK [HIGHESTMODSEQ 5] x {3}\r\n* 1 LIST () \".\" {3}\r\nabc\r\nX1 BAD x\r\n",
}

// FuzzFetchRelay: whatever the upstream sends, the relay neither panics
// nor holds more than its bounds; its fast path agrees with the
// item-by-item one; and what it produced is a fixed point: relaying its
// own output (as an answer with UIDs) gives it back.
func FuzzFetchRelay(f *testing.F) {
	for _, s := range relaySeeds {
		f.Add([]byte(s))
	}
	req := &fetchRequest{wantUID: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := relayOnce(in, req)
		var re *errRelay
		if err != nil && !errors.As(err, &re) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("relay of %q: got error %v, want a relay error or a cut answer", in, err)
		}
		if len(out) == 0 || err != nil {
			return
		}
		if fast, err := relayBuffered(in, req, 64<<10); err == nil && !bytes.Equal(fast, out) {
			t.Fatalf("fast path differs:\n in %q\nslow %q\nfast %q", in, out, fast)
		}
		// The output renumbered UID u as u+1; read back with the same
		// mapping it would renumber again, so compare after undoing that.
		again, err := relayOnce(append(append([]byte{}, out...), "X1 OK\r\n"...), &fetchRequest{wantUID: true})
		if err != nil {
			t.Fatalf("relaying the relay's own output %q: %v", out, err)
		}
		if len(again) == 0 && len(out) > 0 {
			return // UIDs above 900 the second time round: dropped
		}
		if !bytes.Equal(stripNums(again), stripNums(out)) {
			t.Fatalf("relay output is not stable:\n in %q\nout %q\nagain %q", in, out, again)
		}
	})
}

// stripNums drops the message number after each "* ".
func stripNums(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("* "))
		if i < 0 {
			return append(out, b...)
		}
		out = append(out, b[:i+2]...)
		b = b[i+2:]
		for len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
			b = b[1:]
		}
	}
	return out
}

// TestFetchRelayAnswers: the relay's output for answers it must follow.
func TestFetchRelayAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		req            fetchRequest
	}{
		{name: "UID dropped, number rewritten, \\Recent dropped", in: "* 1 FETCH (UID 4 FLAGS (\\Seen \\Recent))\r\nX1 OK\r\n",
			want: "* 5 FETCH (FLAGS (\\Seen))\r\n"},
		{name: "UID kept", req: fetchRequest{wantUID: true}, in: "* 1 FETCH (UID 4 RFC822.SIZE 10)\r\nX1 OK\r\n",
			want: "* 5 FETCH (UID 4 RFC822.SIZE 10)\r\n"},
		{name: "UID after buffered items", req: fetchRequest{wantUID: true, uidAfter: 2},
			in:   "* 1 FETCH (UID 4 RFC822.SIZE 10 FLAGS () ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\nX1 OK\r\n",
			want: "* 5 FETCH (RFC822.SIZE 10 FLAGS () UID 4 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"},
		{name: "literal8 and unknown untagged", in: "* 2 EXISTS\r\n* 1 FETCH (UID 4 BINARY[1] ~{3}\r\n\x00\n\r)\r\n* 1 RECENT\r\nX1 OK\r\n",
			want: "* 5 FETCH (BINARY[1] ~{3}\r\n\x00\n\r)\r\n"},
		{name: "unsolicited: no UID, or not asked, or unknown", in: "* 1 FETCH (FLAGS ())\r\n* 1 FETCH (UID 2000 FLAGS ())\r\n* 1 FETCH (UID 950 FLAGS ())\r\nX1 OK\r\n"},
		{name: "renamed", req: fetchRequest{rename: map[string]string{"BODY[]": "RFC822"}}, in: "* 1 FETCH (UID 4 BODY[] {2}\r\nab)\r\nX1 OK\r\n",
			want: "* 5 FETCH (RFC822 {2}\r\nab)\r\n"},
		{name: "listing, UID dropped", in: "* 1 FETCH (UID 4 RFC822.SIZE 10 ENVELOPE (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\nX1 OK\r\n",
			want: "* 5 FETCH (RFC822.SIZE 10 ENVELOPE (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"},
		{name: "\\Recent in a subject stays", req: fetchRequest{wantUID: true}, in: "* 1 FETCH (UID 4 ENVELOPE (NIL \"\\\\Recent\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\nX1 OK\r\n",
			want: "* 5 FETCH (UID 4 ENVELOPE (NIL \"\\\\Recent\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"},
		{name: "only the UID, dropped", in: "* 1 FETCH (UID 4)\r\nX1 OK\r\n", want: "* 5 FETCH ()\r\n"},
		{name: "items before the UID", in: "* 1 FETCH (BODY[] {2}\r\nab UID 4)\r\nX1 OK\r\n", want: "* 5 FETCH (BODY[] {2}\r\nab)\r\n"},
	} {
		for _, size := range []int{16, 64 << 10} {
			t.Run(tc.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				out, err := relayBuffered([]byte(tc.in), &tc.req, size)
				if err != nil || string(out) != tc.want {
					t.Errorf("got %q, %v; want %q, nil", out, err, tc.want)
				}
			})
		}
	}
}

// TestFetchRelayBounds: an upstream answer past the relay's bounds ends
// the command with a relay error (the connection is closed), whatever
// was held; a message body past them streams.
func TestFetchRelayBounds(t *testing.T) {
	big := strings.Repeat("x", relayTextMax+1)
	for _, tc := range []struct {
		name, in string
		wantErr  bool
	}{
		{name: "long quoted string", in: "* 1 FETCH (UID 1 ENVELOPE (\"" + big + "\"))\r\nX1 OK\r\n", wantErr: true},
		{name: "long nested literal", in: "* 1 FETCH (UID 1 ENVELOPE ({" + strconv.Itoa(len(big)) + "}\r\n" + big + "))\r\nX1 OK\r\n", wantErr: true},
		{name: "long body", in: "* 1 FETCH (UID 1 BODY[] {" + strconv.Itoa(len(big)) + "}\r\n" + big + ")\r\nX1 OK\r\n"},
		{name: "too much before the UID", in: "* 1 FETCH (BODY[] {" + strconv.Itoa(relayHoldMax+1) + "}\r\n" + big[:relayHoldMax+1] + " UID 1)\r\nX1 OK\r\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := relayOnce([]byte(tc.in), &fetchRequest{})
			var re *errRelay
			if tc.wantErr && !errors.As(err, &re) {
				t.Errorf("got %d bytes, error %v; want a relay error", len(out), err)
			}
			if !tc.wantErr && (err != nil || len(out) < len(big)) {
				t.Errorf("got %d bytes, error %v; want the body, no error", len(out), err)
			}
		})
	}
}
