package proxy

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
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

// listOnly is issue 10's second workload: LIST alone.
var listOnly = []string{"LIST \"\" *"}

// runCommands runs rounds of cmds on every session at once and returns
// the commands per second. Every command must answer OK.
func runCommands(b *testing.B, sessions []*rawConn, rounds int, cmds []string) float64 {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, len(sessions))
	start := time.Now()
	for _, rc := range sessions {
		wg.Go(func() {
			for r := range rounds {
				for i, cmd := range cmds {
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
	return float64(len(sessions)*rounds*len(cmds)) / elapsed.Seconds()
}

// BenchmarkDovecotSessionsMix: 10 sessions of one account run the mix at
// once, directly against Dovecot and through idlemux with the default
// pool (5 connections per account), in the same run. The figure that
// matters is idlemux/direct (1.0: as fast as Dovecot directly). Upstream
// logins during the idlemux run are reported: with connections handed
// over, they stay at the pool's size whatever the rounds.
func BenchmarkDovecotSessionsMix(b *testing.B) {
	benchSessions10(b, sessionsMix, 5)
}

// BenchmarkDovecotSessionsList: the same 10 sessions running LIST only
// (issue 10: 0.003 of direct before the pool handed connections over).
func BenchmarkDovecotSessionsList(b *testing.B) {
	benchSessions10(b, listOnly, 30)
}

// benchSessions10 runs rounds of cmds on 10 sessions of one account
// (INBOX holding 50 messages), directly and through idlemux, and reports
// both rates, their ratio, upstream logins and the share of LISTs that
// joined another's (listshare.go).
func benchSessions10(b *testing.B, cmds []string, rounds int) {
	seed := func(c *imapclient.Client) {
		for i := range 50 {
			appendMsg(b, c, "INBOX", testMessage(fmt.Sprintf("mix %d", i)))
		}
	}
	benchTenSessions(b, seed, nil, cmds, rounds, func(p *Server) func() {
		logins, joined := p.upStats().Logins, localAnswers(b, p, "LIST")
		cmdsBefore := p.upStats().Commands
		return func() {
			b.ReportMetric(float64(p.upStats().Logins-logins)/float64(b.N), "upstream-logins/op")
			reportUpstreamCommands(b, cmdsBefore, p.upStats().Commands, 10*rounds*len(cmds)*b.N)
			// Identical concurrent LISTs share one upstream command (listshare.go).
			if lists := 10 * rounds * b.N * strings.Count(strings.Join(cmds, "\n"), "LIST"); lists > 0 {
				b.ReportMetric(1-float64(localAnswers(b, p, "LIST")-joined)/float64(lists), "upstream-LIST/client-LIST")
			}
		}
	})
}

// benchTenSessions is the frame of the 10-session benchmarks: a private
// Dovecot that seed fills, an idlemux in front of it (with its metrics
// listener), 10 sessions each way, prep (if set) on the idlemux ones, one
// untimed round of cmds on each side (Dovecot's caches, idlemux's pool),
// then each iteration rounds of cmds directly and through idlemux in
// turn. It reports direct-cmds/s, idlemux-cmds/s and idlemux/direct;
// measure, called before the timed rounds, returns what reports the
// benchmark's own figures after them.
func benchTenSessions(b *testing.B, seed func(*imapclient.Client), prep func(*Server, []*rawConn),
	cmds []string, rounds int, measure func(*Server) func()) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	c := dv.Dial(b, testUser, testPass)
	seed(c)
	c.Logout().Wait()
	cfg := testConfig(dv.Addr)
	cfg.Metrics.Address = "127.0.0.1:0"
	p := startProxyLogging(b, cfg, zap.NewNop())
	const n = 10
	direct := benchSessions(b, dv.Addr, n)
	through := benchSessions(b, p.Addrs()[0], n)
	if prep != nil {
		prep(p, through)
	}
	runCommands(b, direct, 1, cmds)
	runCommands(b, through, 1, cmds)
	report := measure(p)
	b.ResetTimer()
	var d, v float64
	for range b.N {
		d += runCommands(b, direct, rounds, cmds)
		v += runCommands(b, through, rounds, cmds)
	}
	b.StopTimer()
	b.ReportMetric(d/float64(b.N), "direct-cmds/s")
	b.ReportMetric(v/float64(b.N), "idlemux-cmds/s")
	b.ReportMetric(v/d, "idlemux/direct")
	report()
}

// reportUpstreamCommands reports the upstream commands (IDLE and DONE
// included: each is a round trip) per client command run between two
// snapshots of idlemux_upstream_commands_total, and logs them by name:
// where the round trips of a workload go.
func reportUpstreamCommands(b *testing.B, before, after map[string]uint64, clientCmds int) {
	var total uint64
	var by []string
	for name, n := range after {
		d := n - before[name]
		if d == 0 {
			continue
		}
		total += d
		by = append(by, fmt.Sprintf("%s=%.3f", name, float64(d)/float64(clientCmds)))
	}
	slices.Sort(by)
	b.ReportMetric(float64(total)/float64(clientCmds), "upstream-cmds/client-cmd")
	b.Logf("upstream commands per client command: %s", strings.Join(by, " "))
}

// BenchmarkDovecotFolderWalk: one client SELECTs 41 folders in turn (a
// folder-by-folder sync: offlineimap, mbsync), each followed by
// UID FETCH 1:* (FLAGS), directly and through idlemux in the same run.
// Issue 10: 4.8 s against 1.9 s directly (2.5x) when each first SELECT
// dialed a watcher.
func BenchmarkDovecotFolderWalk(b *testing.B) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	seed := dv.Dial(b, testUser, testPass)
	const folders = 41
	var walk []string
	for i := range folders {
		name := fmt.Sprintf("F%02d", i)
		if err := seed.Create(name, nil).Wait(); err != nil {
			b.Fatal(err)
		}
		for j := range 3 {
			appendMsg(b, seed, name, testMessage(fmt.Sprintf("%s %d", name, j)))
		}
		walk = append(walk, "SELECT "+name, "UID FETCH 1:* (FLAGS)")
	}
	seed.Logout().Wait()
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	direct := benchSessions(b, dv.Addr, 1)
	through := benchSessions(b, p.Addrs()[0], 1)
	logins := p.upStats().Logins
	b.ResetTimer()
	var d, v float64
	for range b.N {
		d += runCommands(b, direct, 1, walk)
		v += runCommands(b, through, 1, walk)
	}
	b.ReportMetric(float64(len(walk))/(d/float64(b.N))*1000, "direct-ms/walk")
	b.ReportMetric(float64(len(walk))/(v/float64(b.N))*1000, "idlemux-ms/walk")
	b.ReportMetric(d/v, "idlemux/direct-time")
	b.ReportMetric(float64(p.upStats().Logins-logins)/float64(b.N), "upstream-logins/op")
}
