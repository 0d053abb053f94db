package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// keepAlive is the TCP keepalive period on upstream sockets: it finds
// half-open connections that would otherwise hang an IDLE forever.
const keepAlive = 30 * time.Second

// dial connects and logs in. handler receives the connection's unilateral
// data (nil for command connections, whose notifications the watcher gets).
func (m *Manager) dial(ctx context.Context, user, pass string, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	o := &m.opts
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: keepAlive}
	if dl, ok := ctx.Deadline(); ok {
		dialer.Deadline = dl
	}
	opts := &imapclient.Options{
		Dialer:                dialer,
		UnilateralDataHandler: handler,
	}
	if o.TLSConfig != nil {
		opts.TLSConfig = o.TLSConfig.Clone()
	}
	var (
		c   *imapclient.Client
		err error
	)
	switch o.TLS {
	case TLSNone:
		c, err = imapclient.DialInsecure(o.Address, opts)
	case TLSStartTLS:
		c, err = imapclient.DialStartTLS(o.Address, opts)
	default:
		c, err = imapclient.DialTLS(o.Address, opts)
	}
	if err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return nil, unavailable("TLS certificate of %s not trusted: %v", o.Address, verr)
		}
		return nil, unavailable("connect %s: %v", o.Address, err)
	}
	// No step below may hang on a silent server: bound them all.
	watchdog := time.AfterFunc(o.ResponseTimeout, func() { c.Close() })
	defer watchdog.Stop()
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, unavailable("greeting from %s: %v", o.Address, err)
	}
	if err := login(c, user, pass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// login uses LOGIN unless the server forbids it, then AUTHENTICATE PLAIN.
func login(c *imapclient.Client, user, pass string) error {
	var err error
	if c.Caps().Has(imap.CapLoginDisabled) {
		err = c.Authenticate(sasl.NewPlainClient("", user, pass))
	} else {
		err = c.Login(user, pass).Wait()
	}
	if err == nil {
		return nil
	}
	if ie, ok := IsProtocol(err); ok {
		// RFC 5530 codes tell a temporary refusal from a wrong password.
		switch ie.Code {
		case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, "INUSE", "LIMIT":
			return unavailable("login refused: %v", ie)
		}
		return ErrAuthFailed
	}
	return unavailable("login: %v", err)
}
