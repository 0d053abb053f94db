package proxy

import (
	"os"
	"runtime"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/idlemux/idlemux/config"
	"github.com/idlemux/idlemux/internal/procfs"
)

// BenchmarkReloadUpstreams measures a SIGHUP's ApplyConfig with a session
// idling on upstream b: "unchanged" re-applies the same file (the floor:
// certificate, settings, the routing plan), "add-remove" adds upstream c
// (a new manager) and removes it again (its manager shut down), so one op
// is two reloads. Heap in use and RSS are read after the loop against
// before it: a reload that leaked would show per-op growth. Each op checks
// that b's session and manager survived.
func BenchmarkReloadUpstreams(b *testing.B) {
	for _, bc := range []struct {
		name  string
		apply func(p *Server, cfg, withC *config.Config) error
	}{
		{"unchanged", func(p *Server, cfg, _ *config.Config) error { return p.ApplyConfig(cfg) }},
		{"add-remove", func(p *Server, cfg, withC *config.Config) error {
			if err := p.ApplyConfig(withC); err != nil {
				return err
			}
			return p.ApplyConfig(cfg)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg, _, upC := twoPassRoutes(b)
			p := startProxyLogging(b, cfg, zap.NewNop()) // zaptest would keep every line in memory
			rc := dialRaw(b, p.Addrs()[0])
			rc.cmd("a", "LOGIN "+testUser+" "+testPass)
			rc.cmd("b", "SELECT INBOX")
			withC := *cfg
			uc := cfg.Upstreams[1]
			uc.Name, uc.Address, uc.Domains = "c2", upC.addr, []string{"c2.example"}
			withC.Upstreams = append(slices.Clone(cfg.Upstreams), uc)
			mgrB := p.routes()[0].mgr
			heap0, rss0 := heapAndRSS(b)
			b.ResetTimer()
			for range b.N {
				if err := bc.apply(p, cfg, &withC); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			heap1, rss1 := heapAndRSS(b)
			if got := p.routes()[0].mgr; got != mgrB {
				b.Fatal("b's manager: got a new one, want the same")
			}
			if got := rc.cmd("c", "NOOP"); got[len(got)-1] != "c OK NOOP completed" {
				b.Fatalf("b's session after the reloads: got %q, want c OK NOOP completed", got)
			}
			b.ReportMetric(float64(heap1-heap0)/float64(b.N), "heap-B-growth/op")
			b.ReportMetric(float64(rss1-rss0), "RSS-KiB-growth")
		})
	}
}

// heapAndRSS is the heap in use after a GC and the process's RSS in KiB.
func heapAndRSS(b *testing.B) (heap int64, rssKiB int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err := procfs.KiB(os.Getpid(), "status", "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	return int64(ms.HeapInuse), rss
}
