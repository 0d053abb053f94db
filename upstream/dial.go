package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// keepAlive is the TCP keepalive period on upstream sockets: it finds
// half-open connections that would otherwise hang an IDLE forever.
const keepAlive = 30 * time.Second

// dial connects and logs in, counting the login under why. handler receives the connection's unilateral
// data (nil for command connections, whose notifications the watcher gets).
func (m *Manager) dial(ctx context.Context, why LoginReason, user, pass, mech string, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	c, _, err := m.dialFramed(ctx, why, user, pass, mech, handler)
	return c, err
}

// dialFramed is dial that also returns the framing connection under the
// client, through which a pool connection runs raw commands (rawcmd.go).
func (m *Manager) dialFramed(ctx context.Context, why LoginReason, user, pass, mech string, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, *respConn, error) {
	o := &m.opts
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: keepAlive}
	raw, err := dialer.DialContext(ctx, "tcp", o.Address)
	if err != nil {
		return nil, nil, unavailable("connect %s: %v", o.Address, err)
	}
	// No step below may hang on a silent server (one that accepts TCP but
	// never greets, say at its process limit): bound them all, STARTTLS
	// and the TLS handshake included, by closing the socket.
	watchdog := newGuard(o.ResponseTimeout, func() { raw.Close() })
	defer watchdog.Stop()
	lim := defaultRespLimits
	if handler != nil {
		lim = watcherRespLimits
	}
	var conn net.Conn
	var src io.Reader
	if o.TLS == TLSNone || o.TLS == TLSStartTLS {
		// The client's address goes before STARTTLS, which Dovecot
		// keeps (clientid.go).
		var pre net.Conn
		if pre, err = m.announceClient(ctx, raw); err == nil {
			conn, src, err = o.secure(ctx, pre, lim)
		}
	} else if conn, src, err = o.secure(ctx, raw, lim); err == nil {
		if conn, err = m.announceClient(ctx, conn); err == nil {
			src = conn
		}
	}
	if err != nil {
		raw.Close()
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return nil, nil, unavailable("TLS certificate of %s not trusted: %v", o.Address, verr)
		}
		return nil, nil, unavailable("connect %s: %v", o.Address, err)
	}
	if o.TLS == TLSStartTLS {
		m.cmds.add(cmdSTARTTLS) // written by startTLS, under the counter
	}
	rc := m.frame(&cmdCounter{Conn: conn, counts: &m.cmds}, src, lim, user)
	c := imapclient.New(rc, &imapclient.Options{UnilateralDataHandler: handler})
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, nil, unavailable("greeting from %s: %v", o.Address, err)
	}
	m.logins[why].Add(1)
	if err := login(c, user, pass, mech); err != nil {
		c.Close()
		return nil, nil, err
	}
	if watchdog.Stop() { // it fired just as login finished
		c.Close()
		return nil, nil, unavailable("login to %s: no answer within %v", o.Address, o.ResponseTimeout)
	}
	return c, rc, nil
}

// secure sets up the TLS mode configured on raw, and returns the
// connection imapclient writes to and the reader it is to read from.
func (o *Options) secure(ctx context.Context, raw net.Conn, lim respLimits) (conn net.Conn, src io.Reader, err error) {
	switch o.TLS {
	case TLSNone:
		return raw, raw, nil
	case TLSStartTLS:
		src, tc, err := startTLS(ctx, raw, o.tlsClientConfig(), lim)
		return tc, src, err
	}
	cfg := o.tlsClientConfig()
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"imap"}
	}
	tc := tls.Client(raw, cfg)
	return tc, tc, tc.HandshakeContext(ctx)
}

// tlsClientConfig is the TLS configuration for one upstream connection,
// checking the certificate against the address's host by default.
func (o *Options) tlsClientConfig() *tls.Config {
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg.ServerName, _, _ = net.SplitHostPort(o.Address)
	}
	return cfg
}

// Upstream login mechanisms besides the password default (quirks/login.go).
const (
	MechXOAUTH2     = quirks.MechXOAUTH2
	MechOAUTHBEARER = quirks.MechOAUTHBEARER
)

// login authenticates with pass as a password or, with mech set, as an
// OAuth2 token, as quirks.LoginBy says.
func login(c *imapclient.Client, user, pass, mech string) error {
	var err error
	switch quirks.LoginBy(c.Caps(), mech) {
	case quirks.AuthXOAUTH2:
		err = c.Authenticate(&xoauth2Client{user: user, token: pass})
	case quirks.AuthOAUTHBEARER:
		err = c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: pass}))
	case quirks.AuthPlain:
		err = c.Authenticate(sasl.NewPlainClient("", user, pass))
	default:
		err = c.Login(user, pass).Wait()
	}
	if err == nil {
		return nil
	}
	if ie, ok := IsProtocol(err); ok {
		// RFC 5530 codes tell a temporary refusal from a wrong password.
		if quirks.Transient(ie.Code) {
			return unavailable("login refused: %v", ie)
		}
		return &authError{ie}
	}
	return loginAborted(err)
}

// xoauth2Client is the XOAUTH2 SASL mechanism (go-sasl has none): one
// message with the user and the bearer token; on failure the server sends
// a JSON challenge, answered empty so it completes with NO.
type xoauth2Client struct{ user, token string }

func (x *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2Client) Next(challenge []byte) ([]byte, error) { return []byte{}, nil }
