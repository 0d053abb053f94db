package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
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

// benchModelReads runs rounds of cmds on 10 sessions of one account
// (INBOX of 200 messages, Other of 20), directly and through idlemux with
// INBOX's watcher idling (one session idled once), and reports the share
// answered without the upstream.
func benchModelReads(b *testing.B, cmds []string, rounds int) {
	seed := func(c *imapclient.Client) {
		if err := c.Create("Other", nil).Wait(); err != nil {
			b.Fatal(err)
		}
		for i := range 200 {
			appendMsg(b, c, "INBOX", testMessage(fmt.Sprintf("read %d", i)))
			if i%10 == 0 {
				appendMsg(b, c, "Other", testMessage(fmt.Sprintf("other %d", i)))
			}
		}
	}
	benchTenSessions(b, seed, idleOnceBench, cmds, rounds, func(p *Server) func(map[string]uint64) {
		local := func() float64 {
			total := 0.0
			for _, c := range []string{"SEARCH", "STATUS"} {
				total += localCount(p.metrics.localAnswers.WithLabelValues(c))
			}
			return total
		}
		before := local()
		return func(map[string]uint64) {
			b.ReportMetric((local()-before)/float64(b.N*10*rounds*len(cmds)), "local-share")
		}
	})
}

// idleOnceBench has the first session idle once: INBOX's watcher gets an
// IDLE connection.
func idleOnceBench(p *Server, through []*rawConn) {
	t := through[0].t
	fmt.Fprintf(through[0].c, "i IDLE\r\n")
	if l := through[0].line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	for deadline := time.Now().Add(10 * time.Second); p.upStats().Live == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("INBOX never watched by IDLE")
		}
	}
	fmt.Fprintf(through[0].c, "DONE\r\n") // after: a DONE at once may end IDLE before it asks for a slot
	through[0].answer("i")
}
