package proxy

import (
	"slices"
	"strings"
	"testing"
)

// TestDovecotListEmptyPattern: LIST with an empty pattern asks for the
// hierarchy delimiter (RFC 3501 6.3.8), which go-imap's server drops: the
// answer through idlemux is Dovecot's own.
func TestDovecotListEmptyPattern(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	for _, cmd := range []string{`LIST "" ""`, `LIST "INBOX" ""`, `LIST "" "INBOX"`} {
		untagged := func(addr string) []string {
			lines := converse(t, addr, true, "a "+cmd+"\r\nzz NOOP\r\n")
			var out []string
			for _, l := range lines {
				if strings.HasPrefix(l, "* ") {
					out = append(out, l)
				}
			}
			if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-2], "a OK") {
				t.Errorf("%s against %s: got %q, want a OK", cmd, addr, lines)
			}
			return out
		}
		want, got := untagged(dv.Addr), untagged(p.Addrs()[0])
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: through idlemux %q, directly %q", cmd, got, want)
		}
	}
}
