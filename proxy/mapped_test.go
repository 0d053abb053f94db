package proxy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"

	"github.com/idlemux/idlemux/config"
)

// TestMappedAccounts: in auth.mode map, virtual users log in with their own
// (bcrypt-checked) passwords and share one upstream account whose password
// comes from a file; a wrong virtual password is refused without any
// upstream login, and many virtual users cost the upstream few connections.
func TestMappedAccounts(t *testing.T) {
	up := startMemUpstream(t)
	direct := directClient(t, up.addr)
	appendMsg(t, direct, "INBOX", testMessage("shared"))
	secretFile := filepath.Join(t.TempDir(), "upstream.pw")
	os.WriteFile(secretFile, []byte(testPass+"\n"), 0o600)

	cfg := testConfig(up.addr)
	cfg.Auth.Mode = "map"
	const n = 20
	for i := 0; i < n; i++ {
		h, err := bcrypt.GenerateFromPassword([]byte(fmt.Sprintf("vpass%d", i)), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth.Users = append(cfg.Auth.Users, config.MappedUser{
			User: fmt.Sprintf("virt%d", i), PasswordHash: string(h),
			UpstreamUser: testUser, UpstreamPasswordFile: secretFile,
		})
	}
	p := startProxy(t, cfg)

	bad, err := imapclient.DialInsecure(p.Addrs()[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	before := up.logins.Load()
	var ie *imap.Error
	if err := bad.Login("virt0", testPass).Wait(); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("virtual user with the upstream's password: got %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if err := bad.Login("nobody", "x").Wait(); err == nil {
		t.Fatal("unknown virtual user accepted")
	}
	if n := up.logins.Load() - before; n != 0 {
		t.Fatalf("refused virtual logins caused %d upstream logins, want 0", n)
	}

	for i := 0; i < n; i++ {
		c, err := imapclient.DialInsecure(p.Addrs()[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(fmt.Sprintf("virt%d", i), fmt.Sprintf("vpass%d", i)).Wait(); err != nil {
			t.Fatalf("virt%d: %v", i, err)
		}
		data, err := c.Select("INBOX", nil).Wait()
		if err != nil || data.NumMessages != 1 {
			t.Fatalf("virt%d SELECT: %+v, %v; want the shared INBOX with 1 message", i, data, err)
		}
	}
	if st := p.Stats(); st.UpstreamConns > cfg.Upstream.MaxConnectionsPerAccount || st.MailboxesWatched != 1 {
		t.Fatalf("%d virtual users: %+v, want one watcher and at most %d upstream connections", n, st, cfg.Upstream.MaxConnectionsPerAccount)
	}
	if got := up.logins.Load() - before; got > int64(cfg.Upstream.MaxConnectionsPerAccount) {
		t.Fatalf("%d virtual users caused %d upstream logins", n, got)
	}
}
