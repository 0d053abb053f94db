package proxy

import (
	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"
)

// Login runs login (session.go) on a goroutine of its own and waits for
// it, so that the connection's goroutine, which then waits in IDLE for
// the client's whole life, never runs the login's deep calls.
//
// Go grows a goroutine's stack by doubling it and shrinks it at a GC only
// while less than a quarter is in use. imapserver's connection goroutine
// parked in IDLE (serve, readCommand, handleIdle, bufio, the net read)
// uses about 1.7 KiB plus the runtime's 800-byte guard, more than a
// quarter of 8 KiB: once a LOGIN has grown it to 8 KiB it keeps 8 KiB.
// The login limits (the login gate, the ticket, the ID forwarding
// context) made LOGIN's frame 856 bytes, and the "logged in" log call
// under it then crossed 4 KiB on every login; a login that dials the
// upstream always did. Here the deep calls run on a goroutine whose stack
// is freed when it returns; the connection's stays at 4 KiB (BENCHMARKS.md
// "What the login limits cost an idle client").
func (sess *session) Login(username, password string) error {
	done := make(chan error, 1)
	go func() { done <- sess.loginContained(username, password) }()
	return <-done
}

// loginContained is login with a panic (a bug) contained to this
// session, as imapserver contains one on its own goroutine (which closes
// the connection without an answer): logged, and answered
// NO [SERVERBUG].
func (sess *session) loginContained(username, password string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			sess.log.Error("panic while logging in", zap.Any("panic", v), zap.Stack("stack"))
			err = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"}
		}
	}()
	return sess.login(username, password)
}
