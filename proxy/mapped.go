package proxy

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
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

// mappedUsers is map mode's table of virtual users. dummy is a bcrypt hash
// of a random password at the users' highest cost: an unknown user is
// checked against it, so a refusal takes as long whether or not the user
// exists (no timing oracle for user names).
type mappedUsers struct {
	byName map[string]*mappedUser
	dummy  []byte
}

func newMappedUsers(users []config.MappedUser) mappedUsers {
	out := mappedUsers{byName: make(map[string]*mappedUser, len(users))}
	cost := -1
	for _, u := range users {
		out.byName[u.User] = &mappedUser{cfg: u}
		if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil {
			cost = max(cost, c)
		}
	}
	if cost >= 0 {
		secret := make([]byte, 32)
		rand.Read(secret)
		out.dummy, _ = bcrypt.GenerateFromPassword(secret, cost)
	}
	return out
}

// bcryptSlots bounds the bcrypt comparisons running at once to the CPUs
// Go uses: a flood of wrong passwords queues instead of starving every
// other goroutine (a real login among them included) of CPU.
var bcryptSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// bcryptCompare is bcrypt.CompareHashAndPassword, which compares the
// hashes in constant time; a variable so tests can count the calls.
var bcryptCompare = bcrypt.CompareHashAndPassword

// check verifies user's password: from the remembered match, else (after
// taking the address's login slot and a bcrypt slot) with bcrypt, against
// the dummy hash when the user is unknown. It returns the user when the
// password matches; an error only when no slot came in time.
func (ms mappedUsers) check(ctx context.Context, user, pass string, take func(context.Context) error) (*mappedUser, error) {
	mu := ms.byName[user]
	if mu != nil && mu.cached(pass) {
		return mu, nil
	}
	if err := take(ctx); err != nil {
		return nil, err
	}
	hash := ms.dummy
	if mu != nil {
		hash = []byte(mu.cfg.PasswordHash)
	}
	select {
	case bcryptSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, errLoginsQueued
	}
	match := bcryptCompare(hash, []byte(pass)) == nil
	<-bcryptSlots
	if !match || mu == nil {
		return nil, nil
	}
	mu.mu.Lock()
	mu.known.Store(pass)
	mu.mu.Unlock()
	return mu, nil
}

// cached reports pass as the password that last matched bcrypt (compared
// in constant time by verified.Password).
func (m *mappedUser) cached(pass string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.known.Matches(pass, 0) // bcrypt is the authority; no expiry needed
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
