// Package verified remembers a password that was checked once (upstream,
// or against bcrypt) only as a salted SHA-256 hash, so the next login with
// the same password is accepted in microseconds, compared in constant
// time. A password that does not match is never accepted from here: the
// caller checks it the slow way again (it may be a new, valid one).
package verified

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"time"
)

// Password is one remembered password. It is not safe for concurrent use:
// callers hold their own lock.
type Password struct {
	salt [16]byte
	hash [32]byte
	set  bool
	at   time.Time // when it was last confirmed
}

func (p *Password) sum(pass string) [32]byte {
	return sha256.Sum256(append(p.salt[:], pass...))
}

// Matches reports whether pass is the remembered password, confirmed
// within ttl (0: no expiry).
func (p *Password) Matches(pass string, ttl time.Duration) bool {
	if !p.set || (ttl > 0 && time.Since(p.at) > ttl) {
		return false
	}
	s := p.sum(pass)
	return subtle.ConstantTimeCompare(s[:], p.hash[:]) == 1
}

// Store remembers pass, freshly salted, as confirmed now.
func (p *Password) Store(pass string) {
	rand.Read(p.salt[:])
	p.hash = p.sum(pass)
	p.set = true
	p.at = time.Now()
}

// Renew marks the remembered password as confirmed now.
func (p *Password) Renew() {
	if p.set {
		p.at = time.Now()
	}
}
