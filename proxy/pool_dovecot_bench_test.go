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
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/dovecottest"
)

// mixMessage is the small message the mix APPENDs (issue 11).
var mixMessage = testMessage("mix append")

// sessionsMix is the command mix of issue 10's measurement, with issue
// 11's APPEND: what a mail client's sessions of one account run all day.
// STORE toggles \Seen; the messages APPENDed are expunged between
// iterations, outside the timed part (mixCleanup), so the mailbox stays
// the size it was seeded with. The APPEND sends its literal
// non-synchronizing (RFC 7888): Dovecot and idlemux both offer LITERAL+
// (checked by benchSessions).
var sessionsMix = []string{
	"NOOP",
	"FETCH 1:* (FLAGS)",
	"UID SEARCH UNSEEN",
	"STORE 1 +FLAGS (\\Seen)",
	"STORE 1 -FLAGS (\\Seen)",
	"APPEND INBOX " + fmt.Sprintf("{%d+}\r\n", len(mixMessage)) + mixMessage,
	"STATUS INBOX (MESSAGES UNSEEN)",
	"LIST \"\" *",
}

// mixSeeded is how many messages benchSessions10 seeds; mixCleanup
// expunges every message above it.
const mixSeeded = 50

// mixCleanup expunges, on rc, the messages the mix APPENDed (UIDs above
// the seeded ones), so that each timed round runs on the same mailbox.
func mixCleanup(b *testing.B, rc *rawConn) {
	b.Helper()
	for i, cmd := range []string{fmt.Sprintf("UID STORE %d:* +FLAGS.SILENT (\\Deleted)", mixSeeded+1), "EXPUNGE"} {
		tag := fmt.Sprintf("x%d", i)
		if l := rc.cmd(tag, cmd); !strings.HasPrefix(l[len(l)-1], tag+" OK") {
			b.Fatalf("%s: %q", cmd, l[len(l)-1])
		}
	}
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
		if l := rc.cmd("c", "CAPABILITY"); !strings.Contains(l[0], " LITERAL+") {
			b.Fatalf("no LITERAL+ (the mix's APPEND needs it): %q", l[0])
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
//
// Sub-benchmarks: "queued" is the default (writes to INBOX go upstream
// one at a time, upstream/writeslots.go); "unqueued" sets
// max_writes_per_mailbox to 0 (no bound), as before it existed. Each
// compares with Dovecot directly in its own run; run both with -count to
// compare them.
func BenchmarkDovecotSessionsMix(b *testing.B) {
	benchQueuing(b, sessionsMix, 5)
}

// writesOnly is a workload of writes alone: each session flags and
// unflags a message and APPENDs one, the worst case for queueing writes
// (nothing else runs meanwhile).
var writesOnly = []string{
	"STORE 2 +FLAGS (\\Flagged)",
	"STORE 2 -FLAGS (\\Flagged)",
	"APPEND INBOX " + fmt.Sprintf("{%d+}\r\n", len(mixMessage)) + mixMessage,
}

// BenchmarkDovecotSessionsWrites: the 10 sessions running writesOnly,
// queued (the default) and unqueued, each against Dovecot directly in
// the same run.
func BenchmarkDovecotSessionsWrites(b *testing.B) {
	benchQueuing(b, writesOnly, 5)
}

// benchQueuing runs benchSessions10 as two sub-benchmarks: "queued", the
// default max_writes_per_mailbox, and "unqueued", 0 (no bound).
func benchQueuing(b *testing.B, cmds []string, rounds int) {
	for _, tc := range []struct {
		name   string
		writes int
	}{{"queued", config.Default().Upstream.MaxWritesPerMailbox}, {"unqueued", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			benchWrites = tc.writes
			defer func() { benchWrites = -1 }()
			benchSessions10(b, cmds, rounds)
		})
	}
}

// benchWrites, when not -1, is max_writes_per_mailbox of benchTenSessions'
// idlemux.
var benchWrites = -1

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
		for i := range mixSeeded {
			appendMsg(b, c, "INBOX", testMessage(fmt.Sprintf("mix %d", i)))
		}
	}
	benchTenSessions(b, seed, nil, cmds, rounds, func(p *Server) func(map[string]uint64) {
		logins, joined := p.upStats().Logins, localAnswers(b, p, "LIST")
		cmdsBefore := p.upStats().Commands
		return func(excluded map[string]uint64) {
			b.ReportMetric(float64(p.upStats().Logins-logins)/float64(b.N), "upstream-logins/op")
			after := p.upStats().Commands
			for name, n := range excluded {
				after[name] -= n
			}
			reportUpstreamCommands(b, cmdsBefore, after, 10*rounds*len(cmds)*b.N)
			b.Logf("APPENDs confirmed by their answer: %v, by a Sync: %v (every run, cleanup included)",
				testutil.ToFloat64(p.metrics.appendConfirmed.WithLabelValues("answer")),
				testutil.ToFloat64(p.metrics.appendConfirmed.WithLabelValues("sync")))
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
// benchmark's own figures after them, given the upstream commands of the
// untimed cleanups (a mix with APPEND expunges what it appended between
// iterations) to leave out.
func benchTenSessions(b *testing.B, seed func(*imapclient.Client), prep func(*Server, []*rawConn),
	cmds []string, rounds int, measure func(*Server) func(excluded map[string]uint64)) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	c := dv.Dial(b, testUser, testPass)
	seed(c)
	c.Logout().Wait()
	cfg := testConfig(dv.Addr)
	cfg.Metrics.Address = "127.0.0.1:0"
	if benchWrites >= 0 {
		cfg.Upstream.MaxWritesPerMailbox = benchWrites
	}
	p := startProxyLogging(b, cfg, zap.NewNop())
	const n = 10
	direct := benchSessions(b, dv.Addr, n)
	through := benchSessions(b, p.Addrs()[0], n)
	if prep != nil {
		prep(p, through)
	}
	appends := slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "APPEND ") })
	// excluded counts the upstream commands of the cleanups, which are
	// no client command of the mix.
	excluded := map[string]uint64{}
	cleanup := func() {
		if appends {
			b.StopTimer()
			before := p.upStats().Commands
			mixCleanup(b, through[0])
			for name, n := range p.upStats().Commands {
				excluded[name] += n - before[name]
			}
			b.StartTimer()
		}
	}
	runCommands(b, direct, 1, cmds)
	runCommands(b, through, 1, cmds)
	cleanup()
	clear(excluded) // measure's snapshot is taken after this one
	report := measure(p)
	b.ResetTimer()
	var d, v float64
	for range b.N {
		d += runCommands(b, direct, rounds, cmds)
		cleanup()
		v += runCommands(b, through, rounds, cmds)
		cleanup()
	}
	b.StopTimer()
	b.ReportMetric(d/float64(b.N), "direct-cmds/s")
	b.ReportMetric(v/float64(b.N), "idlemux-cmds/s")
	b.ReportMetric(v/d, "idlemux/direct")
	report(excluded)
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
