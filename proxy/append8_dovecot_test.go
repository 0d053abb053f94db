package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// binaryMessage is a single-part message whose body, sent with
// Content-Transfer-Encoding binary, holds a NUL and bare LFs: 8 bytes,
// which a server normalizing line ends would make 11.
const binaryMessage = "From: a@example.org\r\nSubject: binary\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
	"a\x00b\nc\nd\n"

// appendRaw sends APPEND box with the message as a literal (literal8 when
// binary; non-synchronizing, RFC 7888, when nonSync) and returns the
// tagged answer.
func appendRaw(rc *rawConn, box, msg string, binary, nonSync bool) string {
	marker, plus := "{", ""
	if binary {
		marker = "~{"
	}
	if nonSync {
		plus = "+"
	}
	fmt.Fprintf(rc.c, "p APPEND %s %s%d%s}\r\n", box, marker, len(msg), plus)
	if !nonSync {
		if l := rc.line(); !strings.HasPrefix(l, "+") {
			return l
		}
	}
	fmt.Fprintf(rc.c, "%s\r\n", msg)
	for {
		if l := rc.line(); strings.HasPrefix(l, "p ") {
			return l
		}
	}
}

// TestDovecotAppendLiteral8: an APPEND whose message is a literal8 (RFC
// 3516 4.4) is stored through idlemux as Dovecot stores it directly, NUL
// and bare LFs kept: BINARY.SIZE and the stored bytes (read directly from
// Dovecot) are the same. A plain literal is still stored as one.
func TestDovecotAppendLiteral8(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	check := dialRaw(t, dv.Addr)
	check.cmd("l", "LOGIN "+testUser+" "+testPass)
	tests := []struct {
		name            string
		binary, nonSync bool
		wantSize        string
	}{
		{"literal8", true, false, "BINARY.SIZE[1] 8"},
		{"literal8 non-synchronizing", true, true, "BINARY.SIZE[1] 8"},
		{"plain literal", false, false, "BINARY.SIZE[1] 11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := map[string][]string{}
			for _, via := range []struct{ name, addr string }{{"directly", dv.Addr}, {"through idlemux", p.Addrs()[0]}} {
				box := strings.ReplaceAll("L8 "+tt.name+" "+via.name, " ", "_")
				check.cmd("c", "CREATE "+box)
				rc := dialRaw(t, via.addr)
				rc.cmd("l", "LOGIN "+testUser+" "+testPass)
				if l := appendRaw(rc, box, binaryMessage, tt.binary, tt.nonSync); !strings.HasPrefix(l, "p OK") {
					t.Fatalf("%s: APPEND got %q, want p OK", via.name, l)
				}
				check.cmd("s", "EXAMINE "+box)
				size := check.cmd("f", "FETCH 1 (BINARY.SIZE[1])")
				if !strings.Contains(size[0], tt.wantSize) {
					t.Errorf("%s: got %q, want %s", via.name, size[0], tt.wantSize)
				}
				stored[via.name] = check.cmd("b", "FETCH 1 (RFC822.SIZE BINARY.PEEK[1])")
			}
			if d, i := stored["directly"], stored["through idlemux"]; strings.Join(d[:len(d)-1], "\n") != strings.Join(i[:len(i)-1], "\n") {
				t.Errorf("stored through idlemux %q, directly %q", i, d)
			}
		})
	}
}
