package proxy

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// stackInUse is the memory in goroutine stacks after two collections.
// Stacks freed by an earlier test stay in the runtime's pool and are
// reused uncounted, so with -count 2 the later runs measure less (an upper
// bound holds all the same).
func stackInUse() uint64 { return collected().StackInuse }

// TestIdleClientStacks: a client idling after LOGIN, SELECT and IDLE
// costs the proxy two goroutines (imapserver's connection goroutine
// reading DONE and the IDLE goroutine) of 4 KiB of stack each. Before
// Login ran on a goroutine of its own (loginstack.go), the connection
// goroutine kept the 8 KiB its LOGIN had grown it to: 12 KiB per client.
// The logger logs at warn, as a deployment's: an Info call that encodes
// would be deeper than the one every login makes. Without -race only:
// the race detector's instrumentation deepens every frame.
func TestIdleClientStacks(t *testing.T) {
	const clients = 100
	up := startMemUpstream(t)
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.WarnLevel))
	p := startProxyLogging(t, testConfig(up.addr), log)
	// The first login dials the upstream; later ones match the
	// credential it verified, as in a login wave of one account.
	first := dialRaw(t, p.Addrs()[0])
	if l := first.cmd("a", fmt.Sprintf("LOGIN %s %s", testUser, testPass)); !strings.HasPrefix(l[len(l)-1], "a OK") {
		t.Fatalf("first LOGIN: got %q, want a OK", l)
	}
	before := stackInUse()
	for i := range clients {
		rc := dialRaw(t, p.Addrs()[0])
		for _, c := range []string{fmt.Sprintf("LOGIN %s %s", testUser, testPass), "SELECT INBOX"} {
			if l := rc.cmd("a", c); !strings.HasPrefix(l[len(l)-1], "a OK") {
				t.Fatalf("client %d: %s: got %q, want a OK", i, c, l)
			}
		}
		fmt.Fprintf(rc.c, "i IDLE\r\n")
		if l := rc.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("client %d: IDLE: got %q, want a continuation", i, l)
		}
	}
	per := float64(stackInUse()-before) / clients
	t.Logf("goroutine stacks: %.1f KiB per idle client", per/1024)
	if per > 10<<10 && !raceEnabled { // -race deepens every frame: 12.8 KiB
		t.Errorf("goroutine stacks grew %.0f bytes per idle client, want at most 10 KiB (two 4 KiB stacks)", per)
	}
}
