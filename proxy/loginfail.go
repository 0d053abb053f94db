package proxy

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/emersion/go-imap/v2"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/upstream"
	"github.com/idlemux/idlemux/upstream/quirks"
)

// loginFailed counts a failed login (user as sent, password when it was
// really checked and rejected, "" otherwise) and waits its delay holding
// the address's login slot, so parallel connections share the slowdown.
// up is the upstream that refused it, nil when none was asked (map mode's
// own check, an unrouted domain).
func (sess *session) loginFailed(ctx context.Context, t *loginTicket, up *route, user, badPass string) {
	lim := sess.s.lim
	sess.s.metrics.authFailed(up)
	d := lim.failed(sess.ip, user, sess.s.dyn().cfg.Limits.MaxLoginDelay)
	if badPass != "" {
		lim.markBad(limitKey(up, user), badPass)
	}
	fields := []zap.Field{userField(user), zap.Duration("delay", d)}
	if up != nil {
		fields = append(fields, zap.String("upstream", up.cfg.Name))
	}
	sess.log.Info("authentication failed", fields...)
	t.take(ctx) // without a slot (line full) the delay still applies
	time.Sleep(d)
}

// refuse answers a rejected password: NO [AUTHENTICATIONFAILED] after the
// failure's delay.
func (sess *session) refuse(ctx context.Context, t *loginTicket, up *route, user, pass string) error {
	sess.loginFailed(ctx, t, up, user, pass)
	return errDovecotAuthFailed
}

// unrouted refuses a login no upstream takes (its domain is routed
// nowhere and there is no default_upstream) the way a wrong password is
// refused, NO [AUTHENTICATIONFAILED] after the failure's delay, so
// clients cannot tell routed domains from others by the answer; the log
// names the domain for the operator. The password was not checked, so it
// is not remembered as bad.
func (sess *session) unrouted(ctx context.Context, t *loginTicket, user string) error {
	domain := config.LoginDomain(user)
	if len(domain) > maxDomainLogged {
		domain = domain[:maxDomainLogged]
	}
	sess.log.Warn("login refused: no upstream for the login's domain and no default_upstream", zap.String("domain", domain))
	sess.loginFailed(ctx, t, nil, user, "")
	return errDovecotAuthFailed
}

// errDovecotAuthFailed is Dovecot's answer to an unknown user or a wrong
// password, word for word (quirks.AuthFailedText).
var errDovecotAuthFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: quirks.AuthFailedText}

// maxDomainLogged is the longest DNS name (RFC 1035 2.3.4); a longer
// "domain" is cut so a hostile login cannot bloat the log.
const maxDomainLogged = 255

// loginBusy answers a login that got no slot in time (errLoginsQueued).
func (sess *session) loginBusy(err error) error {
	sess.log.Warn("login refused: too many from this address at once", zap.Error(err))
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many logins from your address at once, try again later"}
}

// upstreamLoginError answers a login the upstream did not accept. A login
// the upstream aborted (it closed the connection during LOGIN, as Dovecot
// does on an over-long line) counts as failed, without marking the
// password bad: the next try may well succeed.
func (sess *session) upstreamLoginError(ctx context.Context, t *loginTicket, err error, up *route, user, pass, upUser string) error {
	mapped := sess.s.cfg.Auth.Mode == "map"
	switch {
	case errors.Is(err, errLoginsQueued):
		return sess.loginBusy(err)
	case errors.Is(err, upstream.ErrAuthFailed) && !mapped:
		return sess.refuse(ctx, t, up, user, pass)
	case errors.Is(err, upstream.ErrAuthFailed):
		// The client's password was right; the configured upstream
		// credentials are not: an operator's problem, not the client's.
		sess.log.Error("upstream rejects the mapped account's credentials", zap.String("upstream_user", upUser))
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Upstream account unavailable"}
	case errors.Is(err, upstream.ErrLoginAborted) && !mapped:
		sess.loginFailed(ctx, t, up, user, "")
	}
	return sess.fail("LOGIN", err)
}

// clientAddrPort is the client's address and port for ID forwarding: the
// PROXY header's when one was used (RemoteAddr then reports it).
func (sess *session) clientAddrPort() netip.AddrPort {
	ap, err := netip.ParseAddrPort(sess.conn.NetConn().RemoteAddr().String())
	if err != nil || ap.Addr().Unmap() != sess.ip {
		return netip.AddrPortFrom(sess.ip, 0)
	}
	return netip.AddrPortFrom(sess.ip, ap.Port())
}

// refusedByReader counts a login the command reader refused before
// imapserver saw it (a line longer than any LOGIN a server takes), with
// the failure's delay, like any other failed login.
func (sess *session) refusedByReader() {
	ctx, cancel := context.WithTimeout(context.Background(), loginQueueWait)
	defer cancel()
	t := sess.s.lim.ticket(sess.ip, sess.s.dyn().cfg.Limits)
	defer t.release()
	sess.loginFailed(ctx, t, nil, "", "")
}
