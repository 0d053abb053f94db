package proxy

import (
	"strings"
	"testing"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestHostileUpstreamThroughProxy: what a client sees when the upstream
// misbehaves on its LIST. There is no Dovecot run to compare with: no
// Dovecot sends these; a direct client would get the same bytes and have
// to defend itself, while idlemux answers NO [UNAVAILABLE] promptly (the
// response reader refuses the response) or, for a response type nobody
// parses, passes the rest of the answer on as if it had not been sent.
func TestHostileUpstreamThroughProxy(t *testing.T) {
	tests := []struct {
		name string
		send func(c *hostileup.Conn, tag string)
		want []string // the lines of the client's LIST, "a" tagged last
	}{
		{"100 MB line", func(c *hostileup.Conn, tag string) {
			c.SendLong(`* LIST () "/" `, 100<<20, "\r\n"+tag+" OK done\r\n")
		}, []string{"b NO [UNAVAILABLE]"}},
		{"2^40-byte literal", func(c *hostileup.Conn, tag string) {
			c.Send(hostileup.LiteralLine(1 << 40))
			c.SendLong("", 100<<20, "")
		}, []string{"b NO [UNAVAILABLE]"}},
		{"unknown untagged type", func(c *hostileup.Conn, tag string) {
			c.Send("* XYZZY foo\r\n* LIST () \"/\" INBOX\r\n* XYZZY {3}\r\nbar\r\n" + tag + " OK done\r\n")
		}, []string{`* LIST () "/" INBOX`, "b OK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := hostileup.Start(t, func(c *hostileup.Conn, tag, verb, args string) bool {
				if verb != "LIST" || !strings.Contains(args, "*") {
					return false
				}
				tt.send(c, tag)
				return true
			})
			p := startProxy(t, testConfig(fake.Addr))
			rc := dialRaw(t, p.Addrs()[0])
			if l := rc.cmd("a", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "a OK") {
				t.Fatalf("LOGIN: got %q", l)
			}
			got := rc.cmd("b", `LIST "" "*"`)
			if len(got) != len(tt.want) {
				t.Fatalf("LIST: got %q, want lines starting %q", got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Fatalf("LIST line %d: got %q, want it to start %q", i, got[i], w)
				}
			}
			// The session outlives a broken upstream connection.
			if l := rc.cmd("c", "NOOP"); !strings.HasPrefix(l[len(l)-1], "c OK") {
				t.Fatalf("NOOP after LIST: got %q, want c OK", l)
			}
		})
	}
}
