package proxy

import (
	"slices"
	"strings"
	"testing"
)

// TestDovecotLsub: LSUB keeps its own meaning through idlemux (RFC 3501
// 6.3.9): with a and c.d subscribed, `LSUB "" %` lists c as \Noselect, and
// no answer carries \Subscribed; every LSUB answers as Dovecot's does.
func TestDovecotLsub(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	direct := dv.Dial(t, testUser, testPass)
	for _, box := range []string{"a", "c.d", "c.e", "gone", "p.q.r", "s", "s.t"} {
		if err := direct.Create(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for _, box := range []string{"a", "c.d", "gone", "p.q.r", "s", "s.t"} {
		if err := direct.Subscribe(box).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := direct.Delete("gone").Wait(); err != nil { // still subscribed
		t.Fatal(err)
	}
	for _, cmd := range []string{`LSUB "" %`, `LSUB "" *`, `LSUB "" %.%`, `LSUB "" p.%`, `LSUB "c" %`, `LSUB "" c`, `LSUB "" c*`, `LSUB "" c%`, `LSUB "" %d`, `LSUB "" ""`, `LSUB "" nothing*`} {
		lsub := func(addr string) []string {
			out := untaggedOK(t, addr, cmd)
			for i, l := range out {
				out[i] = unquoteName(l)
			}
			return out
		}
		want, got := lsub(dv.Addr), lsub(p.Addrs()[0])
		if !slices.Equal(got, want) {
			t.Errorf("%s: through idlemux %q, directly %q", cmd, got, want)
		}
		if cmd == `LSUB "" %` && !slices.Contains(got, `* LSUB (\Noselect) "." c`) {
			t.Errorf(`%s: got %q, want * LSUB (\Noselect) "." c among them`, cmd, got)
		}
		for _, l := range got {
			if strings.Contains(l, `\Subscribed`) {
				t.Errorf(`%s: got %q with \Subscribed`, cmd, l)
			}
		}
	}
}

// unquoteName writes the mailbox name at the end of a LIST or LSUB line
// as an atom when it is a quoted string of atom characters: imapserver
// always quotes names, Dovecot quotes only where needed; both are the
// same astring (RFC 3501 9).
func unquoteName(l string) string {
	i := strings.LastIndex(strings.TrimSuffix(l, `"`), ` "`)
	if !strings.HasSuffix(l, `"`) || i < 0 {
		return l
	}
	name := l[i+2 : len(l)-1]
	for j := 0; j < len(name); j++ {
		if !isAtomChar(name[j]) || name[j] == '%' || name[j] == '*' || name[j] == ']' {
			return l
		}
	}
	return l[:i+1] + name
}
