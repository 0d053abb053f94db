package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
)

// startTLSGreeting stands for the greeting once TLS is up: imapclient
// expects one, and the real one came in cleartext, where its CAPABILITY
// code must not be trusted (RFC 3501 6.2.1: capabilities are asked again
// after STARTTLS). Without a code, imapclient asks for them.
const startTLSGreeting = "* OK TLS established\r\n"

// startTLS upgrades raw with STARTTLS (RFC 3501 6.2.1) before imapclient
// gets the connection: imapclient's own STARTTLS would wrap TLS around
// whatever reader it was given, leaving the response reader below TLS
// where it cannot see responses. It returns the reader imapclient is to
// read, the greeting included.
func startTLS(ctx context.Context, raw net.Conn, cfg *tls.Config, lim respLimits) (io.Reader, *tls.Conn, error) {
	fr := newRespReader(raw, lim, nil)
	br := bufio.NewReader(fr)
	greeting, err := br.ReadString('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("greeting: %w", err)
	}
	if !hasPrefixFold(greeting, "* OK") {
		// PREAUTH too: a session authenticated in cleartext cannot be
		// protected any more (RFC 3501 6.2.1).
		return nil, nil, fmt.Errorf("greeting before STARTTLS: %q", strings.TrimSpace(greeting))
	}
	if _, err := io.WriteString(raw, "S STARTTLS\r\n"); err != nil {
		return nil, nil, err
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, nil, fmt.Errorf("STARTTLS: %w", err)
		}
		if strings.HasPrefix(line, "* ") {
			continue
		}
		if !hasPrefixFold(line, "S OK") {
			return nil, nil, fmt.Errorf("STARTTLS refused: %q", strings.TrimSpace(line))
		}
		break
	}
	// Bytes after the OK were sent in cleartext and would be read as if
	// protected by TLS: a command injection (RFC 3501 11.1).
	if br.Buffered() > 0 || fr.br.Buffered() > 0 {
		return nil, nil, fmt.Errorf("upstream sent cleartext after its STARTTLS answer")
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, err
	}
	return io.MultiReader(strings.NewReader(startTLSGreeting), tc), tc, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
