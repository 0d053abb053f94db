package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idlemux/idlemux/upstream"
)

// Bounds of the FETCH spool. A session runs one command at a time, so the
// per-FETCH bounds are per-session bounds. Up to the per-FETCH disk bound a
// client that does not read costs disk, not an upstream connection; past
// it (or past the process-wide bounds) the upstream side waits for the
// client again, as before the spool, and the client's writes are bounded
// by imapserver (30 s per response, 5 min per literal), so the wait is too.
// They are variables so tests can lower them.
var (
	// spoolChunkMemPerFetch is literal bytes kept in memory per FETCH
	// before they go to the spool file: enough that a client keeping up
	// never touches the disk.
	spoolChunkMemPerFetch int64 = 1 << 20
	// spoolChunkMemTotal caps literal bytes in memory across all FETCHes.
	spoolChunkMemTotal int64 = 64 << 20
	// spoolRecMemPerFetch caps the estimated memory of items other than
	// literals (ENVELOPE, BODYSTRUCTURE, FLAGS...) held for a client. They
	// are not written to disk: a FETCH of that much metadata to a client
	// that does not read waits for it.
	spoolRecMemPerFetch int64 = 4 << 20
	// spoolDiskPerFetch is the spool file's size bound per FETCH: a few
	// large messages (attachments of tens of MiB) fit.
	spoolDiskPerFetch int64 = 128 << 20
	// spoolDiskTotal caps spool files across all FETCHes, so a wave of
	// stalled clients cannot fill the temporary directory.
	spoolDiskTotal int64 = 1 << 30
	// spoolPatience is how long, in all, a FETCH's upstream side waits
	// for a client that lags behind the memory bound before it spools to
	// disk: a client that keeps up costs no disk writes and reads, and
	// the upstream connection is held at most this much longer.
	spoolPatience = 250 * time.Millisecond
)

// spoolMemUsed and spoolDiskUsed count what every spool holds.
var spoolMemUsed, spoolDiskUsed atomic.Int64

// spoolChunkSize is the size of a memory chunk: the most the upstream
// side reads, and the client side writes, at once.
const spoolChunkSize = 128 << 10

// spoolFileStep is the most written to the spool file at once (the size
// of the pooled copy buffers that stage it).
const spoolFileStep = 32 << 10

var spoolChunks = sync.Pool{New: func() any { b := make([]byte, 0, spoolChunkSize); return &b }}

type recKind uint8

const (
	recItem recKind = iota // a run of the answer; size bytes follow
)

// spoolRec is one step of the FETCH answer. Its bytes (lit) are not in
// the record: its size bytes follow in the spool's byte stream.
type spoolRec struct {
	kind recKind
	lit  bool
	size int64
	cost int64
}

// spoolChunk is a run of literal bytes, in memory (buf[r:]) or in the
// spool file (n bytes at off).
type spoolChunk struct {
	buf *[]byte
	r   int
	off int64
	n   int64
}

// fetchSpool decouples a FETCH's two sides: the upstream side writes the
// answer at the upstream's pace and gives the connection back as soon as
// the upstream FETCH completes; the client side reads it at the client's
// pace. Records (message boundaries and items) stay in memory; literal
// bytes go to memory chunks, then to one unlinked temporary file.
type fetchSpool struct {
	mu     sync.Mutex
	cond   sync.Cond
	recs   []spoolRec
	chunks []spoolChunk
	recMem int64 // estimated bytes of recs
	mem    int64 // capacity of memory chunks held
	file   *os.File
	fileW  int64 // the file's size
	fileIn int64 // bytes of the file not yet read
	unread int64 // literal bytes written and not yet read
	// Which side sleeps: the client side is woken only once a batch is
	// ready (spoolWakeBytes, spoolWakeCost) or the answer is complete, so
	// a client that keeps up costs one wakeup per batch, not per item.
	readerWaits, writerWaits bool
	done                     bool  // the upstream side has finished
	err                      error // why the upstream side stopped, if it failed
	rerr                     error // why the client side stopped: the upstream side stops too
	// patience is how long the upstream side may still wait for the
	// client side to free memory before it spools to disk.
	patience time.Duration
	guard    *upstream.Guard
}

