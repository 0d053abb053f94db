package proxy

import (
	"net"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/dovecottest"
)

// BenchmarkDovecotFanout is the fan-out workload against a real Dovecot,
// directly and through idlemux: N clients of one account IDLE on INBOX, a
// message is appended on another connection, and the time from the APPEND's
// completion to the first and to the last client's "* N EXISTS" is taken.
// Directly, Dovecot runs one process per client, each told of the change
// on its own; through idlemux, Dovecot holds one IDLE and idlemux tells
// the N clients.
func BenchmarkDovecotFanout(b *testing.B) {
	dv := dovecottest.Start(b, dovecottest.Options{
		Users: map[string]string{testUser: testPass},
		// All the direct clients are one user from one address.
		ExtraConf: "mail_max_userip_connections = 2000\n",
	})
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	for _, n := range []int{100, 500} {
		b.Run("direct/"+strconv.Itoa(n), func(b *testing.B) { benchDovecotFanout(b, dv, dv.Addr, n) })
		b.Run("idlemux/"+strconv.Itoa(n), func(b *testing.B) { benchDovecotFanout(b, dv, p.Addrs()[0], n) })
	}
}

func benchDovecotFanout(b *testing.B, dv *dovecottest.Server, addr string, n int) {
	appender := dv.Dial(b, testUser, testPass)
	defer appender.Close()
	sd, err := appender.Select("INBOX", nil).Wait()
	if err != nil {
		b.Fatal(err)
	}
	count := sd.NumMessages

	round := &fanoutRound{n: int64(n)}
	startIdlers(b, 8, func() (net.Conn, error) { return net.Dial("tcp", addr) }, round)
	time.Sleep(time.Second) // every IDLE has reached its server

	msg := testMessage("fan-out")
	var first, last time.Duration
	b.ResetTimer()
	for range b.N {
		count++
		round.begin(count)
		appendMsg(b, appender, "INBOX", msg)
		done := time.Now().UnixNano()
		round.wait(b)
		first += time.Duration(round.first.Load() - done)
		last += time.Duration(round.last.Load() - done)
	}
	b.StopTimer()
	b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "first-ms")
	b.ReportMetric(float64(last.Microseconds())/1000/float64(b.N), "last-ms")
}
