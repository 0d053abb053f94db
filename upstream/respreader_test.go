package upstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// smallLimits make the limits reachable with short inputs.
var smallLimits = respLimits{line: 64, literal: 16, total: 128}

// readAll reads everything the reader passes on, chunk bytes at a time.
func readAll(r io.Reader, chunk int) ([]byte, error) {
	var out []byte
	p := make([]byte, chunk)
	for {
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestRespReader(t *testing.T) {
	tests := []struct {
		name    string
		lim     respLimits
		in      string
		want    string // what imapclient gets; "=" means the input unchanged
		wantErr string // substring of the error, "" for none
		drops   int
	}{
		{"greeting and tagged", smallLimits, "* OK [CAPABILITY IMAP4rev1] hi\r\nA1 OK done\r\n", "=", "", 0},
		{"tagged text ending in a brace", smallLimits, "A1 OK see {99999999999}\r\n* OK {x}\r\n+ go {5}\r\n", "=", "", 0},
		{"list with literal", smallLimits, "* LIST () \"/\" {5}\r\nINBOX\r\nA1 OK\r\n", "=", "", 0},
		{"literal holding a response", smallLimits, "* LIST () \"/\" {11}\r\n* XYZZY a\r\n\r\n", "=", "", 0},
		{"fetch body streams past the literal limit", smallLimits,
			"* 1 FETCH (UID 4 BODY[] {40}\r\n" + strings.Repeat("x", 40) + ")\r\n", "=", "", 0},
		{"fetch rfc822 with origin", smallLimits, "* 1 FETCH (BODY[TEXT]<0> {20}\r\n" + strings.Repeat("y", 20) + " RFC822.HEADER {20}\r\n" + strings.Repeat("z", 20) + ")\r\n", "=", "", 0},
		{"binary literal8", smallLimits, "* 2 FETCH (BINARY[1] ~{30}\r\n" + strings.Repeat("b", 30) + ")\r\n", "=", "", 0},
		{"unknown type dropped", smallLimits, "* XYZZY foo\r\nA1 OK\r\n", "A1 OK\r\n", "", 1},
		{"unknown numbered type dropped", smallLimits, "* 3 xyzzy\r\n* 3 EXISTS\r\n", "* 3 EXISTS\r\n", "", 1},
		{"unknown type with literals dropped", smallLimits, "* XYZZY {3}\r\nabc {2}\r\nde\r\n* 1 RECENT\r\n", "* 1 RECENT\r\n", "", 1},
		{"malformed head passed on", smallLimits, "*XYZZY\r\n* \r\n", "=", "", 0},
		{"line too long", smallLimits, "* LIST () \"/\" " + strings.Repeat("a", 100) + "\r\n", "", "line longer than the limit of 64 bytes", 0},
		{"text line too long", smallLimits, "* OK " + strings.Repeat("a", 100) + "\r\n", "", "line longer", 0},
		{"literal too large", smallLimits, "* LIST () \"/\" {17}\r\n", "", "17-byte a literal outside a message body; limit 16", 0},
		{"envelope literal in fetch is bounded", smallLimits, "* 1 FETCH (ENVELOPE (NIL {17}\r\n", "", "limit 16", 0},
		{"literal past 2^32-1", defaultRespLimits, "* LIST () \"/\" {1099511627776}\r\n", "", `invalid literal "{1099511627776}"`, 0},
		{"literal with padded digits", respLimits{line: 400, literal: 16, total: 800}, "* LIST () \"/\" {" + strings.Repeat("0", 150) + "5}\r\n", "", "more than 10 digits", 0},
		{"response too long", smallLimits, "* LIST () \"/\"" + strings.Repeat(" {16}\r\n"+strings.Repeat("m", 16), 6) + "\r\n", "", "response longer than the limit of 128", 0},
		{"watcher body bounded", respLimits{line: 64, literal: 16, total: 128, body: 16}, "* 1 FETCH (BODY[] {17}\r\n", "", "17-byte a message body literal; limit 16", 0},
		{"eof inside a literal", smallLimits, "* LIST () \"/\" {5}\r\nIN", "", "unexpected EOF", 0},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 4096} {
			t.Run(tt.name, func(t *testing.T) {
				drops := 0
				r := newRespReader(iotest.HalfReader(strings.NewReader(tt.in)), tt.lim, func([]byte) { drops++ })
				got, err := readAll(r, chunk)
				want := tt.want
				if want == "=" {
					want = tt.in
				}
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("chunk %d: got error %v, want one containing %q", chunk, err, tt.wantErr)
					}
					return
				}
				if err != nil || string(got) != want || drops != tt.drops {
					t.Fatalf("chunk %d: got %q, %v, %d drops; want %q, nil, %d drops", chunk, got, err, drops, want, tt.drops)
				}
			})
		}
	}
}

func TestRespReaderErrorIsFraming(t *testing.T) {
	r := newRespReader(strings.NewReader("* LIST () \"/\" {1099511627776}\r\n"), defaultRespLimits, nil)
	_, err := readAll(r, 512)
	var fe *FramingError
	if !errors.As(err, &fe) {
		t.Fatalf("got %T %v, want a *FramingError", err, err)
	}
	if _, err2 := r.Read(make([]byte, 8)); err2 != err {
		t.Fatalf("read after the error: got %v, want the same error again", err2)
	}
}

// FuzzRespReader: whatever the upstream sends, the reader never panics,
// never passes on more than it got, passes everything on when it drops
// nothing and fails on nothing, and does the same whatever the read sizes.
func FuzzRespReader(f *testing.F) {
	for _, s := range []string{
		"* OK hi\r\nA1 OK\r\n",
		"* LIST () \"/\" {5}\r\nINBOX\r\n",
		"* 1 FETCH (BODY[] {3}\r\nabc)\r\n",
		"* XYZZY {3}\r\nabc\r\n",
		"* 3 FOO\r\n+ x {4}\r\n",
		"* LIST () \"/\" {99999999999}\r\n",
		"* 1 FETCH (BINARY[1]<0> ~{2+}\r\nab RFC822 {1}\r\nx)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d1, d2 int
		out1, err1 := readAll(newRespReader(bytes.NewReader(in), smallLimits, func([]byte) { d1++ }), 4096)
		out2, err2 := readAll(newRespReader(iotest.OneByteReader(bytes.NewReader(in)), smallLimits, func([]byte) { d2++ }), 3)
		if len(out1) > len(in) {
			t.Fatalf("passed on %d bytes of %d", len(out1), len(in))
		}
		if (err1 == nil) != (err2 == nil) || d1 != d2 {
			t.Fatalf("read sizes change the outcome: %v/%v, %d/%d drops", err1, err2, d1, d2)
		}
		if err1 == nil && !bytes.Equal(out1, out2) {
			t.Fatalf("read sizes change the output: %q vs %q", out1, out2)
		}
		if err1 == nil && d1 == 0 && !bytes.Equal(out1, in) {
			t.Fatalf("nothing dropped yet got %q from %q", out1, in)
		}
	})
}
