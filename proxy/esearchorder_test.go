package proxy

import (
	"bytes"
	"testing"
)

// TestESearchOrder: imapserver's ESEARCH items in Dovecot's order (MIN,
// MAX, ALL, COUNT), everything else as it was.
func TestESearchOrder(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"all four", "* ESEARCH (TAG \"a\") ALL 2,4:6 MIN 2 MAX 6 COUNT 4\r\n", "* ESEARCH (TAG \"a\") MIN 2 MAX 6 ALL 2,4:6 COUNT 4\r\n"},
		{"uid, no count", "* ESEARCH (TAG \"a\") UID ALL 9 MAX 9\r\n", "* ESEARCH (TAG \"a\") UID MAX 9 ALL 9\r\n"},
		{"with the tagged answer", "* ESEARCH (TAG \"b\") ALL 1 MIN 1\r\nb OK SEARCH completed\r\n", "* ESEARCH (TAG \"b\") MIN 1 ALL 1\r\nb OK SEARCH completed\r\n"},
		{"ALL alone", "* ESEARCH (TAG \"a\") ALL 1:3\r\n", "* ESEARCH (TAG \"a\") ALL 1:3\r\n"},
		{"ALL and COUNT", "* ESEARCH (TAG \"a\") ALL 1:3 COUNT 3\r\n", "* ESEARCH (TAG \"a\") ALL 1:3 COUNT 3\r\n"},
		{"a tag that looks like items", "* ESEARCH (TAG \" ALL 1 MIN 1\") COUNT 0\r\n", "* ESEARCH (TAG \" ALL 1 MIN 1\") COUNT 0\r\n"},
		{"not ESEARCH", "* SEARCH 1 2\r\n", "* SEARCH 1 2\r\n"},
		{"after another line", "* 3 EXISTS\r\n* ESEARCH (TAG \"c\") ALL 1 MIN 1 MAX 1\r\n", "* 3 EXISTS\r\n* ESEARCH (TAG \"c\") MIN 1 MAX 1 ALL 1\r\n"},
		{"no CRLF yet", "* ESEARCH (TAG \"a\") ALL 1 MIN 1", "* ESEARCH (TAG \"a\") ALL 1 MIN 1"},
	}
	for _, tt := range tests {
		if got := string(esearchOrder([]byte(tt.in))); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzESearchOrder: any input keeps its length and its lines' bytes (as
// multisets: only items move), and never panics.
func FuzzESearchOrder(f *testing.F) {
	f.Add([]byte("* ESEARCH (TAG \"a\") ALL 2,4:6 MIN 2 MAX 6 COUNT 4\r\n"))
	f.Add([]byte("* ESEARCH (TAG \"a\") UID ALL 9 MAX 9\r\nx OK done\r\n"))
	f.Add([]byte("* ESEARCH ALL  MIN \r\n"))
	f.Add([]byte("* ESEARCH (TAG ) ALL\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		out := esearchOrder(p)
		if len(out) != len(p) {
			t.Fatalf("length %d, want %d: %q -> %q", len(out), len(p), p, out)
		}
		if bytes.Count(out, []byte("\n")) != bytes.Count(p, []byte("\n")) {
			t.Fatalf("lines changed: %q -> %q", p, out)
		}
		var a, b [256]int
		for i := range p {
			a[p[i]]++
			b[out[i]]++
		}
		if a != b {
			t.Fatalf("bytes changed: %q -> %q", p, out)
		}
	})
}
