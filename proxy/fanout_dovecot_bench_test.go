package proxy

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
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
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = conn
			c, err := startIdler(conn)
			if err != nil {
				errs[i] = err
				return
			}
			go func() {
				var prev uint32
				c.exists(func(m uint32) { round.seen(m, &prev) })
			}()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("client %d of %d: %v", i, n, err)
		}
	}
	time.Sleep(time.Second) // every IDLE has reached its server

	msg := []byte("From: bench@example.org\r\nSubject: fan-out\r\n\r\nbody\r\n")
	var first, last time.Duration
	b.ResetTimer()
	for range b.N {
		count++
		round.arrived.Store(0)
		round.first.Store(0)
		round.last.Store(0)
		round.all = make(chan struct{})
		round.target.Store(count)
		if err := appendTo(appender, msg); err != nil {
			b.Fatal(err)
		}
		done := time.Now().UnixNano()
		select {
		case <-round.all:
		case <-time.After(30 * time.Second):
			b.Fatalf("EXISTS %d reached %d of %d clients within 30s", count, round.arrived.Load(), n)
		}
		first += time.Duration(round.first.Load() - done)
		last += time.Duration(round.last.Load() - done)
	}
	b.StopTimer()
	b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "first-ms")
	b.ReportMetric(float64(last.Microseconds())/1000/float64(b.N), "last-ms")
}

// appendTo appends msg to INBOX on c and waits for the answer.
func appendTo(c *imapclient.Client, msg []byte) error {
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}
