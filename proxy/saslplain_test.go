package proxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAuthenticatePlainContinuation: AUTHENTICATE PLAIN without an initial
// response (as offlineimap3's imaplib2 sends it) gets the same continuation
// line through idlemux as from Dovecot directly ("+ ", an empty challenge),
// and the credentials then log in on both.
func TestAuthenticatePlainContinuation(t *testing.T) {
	dv := startDovecot(t)
	p := startProxy(t, testConfig(dv.Addr))
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPass))
	exchange := func(addr string) (cont, tagged string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitLong))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("%s: greeting: %v", addr, err)
		}
		fmt.Fprintf(c, "a AUTHENTICATE PLAIN\r\n")
		if cont, err = r.ReadString('\n'); err != nil {
			t.Fatalf("%s: continuation: %v", addr, err)
		}
		fmt.Fprintf(c, "%s\r\n", creds)
		for !strings.HasPrefix(tagged, "a ") {
			if tagged, err = r.ReadString('\n'); err != nil {
				t.Fatalf("%s: answer: %v", addr, err)
			}
		}
		return cont, tagged
	}
	wantCont, wantTagged := exchange(dv.Addr)
	gotCont, gotTagged := exchange(p.Addrs()[0])
	if gotCont != wantCont {
		t.Errorf("continuation to AUTHENTICATE PLAIN: got %q, want %q (Dovecot directly)", gotCont, wantCont)
	}
	if !strings.HasPrefix(gotTagged, "a OK") || !strings.HasPrefix(wantTagged, "a OK") {
		t.Errorf("AUTHENTICATE PLAIN answer: got %q, want a OK as Dovecot's %q", gotTagged, wantTagged)
	}
}