func newFetchSpool() *fetchSpool {
	sp := &fetchSpool{patience: spoolPatience}
	sp.cond.L = &sp.mu
	return sp
}

// errSpoolCut is what the client side reads when the upstream side stopped
// in the middle of a literal: the client's literal cannot be finished.
var errSpoolCut = errors.New("upstream answer cut short")

// Batch sizes that wake a sleeping client side.
const (
	spoolWakeBytes = 16 << 10
	spoolWakeCost  = 8 << 10
)

// waitLocked waits for the other side. The upstream side's guard is paused
// meanwhile: waiting on a slow client is not upstream silence. A waiting
// upstream side always wakes the client side first: only it can make room.
func (sp *fetchSpool) waitLocked(writer bool) {
	if !writer {
		sp.readerWaits = true
		sp.cond.Wait()
		sp.readerWaits = false
		return
	}
	if sp.guard != nil {
		sp.guard.Pause()
		defer sp.guard.Touch()
	}
	sp.writerWaits = true
	sp.cond.Broadcast()
	sp.cond.Wait()
	sp.writerWaits = false
}

// wakeReaderLocked wakes a sleeping client side once a batch is ready.
func (sp *fetchSpool) wakeReaderLocked() {
	if sp.readerWaits && (sp.done || sp.unread >= spoolWakeBytes || sp.recMem >= spoolWakeCost) {
		sp.cond.Broadcast()
	}
}

// wakeWriterLocked wakes a sleeping upstream side: room was made.
func (sp *fetchSpool) wakeWriterLocked() {
	if sp.writerWaits {
		sp.cond.Broadcast()
	}
}

// put adds a record, waiting while records exceed their memory bound.
func (sp *fetchSpool) put(r spoolRec) error {
	r.cost = recCost
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for sp.rerr == nil && len(sp.recs) > 0 && sp.recMem+r.cost > spoolRecMemPerFetch {
		sp.waitLocked(true)
	}
	if sp.rerr != nil {
		return sp.rerr
	}
	sp.recs = append(sp.recs, r)
	sp.recMem += r.cost
	sp.wakeReaderLocked()
	return nil
}

