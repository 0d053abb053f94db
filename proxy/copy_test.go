package proxy

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestCopyBufferedSpoolAllocs: copying a body into and out of a spool file
// uses the pooled buffer, not a fresh 32 KiB one per body (os.File's
// ReadFrom and WriteTo fall back to io.Copy's own buffer for peers like
// the upstream's literal reader and the client's literal writer).
func TestCopyBufferedSpoolAllocs(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB
	f, err := os.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	out.Grow(len(body))
	// Plain io.Reader / io.Writer, as the literal reader and writer are.
	literal := func() io.Reader { return struct{ io.Reader }{bytes.NewReader(body)} }
	client := struct{ io.Writer }{&out}
	copyBuffered(io.Discard, literal()) // fill the pool
	const runs = 10
	for _, tt := range []struct {
		name string
		run  func() (int64, error)
	}{
		{"into the spool", func() (int64, error) {
			f.Seek(0, io.SeekStart)
			return copyBuffered(f, literal())
		}},
		{"out of the spool", func() (int64, error) {
			f.Seek(0, io.SeekStart)
			out.Reset()
			return copyBuffered(client, f)
		}},
	} {
		// The process's allocations include other goroutines' (the rest
		// of the suite): the fewest over a few tries is this copy's.
		least := uint64(math.MaxUint64)
		for range 5 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				n, err := tt.run()
				if err != nil || n != int64(len(body)) {
					t.Fatalf("%s: copied %d bytes (%v), want %d", tt.name, n, err, len(body))
				}
			}
			runtime.ReadMemStats(&after)
			least = min(least, (after.TotalAlloc-before.TotalAlloc)/runs)
		}
		// Without the pool every copy allocates 32 KiB. With it, nothing,
		// but under -race sync.Pool drops a quarter of what is put back
		// (on purpose), so allow well under 32 KiB on average.
		if least > 20<<10 {
			t.Errorf("%s: %d bytes allocated per copy, want the pooled buffer used (well under 32 KiB)", tt.name, least)
		}
	}
	if !bytes.Equal(out.Bytes(), body) {
		t.Error("the body read back from the spool differs from what was written")
	}
}
