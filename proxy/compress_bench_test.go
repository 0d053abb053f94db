package proxy

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// idleClients is how many sessions each half of
// BenchmarkIdleCompressedMemory holds.
const idleClients = 1000

// BenchmarkIdleCompressedMemory measures what an idle session costs
// idlemux with and without COMPRESS=DEFLATE: idleClients sessions LOGIN,
// SELECT INBOX and IDLE, uncompressed then compressed, then again in the
// other order; the growth of the process's RSS and live heap per session,
// averaged over both orders, is reported for each kind.
// The clients are in the same process but hold only their socket once
// idling (the compressed ones send stored blocks and drop their inflater),
// so the growth is idlemux's.
//
//	go test -run '^$' -bench IdleCompressedMemory -benchtime 1x ./proxy/
func BenchmarkIdleCompressedMemory(b *testing.B) {
	up := startMemUpstream(b)
	cfg := testConfig(up.addr)
	cfg.Keepalive = 0
	p := startProxyLogging(b, cfg, zap.NewNop())
	addr := p.Addrs()[0]
	for range b.N {
		var conns []net.Conn
		measure := func() (rssKiB int64, heap uint64) {
			runtime.GC()
			debug.FreeOSMemory()
			time.Sleep(200 * time.Millisecond) // sessions settle into IDLE
			runtime.GC()
			return selfKiB(b, "VmRSS"), collected().HeapAlloc // live bytes: HeapInuse counts whole spans
		}
		// Each half runs in both orders, so what the first sessions set up
		// once (pools, the mailbox's model) is not charged to one of them.
		perSession := map[bool][2]float64{}
		for _, order := range [][]bool{{false, true}, {true, false}} {
			for _, compress := range order {
				rss0, heap0 := measure()
				for range idleClients {
					conns = append(conns, idleClient(b, addr, compress))
				}
				rss1, heap1 := measure()
				got := perSession[compress]
				perSession[compress] = [2]float64{got[0] + float64(rss1-rss0)/idleClients/2, got[1] + float64(heap1-heap0)/idleClients/1024/2}
			}
		}
		b.ReportMetric(perSession[false][0], "plain-RSS-KiB/session")
		b.ReportMetric(perSession[true][0], "compressed-RSS-KiB/session")
		b.ReportMetric(perSession[false][1], "plain-heap-KiB/session")
		b.ReportMetric(perSession[true][1], "compressed-heap-KiB/session")
		for _, c := range conns {
			c.Close()
		}
	}
}

// idleClient logs in, maybe turns COMPRESS on, selects INBOX and idles;
// it returns the connection, holding nothing else.
func idleClient(b *testing.B, addr string, compress bool) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var r *bufio.Reader = bufio.NewReader(c)
	var w io.Writer = c
	expect := func(prefix string) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				b.Fatalf("waiting for %q: %v", prefix, err)
			}
			if strings.HasPrefix(l, prefix) {
				return
			}
		}
	}
	send := func(s string) {
		if _, err := w.Write([]byte(s)); err != nil {
			b.Fatal(err)
		}
	}
	expect("* OK")
	send("a LOGIN " + testUser + " " + testPass + "\r\n")
	expect("a OK")
	if compress {
		send("z COMPRESS DEFLATE\r\n")
		expect("z OK")
		r = bufio.NewReader(flate.NewReader(r))
		w = storedWriter{c}
	}
	send("s SELECT INBOX\r\n")
	expect("s OK")
	send("i IDLE\r\n")
	expect("+ ")
	c.SetDeadline(time.Time{})
	return c
}

// storedWriter sends each write as stored deflate blocks: a compressing
// client without a compressor's state.
type storedWriter struct{ c net.Conn }

func (s storedWriter) Write(p []byte) (int, error) {
	if _, err := s.c.Write(appendStored(nil, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// BenchmarkCompressIdleUpdate compares, for one unsolicited update while a
// compressed client idles, what idlemux sends (stored blocks and the empty
// block that flushes them) with a fresh pooled writer (level 6, reset per
// update, then a sync flush): wire bytes per update and CPU.
//
//	go test -run '^$' -bench CompressIdleUpdate ./proxy/
func BenchmarkCompressIdleUpdate(b *testing.B) {
	update := []byte("* 5 FETCH (UID 17 FLAGS (\\Seen))\r\n")
	b.Run("stored", func(b *testing.B) {
		var out []byte
		for b.Loop() {
			out = appendStored(out[:0], update)
		}
		checkInflates(b, out, update)
		b.ReportMetric(float64(len(out)), "wire-bytes/op")
		b.ReportMetric(float64(len(update)), "plain-bytes/op")
	})
	b.Run("fresh-writer", func(b *testing.B) {
		z := zwriters.Get().(*zwriter)
		defer zwriters.Put(z)
		n := 0
		for b.Loop() {
			z.out.Reset()
			z.zw.Reset(&z.out)
			z.zw.Write(update)
			z.zw.Flush()
			n = z.out.Len()
		}
		checkInflates(b, z.out.Bytes(), update)
		b.ReportMetric(float64(n), "wire-bytes/op")
		b.ReportMetric(float64(len(update)), "plain-bytes/op")
	})
}

// checkInflates fails b unless wire inflates to want at once.
func checkInflates(b *testing.B, wire, want []byte) {
	got := make([]byte, len(want))
	if _, err := io.ReadFull(flate.NewReader(bytes.NewReader(wire)), got); err != nil || !bytes.Equal(got, want) {
		b.Fatalf("inflated %q, %v; want %q", got, err, want)
	}
}