// copyLiteralIn spools a literal of size bytes from src, failing if src
// ends early. The bytes are read straight into the spool's memory chunks
// (or, past the memory bounds, a staging buffer for the file), outside
// the lock: the client side only sees them once published.
func (sp *fetchSpool) copyLiteralIn(src io.Reader, size int64) error {
	for left := size; left > 0; {
		r, err := sp.reserve(left)
		if err != nil {
			return err
		}
		var n int
		if r.mem != nil {
			n, err = src.Read(r.mem)
		} else {
			n, err = io.ReadFull(src, r.stage)
			if n > 0 {
				if _, werr := sp.file.WriteAt(r.stage[:n], r.off); werr != nil {
					err = fmt.Errorf("spooling FETCH: %w", werr)
					n = 0
				}
			}
		}
		if n > 0 {
			sp.publish(r, n)
			left -= int64(n)
		}
		r.release()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if left > 0 {
				err = fmt.Errorf("literal of %d bytes ended after %d: %w", size, size-left, io.ErrUnexpectedEOF)
			} else {
				err = nil
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// reservation is room for the next literal bytes: free space at the end
// of the last memory chunk, or a staging buffer bound for the file at off.
type reservation struct {
	mem   []byte
	stage []byte
	bp    *[]byte
	off   int64
}

func (r reservation) release() {
	if r.bp != nil {
		copyBufs.Put(r.bp)
	}
}

// reserve finds room for up to max bytes: in memory while the memory
// bounds allow (one chunk always may, so a spool makes progress whatever
// the others hold); else, while the FETCH's patience lasts, it waits for
// the client side to make room in memory (a client that keeps up but lags
// a moment costs no disk); else in the spool file while the disk bounds
// allow; else it waits for the client side.
func (sp *fetchSpool) reserve(max int64) (reservation, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for {
		if sp.rerr != nil {
			return reservation{}, sp.rerr
		}
		if r, ok := sp.memRoomLocked(max); ok {
			return r, nil
		}
		if sp.patience > 0 {
			sp.waitPatientLocked()
			continue
		}
		r, ok, err := sp.fileRoomLocked(max)
		if err != nil {
			sp.rerr = err
			sp.cond.Broadcast()
			return reservation{}, err
		}
		if ok {
			return r, nil
		}
		sp.waitLocked(true)
	}
}

// memRoomLocked finds room in memory. Only the last chunk is ever short
// of its capacity: the client side drops a memory chunk once it is full
// and read, never the one still being filled.
func (sp *fetchSpool) memRoomLocked(max int64) (reservation, bool) {
	if k := len(sp.chunks); k > 0 && sp.chunks[k-1].buf != nil {
		b := *sp.chunks[k-1].buf
		if room := cap(b) - len(b); room > 0 {
			return reservation{mem: b[len(b):][:min(int64(room), max)]}, true
		}
	}
	if sp.mem == 0 || (sp.mem+spoolChunkSize <= spoolChunkMemPerFetch && spoolMemUsed.Load()+spoolChunkSize <= spoolChunkMemTotal) {
		b := spoolChunks.Get().(*[]byte)
		*b = (*b)[:0]
		sp.chunks = append(sp.chunks, spoolChunk{buf: b})
		sp.mem += spoolChunkSize
		spoolMemUsed.Add(spoolChunkSize)
		return reservation{mem: (*b)[:min(spoolChunkSize, max)]}, true
	}
	return reservation{}, false
}

// waitPatientLocked waits for the client side to free memory, for at most
// what is left of the FETCH's patience: the upstream connection is held
// that much longer at most, whatever the client does.
func (sp *fetchSpool) waitPatientLocked() {
	start := time.Now()
	t := time.AfterFunc(sp.patience, func() {
		sp.mu.Lock()
		sp.cond.Broadcast()
		sp.mu.Unlock()
	})
	sp.waitLocked(true)
	t.Stop()
	sp.patience -= time.Since(start)
}

// fileRoomLocked finds room in the spool file.
func (sp *fetchSpool) fileRoomLocked(max int64) (reservation, bool, error) {
	if sp.fileIn == 0 && sp.fileW > 0 {
		// Everything on disk was read: reuse the file from the start.
		if err := sp.file.Truncate(0); err != nil {
			return reservation{}, false, fmt.Errorf("spooling FETCH: %w", err)
		}
		spoolDiskUsed.Add(-sp.fileW)
		sp.fileW = 0
	}
	n := min(spoolFileStep, max)
	if sp.fileW+n > spoolDiskPerFetch || spoolDiskUsed.Load()+n > spoolDiskTotal {
		return reservation{}, false, nil
	}
	if sp.file == nil {
		f, err := os.CreateTemp("", "idlemux-fetch-")
		if err != nil {
			return reservation{}, false, fmt.Errorf("spooling FETCH: %w", err)
		}
		os.Remove(f.Name()) // unlinked: nothing is left behind, whatever happens
		sp.file = f
	}
	bp := copyBufs.Get().(*[]byte)
	return reservation{stage: (*bp)[:n], bp: bp, off: sp.fileW}, true, nil
}

// publish hands n bytes read into r to the client side.
func (sp *fetchSpool) publish(r reservation, n int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if r.mem != nil {
		b := sp.chunks[len(sp.chunks)-1].buf
		*b = (*b)[:len(*b)+n]
	} else {
		sp.chunks = append(sp.chunks, spoolChunk{off: r.off, n: int64(n)})
		sp.fileW += int64(n)
		sp.fileIn += int64(n)
		spoolDiskUsed.Add(int64(n))
	}
	sp.unread += int64(n)
	sp.wakeReaderLocked()
}

// finish ends the upstream side; err says why when it failed.
func (sp *fetchSpool) finish(err error) {
	sp.mu.Lock()
	sp.done, sp.err = true, err
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// next returns the next record; false once the upstream side finished and
// everything was taken.
func (sp *fetchSpool) next() (spoolRec, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.recs) == 0 && !sp.done {
		sp.waitLocked(false)
	}
	if len(sp.recs) == 0 {
		return spoolRec{}, false
	}
	r := sp.recs[0]
	sp.recs[0] = spoolRec{}
	sp.recs = sp.recs[1:]
	sp.recMem -= r.cost
	sp.wakeWriterLocked()
	return r, true
}

// writeLiteralTo writes the next size literal bytes to w, straight from
// the spool's memory (without the lock: only this side consumes, and the
// upstream side only appends past what was published). Once the upstream
// side has finished, running out of bytes means a literal was cut short.
func (sp *fetchSpool) writeLiteralTo(w io.Writer, size int64) error {
	for left := size; left > 0; {
		view, bp, err := sp.take(left)
		if err != nil {
			return err
		}
		n, err := w.Write(view)
		if bp != nil {
			copyBufs.Put(bp)
		}
		if err != nil {
			return err
		}
		left -= int64(n)
	}
	return nil
}

// take returns the next published bytes, up to max, and marks them read:
// a view of a memory chunk, or a pooled buffer (bp) read from the file.
// A memory chunk goes back to the pool only at the next take, once its
// bytes were written.
func (sp *fetchSpool) take(max int64) ([]byte, *[]byte, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for {
		for len(sp.chunks) > 0 && sp.headSpentLocked() {
			sp.dropHeadLocked()
			sp.wakeWriterLocked()
		}
		if sp.unread > 0 {
			break
		}
		if sp.done {
			if sp.err == nil {
				return nil, nil, errSpoolCut
			}
			return nil, nil, fmt.Errorf("%w: %v", errSpoolCut, sp.err)
		}
		sp.waitLocked(false)
	}
	c := &sp.chunks[0]
	if c.buf != nil {
		view := (*c.buf)[c.r:]
		view = view[:min(int64(len(view)), max)]
		c.r += len(view)
		sp.unread -= int64(len(view))
		return view, nil, nil
	}
	// A file chunk. The upstream side never touches a region not yet
	// read (fileIn > 0 keeps the file); the read is short, under the lock.
	bp := copyBufs.Get().(*[]byte)
	want := min(int64(len(*bp)), c.n, max)
	n, err := sp.file.ReadAt((*bp)[:want], c.off)
	if err != nil && int64(n) < want {
		copyBufs.Put(bp)
		return nil, nil, fmt.Errorf("reading FETCH spool: %w", err)
	}
	c.off += want
	c.n -= want
	sp.fileIn -= want
	sp.unread -= want
	if c.n == 0 {
		sp.chunks[0] = spoolChunk{}
		sp.chunks = sp.chunks[1:]
	}
	if sp.fileIn == 0 {
		sp.wakeWriterLocked() // the file can be reused
	}
	return (*bp)[:want], bp, nil
}

// headSpentLocked: the first chunk is a memory chunk, full and all read.
func (sp *fetchSpool) headSpentLocked() bool {
	c := sp.chunks[0]
	return c.buf != nil && c.r == cap(*c.buf)
}

// dropHeadLocked returns the first chunk's memory.
func (sp *fetchSpool) dropHeadLocked() {
	b := sp.chunks[0].buf
	sp.chunks[0] = spoolChunk{}
	sp.chunks = sp.chunks[1:]
	sp.mem -= spoolChunkSize
	spoolMemUsed.Add(-spoolChunkSize)
	*b = (*b)[:0]
	spoolChunks.Put(b)
}

// abort stops the client side: the upstream side's next write fails with
// err.
func (sp *fetchSpool) abort(err error) {
	sp.mu.Lock()
	if sp.rerr == nil {
		sp.rerr = err
	}
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// free gives back memory and disk. Both sides must have stopped.
func (sp *fetchSpool) free() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.chunks) > 0 {
		if sp.chunks[0].buf != nil {
			sp.dropHeadLocked()
		} else {
			sp.chunks = sp.chunks[1:]
		}
	}
	if sp.file != nil {
		sp.file.Close()
		spoolDiskUsed.Add(-sp.fileW)
		sp.file, sp.fileW, sp.fileIn = nil, 0, 0
	}
	sp.recs, sp.recMem = nil, 0
}

// recCost is the memory a record holds.
const recCost = 64
