package proxy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/idlemux/idlemux/config"
)

// bcryptProbe replaces bcryptCompare for one test, recording the calls,
// the cost of each hash compared against, and the most running at once.
type bcryptProbe struct {
	calls, now, peak atomic.Int64
	mu               sync.Mutex
	costs            []int
}

func probeBcrypt(t *testing.T) *bcryptProbe {
	p := &bcryptProbe{}
	orig := bcryptCompare
	bcryptCompare = func(hash, pass []byte) error {
		p.calls.Add(1)
		n := p.now.Add(1)
		for pk := p.peak.Load(); n > pk && !p.peak.CompareAndSwap(pk, n); pk = p.peak.Load() {
		}
		defer p.now.Add(-1)
		c, _ := bcrypt.Cost(hash)
		p.mu.Lock()
		p.costs = append(p.costs, c)
		p.mu.Unlock()
		return orig(hash, pass)
	}
	t.Cleanup(func() { bcryptCompare = orig })
	return p
}

// floodCost is the bcrypt cost of the tests' virtual user: cheaper than
// bcrypt.DefaultCost, which takes about a second under -race.
const floodCost = 6

// mappedConfig is map mode with one virtual user, virt0/vpass0, hashed at
// floodCost, on the upstream account testUser.
func mappedConfig(t testing.TB, upAddr string) *config.Config {
	secretFile := filepath.Join(t.TempDir(), "upstream.pw")
	os.WriteFile(secretFile, []byte(testPass+"\n"), 0o600)
	h, err := bcrypt.GenerateFromPassword([]byte("vpass0"), floodCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(upAddr)
	cfg.Auth.Mode = "map"
	cfg.Auth.Users = []config.MappedUser{{User: "virt0", PasswordHash: string(h), UpstreamUser: testUser, UpstreamPasswordFile: secretFile}}
	return cfg
}

// TestHostileMappedUnknownUser (P8): in map mode a wrong password for a
// user that does not exist costs the same bcrypt comparison (one, at the
// same cost) as for one that does, and gets the same answer on the wire:
// the time to a NO tells nothing about which user names exist.
func TestHostileMappedUnknownUser(t *testing.T) {
	probe := probeBcrypt(t)
	up := startMemUpstream(t)
	cfg := mappedConfig(t, up.addr)
	cfg.Limits.MaxLoginDelay = 0
	p := startProxy(t, cfg)
	var answers []string
	for _, user := range []string{"virt0", "ghost"} {
		before := probe.calls.Load()
		l := dialFrom(t, p.Addrs()[0], "127.0.0.1").talk("a", "LOGIN "+user+" wrong", waitLong)
		answers = append(answers, l[len(l)-1])
		if got := probe.calls.Load() - before; got != 1 {
			t.Errorf("%s: bcrypt comparisons %d, want 1", user, got)
		}
	}
	if answers[0] != answers[1] || !strings.HasPrefix(answers[0], "a NO [AUTHENTICATIONFAILED]") {
		t.Errorf("known user vs unknown user: got %q, want the same NO [AUTHENTICATIONFAILED]", answers)
	}
	if probe.costs[0] != floodCost || probe.costs[1] != probe.costs[0] {
		t.Errorf("bcrypt costs compared against (known, unknown): got %v, want both %d", probe.costs, floodCost)
	}
}

// TestHostileMappedFlood (P8): 300 wrong passwords at once from one
// address in map mode run at most GOMAXPROCS bcrypt comparisons at a time
// (and at most limits.max_parallel_logins_per_ip from that address), and a
// real login from another address during the flood gets in.
func TestHostileMappedFlood(t *testing.T) {
	probe := probeBcrypt(t)
	up := startMemUpstream(t)
	cfg := mappedConfig(t, up.addr)
	cfg.Limits.MaxLoginDelay = 50 * time.Millisecond
	p := startProxy(t, cfg)
	const n = 300
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dialFrom(t, p.Addrs()[0], "127.0.0.1")
	}
	real := dialFrom(t, p.Addrs()[0], "127.0.0.2")
	cpu0 := cpuTime(t)
	start := time.Now()
	answers := make([]string, n)
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := rc.talk("a", fmt.Sprintf("LOGIN virt0 wrong%d", i), 6*waitLong)
			answers[i] = l[len(l)-1]
		}()
	}
	time.Sleep(100 * time.Millisecond) // the flood is under way
	realStart := time.Now()
	l := real.talk("b", "LOGIN virt0 vpass0", waitLong)
	realTook := time.Since(realStart)
	if !strings.HasPrefix(l[len(l)-1], "b OK") {
		t.Fatalf("real login during the flood: got %q, want b OK", l)
	}
	wg.Wait()
	took, cpu := time.Since(start), cpuTime(t)-cpu0
	for i, a := range answers {
		if !strings.HasPrefix(a, "a NO [AUTHENTICATIONFAILED]") && !strings.HasPrefix(a, "a NO [UNAVAILABLE]") {
			t.Fatalf("flood connection %d: got %q, want NO [AUTHENTICATIONFAILED] or NO [UNAVAILABLE]", i, a)
		}
	}
	if peak := probe.peak.Load(); peak > int64(runtime.GOMAXPROCS(0)) || peak > int64(cfg.Limits.MaxParallelLoginsPerIP)+1 {
		t.Errorf("bcrypt comparisons at once: got %d, want at most GOMAXPROCS (%d) and the address's cap + the real login", peak, runtime.GOMAXPROCS(0))
	}
	t.Logf("map-mode flood of %d wrong passwords: %d bcrypt comparisons (peak %d at once), %v CPU in %v; real login from another address took %v",
		n, probe.calls.Load(), probe.peak.Load(), cpu.Round(time.Millisecond), took.Round(time.Millisecond), realTook.Round(time.Millisecond))
}

// BenchmarkMappedRefusal compares the cost of refusing a wrong password for
// a known and an unknown map-mode user: the same bcrypt work, so the
// figures match (the timing oracle P8 describes is gone).
func BenchmarkMappedRefusal(b *testing.B) {
	h, _ := bcrypt.GenerateFromPassword([]byte("vpass0"), bcrypt.DefaultCost)
	ms := newMappedUsers([]config.MappedUser{{User: "virt0", PasswordHash: string(h)}})
	for _, user := range []string{"virt0", "ghost"} {
		b.Run(user, func(b *testing.B) {
			for b.Loop() {
				if mu, err := ms.check(b.Context(), user, "wrong", func(context.Context) error { return nil }); mu != nil || err != nil {
					b.Fatalf("check(%s, wrong) = %v, %v; want refused", user, mu, err)
				}
			}
		})
	}
}
