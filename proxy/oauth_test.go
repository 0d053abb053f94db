package proxy

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/memidle"
)

// tokenSession is an upstream session that accepts only OAuth2 bearer
// tokens (XOAUTH2, OAUTHBEARER), like Gmail with OAuth.
type tokenSession struct {
	*memidle.Session
	token *atomic.Value // the one valid token
}

func (s *tokenSession) Login(string, string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "use OAuth2"}
}

func (s *tokenSession) AuthenticateMechanisms() []string { return []string{"XOAUTH2", "OAUTHBEARER"} }

func (s *tokenSession) Authenticate(mech string) (sasl.Server, error) {
	accept := func(user, token string) error {
		if user != testUser || token != s.token.Load().(string) {
			return imapserver.ErrAuthFailed
		}
		return s.Session.Session.Login(testUser, testPass)
	}
	switch mech {
	case "XOAUTH2":
		return xoauth2Server(accept), nil
	case "OAUTHBEARER":
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if accept(o.Username, o.Token) != nil {
				return &sasl.OAuthBearerError{Status: "invalid_token"}
			}
			return nil
		}), nil
	}
	return nil, errors.New("unsupported mechanism")
}

// xoauth2Server checks "user=U\x01auth=Bearer T\x01\x01".
type xoauth2Server func(user, token string) error

func (f xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil
	}
	var user, token string
	for _, part := range strings.Split(string(resp), "\x01") {
		if v, ok := strings.CutPrefix(part, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(part, "auth=Bearer "); ok {
			token = v
		}
	}
	return nil, true, f(user, token)
}

func startTokenUpstream(t *testing.T, token string) (string, *atomic.Value) {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(testUser, testPass)
	u.Create("INBOX", nil)
	mem.AddUser(u)
	valid := new(atomic.Value)
	valid.Store(token)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &tokenSession{Session: memidle.Wrap(mem.NewSession()), token: valid}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), valid
}

// TestMappedOAuth2: a mapped user whose upstream account takes only OAuth2
// tokens logs in with XOAUTH2 or OAUTHBEARER from a token file; a stale
// token is NO [UNAVAILABLE] (the operator's problem, not the client's);
// a refreshed file is used at the next login without a restart.
func TestMappedOAuth2(t *testing.T) {
	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run(mech, func(t *testing.T) {
			addr, valid := startTokenUpstream(t, "tok-2")
			tokenFile := filepath.Join(t.TempDir(), "token")
			os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600)
			h, _ := bcrypt.GenerateFromPassword([]byte("vpass"), bcrypt.MinCost)
			cfg := testConfig(addr)
			cfg.Auth = config.Auth{Mode: "map", Users: []config.MappedUser{{
				User: "virt", PasswordHash: string(h), UpstreamUser: testUser,
				OAuth2TokenFile: tokenFile, OAuth2Mechanism: mech,
			}}}
			p := startProxy(t, cfg)
			login := func() error {
				c, err := imapclient.DialInsecure(p.Addrs()[0], nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if err := c.Login("virt", "vpass").Wait(); err != nil {
					return err
				}
				_, err = c.Select("INBOX", nil).Wait()
				return err
			}
			var ie *imap.Error
			if err := login(); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeUnavailable {
				t.Fatalf("with a stale token: got %v, want NO [UNAVAILABLE]", err)
			}
			os.WriteFile(tokenFile, []byte("tok-2\n"), 0o600)
			if err := login(); err != nil {
				t.Fatalf("with the refreshed token: %v", err)
			}
			_ = valid
		})
	}
}
