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

// stormSession is what each phone of issue 10 and 11's storm does on
// reconnecting: log in, SELECT INBOX, list every message's flags, then
// fetch the newest 50 messages' headers.
func stormSession(addr string, newest string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReaderSize(c, 64<<10)
	if _, err := r.ReadString('\n'); err != nil {
		return err
	}
	for i, cmd := range []string{
		"LOGIN " + testUser + " " + testPass,
		"SELECT INBOX",
		"UID FETCH 1:* (FLAGS)",
		"FETCH " + newest + " (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)",
		"LOGOUT",
	} {
		tag := fmt.Sprintf("s%d", i)
		fmt.Fprintf(c, "%s %s\r\n", tag, cmd)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					return fmt.Errorf("%s: %q", cmd, l)
				}
				break
			}
		}
	}
	return nil
}

// storm runs n sessions at once against addr and returns the wall time.
func storm(b *testing.B, addr string, n int, newest string) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Go(func() {
			if err := stormSession(addr, newest); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}

// BenchmarkDovecotReconnectStorm: 200 sessions of one account come back
// at once (a fleet of phones after a network switch, issue 10): LOGIN,
// SELECT INBOX (500 messages), UID FETCH 1:* (FLAGS), the newest 50
// messages' headers, LOGOUT. Directly against Dovecot and through
// idlemux, in the same run; reported: idlemux's wall time over direct's,
// and idlemux's upstream logins per storm by reason, its FETCHes answered
// without the upstream and the messages its cache answered and lacked.
func BenchmarkDovecotReconnectStorm(b *testing.B) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	seed := dv.Dial(b, testUser, testPass)
	for i := range 500 {
		appendMsg(b, seed, "INBOX", testMessage(fmt.Sprintf("storm %d", i)))
	}
	seed.Logout().Wait()
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	const n = 200
	newest := "451:500"
	var d, v time.Duration
	before, fetchesBefore := p.mgr.Stats().LoginsBy, countsOf(p)
	b.ResetTimer()
	for range b.N {
		d += storm(b, dv.Addr, n, newest)
		v += storm(b, p.Addrs()[0], n, newest)
	}
	after := p.mgr.Stats().LoginsBy
	b.ReportMetric(d.Seconds()/float64(b.N), "direct-s")
	b.ReportMetric(v.Seconds()/float64(b.N), "idlemux-s")
	b.ReportMetric(v.Seconds()/d.Seconds(), "idlemux/direct-time")
	total := 0.0
	for i := range after {
		total += float64(after[i] - before[i])
	}
	b.ReportMetric(total/float64(b.N), "upstream-logins/op")
	fetches := countsOf(p)
	b.ReportMetric((fetches.local-fetchesBefore.local)/float64(b.N), "local-fetches/op")
	b.ReportMetric((fetches.misses-fetchesBefore.misses)/float64(b.N), "cache-misses/op")
	b.ReportMetric((fetches.hits-fetchesBefore.hits)/float64(b.N), "cache-hits/op")
}
