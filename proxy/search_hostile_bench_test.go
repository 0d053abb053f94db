package proxy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/internal/dovecottest"
	"github.com/idlemux/idlemux/internal/procfs"
)

// hostileSearchClients and hostileSearchSize are the attack of the
// "Hostile input" issue (P7): 20 clients at once, each sending a 49 KiB
// SEARCH that is one OR chain nested about 6,000 deep.
const (
	hostileSearchClients = 20
	hostileSearchSize    = 49 << 10
)

// BenchmarkSearchHostileMemory measures what 20 concurrent 49 KiB OR-chain
// SEARCHes cost idlemux (the benchmark process: proxy and the 20 raw
// clients, whose share is a few KiB each) in front of a real Dovecot:
// RSS before, the high-water mark, RSS and goroutine stack in use after
// a GC once they are answered. Without a limit the chain reaches
// imapserver's recursive parser, idlemux's criteria translation and
// imapclient's recursive encoder; with checkSearch ahead of imapserver it
// is answered BAD [LIMIT] before any of them. Every client must get a
// tagged OK or BAD, or the benchmark fails.
//
// VmHWM is the process's high-water mark: run one sub-benchmark per
// process for a true peak.
//
//	go test -run '^$' -bench 'SearchHostileMemory/chain49KiB' -benchtime 1x ./proxy/
//	go test -run '^$' -bench 'SearchHostileMemory/atLimit' -benchtime 1x ./proxy/
func BenchmarkSearchHostileMemory(b *testing.B) {
	dv := dovecottest.Start(b, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	if _, err := dv.Append(testUser, "INBOX", []byte(testMessage("one"))); err != nil {
		b.Fatal(err)
	}
	p := startProxyLogging(b, testConfig(dv.Addr), zap.NewNop())
	addr := p.Addrs()[0]
	// chain49KiB is the attack; atLimit is the worst a client may still
	// send once checkSearch runs: it costs what any accepted search can.
	b.Run("chain49KiB", func(b *testing.B) {
		benchHostileSearch(b, addr, orChain((hostileSearchSize-len("a SEARCH SEEN\r\n"))/len("OR SEEN "), "SEEN"))
	})
	b.Run("atLimit", func(b *testing.B) { benchHostileSearch(b, addr, orChain(maxSearchDepth, "SEEN")) })
}

func benchHostileSearch(b *testing.B, addr, criteria string) {
	runtime.GC()
	debug.FreeOSMemory()
	before := selfKiB(b, "VmRSS")
	var answers map[string]int
	b.ResetTimer()
	for range b.N {
		answers = hostileSearchRound(b, addr, criteria)
	}
	b.StopTimer()
	peak := selfKiB(b, "VmHWM")
	runtime.GC()
	after := selfKiB(b, "VmRSS")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(before)/1024, "rss-before-MB")
	b.ReportMetric(float64(peak)/1024, "rss-peak-MB")
	b.ReportMetric(float64(after)/1024, "rss-after-MB")
	b.ReportMetric(float64(ms.StackInuse)/(1<<20), "stack-after-MB")
	b.Logf("answers: %v", answers)
}

// hostileSearchRound connects the clients, sends the SEARCH on all of them
// at once and counts the answers by kind ("OK", "BAD [LIMIT]").
func hostileSearchRound(b *testing.B, addr, criteria string) map[string]int {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers = map[string]int{}
		start   = make(chan struct{})
	)
	for i := range hostileSearchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind, err := hostileSearchClient(addr, criteria, start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				b.Errorf("client %d: %v", i, err)
				return
			}
			answers[kind]++
		}()
	}
	close(start)
	wg.Wait()
	if answers["OK"]+answers["BAD [LIMIT]"]+answers["BAD"] != hostileSearchClients {
		b.Fatalf("answers %v, want %d tagged OK or BAD", answers, hostileSearchClients)
	}
	return answers
}

func hostileSearchClient(addr, criteria string, start <-chan struct{}) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		return "", err
	}
	for _, cmd := range []string{"LOGIN " + testUser + " " + testPass, "SELECT INBOX"} {
		if l, err := tagged(c, r, "p", cmd); err != nil || !strings.HasPrefix(l, "p OK") {
			return "", fmt.Errorf("%s: %q %v", cmd, l, err)
		}
	}
	<-start
	l, err := tagged(c, r, "a", "SEARCH "+criteria)
	switch {
	case err != nil:
		return "", err
	case strings.HasPrefix(l, "a OK"):
		return "OK", nil
	case strings.HasPrefix(l, "a BAD [LIMIT]"):
		return "BAD [LIMIT]", nil
	case strings.HasPrefix(l, "a BAD "):
		return "BAD", nil // Dovecot's own, for an encoding past its line limit
	}
	return "", fmt.Errorf("SEARCH answered %.100q", l)
}

// tagged sends one command and returns its tagged answer.
func tagged(c net.Conn, r *bufio.Reader, tag, cmd string) (string, error) {
	if _, err := fmt.Fprintf(c, "%s %s\r\n", tag, cmd); err != nil {
		return "", err
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return l, err
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimRight(l, "\r\n"), nil
		}
	}
}

func selfKiB(b *testing.B, key string) int64 {
	n, err := procfs.KiB(os.Getpid(), "status", key)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
