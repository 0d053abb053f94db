package upstream

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"time"
)

// credential remembers a verified password only as a salted hash, so later
// logins of the same account are checked without an upstream round trip.
// A password that does not match is never accepted from here: it goes
// upstream again (it may be a new password).
type credential struct {
	salt [16]byte
	hash [32]byte
	set  bool
	at   time.Time // when the upstream last confirmed it
}

// credentialTTL is how long a verified password is accepted without asking
// the upstream again: a password changed upstream (after a compromise,
// say) stops working through idlemux within this time even while the
// account stays busy.
const credentialTTL = time.Hour

func (c *credential) sum(pass string) [32]byte {
	h := sha256.New()
	h.Write(c.salt[:])
	h.Write([]byte(pass))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// matches compares in constant time.
func (c *credential) matches(pass string) bool {
	if !c.set || time.Since(c.at) > credentialTTL {
		return false
	}
	s := c.sum(pass)
	return subtle.ConstantTimeCompare(s[:], c.hash[:]) == 1
}

func (c *credential) store(pass string) {
	rand.Read(c.salt[:])
	c.hash = c.sum(pass)
	c.set = true
	c.at = time.Now()
}
