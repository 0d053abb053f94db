package upstream

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
)

// mutf7 is RFC 3501 section 5.1.3's modified BASE64: "," instead of "/",
// no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMailboxName spells a mailbox name (UTF-8, as imapclient decodes
// them) in modified UTF-7 (RFC 3501 section 5.1.3), as the upstream spells
// it on the wire: printable US-ASCII stands for itself ("&" as "&-"),
// every run of other characters is "&", the modified BASE64 of its
// UTF-16BE, "-". It is the shortest encoding, which the RFC requires, so
// the upstream's own spelling in a STATUS event compares equal.
func encodeMailboxName(s string) string {
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		raw := make([]byte, 0, 2*len(run))
		for _, u := range run {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = utf16.AppendRune(run, r)
	}
	flush()
	return b.String()
}

// quoteIMAP returns s as an IMAP quoted string (RFC 3501 section 9:
// quoted-specials escaped). s must hold no CR, LF or NUL: a modified
// UTF-7 name never does.
func quoteIMAP(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
