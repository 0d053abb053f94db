package proxy

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"
)

// badPasswordTTL is how long a password the upstream rejected for a user is
// answered NO locally: a flood of the same wrong password never becomes a
// flood of upstream logins (which could get the proxy's address blocked).
const badPasswordTTL = 5 * time.Minute

// tableBudget bounds, in bytes, each table of failure records. A client
// chooses the user names it sends (up to 50 KiB each were seen): the
// tables therefore never keep a name, only a SHA-256 of it, so every entry
// has a fixed size and a bound on entries is a bound on bytes.
const tableBudget = 8 << 20

// mapEntryOverhead approximates what a Go map spends per entry beyond key
// and value (control bytes, load factor slack).
const mapEntryOverhead = 16

// userFailKey is a failure record's key for one (address, user): the user
// as a SHA-256, whatever its length.
type userFailKey struct {
	ip   netip.Addr
	user [sha256.Size]byte
}

var (
	maxBad       = tableBudget / int(unsafe.Sizeof([sha256.Size]byte{})+unsafe.Sizeof(time.Time{})+mapEntryOverhead)
	maxAddrFails = tableBudget / int(unsafe.Sizeof(netip.Addr{})+unsafe.Sizeof(failRecord{})+mapEntryOverhead)
	maxUserFails = tableBudget / int(unsafe.Sizeof(userFailKey{})+unsafe.Sizeof(failRecord{})+mapEntryOverhead)
)

// limiter counts connections per address and per user, remembers failed
// logins to slow down guessing, and queues login checks per address
// (logingate.go). Delays are per address and per (address, user), never
// per user alone: a flood from elsewhere must not lock the real user out.
type limiter struct {
	mu        sync.Mutex
	perIP     map[netip.Addr]int
	perUser   map[string]int // users logged in, by limitKey: names the upstream accepted
	addrFails map[netip.Addr]failRecord
	userFails map[userFailKey]failRecord
	bad       map[[32]byte]time.Time
	gates     map[netip.Addr]*gate // addresses with a login check running
}

type failRecord struct {
	n    int
	last time.Time
}

func newLimiter() *limiter {
	return &limiter{
		perIP:     map[netip.Addr]int{},
		perUser:   map[string]int{},
		addrFails: map[netip.Addr]failRecord{},
		userFails: map[userFailKey]failRecord{},
		bad:       map[[32]byte]time.Time{},
		gates:     map[netip.Addr]*gate{},
	}
}

func addrOf(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// acquire counts one more connection in m[k] unless it reaches max (0: no limit).
func acquire[K comparable](l *limiter, m map[K]int, k K, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max > 0 && m[k] >= max {
		return false
	}
	m[k]++
	return true
}

func release[K comparable](l *limiter, m map[K]int, k K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// limitKey names a user in the per-user tables: with the upstream's name,
// so the same login on two upstreams is two users (issue 13). up is nil
// where no upstream checks the password (map mode checks it here).
func limitKey(up *route, user string) string {
	if up == nil {
		return user
	}
	return up.cfg.Name + "\x00" + user
}

func passKey(user, pass string) [32]byte {
	h := sha256.New()
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	return [32]byte(h.Sum(nil))
}

func userKey(ip netip.Addr, user string) userFailKey {
	return userFailKey{ip: ip, user: sha256.Sum256([]byte(user))}
}

// knownBad reports a password the upstream rejected for user recently.
func (l *limiter) knownBad(user, pass string) bool {
	k := passKey(user, pass)
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.bad[k]
	return ok && time.Since(t) < badPasswordTTL
}

// markBad remembers a password the upstream (or bcrypt) rejected for user.
func (l *limiter) markBad(user, pass string) {
	k := passKey(user, pass)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.makeRoomLocked(now)
	l.bad[k] = now
}

// failed records a failed login and returns how long to wait before
// answering: doubling from 100 ms per failure from the address (and for
// the user from it), up to ceiling.
func (l *limiter) failed(ip netip.Addr, user string, ceiling time.Duration) time.Duration {
	uk := userKey(ip, user)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.makeRoomLocked(now)
	n := max(bump(l.addrFails, ip, now), bump(l.userFails, uk, now))
	d := 100 * time.Millisecond << min(n-1, 16)
	return min(d, ceiling)
}

// bump counts one more failure in m[k], starting over after badPasswordTTL.
func bump[K comparable](m map[K]failRecord, k K, now time.Time) int {
	r := m[k]
	if now.Sub(r.last) > badPasswordTTL {
		r.n = 0
	}
	r.n++
	r.last = now
	m[k] = r
	return r.n
}

// succeeded clears the (address, user) record; the address's own count
// stays, so one good login does not reset a guessing run.
func (l *limiter) succeeded(ip netip.Addr, user string) {
	uk := userKey(ip, user)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.userFails, uk)
}

// makeRoomLocked keeps each table under its budget: expired entries go
// first; a table still full starts over. The (address, user) table is the
// one a client fills by inventing names, and dropping it leaves the
// per-address counts, so the guessing address stays slowed.
func (l *limiter) makeRoomLocked(now time.Time) {
	if len(l.bad) < maxBad && len(l.addrFails) < maxAddrFails && len(l.userFails) < maxUserFails {
		return
	}
	expire(l.bad, now, func(t time.Time) time.Time { return t })
	expire(l.addrFails, now, func(r failRecord) time.Time { return r.last })
	expire(l.userFails, now, func(r failRecord) time.Time { return r.last })
	if len(l.bad) >= maxBad {
		clear(l.bad)
	}
	if len(l.userFails) >= maxUserFails {
		clear(l.userFails)
	}
	if len(l.addrFails) >= maxAddrFails {
		clear(l.addrFails)
	}
}

// expire deletes the entries of m last seen more than badPasswordTTL ago.
func expire[K comparable, V any](m map[K]V, now time.Time, last func(V) time.Time) {
	for k, v := range m {
		if now.Sub(last(v)) > badPasswordTTL {
			delete(m, k)
		}
	}
}
