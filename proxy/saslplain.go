package proxy

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
)

// Authenticate makes the session an imapserver.SessionSASL, only so that
// AUTHENTICATE PLAIN without an initial response gets the continuation
// Dovecot sends: "+ " with an empty challenge (RFC 3501 6.2.2: base64 of
// no bytes is no characters). imapserver's own PLAIN sends "+ =", RFC
// 4959's notation for an empty initial response from the client, which is
// no base64 a strict client decodes. Mechanisms other than PLAIN are
// refused as imapserver refuses them.
func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return emptyChallenge{sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "SASL identity not supported"}
		}
		return sess.Login(username, password)
	})}, nil
}

// AuthenticateMechanisms is imapserver's own list: PLAIN alone (AUTH=PLAIN
// while authentication is allowed).
func (sess *session) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

// emptyChallenge turns a SASL server's empty challenge into none, which
// imapserver writes as "+ " rather than "+ =".
type emptyChallenge struct{ sasl.Server }

func (e emptyChallenge) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := e.Server.Next(response)
	if len(challenge) == 0 {
		challenge = nil
	}
	return challenge, done, err
}
