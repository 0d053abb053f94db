package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// handledLocally is the reply of a command the reader answered in full.
var handledLocally = &refusal{}

// local answers the commands imapserver cannot answer right behind the
// reader: ID, which imapserver lacks; ENABLE, which it gets wrong;
// STARTTLS (the reader must stay above TLS to frame commands); and before
// login CAPABILITY and the refusal of LOGIN and AUTHENTICATE
// without TLS, whose capabilities only the reader knows. nil: imapserver
// answers.
func (cc *clientConn) local(f *framed) (*refusal, error) {
	if f.name == "SEARCH" || f.sub == "SEARCH" {
		return searchLimits(f), nil
	}
	if f.sub != "" {
		return nil, nil
	}
	switch f.name {
	case "ID":
		return idReply(f), nil
	case "ENABLE":
		return enableReply(f, cc.authenticated.Load(), cc.enableExtensions), nil
	case "STARTTLS":
		if len(bytes.TrimSpace(f.args)) == 0 {
			if cc.canStartTLS() {
				return handledLocally, cc.startTLS(f.tag)
			}
			return startTLSRefusal(cc, f.tag), nil
		}
	case "COMPRESS":
		return cc.compress(f)
	case "CAPABILITY":
		if len(bytes.TrimSpace(f.args)) == 0 && !cc.authenticated.Load() {
			cc.mu.Lock()
			cc.askedCaps = true
			cc.mu.Unlock()
			return &refusal{line: "* CAPABILITY " + cc.preAuthCaps() + "\r\n" + f.tag + " OK CAPABILITY completed"}, nil
		}
	case "LOGIN", "AUTHENTICATE":
		if !cc.authAllowed() {
			return &refusal{line: f.tag + " NO [PRIVACYREQUIRED] TLS is required to authenticate"}, nil
		}
	}
	return nil, nil
}

// startTLSRefusal answers a STARTTLS that cannot be done, in Dovecot's
// words: TLS already on, or a listener without STARTTLS (to which
// Dovecot's own STARTTLS is an unknown command; imapserver would say NO).
func startTLSRefusal(cc *clientConn, tag string) *refusal {
	cc.mu.Lock()
	tlsOn := cc.isTLS
	cc.mu.Unlock()
	if tlsOn {
		return &refusal{line: tag + " BAD TLS is already active."}
	}
	return &refusal{line: tag + " BAD Error in IMAP command STARTTLS: Unknown command"}
}

// enableReply answers ENABLE (RFC 5161) in the reader: the extensions
// idlemux lets a client enable are CONDSTORE and QRESYNC, where the
// upstream has them (enable, qresync.go); every other is not enabled, as Dovecot answers
// for extensions it lacks. imapserver would enable UTF8=ACCEPT and IMAP4rev2,
// which neither idlemux nor Dovecot 2.3 offers, and change how it writes
// every later response. Before login Dovecot ignores ENABLE; so does
// idlemux, in Dovecot's words. Arguments that are not all atoms go to
// imapserver, which answers BAD. nil: not answered here.
func enableReply(f *framed, authenticated bool, enable func(atoms [][]byte) ([]string, string)) *refusal {
	args := bytes.TrimSuffix(f.head[min(len(f.head), len(f.tag)+1+len(f.name)):], []byte("\r\n"))
	var atoms [][]byte
	if len(args) > 0 {
		if args[0] != ' ' {
			return nil
		}
		atoms = bytes.Split(args[1:], []byte(" "))
		for _, a := range atoms {
			if len(a) == 0 || bytes.ContainsFunc(a, func(r rune) bool { return r > 0x7f || !isAtomChar(byte(r)) }) {
				return nil
			}
		}
	}
	if !authenticated {
		return &refusal{line: "* ENABLED\r\n" + f.tag + " OK ENABLE ignored in non-authenticated state."}
	}
	if on, announce := enable(atoms); len(on) > 0 {
		return &refusal{line: announce + "* ENABLED " + strings.Join(on, " ") + "\r\n" + f.tag + " OK Enabled."}
	}
	return &refusal{line: f.tag + " OK Enabled."}
}

// searchLimits refuses a SEARCH whose criteria nest too deeply or have too
// many keys before imapserver's recursive parser sees them (checkSearch).
// Only the head has the criteria: SEARCH has no APPEND-sized literal.
func searchLimits(f *framed) *refusal {
	h, _ := parseHead(f.head)
	args := bytes.TrimSuffix(bytes.TrimPrefix(h.args, []byte(" ")), []byte("\r\n"))
	err := checkSearch(args)
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return &refusal{line: f.tag + " BAD Error in IMAP command SEARCH"}
	}
	return &refusal{line: fmt.Sprintf("%s %s [%s] %s", f.tag, ie.Type, ie.Code, ie.Text)}
}

// preAuthCaps is the list before login (preLoginCaps) with what depends
// on the connection: STARTTLS while it is offered, and AUTH=PLAIN only
// where authentication is allowed, LOGINDISABLED elsewhere (RFC 3501
// 6.1.1, 6.2.1).
func (cc *clientConn) preAuthCaps() string {
	caps := slices.Clone(preLoginCaps)
	if cc.canStartTLS() {
		caps = append(caps, "STARTTLS")
	}
	if cc.authAllowed() {
		caps = append(caps, "AUTH=PLAIN")
	} else {
		caps = append(caps, "LOGINDISABLED")
	}
	return strings.Join(caps, " ")
}

func (cc *clientConn) greeting() string {
	return "* OK [CAPABILITY " + cc.preAuthCaps() + "] IMAP server ready\r\n"
}

// startTLS runs STARTTLS (RFC 3501 6.2.1) in the reader. Whatever the
// client sent after the command goes into the TLS handshake, never into
// the command stream: plaintext injected before the handshake (RFC 3207's
// attack, CVE-2011-0411) makes the handshake fail. The handshake is
// bounded by login_timeout, like an implicit-TLS one.
func (cc *clientConn) startTLS(tag string) error {
	if err := cc.writeLocal(tag + " OK Begin TLS negotiation now\r\n"); err != nil {
		return err
	}
	raw := cc.transport()
	var under net.Conn = raw
	if early := cc.in.drain(); len(early) > 0 {
		under = prefixedConn{Conn: raw, r: io.MultiReader(bytes.NewReader(early), raw)}
	}
	limit := maxHandshake
	if d := cc.l.s.dyn().cfg.Limits.LoginTimeout; d > 0 {
		limit = min(d, maxHandshake)
	}
	ctx, cancel := context.WithTimeout(cc.l.handshakes, limit)
	defer cancel()
	tc := tls.Server(under, cc.l.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return err
	}
	cc.mu.Lock()
	cc.conn, cc.isTLS = tc, true
	cc.mu.Unlock()
	cc.in.src = tc
	return nil
}

// prefixedConn reads what was buffered before the connection's own bytes.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
