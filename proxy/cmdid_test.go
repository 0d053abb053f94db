package proxy

import (
	"testing"
)

// TestCheckIDParams: ID's parameters (RFC 2971 3.1, 3.3), as the reader
// has them (literals non-synchronizing, CRLF inside).
func TestCheckIDParams(t *testing.T) {
	tests := []struct {
		name, args, want string
	}{
		{"none", "", ""},
		{"NIL", " NIL", ""},
		{"pairs", ` ("name" "x" "version" "1")`, ""},
		{"literal", " (\"name\" {3+}\r\nabc)", ""},
		{"literal cut short", " (\"name\" {9+}\r\nabc)", badIDParams},
		{"literal8", " (\"name\" ~{3+}\r\nabc)", badIDParams},
		{"escape at the end", ` ("name\`, badIDParams},
		{"unterminated", ` ("a" "b"`, "Missing ')'"},
		{"atom field", ` (name "x")`, badIDParams},
		{"NIL value", ` ("name" NIL)`, ""},
		{"NIL field", ` (NIL "x")`, badIDParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkIDParams([]byte(tt.args)); got != tt.want {
				t.Errorf("checkIDParams(%q): got %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}

// FuzzIDParams: whatever a client sends as ID's parameters, the check
// ends without panicking and the reply is one line pair.
func FuzzIDParams(f *testing.F) {
	for _, s := range []string{"", " NIL", ` ("a" "b")`, " (\"a\" {3+}\r\nabc)", ` ("a" "b`, " ({99999999999999999999+}\r\n)", " (\"a\" {9223372036854775807+}\r\nx)", ` ("\`, " (~{1}\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		r := idReply(&framed{cmdHead: cmdHead{tag: "t", name: "ID"}, head: []byte("t ID" + args + "\r\n")})
		if r == nil || r.line == "" {
			t.Fatalf("idReply(%q): no answer", args)
		}
	})
}
