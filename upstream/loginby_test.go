package upstream

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/idlemux/idlemux/internal/hostileup"
)

// TestLoginByCapabilities: the login command on the wire is what
// quirks.LoginBy says for the greeting's capabilities and the configured
// mechanism, and the upstream's refusal code decides the error
// (quirks.Transient: try later; else the credentials are refused).
func TestLoginByCapabilities(t *testing.T) {
	const plain, disabled = "IMAP4rev1 SASL-IR AUTH=PLAIN", "IMAP4rev1 SASL-IR LOGINDISABLED AUTH=PLAIN"
	tests := []struct {
		name, caps, mech, answer string
		wantCmd                  string
		wantErr                  error // nil, ErrAuthFailed, or an *UnavailableError
	}{
		{"password by LOGIN", plain, "", "OK", "LOGIN", nil},
		{"LOGINDISABLED: AUTHENTICATE PLAIN", disabled, "", "OK", "AUTHENTICATE PLAIN", nil},
		{"xoauth2", disabled, MechXOAUTH2, "OK", "AUTHENTICATE XOAUTH2", nil},
		{"oauthbearer", plain, MechOAUTHBEARER, "OK", "AUTHENTICATE OAUTHBEARER", nil},
		{"NO [UNAVAILABLE] is transient", plain, "", "NO [UNAVAILABLE] try later", "LOGIN", &UnavailableError{}},
		{"NO [LIMIT] is transient", plain, "", "NO [LIMIT] too many", "LOGIN", &UnavailableError{}},
		{"NO [AUTHENTICATIONFAILED] refuses", plain, "", "NO [AUTHENTICATIONFAILED] wrong", "LOGIN", ErrAuthFailed},
		{"bare NO [ALERT] refuses this login", plain, "", "NO [ALERT] too many connections", "LOGIN", ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got string
			fake := hostileup.StartGreeting(t, "* OK [CAPABILITY "+tt.caps+"] ready\r\n", func(c *hostileup.Conn, tag, verb, args string) bool {
				if verb != "LOGIN" && verb != "AUTHENTICATE" {
					return false
				}
				mu.Lock()
				got = verb
				if verb == "AUTHENTICATE" {
					got += " " + strings.ToUpper(strings.Fields(args)[0])
				}
				mu.Unlock()
				c.Send(tag + " " + tt.answer + "\r\n")
				return true
			})
			m := NewManager(Options{Address: fake.Addr, TLS: TLSNone})
			t.Cleanup(func() { m.Shutdown(testCtx(t)) })
			a, err := m.LoginMech(testCtx(t), "u", "secret", tt.mech)
			if err == nil {
				a.Unref()
			}
			mu.Lock()
			defer mu.Unlock()
			if got != tt.wantCmd {
				t.Errorf("login command: got %q, want %q", got, tt.wantCmd)
			}
			var ue *UnavailableError
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Errorf("error: got %v, want none", err)
				}
			case *UnavailableError:
				if !errors.As(err, &ue) || errors.Is(err, ErrAuthFailed) {
					t.Errorf("error: got %v, want an UnavailableError", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("error: got %v, want %v", err, want)
				}
			}
		})
	}
}
