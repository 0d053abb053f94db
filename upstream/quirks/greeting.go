package quirks

import "strings"

// IDWelcome reports a greeting after which ID (RFC 2971) may be sent
// before login: an untagged OK (not PREAUTH or BYE, RFC 3501 7.1), and ID
// among its capabilities if the greeting lists them in a CAPABILITY
// response code (RFC 3501 7.1). A greeting with no list is taken to allow
// it: Dovecot lists ID, and a server without ID answers BAD, which
// announceClient logs and passes by (upstream/clientid.go, TestAnnounceClient,
// FuzzIDWelcome).
func IDWelcome(greeting []byte) bool {
	g := strings.ToUpper(string(greeting))
	if !strings.HasPrefix(g, "* OK") {
		return false
	}
	i := strings.Index(g, "[CAPABILITY ")
	if i < 0 {
		return true
	}
	end := strings.IndexByte(g[i:], ']')
	if end < 0 {
		end = len(g) - i
	}
	for _, c := range strings.Fields(g[i+len("[CAPABILITY ") : i+end]) {
		if c == "ID" {
			return true
		}
	}
	return false
}

// Dovecot's ID keys for the client's address and port (Dovecot 2.3
// imap-login, honoured only from login_trusted_networks; doc.dovecot.org
// "ID command" lists x-originating-ip and x-originating-port): sent before
// LOGIN with forward_client_address (upstream/clientid.go).
const (
	IDOriginatingIP   = "x-originating-ip"
	IDOriginatingPort = "x-originating-port"
)
