package proxy

import (
	"bytes"
	"testing"
)

// TestESearchOrder: imapserver's ESEARCH items in Dovecot's order (MIN,
// MAX, ALL, COUNT), and STATUS's RECENT where Dovecot writes it;
// everything else as it was.
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
	for _, tt := range statusTests {
		if got := string(statusOrder([]byte(tt.in))); got != tt.want {
			t.Errorf("STATUS %s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// statusTests: RECENT after MESSAGES, or first, as Dovecot writes it.
var statusTests = []struct{ name, in, want string }{
	{"after MESSAGES", "* STATUS \"B\" (MESSAGES 7 UNSEEN 3 RECENT 7)\r\n", "* STATUS \"B\" (MESSAGES 7 RECENT 7 UNSEEN 3)\r\n"},
	{"first without MESSAGES", "* STATUS \"B\" (UIDNEXT 9 UNSEEN 3 RECENT 0)\r\nx OK done\r\n", "* STATUS \"B\" (RECENT 0 UIDNEXT 9 UNSEEN 3)\r\nx OK done\r\n"},
	{"already in place", "* STATUS \"B\" (MESSAGES 7 RECENT 7)\r\n", "* STATUS \"B\" (MESSAGES 7 RECENT 7)\r\n"},
	{"alone", "* STATUS \"B\" (RECENT 7)\r\n", "* STATUS \"B\" (RECENT 7)\r\n"},
	{"name with a paren and RECENT", "* STATUS \"a (RECENT 1) b\" (MESSAGES 2 UNSEEN 1 RECENT 0)\r\n", "* STATUS \"a (RECENT 1) b\" (MESSAGES 2 RECENT 0 UNSEEN 1)\r\n"},
	{"no RECENT", "* STATUS \"B\" (MESSAGES 7 UNSEEN 3)\r\n", "* STATUS \"B\" (MESSAGES 7 UNSEEN 3)\r\n"},
	{"a literal name", "* STATUS {3}\r\n", "* STATUS {3}\r\n"},
	{"not STATUS", "* 3 RECENT\r\n", "* 3 RECENT\r\n"},
}

// FuzzESearchOrder: any input keeps its length and its lines' bytes (as
// multisets: only items move), and never panics.
func FuzzESearchOrder(f *testing.F) {
	f.Add([]byte("* ESEARCH (TAG \"a\") ALL 2,4:6 MIN 2 MAX 6 COUNT 4\r\n"))
	f.Add([]byte("* ESEARCH (TAG \"a\") UID ALL 9 MAX 9\r\nx OK done\r\n"))
	f.Add([]byte("* ESEARCH ALL  MIN \r\n"))
	f.Add([]byte("* ESEARCH (TAG ) ALL\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) { sameBytes(t, p, esearchOrder(p)) })
}

// sameBytes fails unless out holds the bytes of p, moved at most (a
// reordering moves items, never adds or drops any).
func sameBytes(t *testing.T, p, out []byte) {
	t.Helper()
	if len(out) != len(p) || bytes.Count(out, []byte("\n")) != bytes.Count(p, []byte("\n")) {
		t.Fatalf("length or lines changed: %q -> %q", p, out)
	}
	var a, b [256]int
	for i := range p {
		a[p[i]]++
		b[out[i]]++
	}
	if a != b {
		t.Fatalf("bytes changed: %q -> %q", p, out)
	}
}

// FuzzStatusOrder: any input keeps its length and bytes, never panics.
func FuzzStatusOrder(f *testing.F) {
	f.Add([]byte("* STATUS \"B\" (MESSAGES 7 UNSEEN 3 RECENT 7)\r\n"))
	f.Add([]byte("* STATUS B (RECENT 7)\r\nx OK\r\n"))
	f.Add([]byte("* STATUS ( RECENT )\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) { sameBytes(t, p, statusOrder(p)) })
}

// TestOwnStatusCode: [CLIENTBUG] in the tagged OK only.
func TestOwnStatusCode(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"tagged alone", "s OK STATUS completed\r\n", "s OK [CLIENTBUG] STATUS completed\r\n"},
		{"after the data", "* STATUS \"B\" (MESSAGES 1)\r\ns OK STATUS completed\r\n", "* STATUS \"B\" (MESSAGES 1)\r\ns OK [CLIENTBUG] STATUS completed\r\n"},
		{"another tag's", "xs OK STATUS completed\r\n", "xs OK STATUS completed\r\n"},
		{"a NO", "s NO [NONEXISTENT] Mailbox doesn't exist\r\n", "s NO [NONEXISTENT] Mailbox doesn't exist\r\n"},
	}
	for _, tt := range tests {
		if got := string(ownStatusCode([]byte(tt.in), "s")); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
