package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// sessionsMix is the command mix of issue 10's measurement: what a mail
// client's sessions of one account run all day. STORE toggles \Seen so the
// mailbox stays the same size.
var sessionsMix = []string{
	"NOOP",
	"FETCH 1:* (FLAGS)",
	"UID SEARCH UNSEEN",
	"STORE 1 +FLAGS (\\Seen)",
	"STORE 1 -FLAGS (\\Seen)",
	"STATUS INBOX (MESSAGES UNSEEN)",
	"LIST \"\" *",
}

// benchSessions opens n logged-in sessions with INBOX selected.
func benchSessions(b *testing.B, addr string, n int) []*rawConn {
	b.Helper()
	out := make([]*rawConn, n)
	for i := range out {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		rc := &rawConn{t: b, c: c, r: bufio.NewReader(c)}
		rc.line()
		for _, cmd := range []string{"LOGIN " + testUser + " " + testPass, "SELECT INBOX"} {
			if l := rc.cmd("s", cmd); !strings.HasPrefix(l[len(l)-1], "s OK") {
				b.Fatalf("%s: %q", cmd, l[len(l)-1])
			}
		}
		out[i] = rc
	}
	return out
}

// runMix runs rounds of the mix on every session at once and returns the
// commands per second. Every command must answer OK.
func runMix(b *testing.B, sessions []*rawConn, rounds int) float64 {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, len(sessions))
	start := time.Now()
	for _, rc := range sessions {
		wg.Go(func() {
			for r := range rounds {
				for i, cmd := range sessionsMix {
					tag := fmt.Sprintf("m%d.%d", r, i)
					l := rc.cmd(tag, cmd)
					if last := l[len(l)-1]; !strings.HasPrefix(last, tag+" OK") {
						errs <- cmd + ": " + last
						return
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for e := range errs {
		b.Fatal(e)
	}
	return float64(len(sessions)*rounds*len(sessionsMix)) / elapsed.Seconds()
}

// BenchmarkDovecotSessionsMix: 10 sessions of one account run the mix at
// once, directly against Dovecot and through idlemux with the default
// pool (5 connections per account), in the same run. The figure that
// matters is idlemux/direct (1.0: as fast as Dovecot directly). Upstream
// logins during the idlemux run are reported: with connections handed
// over, they stay at the pool's size whatever the rounds.
func BenchmarkDovecotSessionsMix(b *testing.B) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	seed := dv.Dial(b, testUser, testPass)
	for i := range 50 {
		appendMsg(b, seed, "INBOX", testMessage(fmt.Sprintf("mix %d", i)))
	}
	seed.Logout().Wait()
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	const n = 10
	direct := benchSessions(b, dv.Addr, n)
	through := benchSessions(b, p.Addrs()[0], n)
	runMix(b, direct, 1) // warm both: Dovecot's caches, idlemux's pool
	runMix(b, through, 1)
	logins := p.mgr.Stats().Logins
	b.ResetTimer()
	var d, v float64
	for range b.N {
		d += runMix(b, direct, 5)
		v += runMix(b, through, 5)
	}
	b.ReportMetric(d/float64(b.N), "direct-cmds/s")
	b.ReportMetric(v/float64(b.N), "idlemux-cmds/s")
	b.ReportMetric(v/d, "idlemux/direct")
	b.ReportMetric(float64(p.mgr.Stats().Logins-logins)/float64(b.N), "upstream-logins/op")
}
