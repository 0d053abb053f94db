package upstream

// LoginReason says why idlemux logged in to the upstream. Providers count
// and rate-limit logins; the reasons show where they come from: a pool
// that churns shows as many command logins, a flapping upstream as
// reconnects.
type LoginReason int

const (
	LoginCheck     LoginReason = iota // checking a client's password
	LoginCommand                      // a new command connection for the pool
	LoginWatcher                      // a mailbox watcher's first connection
	LoginReconnect                    // a watcher reconnecting after a failure
	LoginNotify                       // the account's NOTIFY connection (notifier.go)
	numLoginReasons
)

// String is the reason's metric label.
func (r LoginReason) String() string {
	switch r {
	case LoginCheck:
		return "check"
	case LoginCommand:
		return "command"
	case LoginWatcher:
		return "watcher"
	case LoginReconnect:
		return "reconnect"
	case LoginNotify:
		return "notify"
	}
	return "unknown"
}
