package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/upstream/quirks"
)

// ErrLoginAborted marks an upstream that closed the connection (or stopped
// answering) during LOGIN, as Dovecot does when the line overflows its
// 1 KiB login buffer: the client's input caused it, so the proxy counts it
// as a failed login. It comes wrapped with an UnavailableError.
var ErrLoginAborted = errors.New("upstream closed the connection during login")

func loginAborted(err error) error {
	return fmt.Errorf("%w: %w", ErrLoginAborted, unavailable("login: %v", err))
}

// loginCall is what a downstream login hands down to the upstream login
// that checks it: the client's address, for ID forwarding, and the gate
// to pass before an upstream login starts.
type loginCall struct {
	client netip.AddrPort
	gate   func(context.Context) error
}

type loginCallKey struct{}

// WithLoginCall returns ctx carrying a downstream login's client address
// and gate. gate (nil: none) runs only when the login needs a new upstream
// login, not when it is answered from verified credentials or shares a
// login already running; an error from it fails the login unchanged.
func WithLoginCall(ctx context.Context, client netip.AddrPort, gate func(context.Context) error) context.Context {
	return context.WithValue(ctx, loginCallKey{}, &loginCall{client: client, gate: gate})
}

func loginCallOf(ctx context.Context) *loginCall {
	lc, _ := ctx.Value(loginCallKey{}).(*loginCall)
	if lc == nil {
		return &loginCall{}
	}
	return lc
}

// passGate runs ctx's login gate, if any.
func passGate(ctx context.Context) error {
	if g := loginCallOf(ctx).gate; g != nil {
		return g(ctx)
	}
	return nil
}

// idTag tags the ID command sent before imapclient takes the connection.
const idTag = "idlemux0"

// maxPreLoginLine bounds a line read during the ID exchange.
const maxPreLoginLine = 8192

// announceClient tells the upstream whose login this connection carries:
// ID ("x-originating-ip" ... "x-originating-port" ...) (RFC 2971, with
// Dovecot's keys, honoured only from its login_trusted_networks) before
// LOGIN, so the upstream's per-address penalties and logs see the client
// instead of the proxy. It runs only with ForwardClientAddress and a
// client address in ctx, and before STARTTLS when that is used (the ID
// carries no secret). imapclient has no way to send these keys, so the
// greeting is read here and replayed to imapclient with whatever else was
// read. The caller's watchdog bounds the exchange.
func (m *Manager) announceClient(ctx context.Context, conn net.Conn) (net.Conn, error) {
	client := loginCallOf(ctx).client
	if !m.opts.ForwardClientAddress || !client.IsValid() {
		return conn, nil
	}
	r := bufio.NewReaderSize(conn, maxPreLoginLine)
	greeting, err := r.ReadSlice('\n')
	if err != nil {
		return nil, unavailable("greeting from %s: %v", m.opts.Address, err)
	}
	greeting = bytes.Clone(greeting)
	if quirks.IDWelcome(greeting) {
		cmd := fmt.Sprintf("%s ID (%q %q", idTag, quirks.IDOriginatingIP, client.Addr().Unmap().String())
		if client.Port() != 0 {
			cmd += fmt.Sprintf(" %q \"%d\"", quirks.IDOriginatingPort, client.Port())
		}
		if _, err := io.WriteString(conn, cmd+")\r\n"); err != nil {
			return nil, unavailable("ID to %s: %v", m.opts.Address, err)
		}
		m.cmds.add(cmdID) // written before the counter takes the connection
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return nil, unavailable("ID to %s: %v", m.opts.Address, err)
			}
			if bytes.HasPrefix(line, []byte(idTag+" ")) {
				if !bytes.HasPrefix(line[len(idTag)+1:], []byte("OK")) {
					m.log.Warn("upstream refused ID with the client address", zap.ByteString("answer", bytes.TrimSpace(line)))
				}
				break
			}
		}
	}
	rest, _ := r.Peek(r.Buffered())
	return &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(append(greeting, rest...)), conn)}, nil
}

// replayConn reads what was already read from Conn first.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
