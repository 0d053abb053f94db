package upstream

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
)

// credential remembers a verified password only as a salted hash, so later
// logins of the same account are checked without an upstream round trip.
// A password that does not match is never accepted from here: it goes
// upstream again (it may be a new password).
type credential struct {
	salt [16]byte
	hash [32]byte
	set  bool
}

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
	if !c.set {
		return false
	}
	s := c.sum(pass)
	return subtle.ConstantTimeCompare(s[:], c.hash[:]) == 1
}

func (c *credential) store(pass string) {
	rand.Read(c.salt[:])
	c.hash = c.sum(pass)
	c.set = true
}
