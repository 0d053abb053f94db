package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestSkipToTagged: the answer to ENABLE QRESYNC is read through its
// tagged line, literals and long lines included, and nothing after it;
// NO and BAD come back as the upstream's *imap.Error, a cut or oversized
// answer as an error.
func TestSkipToTagged(t *testing.T) {
	for _, tc := range []struct {
		name, in, rest string
		limit          int
		want           error
		wantType       imap.StatusResponseType
	}{
		{name: "ok", in: "* ENABLED QRESYNC\r\nX1 OK Enabled.\r\nnext", rest: "next", limit: 100},
		{name: "literal holding a tag", in: "* 1 FETCH (BODY[] {9}\r\nX1 OK no\n)\r\nX1 OK\r\n", limit: 100},
		{name: "long line", in: "* OK " + string(bytes.Repeat([]byte("x"), 100)) + "\r\nX1 OK\r\n", limit: 200},
		{name: "bad", in: "X1 BAD Unknown\r\n", limit: 100, wantType: imap.StatusResponseTypeBad},
		{name: "cut", in: "* ENABLED", limit: 100, want: io.ErrUnexpectedEOF},
		{name: "over the limit", in: "* OK 0123456789\r\nX1 OK\r\n", limit: 10, want: &FramingError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(bytes.NewReader([]byte(tc.in)), 16)
			err := skipToTagged(br, "X1", tc.limit)
			var ie *imap.Error
			var fe *FramingError
			switch {
			case tc.wantType != "":
				if !errors.As(err, &ie) || ie.Type != tc.wantType {
					t.Errorf("got %v, want %s", err, tc.wantType)
				}
			case tc.want == nil:
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				if rest, _ := io.ReadAll(br); string(rest) != tc.rest {
					t.Errorf("got %q left, want %q", rest, tc.rest)
				}
			case errors.As(tc.want, &fe):
				if !errors.As(err, &fe) {
					t.Errorf("got %v, want a framing error", err)
				}
			case !errors.Is(err, tc.want):
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzSkipToTagged: whatever the upstream sends, reading the answer to a
// raw command never panics and never reads past limit bytes.
func FuzzSkipToTagged(f *testing.F) {
	for _, s := range []string{"* ENABLED QRESYNC\r\nX1 OK\r\n", "* 1 FETCH (X {3}\r\nabc)\r\nX1 NO x\r\n", "* x {99999999999}\r\n", "X1 FOO\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		br := bufio.NewReaderSize(r, 16)
		skipToTagged(br, "X1", 1000)
		if read := len(in) - r.Len() - br.Buffered(); read > 1000+16 {
			t.Fatalf("read %d bytes of %q, limit 1000", read, in)
		}
	})
}
