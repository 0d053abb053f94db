package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// modelReads are the reads issue 11 answers from the model: SEARCH
// UNSEEN (both kinds) and STATUS of the selected, watched mailbox.
var modelReads = []string{
	"UID SEARCH UNSEEN",
	"SEARCH UNSEEN",
	"STATUS INBOX (MESSAGES UNSEEN)",
}

// unwatchedStatus is STATUS of a mailbox no watcher has: upstream, one
// command for identical requests in flight together.
var unwatchedStatus = []string{"STATUS Other (MESSAGES UNSEEN)"}

// BenchmarkDovecotModelReads: 10 sessions of one account run SEARCH
// UNSEEN and STATUS, directly against Dovecot and through idlemux in the
// same run (INBOX watched by IDLE, one session having idled). Reported:
// both rates, their ratio, and the share answered without the upstream.
func BenchmarkDovecotModelReads(b *testing.B) {
	benchModelReads(b, modelReads, 20)
}

// BenchmarkDovecotUnwatchedStatus: the same 10 sessions running STATUS of
// a mailbox nobody selected.
func BenchmarkDovecotUnwatchedStatus(b *testing.B) {
	benchModelReads(b, unwatchedStatus, 40)
}

func benchModelReads(b *testing.B, cmds []string, rounds int) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	seed := dv.Dial(b, testUser, testPass)
	if err := seed.Create("Other", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	for i := range 200 {
		appendMsg(b, seed, "INBOX", testMessage(fmt.Sprintf("read %d", i)))
		if i%10 == 0 {
			appendMsg(b, seed, "Other", testMessage(fmt.Sprintf("other %d", i)))
		}
	}
	seed.Logout().Wait()
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	const n = 10
	direct := benchSessions(b, dv.Addr, n)
	through := benchSessions(b, p.Addrs()[0], n)
	// One session idles once: INBOX's watcher gets an IDLE connection.
	fmt.Fprintf(through[0].c, "i IDLE\r\n")
	if l := through[0].line(); !strings.HasPrefix(l, "+") {
		b.Fatalf("IDLE: %q", l)
	}
	for deadline := time.Now().Add(10 * time.Second); p.upStats().Live == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("INBOX never watched by IDLE")
		}
	}
	fmt.Fprintf(through[0].c, "DONE\r\n") // after: a DONE at once may end IDLE before it asks for a slot
	through[0].answer("i")
	runCommands(b, direct, 1, cmds)
	runCommands(b, through, 1, cmds)
	local := func() float64 {
		total := 0.0
		for _, c := range []string{"SEARCH", "STATUS"} {
			total += localCount(p.metrics.localAnswers.WithLabelValues(c))
		}
		return total
	}
	before := local()
	b.ResetTimer()
	var d, v float64
	for range b.N {
		d += runCommands(b, direct, rounds, cmds)
		v += runCommands(b, through, rounds, cmds)
	}
	b.ReportMetric(d/float64(b.N), "direct-cmds/s")
	b.ReportMetric(v/float64(b.N), "idlemux-cmds/s")
	b.ReportMetric(v/d, "idlemux/direct")
	b.ReportMetric((local()-before)/float64(b.N*n*rounds*len(cmds)), "local-share")
}
