package quirks

import "github.com/emersion/go-imap/v2"

// Upstream login mechanisms besides the password default; the names are
// config's oauth2_mechanism values.
const (
	// MechXOAUTH2 is Google's and Microsoft's bearer-token SASL
	// mechanism (developers.google.com/gmail/imap/xoauth2-protocol;
	// learn.microsoft.com, "Authenticate an IMAP, POP or SMTP connection
	// using OAuth", SASL XOAUTH2).
	MechXOAUTH2 = "xoauth2"
	// MechOAUTHBEARER is RFC 7628's, which Yahoo documents for IMAP
	// (senders.yahooinc.com/developer/documentation).
	MechOAUTHBEARER = "oauthbearer"
)

// LoginMethod is how idlemux logs in upstream.
type LoginMethod int

const (
	LoginCommand    LoginMethod = iota // LOGIN user pass (RFC 3501 6.2.3)
	AuthPlain                          // AUTHENTICATE PLAIN (RFC 4616)
	AuthXOAUTH2                        // AUTHENTICATE XOAUTH2
	AuthOAUTHBEARER                    // AUTHENTICATE OAUTHBEARER (RFC 7628)
)

// LoginBy says how to log in to an upstream with caps: with mech set, the
// secret is a bearer token for that mechanism; else it is a password,
// sent by LOGIN unless the upstream says LOGINDISABLED (RFC 3501 6.2.3),
// when AUTHENTICATE PLAIN carries it (upstream/dial.go;
// TestLoginByCapabilities shows each on the wire).
func LoginBy(caps imap.CapSet, mech string) LoginMethod {
	switch {
	case mech == MechXOAUTH2:
		return AuthXOAUTH2
	case mech == MechOAUTHBEARER:
		return AuthOAUTHBEARER
	case Has(caps, LoginDisabled):
		return AuthPlain
	}
	return LoginCommand
}
