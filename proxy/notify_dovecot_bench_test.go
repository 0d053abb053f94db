package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/idlemux/idlemux/upstream"
)

// BenchmarkDovecotPushLatency: how long a message appended directly on
// Dovecot takes to reach a client idling on its mailbox, by how idlemux
// watches the mailbox (README, watching many mailboxes), against a client
// idling on Dovecot directly on the same mailbox in the same run. Cap 3:
// with NOTIFY, W0 has an IDLE watcher and W1 is pushed by the NOTIFY
// connection; with NOTIFY hidden (upstream.capabilities), W0 and W1 have
// IDLE watchers and W2 is polled every 2 s. Each op is one APPEND per
// measured mailbox; Dovecot itself waits about 500 ms before it tells
// (notes/dovecot.md), so ops are slow and -benchtime=10x is enough.
func BenchmarkDovecotPushLatency(b *testing.B) {
	for _, bc := range []struct {
		name string
		hide bool
		mode string // of the mailbox measured besides W0 (idle)
		box  string
	}{
		{"NOTIFY", false, upstream.ModeNotify, "W1"},
		{"NOTIFY hidden", true, upstream.ModePolled, "W2"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dv, direct := dovecotWithBoxes(b, 3)
			cfg := testConfig(dv.Addr)
			cfg.Upstream.MaxConnectionsPerAccount = 3
			cfg.Upstream.PollInterval = 2 * time.Second
			if bc.hide {
				cfg.Upstream.Capabilities = dovecotCapsWithoutNotify
			}
			p := startProxy(b, cfg)
			// One client at a time, each waiting for its watcher's slot,
			// so that W0 (and W1 without NOTIFY) holds an IDLE watcher.
			idleSlots := 1
			if bc.hide {
				idleSlots = 2
			}
			waitStats := func(what string, ok func(upstream.Stats) bool) {
				for deadline := time.Now().Add(20 * time.Second); !ok(p.upStats()); time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatalf("%s: stats %+v", what, p.upStats())
					}
				}
			}
			got := map[string]*rawConn{}
			for i := range 3 {
				box := fmt.Sprintf("W%d", i)
				got[box] = idleOn(b, p.Addrs()[0], box)
				waitStats("IDLE watchers", func(st upstream.Stats) bool { return st.WatcherConns == min(i+1, idleSlots) })
			}
			want := idleOn(b, dv.Addr, bc.box)
			waitStats("mailbox modes", func(st upstream.Stats) bool {
				return (bc.hide && st.Polled == 1) || (!bc.hide && st.Notify == 2)
			})
			var direct1, idle, other time.Duration
			b.ResetTimer()
			for i := range b.N {
				exists := fmt.Sprintf("* %d EXISTS", i+2)
				for _, box := range []string{"W0", bc.box} {
					start := time.Now()
					appendMsg(b, direct, box, testMessage(fmt.Sprintf("m%d", i)))
					if box == bc.box {
						if _, _, ok := want.until(exists, 10*time.Second, 0); !ok {
							b.Fatalf("%s directly: no %q", box, exists)
						}
						direct1 += time.Since(start)
					}
					if _, _, ok := got[box].until(exists, 10*time.Second, 0); !ok {
						b.Fatalf("%s through idlemux: no %q", box, exists)
					}
					if box == "W0" {
						idle += time.Since(start)
					} else {
						other += time.Since(start)
					}
				}
			}
			n := float64(b.N)
			b.ReportMetric(direct1.Seconds()*1000/n, "direct-ms")
			b.ReportMetric(idle.Seconds()*1000/n, "idle-ms")
			b.ReportMetric(other.Seconds()*1000/n, bc.mode+"-ms")
			b.ReportMetric(float64(other)/float64(direct1), bc.mode+"/direct")
		})
	}
}
