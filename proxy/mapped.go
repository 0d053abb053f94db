package proxy

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/verified"
)

// mappedUser is a downstream user of auth.mode map. bcrypt is deliberately
// slow; once a password matched, a salted SHA-256 of it is kept so later
// logins of the same virtual user (load harnesses log thousands in) cost
// microseconds. A different password is checked against bcrypt again.
type mappedUser struct {
	cfg config.MappedUser

	mu    sync.Mutex
	known verified.Password // the last password that matched bcrypt
}

func newMappedUsers(users []config.MappedUser) map[string]*mappedUser {
	out := make(map[string]*mappedUser, len(users))
	for _, u := range users {
		out[u.User] = &mappedUser{cfg: u}
	}
	return out
}

// check verifies pass against the bcrypt hash (or the remembered match).
func (m *mappedUser) check(pass string) bool {
	m.mu.Lock()
	hit := m.known.Matches(pass, 0) // bcrypt is the authority; no expiry needed
	m.mu.Unlock()
	if hit {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(m.cfg.PasswordHash), []byte(pass)) != nil {
		return false
	}
	m.mu.Lock()
	m.known.Store(pass)
	m.mu.Unlock()
	return true
}

// upstreamSecret returns the upstream password or OAuth2 token and its
// mechanism, reading files each time so a rotated secret (a refreshed
// token) takes effect without a restart.
func (m *mappedUser) upstreamSecret() (secret, mech string, err error) {
	file, key := m.cfg.UpstreamPasswordFile, "upstream_password_file"
	if m.cfg.OAuth2TokenFile != "" {
		file, key, mech = m.cfg.OAuth2TokenFile, "oauth2_token_file", m.cfg.OAuth2Mechanism
	}
	if file == "" {
		return m.cfg.UpstreamPassword, "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("auth.users %q: %s: %w", m.cfg.User, key, err)
	}
	return strings.TrimSpace(string(b)), mech, nil
}
