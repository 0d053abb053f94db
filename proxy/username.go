package proxy

import (
	"fmt"
	"unicode/utf8"

	"go.uber.org/zap"
)

// maxUserName is the longest user name sent upstream. Dovecot 2.3.19
// closes the connection with "* BYE Input buffer full, aborting" once a
// LOGIN line passes its 1 KiB login buffer (measured: a 1020-byte name
// with a short password is still answered NO, a 1030-byte one is not),
// and mail addresses stop at 254 bytes (RFC 5321 section 4.5.3.1.3).
const maxUserName = 1024

// loggedUserPrefix is how much of a client-supplied user name a log line
// keeps.
const loggedUserPrefix = 64

// userField is the log field for a user name a client sent: the name, or
// its first loggedUserPrefix bytes (cut at a character boundary) and its
// length, so a client cannot grow the log by the size of its names.
func userField(name string) zap.Field {
	if len(name) <= loggedUserPrefix {
		return zap.String("user", name)
	}
	cut := loggedUserPrefix
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return zap.String("user", fmt.Sprintf("%s...(%d bytes)", name[:cut], len(name)))
}
