package upstream

import (
	"strings"
	"testing"
)

// TestLiteral8Writer: once armed, the APPEND line's literal marker of the
// armed size gets its "~", however imapclient splits the writes; any
// other line goes out as it is, and the rewrite happens once.
func TestLiteral8Writer(t *testing.T) {
	tests := []struct {
		name   string
		size   int64
		writes []string
		want   string
	}{
		{"non-synchronizing", 8, []string{"T1 APPEND INBOX {8+}\r\nabcdefgh\r\n"}, "T1 APPEND INBOX ~{8+}\r\nabcdefgh\r\n"},
		{"synchronizing", 8, []string{"T1 APPEND INBOX (\\Seen) {8}\r\n"}, "T1 APPEND INBOX (\\Seen) ~{8}\r\n"},
		{"split line", 12, []string{"T1 APP", "END \"a b\" {1", "2+}\r", "\nhello world!\r\n"}, "T1 APPEND \"a b\" ~{12+}\r\nhello world!\r\n"},
		{"other size", 8, []string{"T1 APPEND INBOX {9+}\r\nabcdefghi\r\n"}, "T1 APPEND INBOX {9+}\r\nabcdefghi\r\n"},
		{"size that ends alike", 8, []string{"T1 APPEND INBOX {18+}\r\n"}, "T1 APPEND INBOX {18+}\r\n"},
		{"not an APPEND", 8, []string{"T1 NOOP {8}\r\n"}, "T1 NOOP {8}\r\n"},
		{"once only", 8, []string{"T1 APPEND INBOX {8+}\r\nabcdefgh\r\nT2 APPEND INBOX {8+}\r\n", "T3 APPEND INBOX {8+}\r\n"}, "T1 APPEND INBOX ~{8+}\r\nabcdefgh\r\nT2 APPEND INBOX {8+}\r\nT3 APPEND INBOX {8+}\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w literal8Writer
			w.arm(tt.size)
			var got strings.Builder
			for _, p := range tt.writes {
				got.Write(w.rewrite([]byte(p)))
			}
			if got.String() != tt.want {
				t.Errorf("got %q, want %q", got.String(), tt.want)
			}
		})
	}
	t.Run("unarmed", func(t *testing.T) {
		var w literal8Writer
		if got := w.rewrite([]byte("T1 APPEND INBOX {8+}\r\n")); string(got) != "T1 APPEND INBOX {8+}\r\n" {
			t.Errorf("got %q, want it unchanged", got)
		}
	})
}
