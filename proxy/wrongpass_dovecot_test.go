package proxy

import (
	"encoding/base64"
	"slices"
	"testing"
)

// TestDovecotWrongPasswordAnswer: a wrong password gets Dovecot's own
// answer, word for word ("Authentication failed." with its period, which
// imapserver's ErrAuthFailed lacks): by LOGIN, by AUTHENTICATE PLAIN, and
// again once idlemux remembers the pair as bad (it does not ask the
// upstream then).
func TestDovecotWrongPasswordAnswer(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00wrong-pw"))
	for _, cmd := range []string{
		"LOGIN " + testUser + " wrong-pw",
		"AUTHENTICATE PLAIN " + plain,
		"LOGIN " + testUser + " wrong-pw", // known bad now
	} {
		direct := dialRaw(t, dv.Addr).cmd("a", cmd)
		proxied := dialRaw(t, p.Addrs()[0]).cmd("a", cmd)
		want := []string{"a NO [AUTHENTICATIONFAILED] Authentication failed."}
		if !slices.Equal(direct, want) {
			t.Fatalf("%s: Dovecot directly: got %q, want %q", cmd, direct, want)
		}
		if !slices.Equal(proxied, direct) {
			t.Errorf("%s: through idlemux: got %q, want Dovecot's %q", cmd, proxied, direct)
		}
	}
}
