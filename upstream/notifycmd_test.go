package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestEncodeMailboxName(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ascii", "INBOX", "INBOX"},
		{"space and specials", `a "b"\c`, `a "b"\c`},
		{"ampersand", "Tom & Jerry", "Tom &- Jerry"},
		{"latin runs", "Ünï", "&ANw-n&AO8-"},
		// RFC 3501 section 5.1.3's own example.
		{"rfc example", "~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"astral", "a😀b", "a&2D3eAA-b"},
		{"control char", "a\tb", "a&AAk-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := encodeMailboxName(tc.in); got != tc.want {
				t.Errorf("encodeMailboxName(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNotifyCommand(t *testing.T) {
	const ev = " (MessageNew MessageExpunge FlagChange))"
	many := make([]string, 2000)
	for i := range many {
		many[i] = fmt.Sprintf("Folder%04d", i)
	}
	for _, tc := range []struct {
		name   string
		names  []string
		max    int
		want   string // "" to check only n and the bound
		wantN  int
		within bool
	}{
		{"one", []string{"INBOX"}, maxNotifyLen, `NOTIFY SET (mailboxes ("INBOX")` + ev, 1, true},
		{"quoting", []string{`a"b`, `c\d`, "with space"}, maxNotifyLen,
			`NOTIFY SET (mailboxes ("a\"b" "c\\d" "with space")` + ev, 3, true},
		{"none", nil, maxNotifyLen, "", 0, true},
		// Dovecot 2.3 matches the UTF-8 spelling: both are sent.
		{"dual spellings", []string{"Ünï", "Tom & Jerry", "INBOX"}, maxNotifyLen,
			"NOTIFY SET (mailboxes (\"&ANw-n&AO8-\" {5+}\r\nÜnï \"Tom &- Jerry\" \"Tom & Jerry\" \"INBOX\")" + ev, 3, true},
		{"bound cuts the list", many, 1000, "", 0, true},
		{"first name too long", []string{strings.Repeat("x", 2000)}, 1000, "", 0, true},
		{"many within the default bound", many, maxNotifyLen, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := notifyCommand(tc.names, tc.max, true)
			if tc.want != "" || len(tc.names) == 0 {
				if got != tc.want || n != tc.wantN {
					t.Fatalf("got %q (%d names), want %q (%d)", got, n, tc.want, tc.wantN)
				}
			}
			if len(got) > tc.max {
				t.Fatalf("got a %d-byte command, want at most %d", len(got), tc.max)
			}
			if n > 0 {
				// It is every name it says it took, in order, and no more.
				if !strings.HasSuffix(got, ev) || !strings.Contains(got, `"`+tc.names[n-1]+`"`) {
					t.Fatalf("got %q, want the first %d names and the events", got[:min(len(got), 80)], n)
				}
				if n < len(tc.names) && strings.Contains(got, `"`+tc.names[n]+`"`) {
					t.Fatalf("got name %d in the command, but n = %d", n, n)
				}
				// One more name would not have fitted.
				if n < len(tc.names) && len(got)+len(tc.names[n])+3 <= tc.max {
					t.Fatalf("stopped at %d names with %d of %d bytes used: the next fits", n, len(got), tc.max)
				}
			}
			if tc.name == "bound cuts the list" && (n == 0 || n == len(tc.names)) {
				t.Fatalf("got %d of %d names within 1000 bytes, want some but not all", n, len(tc.names))
			}
		})
	}
}

func TestParseStatusEvent(t *testing.T) {
	for _, tc := range []struct{ name, in, want, err string }{
		{"atom", "* STATUS A (MESSAGES 2 UIDNEXT 3 UNSEEN 2 HIGHESTMODSEQ 3)\r\n", "A", ""},
		{"lower case", "* status INBOX (UNSEEN 1)\r\n", "INBOX", ""},
		{"quoted", "* STATUS \"with space\" (MESSAGES 1)\r\n", "with space", ""},
		{"quoted escapes", "* STATUS \"a\\\"b\\\\c\" (MESSAGES 1)\r\n", `a"b\c`, ""},
		{"literal", "* STATUS {10}\r\nwith\r\nline (MESSAGES 1)\r\n", "with\r\nline", ""},
		{"mutf7", "* STATUS &ANw-n&AO8- (MESSAGES 1)\r\n", "&ANw-n&AO8-", ""},
		{"bracket in atom", "* STATUS a]b (MESSAGES 1)\r\n", "a]b", ""},
		{"not status", "* OK [NOTIFICATIONOVERFLOW] too much\r\n", "", "not a STATUS"},
		{"no list", "* STATUS A\r\n", "", "no attribute list"},
		{"unterminated", "* STATUS \"A (MESSAGES 1)\r\n", "", "line break"},
		{"bad escape", "* STATUS \"A\\x\" (MESSAGES 1)\r\n", "", "bad escape"},
		{"short literal", "* STATUS {100}\r\nab (MESSAGES 1)\r\n", "", "bad literal"},
		{"empty name", "* STATUS  (MESSAGES 1)\r\n", "", "bad mailbox name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusEvent([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzParseStatusEvent: whatever the upstream sends on the notify
// connection, the parser returns without panicking, and a name it returns
// is within the response.
func FuzzParseStatusEvent(f *testing.F) {
	for _, s := range []string{
		"* STATUS A (MESSAGES 2 UIDNEXT 3)\r\n",
		"* STATUS \"a\\\"b\" (UNSEEN 1)\r\n",
		"* STATUS {3}\r\nabc (MESSAGES 1)\r\n",
		"* STATUS {99999999999}\r\n",
		"* STATUS {3+}\r\nab",
		"* STATUS \"\\",
		"* OK [NOTIFICATIONOVERFLOW]\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := parseStatusEvent(b)
		if err == nil && len(name) > len(b) {
			t.Fatalf("got a %d-byte name from a %d-byte response", len(name), len(b))
		}
		// The raw exchange's reader frames the same bytes within its bound.
		resp, err := readResponse(bufio.NewReader(strings.NewReader(string(b))), maxEventLen)
		if err == nil && len(resp) > maxEventLen {
			t.Fatalf("readResponse: got %d bytes, over the %d bound", len(resp), maxEventLen)
		}
	})
}

// TestRespReaderTapsStatus: on a connection with a tap (the notify
// connection), a STATUS response, literal included, goes to the tap whole
// and not to imapclient; others pass; an oversized one is flagged; an
// untagged OK goes to both (NOTIFICATIONOVERFLOW, RFC 5465 section 5.8).
func TestRespReaderTapsStatus(t *testing.T) {
	long := strings.Repeat("x", maxEventLen)
	in := "* STATUS A (MESSAGES 1)\r\n" +
		"* 3 EXISTS\r\n" +
		"* STATUS {5}\r\na b c (UNSEEN 0)\r\n" +
		"* STATUS \"" + long + "\" (MESSAGES 1)\r\n" +
		"* OK [NOTIFICATIONOVERFLOW] gone\r\n" +
		"T1 OK done\r\n"
	r := newRespReader(strings.NewReader(in), defaultRespLimits, nil)
	var got []string
	r.setTap(func(resp []byte, over bool) {
		name, err := parseStatusEvent(resp)
		if over {
			got = append(got, "over")
			return
		}
		if errors.Is(err, errNotStatus) {
			got = append(got, strings.TrimSpace(string(resp)))
			return
		}
		if err != nil {
			t.Errorf("tapped %q: %v", resp, err)
		}
		got = append(got, name)
	})
	var passed strings.Builder
	buf := make([]byte, 7) // small reads: responses cross Read calls
	for {
		n, err := r.Read(buf)
		passed.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if want := "* 3 EXISTS\r\n* OK [NOTIFICATIONOVERFLOW] gone\r\nT1 OK done\r\n"; passed.String() != want {
		t.Errorf("imapclient got %q, want %q", passed.String(), want)
	}
	if want := []string{"A", "a b c", "over", "* OK [NOTIFICATIONOVERFLOW] gone"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tap got %q, want %q", got, want)
	}
}

// FuzzRespReaderTap: on the notify connection, whatever the upstream
// sends, the reader with its STATUS tap never panics, hands the tap the
// same responses whatever the read sizes, each within maxEventLen, and
// passes imapclient no STATUS.
func FuzzRespReaderTap(f *testing.F) {
	for _, s := range []string{
		"* STATUS A (MESSAGES 1)\r\nT1 OK\r\n",
		"* STATUS {3}\r\na b (UNSEEN 0)\r\n* 2 EXISTS\r\n",
		"* status \"x\" ()\r\n* STATUS {99999999999}\r\n",
		"* OK [NOTIFICATIONOVERFLOW]\r\n* STATUS",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		run := func(src io.Reader, chunk int) ([]byte, []string, error) {
			r := newRespReader(src, defaultRespLimits, nil)
			var tapped []string
			r.setTap(func(resp []byte, over bool) {
				if len(resp) > maxEventLen {
					t.Fatalf("tap got %d bytes, over the %d bound", len(resp), maxEventLen)
				}
				tapped = append(tapped, fmt.Sprintf("%q %v", resp, over))
			})
			out, err := readAll(r, chunk)
			return out, tapped, err
		}
		out1, tap1, err1 := run(bytes.NewReader(in), 4096)
		_, tap2, err2 := run(iotest.OneByteReader(bytes.NewReader(in)), 3)
		if (err1 == nil) != (err2 == nil) || strings.Join(tap1, "\n") != strings.Join(tap2, "\n") {
			t.Fatalf("read sizes change what is tapped: %v/%v\n%q\n%q", err1, err2, tap1, tap2)
		}
		if err1 == nil && bytes.HasPrefix(bytes.ToUpper(out1), []byte("* STATUS ")) {
			t.Fatalf("imapclient got a STATUS: %q", out1)
		}
	})
}
