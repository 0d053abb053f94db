package proxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestFetchSpoolBytes: literals go through the spool byte for byte, in
// memory, through the file, and across both, whatever the client side's
// pace; every byte of memory and disk is given back.
func TestFetchSpoolBytes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		memPerFetch int64
		patience    time.Duration
		readDelay   time.Duration // before the client side starts
		wantDisk    bool
	}{
		{name: "memory, client keeps up", memPerFetch: 1 << 20, patience: 5 * time.Second},
		{name: "one chunk, patient", memPerFetch: spoolChunkSize, patience: 5 * time.Second},
		{name: "one chunk, late client, to disk", memPerFetch: spoolChunkSize, readDelay: 200 * time.Millisecond, wantDisk: true},
		{name: "late client outlasts patience", memPerFetch: spoolChunkSize, patience: 50 * time.Millisecond, readDelay: 200 * time.Millisecond, wantDisk: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldMem, oldPat := spoolChunkMemPerFetch, spoolPatience
			spoolChunkMemPerFetch, spoolPatience = tc.memPerFetch, tc.patience
			defer func() { spoolChunkMemPerFetch, spoolPatience = oldMem, oldPat }()

			rng := rand.New(rand.NewPCG(3, 4))
			var lits [][]byte
			for range 20 {
				b := make([]byte, rng.IntN(300<<10))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				lits = append(lits, b)
			}
			sp := newFetchSpool()
			diskBefore := spoolDiskUsed.Load()
			sawDisk := false
			got := make(chan []byte, 1)
			go func() {
				time.Sleep(tc.readDelay)
				var out bytes.Buffer
				for {
					r, ok := sp.next()
					if !ok {
						break
					}
					if err := sp.writeLiteralTo(&out, r.size); err != nil {
						t.Errorf("writeLiteralTo: %v", err)
						sp.abort(err)
						break
					}
				}
				got <- out.Bytes()
			}()
			var want []byte
			for _, b := range lits {
				if err := sp.put(spoolRec{kind: recItem, lit: true, size: int64(len(b))}); err != nil {
					t.Fatal(err)
				}
				// A reader returning small pieces, as a socket does.
				if err := sp.copyLiteralIn(io.LimitReader(&pieceReader{b: b, max: 5000}, int64(len(b))), int64(len(b))); err != nil {
					t.Fatal(err)
				}
				sawDisk = sawDisk || spoolDiskUsed.Load() > diskBefore
				want = append(want, b...)
			}
			sp.finish(nil)
			out := <-got
			sp.free()
			if !bytes.Equal(out, want) {
				t.Errorf("got %d bytes, want the %d spooled, identical", len(out), len(want))
			}
			if sawDisk != tc.wantDisk {
				t.Errorf("spool file used: got %v, want %v", sawDisk, tc.wantDisk)
			}
			if m, d := spoolMemUsed.Load(), spoolDiskUsed.Load(); m != 0 || d != diskBefore {
				t.Errorf("after free: got %d bytes of memory and %d of disk held, want 0 and %d", m, d, diskBefore)
			}
		})
	}
}

// TestFetchSpoolCut: a literal the upstream side could not finish is an
// error on the client side, not a short literal.
func TestFetchSpoolCut(t *testing.T) {
	sp := newFetchSpool()
	defer sp.free()
	if err := sp.put(spoolRec{kind: recItem, lit: true, size: 100}); err != nil {
		t.Fatal(err)
	}
	err := sp.copyLiteralIn(bytes.NewReader(make([]byte, 60)), 100)
	if err == nil {
		t.Fatalf("copyLiteralIn of 60 bytes for 100: got no error, want one")
	}
	sp.finish(err)
	r, ok := sp.next()
	if !ok {
		t.Fatalf("next: got no record, want the literal's")
	}
	if err := sp.writeLiteralTo(io.Discard, r.size); err == nil {
		t.Errorf("writeLiteralTo of a cut literal: got no error, want errSpoolCut")
	}
}

// pieceReader returns at most max bytes per Read.
type pieceReader struct {
	b   []byte
	max int
}

func (p *pieceReader) Read(b []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), p.max)], p.b)
	p.b = p.b[n:]
	return n, nil
}
