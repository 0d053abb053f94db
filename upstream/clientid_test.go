package upstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestAnnounceClient: with ForwardClientAddress, the connection that
// checks a login sends ID with the client's address and port (RFC 2971;
// Dovecot's keys) right after the greeting, and imapclient still sees the
// greeting; without the option, or without a client in ctx, or after a
// greeting that lists capabilities without ID, nothing is sent.
func TestAnnounceClient(t *testing.T) {
	client := netip.MustParseAddrPort("[::ffff:192.0.2.7]:40123")
	tests := []struct {
		name     string
		forward  bool
		ctx      context.Context
		greeting string
		wantID   string // "" : no ID sent
	}{
		{"forwarded", true, WithLoginCall(context.Background(), client, nil), "* OK ready", `idlemux0 ID ("x-originating-ip" "192.0.2.7" "x-originating-port" "40123")`},
		{"no port", true, WithLoginCall(context.Background(), netip.AddrPortFrom(client.Addr(), 0), nil), "* OK [CAPABILITY IMAP4rev1 ID] ready", `idlemux0 ID ("x-originating-ip" "192.0.2.7")`},
		{"option off", false, WithLoginCall(context.Background(), client, nil), "* OK ready", ""},
		{"no client", true, context.Background(), "* OK ready", ""},
		{"no ID capability", true, WithLoginCall(context.Background(), client, nil), "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready", ""},
		{"preauth", true, WithLoginCall(context.Background(), client, nil), "* PREAUTH welcome", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mine, peer := net.Pipe()
			defer mine.Close()
			defer peer.Close()
			peer.SetDeadline(time.Now().Add(5 * time.Second))
			mine.SetDeadline(time.Now().Add(5 * time.Second))
			got := make(chan string, 1)
			go func() {
				if tc.wantID == "" {
					got <- ""
				}
				fmt.Fprintf(peer, "%s\r\n", tc.greeting) // net.Pipe: returns once read
				if tc.wantID == "" {
					return
				}
				l, _ := bufio.NewReader(peer).ReadString('\n')
				fmt.Fprintf(peer, "* ID NIL\r\nidlemux0 OK ID completed\r\n")
				got <- strings.TrimRight(l, "\r\n")
			}()
			m := &Manager{opts: Options{ForwardClientAddress: tc.forward}, log: zap.NewNop()}
			conn, err := m.announceClient(tc.ctx, mine)
			if err != nil {
				t.Fatalf("announceClient: %v", err)
			}
			if id := <-got; id != tc.wantID {
				t.Errorf("sent: got %q, want %q", id, tc.wantID)
			}
			want := uint64(0)
			if tc.wantID != "" {
				want = 1
			}
			if n := m.cmds[cmdID].Load(); n != want {
				t.Errorf("ID commands counted: got %d, want %d", n, want)
			}
			line, err := bufio.NewReader(io.LimitReader(conn, int64(len(tc.greeting)+2))).ReadString('\n')
			if want := tc.greeting + "\r\n"; err != nil || line != want {
				t.Errorf("replayed to imapclient: got %q (%v), want the greeting %q", line, err, want)
			}
		})
	}
}
