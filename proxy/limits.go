package proxy

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"sync"
	"time"
)

// badPasswordTTL is how long a password the upstream rejected for a user is
// answered NO locally: a flood of the same wrong password never becomes a
// flood of upstream logins (which could get the proxy's address blocked).
const badPasswordTTL = 5 * time.Minute

// maxTracked bounds each limiter table; past it, expired entries are
// dropped, and if that is not enough the table starts over.
const maxTracked = 100000

// limiter counts connections per address and per user, and remembers
// failed logins to slow down guessing. Delays are per address and per
// (address, user), never per user alone: a flood from elsewhere must not
// lock the real user out.
type limiter struct {
	mu      sync.Mutex
	perIP   map[netip.Addr]int
	perUser map[string]int
	fails   map[string]failRecord // "ip" and "ip user" keys
	bad     map[[32]byte]time.Time
}

type failRecord struct {
	n    int
	last time.Time
}

func newLimiter() *limiter {
	return &limiter{
		perIP:   map[netip.Addr]int{},
		perUser: map[string]int{},
		fails:   map[string]failRecord{},
		bad:     map[[32]byte]time.Time{},
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

func passKey(user, pass string) [32]byte {
	return sha256.Sum256([]byte(user + "\x00" + pass))
}

// knownBad reports a password the upstream rejected for user recently.
func (l *limiter) knownBad(user, pass string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.bad[passKey(user, pass)]
	return ok && time.Since(t) < badPasswordTTL
}

// failed records a failed login and returns how long to wait before
// answering: doubling from 100 ms per failure from the address (and for
// the user from it), up to ceiling.
func (l *limiter) failed(ip netip.Addr, user, pass string, ceiling time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if len(l.bad) >= maxTracked || len(l.fails) >= maxTracked {
		l.expireLocked(now)
	}
	l.bad[passKey(user, pass)] = now
	n := 0
	for _, k := range []string{ip.String(), ip.String() + " " + user} {
		r := l.fails[k]
		if now.Sub(r.last) > badPasswordTTL {
			r.n = 0
		}
		r.n++
		r.last = now
		l.fails[k] = r
		n = max(n, r.n)
	}
	d := 100 * time.Millisecond << min(n-1, 16)
	return min(d, ceiling)
}

// succeeded clears the (address, user) record; the address's own count
// stays, so one good login does not reset a guessing run.
func (l *limiter) succeeded(ip netip.Addr, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, ip.String()+" "+user)
}

func (l *limiter) expireLocked(now time.Time) {
	for k, t := range l.bad {
		if now.Sub(t) > badPasswordTTL {
			delete(l.bad, k)
		}
	}
	for k, r := range l.fails {
		if now.Sub(r.last) > badPasswordTTL {
			delete(l.fails, k)
		}
	}
	if len(l.bad) >= maxTracked {
		clear(l.bad)
	}
	if len(l.fails) >= maxTracked {
		clear(l.fails)
	}
}
