package upstream

import "sync"

// Listings lets identical concurrent requests for an account's mailbox
// list (LIST, LSUB, NAMESPACE) share one upstream command (issue 11): a
// request joins a call for the same key that is still in flight, and
// never gets an answer once that call has completed, so no answer is
// older than the request's own arrival allows.
//
// A call is keyed with the account's listing generation, which every
// change made through idlemux to what those commands answer moves
// (Changed, after the change's upstream answer): a request that follows
// a completed CREATE, DELETE, RENAME, SUBSCRIBE or UNSUBSCRIBE never
// joins a call that started before it (read-your-writes). Nothing else
// changes those answers on Dovecot 2.3: it shows no \Marked or \Unmarked
// (RFC 3501 7.2.2; an APPEND leaves its LIST as it was), and \HasChildren
// (RFC 3348) moves only with CREATE, DELETE and RENAME. LIST RETURN
// (STATUS), whose counts move with every write, is never shared (proxy).
// A change made elsewhere shows from the next call on.
//
// In flight at once: one call per distinct request being answered, so
// the map is bounded by the sessions of the account.
type Listings struct {
	mu    sync.Mutex
	gen   uint64
	calls map[listingKey]*listingCall
}

type listingKey struct {
	gen uint64
	key string
}

type listingCall struct {
	done chan struct{}
	val  any
	err  error
}

// Listings returns the account's shared listing calls.
func (a *Account) Listings() *Listings { return &a.listings }

// Changed marks every call in flight as possibly older than a change
// that has just completed: later requests start their own.
func (l *Listings) Changed() {
	l.mu.Lock()
	l.gen++
	l.mu.Unlock()
}

// Do returns the result of f for key: of a call in flight for key in the
// current generation (joined true), or of running f now. f's result is
// shared read-only with every caller that joined.
func (l *Listings) Do(key string, f func() (any, error)) (val any, err error, joined bool) {
	l.mu.Lock()
	k := listingKey{gen: l.gen, key: key}
	if c, ok := l.calls[k]; ok {
		l.mu.Unlock()
		<-c.done
		return c.val, c.err, true
	}
	c := &listingCall{done: make(chan struct{})}
	if l.calls == nil {
		l.calls = make(map[listingKey]*listingCall)
	}
	l.calls[k] = c
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.calls, k)
		l.mu.Unlock()
		close(c.done) // after a panic too: joiners see errListingAborted
	}()
	c.err = errListingAborted
	c.val, c.err = f()
	return c.val, c.err, false
}

// errListingAborted is what joiners of a call whose leader panicked get.
var errListingAborted = unavailable("shared listing call aborted")
